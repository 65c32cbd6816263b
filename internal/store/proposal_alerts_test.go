package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

type sentMessage struct{ subject, body string }

// outbox keeps what it is asked to send, or fails when down.
type outbox struct {
	sent []sentMessage
	down bool
}

func (o *outbox) Notify(_ context.Context, subject, body string) error {
	if o.down {
		return errors.New("relay down")
	}
	o.sent = append(o.sent, sentMessage{subject, body})
	return nil
}

// TestProposalAlerts: a vulnerability entering the top tier through KEV is
// announced once, audited; a failed send is retried; a restarted server
// does not announce it again; an asset joining later is announced alone.
func TestProposalAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seedRiskEstate(t, db)
		trail := audit.NewService(db.Audit(), nil, nil)
		now := riskT0.Add(time.Hour)
		kev := "re-prioritised (tier raised from high to critical, entered CISA KEV)"
		enter := func(f match.Finding, at time.Time) {
			t.Helper()
			putFindings(t, db, f)
			putRecords(t, db, risk.Record{FindingID: f.ID, AssetID: f.AssetID, VulnID: f.VulnID, Status: risk.StatusOpen,
				Assessment:    risk.Assessment{Mode: policy.ModeScore, Score: 91, Tier: "critical", Rank: 0, Factors: []risk.Factor{}},
				PolicyVersion: 1, FirstSeen: f.FirstSeen, ClockBasis: risk.BasisFirstSeen, ComputedAt: at, KEV: true})
			err := db.Risk().Transact(ctx, func(tx risk.Tx) error {
				return tx.AddEvents(ctx, []risk.Event{{FindingID: f.ID, At: at, Tier: "critical", Score: 91, Status: risk.StatusOpen, Reason: kev, PolicyVersion: 1}})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		enter(testFinding(e.lis.ID, "openssl", "CVE-2026-1000", match.StateOpen), riskT0)
		alerts := func(o *outbox) *change.ProposalAlerts {
			return change.NewProposalAlerts(change.NewProposals(db.Proposals(), defaultPolicy{}), db.Changes(), trail, o, func() time.Time { return now })
		}
		logged := func() int {
			t.Helper()
			p, err := trail.List(ctx, audit.Query{Action: change.AlertAction})
			if err != nil {
				t.Fatal(err)
			}
			return p.Total
		}

		down := &outbox{down: true}
		if n, err := alerts(down).Check(ctx); err == nil || n != 0 || logged() != 0 {
			t.Fatalf("Check with the relay down = %d, %v, %d audited; want an error and nothing audited", n, err, logged())
		}
		box := &outbox{}
		a := alerts(box)
		if n, err := a.Check(ctx); err != nil || n != 1 {
			t.Fatalf("Check = %d, %v; want 1 alert", n, err)
		}
		m := box.sent[0]
		if !strings.Contains(m.subject, "CVE-2026-1000") || !strings.Contains(m.body, "LIS-01: openssl") || !strings.Contains(m.body, "--draft CVE-2026-1000") {
			t.Errorf("alert = %+v; want the vulnerability, the asset and how to draft the change", m)
		}
		if logged() != 1 {
			t.Errorf("%d alerts audited; want 1", logged())
		}
		if n, err := a.Check(ctx); err != nil || n != 0 {
			t.Errorf("second Check = %d, %v; want nothing new", n, err)
		}
		restarted := &outbox{}
		if n, err := alerts(restarted).Check(ctx); err != nil || n != 0 {
			t.Errorf("Check after a restart = %d, %v; want nothing new", n, err)
		}

		now = now.Add(time.Hour)
		enter(testFinding(e.pump.ID, "openssl", "CVE-2026-1000", match.StateOpen), riskT0.Add(90*time.Minute))
		if n, err := alerts(restarted).Check(ctx); err != nil || n != 1 {
			t.Fatalf("Check after another asset entered = %d, %v; want 1", n, err)
		}
		if b := restarted.sent[0].body; !strings.Contains(b, "Pump-7") || strings.Contains(b, "LIS-01") {
			t.Errorf("follow-up alert body:\n%s\nwant only the asset that joined", b)
		}
		verifyAudit(t, db)
	})
}
