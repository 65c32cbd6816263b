package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestChangeNotices: the people who must act next are told — approvers
// when a change awaits them (and again after an edit withdrew their
// approvals), everyone at an emergency's go/no-go and its GO, the
// requester when it is rejected — and nobody for moves that need no one.
func TestChangeNotices(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newChangeFixture(t, db)
		ctx := context.Background()
		box := &outbox{}
		chicago, err := time.LoadLocation("America/Chicago")
		if err != nil {
			t.Fatal(err)
		}
		ns := change.NewNotices(f.svc, box) // the default policy's zone is Chicago
		f.svc.OnMove(func(ctx context.Context, c change.Change, from change.State) {
			if err := ns.Moved(ctx, c, from); err != nil {
				t.Errorf("notice on %s -> %s: %v", from, c.State, err)
			}
		})
		expect := func(what string, contains ...string) {
			t.Helper()
			if len(box.sent) != 1 {
				t.Fatalf("%s: %d notices %+v; want 1", what, len(box.sent), box.sent)
			}
			m := box.sent[0].subject + "\n" + box.sent[0].body
			for _, c := range contains {
				if !strings.Contains(m, c) {
					t.Errorf("%s: notice lacks %q:\n%s", what, c, m)
				}
			}
			box.sent = nil
		}

		c := f.create(t, change.Normal, change.Targets{Assets: []string{f.server}})
		if len(box.sent) != 0 {
			t.Fatalf("a draft was announced: %+v", box.sent)
		}
		c = must(t, "Submit")(f.svc.Submit(ctx, tech, c.ID, change.Step{Why: "ready"}))
		expect("submitted", "Change awaits approval: Apply openssl 3.0.15", "Needs 2 of: it-manager, security-officer, system-owner", "requested by tech")

		c, _, err = f.svc.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision})
		if err != nil || len(box.sent) != 0 {
			t.Fatalf("first approval = %v, notices %+v; want no notice before the quorum", err, box.sent)
		}
		c, _, err = f.svc.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision})
		if err != nil || c.State != change.Approved || len(box.sent) != 0 {
			t.Fatalf("second approval = %s, %v, notices %+v; want approved and no notice for a normal change", c.State, err, box.sent)
		}
		// The timeline's reason claims class approvers only when there were.
		if h, err := f.svc.History(ctx, c.ID); err != nil || h[len(h)-1].Why != "approval requirement met (2 of 2)" {
			t.Errorf("approval transition = %+v, %v; want the plain requirement-met reason", h[len(h)-1], err)
		}
		c.Description = "Also restart nginx."
		if _, err := f.svc.Update(ctx, tech, c, "restart nginx too"); err != nil {
			t.Fatal(err)
		}
		expect("edited after approval", "Change edited, approve again", "2 approval(s) were withdrawn")

		rejected := f.into(t, change.Rejected)
		box.sent = box.sent[len(box.sent)-1:] // the submission's notice came first
		expect("rejected", "Change rejected", "Rejected by secoff as security-officer: not this month", rejected.ID)

		em := f.create(t, change.Emergency, change.Targets{Assets: []string{f.server}})
		em = must(t, "Submit")(f.svc.Submit(ctx, secOff, em.ID, change.Step{}))
		deadline := em.Emergency.GoNoGoBy.In(chicago).Format("Mon 2 Jan 2006 15:04 MST")
		expect("emergency submitted", "EMERGENCY change awaits go/no-go", "Go/no-go by "+deadline, "KEV-listed, exploited in the wild", "Needs 1 of: it-manager, security-officer")
		if _, _, err := f.svc.Approve(ctx, itMgr, em.ID, change.Decision{Revision: em.Revision}); err != nil {
			t.Fatal(err)
		}
		expect("emergency approved", "EMERGENCY change approved (GO)")
	})
}
