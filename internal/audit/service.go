package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Service implements the audit trail's use cases for the UI, the API and the
// CLI: listing, verifying and exporting. Signing is Checkpointer's job, so a
// process that only verifies never needs the private key.
type Service struct {
	store Store
	key   *Verifier
	now   func() time.Time
}

// NewService returns a Service on store that checks checkpoints with key,
// using now as its clock (time.Now if nil).
func NewService(store Store, key *Verifier, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, key: key, now: now}
}

// DefaultPage is the page size of a listing that does not ask for one.
const DefaultPage = 50

// List returns one page of entries matching q, newest first.
func (s *Service) List(ctx context.Context, q Query) (Page, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultPage
	}
	q.Limit = min(q.Limit, MaxPage)
	if q.Offset < 0 {
		return Page{}, errs.E(errs.Invalid, "offset must not be negative")
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return Page{}, errs.E(errs.Invalid, "the time range must end after it starts")
	}
	p, err := s.store.List(ctx, q)
	if err != nil {
		return Page{}, fmt.Errorf("list audit entries: %w", err)
	}
	return p, nil
}

// Verify checks the whole log against one consistent snapshot. A
// *VerifyError (errors.Is(err, ErrTampered)) names the first bad entry.
func (s *Service) Verify(ctx context.Context) (Result, error) {
	var res Result
	err := s.store.Snapshot(ctx, func(r Reader) error {
		var err error
		res, err = Verify(ctx, r, s.key)
		return err
	})
	return res, err
}

// Export builds an offline-verifiable bundle of the entries with
// from <= At < to; see the package function Export.
func (s *Service) Export(ctx context.Context, from, to time.Time) (*Bundle, error) {
	var b *Bundle
	err := s.store.Snapshot(ctx, func(r Reader) error {
		var err error
		b, err = Export(ctx, r, s.key, from, to, s.now())
		return err
	})
	return b, err
}
