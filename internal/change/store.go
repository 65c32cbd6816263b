package change

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// Filter selects changes. Zero fields do not filter.
type Filter struct {
	State State
	Type  Type
	// Asset lists changes that target the asset directly or through one
	// of its groups.
	Asset  string
	Limit  int
	Offset int
}

// Reader reads change records; both Store and Tx offer it, so a
// transaction reads what it is about to write.
type Reader interface {
	Get(ctx context.Context, id string) (Change, error)
	List(ctx context.Context, f Filter) ([]Change, error)
	// Approvals returns every approval ever given on the change, expired
	// ones included, oldest first.
	Approvals(ctx context.Context, changeID string) ([]Approval, error)
	// Transitions returns the state history, oldest first.
	Transitions(ctx context.Context, changeID string) ([]Transition, error)
	// TestRuns returns the test runs, oldest first.
	TestRuns(ctx context.Context, changeID string) ([]TestRun, error)
	// EvidenceList returns the evidence attached to the change.
	EvidenceList(ctx context.Context, changeID string) ([]Evidence, error)
	// Evidence returns one attachment and its stored bytes, unverified:
	// the service checks the hash.
	Evidence(ctx context.Context, changeID, sha256 string) (Evidence, []byte, error)
	// TargetFacts returns the facts of every asset the targets name,
	// directly or as group members; an unknown asset or group is an
	// errs.Invalid error naming it.
	TargetFacts(ctx context.Context, t Targets) ([]policy.AssetFacts, error)
}

// Store is the storage the change service needs.
type Store interface {
	Reader
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction of change writes, audited in the same transaction.
type Tx interface {
	Reader
	audit.Appender
	// Lock reads a change and, on PostgreSQL, locks its row until the
	// transaction ends, so concurrent approvals and edits queue.
	Lock(ctx context.Context, id string) (Change, error)
	// Insert stores a new change (Revision 1).
	Insert(ctx context.Context, c Change) error
	// Update stores c when the stored revision is c.Revision-1; otherwise
	// errs.Conflict.
	Update(ctx context.Context, c Change) error
	// AddApproval stores an approval; a second one by the same person on
	// the same revision is errs.Conflict.
	AddApproval(ctx context.Context, a Approval) error
	// ExpireApprovals marks every unexpired approval of the change expired
	// and returns how many it marked.
	ExpireApprovals(ctx context.Context, changeID string, at time.Time, why string) (int, error)
	AddTransition(ctx context.Context, t Transition) error
	AddTestRun(ctx context.Context, r TestRun) error
	// PutEvidence stores the attachment's metadata, and its bytes unless
	// bytes with that hash are stored already.
	PutEvidence(ctx context.Context, e Evidence, content []byte) error
}

// Policies is where the policy in force comes from (policy.Service).
type Policies interface {
	Current(ctx context.Context) (*policy.Compiled, policy.Version, error)
}

// RiskRecords is where findings' risk records come from (risk.Store).
type RiskRecords interface {
	GetRecord(ctx context.Context, findingID string) (risk.Record, error)
}
