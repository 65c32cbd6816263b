package policy

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/audit"
)

// Version is one applied version of the policy file.
type Version struct {
	Version   int       `json:"version"`
	Source    string    `json:"source"`
	SHA256    string    `json:"sha256"`
	AppliedBy string    `json:"applied_by"`
	AppliedAt time.Time `json:"applied_at"`
	Comment   string    `json:"comment,omitempty"`
}

// Store keeps every applied policy version; the highest is in force.
type Store interface {
	// Current returns the version in force, or errs.NotFound before the
	// first apply (the embedded default policy is then in force).
	Current(ctx context.Context) (Version, error)
	GetVersion(ctx context.Context, n int) (Version, error)
	// Versions lists every version, newest first, without Source.
	Versions(ctx context.Context) ([]Version, error)
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of policy writes.
type Tx interface {
	audit.Appender
	// Insert stores v; a version that already exists is errs.Conflict (two
	// replicas applying at once: one wins, the other retries or reports).
	Insert(ctx context.Context, v Version) error
	// Latest returns the highest version number, 0 when none.
	Latest(ctx context.Context) (int, error)
}
