package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestChangeRerate: when a linked finding's tier moves, every change still
// in play takes the new rating (audited, approvals kept); a finished change
// keeps the rating it was decided under, and a second pass moves nothing.
func TestChangeRerate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		put := func(tier string, rank int, score float64) {
			t.Helper()
			now := f.clk.now()
			rec := risk.Record{FindingID: "f1", AssetID: f.server, VulnID: "CVE-2026-1", Status: risk.StatusOpen,
				Assessment: risk.Assessment{Mode: "score", Tier: tier, Rank: rank, Score: score}, PolicyVersion: 1,
				FirstSeen: now, ClockStart: now, DueAt: now.Add(time.Hour), ComputedAt: now}
			if err := db.Risk().Transact(ctx, func(tx risk.Tx) error { return tx.PutRecords(ctx, []risk.Record{rec}) }); err != nil {
				t.Fatal(err)
			}
		}
		put("medium", 2, 45)
		linked := func(c *change.Change) { c.Findings = []string{"f1"} }
		approved := f.intoWith(t, change.Approved, linked)
		draft := f.intoWith(t, change.Draft, linked)
		done := f.intoWith(t, change.Completed, linked)
		if approved.Risk.Tier != "medium" || done.Risk.Tier != "medium" {
			t.Fatalf("initial ratings %q, %q; want medium", approved.Risk.Tier, done.Risk.Tier)
		}

		f.clk.advance(time.Hour)
		put("critical", 0, 92) // entered KEV
		// Another asset's recompute moves none of them.
		if moved, err := f.svc.Rerate(ctx, f.lis); err != nil || len(moved) != 0 {
			t.Fatalf("Rerate(LIS) = %+v, %v; want nothing: no change targets the LIS", moved, err)
		}
		moved, err := f.svc.Rerate(ctx, "")
		if err != nil {
			t.Fatalf("Rerate: %v", err)
		}
		got := map[string]change.Rerated{}
		for _, r := range moved {
			got[r.ChangeID] = r
		}
		if len(moved) != 2 || got[approved.ID].After.Tier != "critical" || got[draft.ID].Before.Tier != "medium" {
			t.Fatalf("Rerate moved %+v; want the approved and the draft change medium -> critical", moved)
		}
		back := must(t, "Get")(f.svc.Get(ctx, approved.ID))
		if back.Risk.Tier != "critical" || back.Risk.Score != 92 || back.State != change.Approved || back.Revision != approved.Revision+1 {
			t.Errorf("approved change after rerate: %s %v %s rev %d; want critical 92, still approved, rev %d",
				back.Risk.Tier, back.Risk.Score, back.State, back.Revision, approved.Revision+1)
		}
		if _, st, err := f.svc.Approvals(ctx, approved.ID); err != nil || !st.Complete {
			t.Errorf("approvals after rerate: %+v, %v; want still complete", st, err)
		}
		if back := must(t, "Get")(f.svc.Get(ctx, done.ID)); back.Risk.Tier != "medium" {
			t.Errorf("completed change re-rated to %s; want the medium it was decided under", back.Risk.Tier)
		}
		page, err := audit.NewService(db.Audit(), nil, nil).List(ctx, audit.Query{Action: "change.rerate", ObjectID: approved.ID})
		if err != nil || len(page.Entries) != 1 || page.Entries[0].Actor.Kind != audit.ActorSystem {
			t.Errorf("audit of the rerate: %+v, %v; want one system entry", page, err)
		}

		if again, err := f.svc.Rerate(ctx, ""); err != nil || len(again) != 0 {
			t.Errorf("second Rerate = %+v, %v; want nothing moved", again, err)
		}
		verifyAudit(t, db)
	})
}
