package change

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Rerated is one change whose risk rating moved.
type Rerated struct {
	ChangeID string     `json:"change_id"`
	Before   RiskRating `json:"before"`
	After    RiskRating `json:"after"`
}

// Rerate recomputes the risk rating of every change still in play (not
// terminal) that targets assetID ("" for every change) from its findings'
// current risk records, and stores the ones that moved: a finding entering KEV after the change was drafted makes the
// change as urgent as the finding, which is what approvers and the calendar
// should see. The content of the change is unchanged, so approvals stand;
// each move is audited with the rating before and after.
func (s *Service) Rerate(ctx context.Context, assetID string) ([]Rerated, error) {
	if s.risk == nil {
		return nil, nil
	}
	var out []Rerated
	for _, st := range States {
		if st.Terminal() {
			continue
		}
		for offset := 0; ; offset += 1000 {
			page, err := s.store.List(ctx, Filter{State: st, Asset: assetID, Limit: 1000, Offset: offset})
			if err != nil {
				return out, fmt.Errorf("rerate changes: %w", err)
			}
			for _, c := range page {
				// Most changes did not move: look before taking the lock.
				rating, err := s.rate(ctx, c.Findings)
				if err != nil {
					return out, err
				}
				if sameRating(c.Risk, rating) {
					continue
				}
				r, moved, err := s.rerate(ctx, c.ID)
				if err != nil {
					return out, err
				}
				if moved {
					out = append(out, r)
				}
			}
			if len(page) < 1000 {
				break
			}
		}
	}
	return out, nil
}

// rerate re-rates one change under its row lock; moved is false when the
// rating is what is stored (or the change ended meanwhile).
func (s *Service) rerate(ctx context.Context, id string) (Rerated, bool, error) {
	var r Rerated
	moved := false
	err := s.store.Transact(ctx, func(tx Tx) error {
		cur, err := tx.Lock(ctx, id)
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.State.Terminal() {
			return nil
		}
		rating, err := s.rate(ctx, cur.Findings)
		if err != nil {
			return err
		}
		if sameRating(cur.Risk, rating) {
			return nil
		}
		next := cur
		next.Risk = rating
		next.Revision, next.UpdatedAt = cur.Revision+1, s.clock()
		if err := tx.Update(ctx, next); err != nil {
			return err
		}
		r, moved = Rerated{ChangeID: id, Before: cur.Risk, After: rating}, true
		return tx.AppendAudit(ctx, audit.Record{Actor: audit.System, Action: "change.rerate", ObjectType: "change", ObjectID: id,
			Before: map[string]any{"risk": cur.Risk, "revision": cur.Revision},
			After:  map[string]any{"risk": rating, "revision": next.Revision},
			Reason: "the linked findings' risk records changed"})
	})
	if err != nil {
		return Rerated{}, false, fmt.Errorf("rerate change %s: %w", id, err)
	}
	return r, moved, nil
}

// sameRating compares what a rating says, not when it was computed.
func sameRating(a, b RiskRating) bool {
	a.ComputedAt, b.ComputedAt = time.Time{}, time.Time{}
	return a == b
}
