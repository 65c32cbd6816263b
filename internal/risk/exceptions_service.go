package risk

import (
	"context"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
)

// Requester is who acts on an exception: the audit actor and the Patchward
// role the policy's approver rules are checked against.
type Requester struct {
	Actor audit.Actor
	Role  string
}

func (r Requester) name() string {
	if r.Actor.Name != "" {
		return r.Actor.Name
	}
	return r.Actor.ID
}

// RequestException records a new exception request after validating it
// against the policy in force.
func (s *Service) RequestException(ctx context.Context, who Requester, e Exception) (Exception, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Exception{}, err
	}
	now := s.now().UTC()
	e, err = NewException(e, who.name(), pol, now)
	if err != nil {
		return Exception{}, err
	}
	if s.targets != nil {
		if err := s.targets.CheckTarget(ctx, e.Scope, e.Target); err != nil {
			return Exception{}, fmt.Errorf("exception target: %w", err)
		}
	}
	err = s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.PutException(ctx, e); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: who.Actor, Action: "exception.request", ObjectType: "exception",
			ObjectID: e.ID, After: e, Reason: e.Reason})
	})
	if err != nil {
		return Exception{}, fmt.Errorf("request exception: %w", err)
	}
	return e, nil
}

// Decision is an approver's or reviewer's action on an exception.
type Decision struct {
	// Action is "approve", "reject", "revoke" or "review".
	Action string
	// Outcome is the review outcome: "continue" or "revoke".
	Outcome string
	Note    string
	// Revision, when non-zero, must match the stored revision: the
	// decision was made on what the decider saw.
	Revision int
}

// DecideException applies a decision in one transaction, audited, and
// re-scores the findings it covers.
func (s *Service) DecideException(ctx context.Context, who Requester, id string, d Decision) (Exception, error) {
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		return Exception{}, err
	}
	now := s.now().UTC()
	var out Exception
	err = s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.LockException(ctx, id)
		if err != nil {
			return err
		}
		if d.Revision != 0 && d.Revision != cur.Revision {
			return errs.E(errs.Conflict, "exception %s changed since you loaded it (revision %d, now %d); reload and decide again", id, d.Revision, cur.Revision)
		}
		var rev *Review
		switch d.Action {
		case "approve":
			out, err = Approve(cur, who.name(), who.Role, d.Note, pol, now)
		case "reject":
			out, err = Reject(cur, who.name(), who.Role, d.Note, pol, now)
		case "revoke":
			out, err = Revoke(cur, who.name(), d.Note, now)
		case "review":
			var r Review
			out, r, err = ReviewException(cur, who.name(), d.Outcome, d.Note, pol, now)
			rev = &r
		default:
			return errs.E(errs.Invalid, "action must be approve, reject, revoke or review")
		}
		if err != nil {
			return err
		}
		if err := tx.PutException(ctx, out); err != nil {
			return err
		}
		if rev != nil {
			if err := tx.AddReview(ctx, *rev); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: who.Actor, Action: "exception." + d.Action, ObjectType: "exception",
			ObjectID: id, Before: cur, After: out, Reason: d.Note})
	})
	if err != nil {
		return Exception{}, fmt.Errorf("%s exception %s: %w", d.Action, id, err)
	}
	s.rescore(ctx, out)
	return out, nil
}

// rescore re-scores what an exception covers: at once for one finding or
// asset, so the caller sees the effect; the estate in the background.
func (s *Service) rescore(ctx context.Context, e Exception) {
	asset := ""
	switch e.Scope {
	case ScopeAsset:
		asset = e.Target
	case ScopeFinding:
		if r, err := s.store.GetRecord(ctx, e.Target); err == nil {
			asset = r.AssetID
		}
	}
	if asset == "" {
		if s.changed != nil {
			s.changed("")
		}
		return
	}
	if _, err := s.Recompute(ctx, asset); err != nil {
		s.log.ErrorContext(ctx, "re-scoring after an exception decision failed", "exception", e.ID, "asset", asset, "err", err)
	}
}

// Exception returns one exception with its reviews.
func (s *Service) Exception(ctx context.Context, id string) (Exception, []Review, error) {
	e, err := s.store.GetException(ctx, id)
	if err != nil {
		return Exception{}, nil, err
	}
	rs, err := s.store.Reviews(ctx, id)
	if err != nil {
		return Exception{}, nil, err
	}
	return e, rs, nil
}

// Exceptions lists exceptions.
func (s *Service) Exceptions(ctx context.Context, f ExceptionFilter) ([]Exception, error) {
	switch f.State {
	case "", ExceptionRequested, ExceptionApproved, ExceptionRejected, ExceptionRevoked, ExceptionExpired:
	default:
		return nil, errs.E(errs.Invalid, "state must be one of requested, approved, rejected, revoked, expired")
	}
	return s.store.Exceptions(ctx, f)
}

// ExceptionAging reports exceptions by age, review and expiry.
func (s *Service) ExceptionAging(ctx context.Context) (AgingReport, error) {
	es, err := s.store.Exceptions(ctx, ExceptionFilter{})
	if err != nil {
		return AgingReport{}, err
	}
	return Aging(es, s.now()), nil
}

// Now is the service's clock. Callers phrase relative windows ("review due
// now", "expiring within 30 days") on it, so a listing agrees with the
// times the service itself judges exceptions by.
func (s *Service) Now() time.Time { return s.now() }

// ReviewsDue lists approved exceptions whose review is due by the given
// time (now when zero).
func (s *Service) ReviewsDue(ctx context.Context, by time.Time) ([]Exception, error) {
	if by.IsZero() {
		by = s.now()
	}
	return s.store.Exceptions(ctx, ExceptionFilter{State: ExceptionApproved, ReviewDueBy: &by})
}

// Targets confirms an exception names a finding, asset or group that
// exists, in the findings and the inventory.
type Targets struct {
	Findings interface {
		Finding(ctx context.Context, id string) (match.Finding, error)
	}
	Inventory interface {
		Asset(ctx context.Context, id string) (inventory.Asset, error)
		Group(ctx context.Context, id string) (inventory.Group, error)
	}
}

// CheckTarget returns errs.NotFound when the target does not exist.
func (t Targets) CheckTarget(ctx context.Context, scope, id string) error {
	var err error
	switch scope {
	case ScopeFinding:
		_, err = t.Findings.Finding(ctx, id)
	case ScopeAsset:
		_, err = t.Inventory.Asset(ctx, id)
	case ScopeGroup:
		_, err = t.Inventory.Group(ctx, id)
	default:
		err = errs.E(errs.Invalid, "scope must be finding, asset or group")
	}
	return err
}
