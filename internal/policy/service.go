package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// DefaultVersion describes the built-in default policy, in force until the
// first apply.
var defaultVersion = Version{Version: 0, AppliedBy: "built-in default"}

// Service keeps the policy in force: validates, applies (as a new, audited
// version), and renders it.
type Service struct {
	store Store
	now   func() time.Time

	// mu guards cached, the compiled form of the version last read, so
	// that each request costs one small query, not a CEL compile.
	mu     sync.Mutex
	cached *Compiled
	ver    Version
	// applied hears of every version applied through this service.
	applied func(Version)
}

// OnApply registers fn to hear of every version applied through this
// service, after commit (the risk engine re-scores everything). A version
// applied by another process is noticed by the engine's periodic pass.
func (s *Service) OnApply(fn func(Version)) { s.applied = fn }

// NewService returns a Service on store.
func NewService(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Current returns the policy in force and its version. Another replica may
// have applied a newer one: the version is read every time and compiled
// again only when it moved.
func (s *Service) Current(ctx context.Context) (*Compiled, Version, error) {
	v, err := s.store.Current(ctx)
	if errors.Is(err, errs.ErrNotFound) {
		return Default(), defaultVersion, nil
	}
	if err != nil {
		return nil, Version{}, fmt.Errorf("read policy in force: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil && s.ver.Version == v.Version && s.ver.SHA256 == v.SHA256 {
		return s.cached, s.ver, nil
	}
	c, err := Load([]byte(v.Source))
	if err != nil {
		// A stored version that no longer loads (a newer build tightened
		// validation) must not silently fall back: say which and why.
		return nil, Version{}, fmt.Errorf("policy version %d no longer loads: %w", v.Version, err)
	}
	s.cached, s.ver = c, v
	return c, v, nil
}

// Validate loads src without applying it.
func (s *Service) Validate(src []byte) (*Compiled, error) {
	c, err := Load(src)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "policy is invalid")
	}
	return c, nil
}

// Apply validates src and stores it as the next version, audited with who,
// why and the digests before and after. An invalid policy changes nothing:
// the old one stays in force.
func (s *Service) Apply(ctx context.Context, actor audit.Actor, src []byte, comment string) (Version, error) {
	if _, err := s.Validate(src); err != nil {
		return Version{}, err
	}
	sum := sha256.Sum256(src)
	var out Version
	err := s.store.Transact(ctx, func(tx Tx) error {
		latest, err := tx.Latest(ctx)
		if err != nil {
			return err
		}
		before := map[string]any{"version": latest}
		if latest > 0 {
			prev, err := s.store.GetVersion(ctx, latest)
			if err == nil {
				if prev.SHA256 == hex.EncodeToString(sum[:]) {
					return errs.E(errs.Conflict, "this policy is already in force as version %d", latest)
				}
				before["sha256"] = prev.SHA256
			}
		}
		out = Version{Version: latest + 1, Source: string(src), SHA256: hex.EncodeToString(sum[:]),
			AppliedBy: actorName(actor), AppliedAt: s.now().UTC(), Comment: comment}
		if err := tx.Insert(ctx, out); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "policy.apply", ObjectType: "policy",
			ObjectID: fmt.Sprint(out.Version), Before: before,
			After: map[string]any{"version": out.Version, "sha256": out.SHA256, "bytes": len(src)}, Reason: comment})
	})
	if err != nil {
		return Version{}, fmt.Errorf("apply policy: %w", err)
	}
	if s.applied != nil {
		s.applied(out)
	}
	return out, nil
}

func actorName(a audit.Actor) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Kind + ":" + a.ID
}

// Versions lists every applied version, newest first.
func (s *Service) Versions(ctx context.Context) ([]Version, error) { return s.store.Versions(ctx) }

// Version returns version n (0 is the built-in default).
func (s *Service) Version(ctx context.Context, n int) (*Compiled, Version, error) {
	if n == 0 {
		d := Default()
		v := defaultVersion
		v.Source, v.SHA256 = string(d.Source()), d.SHA256()
		return d, v, nil
	}
	v, err := s.store.GetVersion(ctx, n)
	if err != nil {
		return nil, Version{}, err
	}
	c, err := Load([]byte(v.Source))
	if err != nil {
		return nil, Version{}, fmt.Errorf("policy version %d no longer loads: %w", n, err)
	}
	return c, v, nil
}

// Document renders version n (-1 for the one in force) as "md" or "html".
func (s *Service) Document(ctx context.Context, n int, format string) ([]byte, error) {
	var (
		c   *Compiled
		v   Version
		err error
	)
	if n < 0 {
		c, v, err = s.Current(ctx)
	} else {
		c, v, err = s.Version(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	return Render(c, format, RenderMeta{Version: v.Version, AppliedAt: v.AppliedAt, AppliedBy: v.AppliedBy})
}
