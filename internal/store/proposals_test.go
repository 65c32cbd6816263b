package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

type defaultPolicy struct{}

func (defaultPolicy) Current(context.Context) (*policy.Compiled, policy.Version, error) {
	return policy.Default(), policy.Version{Version: 1}, nil
}

// TestEmergencyProposals checks the proposal read on both engines: only
// open findings still in the top tier whose history shows a KEV listing
// put them there since the given time, and that no live change covers,
// grouped per vulnerability with their assets and fixes.
func TestEmergencyProposals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seedRiskEstate(t, db)
		kev := "re-prioritised (tier raised from high to critical, entered CISA KEV): due 72h after " + riskT0.Format(time.RFC3339)
		type fx struct {
			f      match.Finding
			tier   string
			rank   int
			status string
			event  string // the event's tier
			at     time.Time
			reason string
		}
		open, fixed := match.StateOpen, match.StateFixed
		since := riskT0.Add(-24 * time.Hour)
		fs := map[string]fx{
			"lis A":         {testFinding(e.lis.ID, "openssl", "CVE-2026-1000", open), "critical", 0, risk.StatusOpen, "critical", riskT0, kev},
			"pump A":        {testFinding(e.pump.ID, "openssl", "CVE-2026-1000", open), "critical", 0, risk.StatusOpen, "critical", riskT0.Add(-2 * time.Hour), "entered CISA KEV; due date kept: it is already earlier"},
			"not KEV":       {testFinding(e.lis.ID, "sope", "CVE-2026-2000", open), "critical", 0, risk.StatusOpen, "critical", riskT0, "tier raised from high to critical"},
			"too old":       {testFinding(e.lis.ID, "curl", "CVE-2026-3000", open), "critical", 0, risk.StatusOpen, "critical", since.Add(-time.Second), kev},
			"fixed":         {testFinding(e.pump.ID, "curl", "CVE-2026-4000", fixed), "critical", 0, risk.StatusFixed, "critical", riskT0, kev},
			"excepted":      {testFinding(e.pump.ID, "bash", "CVE-2026-4100", open), "critical", 0, risk.StatusExcepted, "critical", riskT0, kev},
			"in a change":   {testFinding(e.lis.ID, "zlib", "CVE-2026-5000", open), "critical", 0, risk.StatusOpen, "critical", riskT0, kev},
			"cancelled":     {testFinding(e.pump.ID, "zlib", "CVE-2026-5000", open), "critical", 0, risk.StatusOpen, "critical", riskT0, kev},
			"rolled back":   {testFinding(e.lis.ID, "expat", "CVE-2026-5000", open), "critical", 0, risk.StatusOpen, "critical", riskT0, kev},
			"into high":     {testFinding(e.lis.ID, "bash", "CVE-2026-6000", open), "high", 1, risk.StatusOpen, "high", riskT0, kev},
			"KEV below top": {testFinding(e.pump.ID, "perl", "CVE-2026-8000", open), "critical", 0, risk.StatusOpen, "high", riskT0, kev},
			"since lowered": {testFinding(e.lis.ID, "perl", "CVE-2026-7000", open), "high", 1, risk.StatusOpen, "critical", riskT0, kev},
		}
		var (
			findings []match.Finding
			records  []risk.Record
			events   []risk.Event
		)
		for _, x := range fs {
			findings = append(findings, x.f)
			records = append(records, risk.Record{FindingID: x.f.ID, AssetID: x.f.AssetID, VulnID: x.f.VulnID, Status: x.status,
				Assessment:    risk.Assessment{Mode: policy.ModeScore, Score: 90 - float64(x.rank)*20, Tier: x.tier, Rank: x.rank, Factors: []risk.Factor{}},
				PolicyVersion: 1, FirstSeen: x.f.FirstSeen, ClockBasis: risk.BasisAwaitingFix, ComputedAt: riskT0, KEV: true})
			events = append(events,
				risk.Event{FindingID: x.f.ID, At: x.at.Add(-72 * time.Hour), Tier: "high", Score: 60, Status: risk.StatusOpen, Reason: "first assessed", PolicyVersion: 1},
				risk.Event{FindingID: x.f.ID, At: x.at, Tier: x.event, Score: 90, Status: x.status, Reason: x.reason, PolicyVersion: 1})
		}
		// "pump A" entered through KEV twice (re-listed): one asset entry.
		events = append(events, risk.Event{FindingID: fs["pump A"].f.ID, At: riskT0.Add(time.Hour), Tier: "critical", Score: 95,
			Status: risk.StatusOpen, Reason: kev, PolicyVersion: 1})
		putFindings(t, db, findings...)
		putRecords(t, db, records...)
		if err := db.Risk().Transact(ctx, func(tx risk.Tx) error { return tx.AddEvents(ctx, events) }); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			id, finding string
			state       change.State
		}{{"chg-draft", "in a change", change.Draft}, {"chg-cancelled", "cancelled", change.Cancelled}, {"chg-rolled-back", "rolled back", change.RolledBack}} {
			f := fs[c.finding].f
			doc := change.Change{ID: c.id, Title: "zlib", Type: change.Normal, State: c.state, Findings: []string{f.ID},
				Targets: change.Targets{Assets: []string{f.AssetID}}, RequestedBy: "tech", RequestedByID: "u-tech",
				Revision: 1, CreatedAt: riskT0, UpdatedAt: riskT0, EditedAt: riskT0, Risk: change.RiskRating{Rank: -1}}
			if err := db.Changes().Transact(ctx, func(tx change.Tx) error { return tx.Insert(ctx, doc) }); err != nil {
				t.Fatalf("insert change %s: %v", c.id, err)
			}
		}

		got, err := change.NewProposals(db.Proposals(), defaultPolicy{}).EmergencyProposals(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		asset := func(name string, x fx) change.ProposalAsset {
			return change.ProposalAsset{AssetID: x.f.AssetID, AssetName: name, FindingID: x.f.ID, Package: x.f.Package,
				Version: x.f.Version, FixedVersion: x.f.FixedVersion}
		}
		want := []change.Proposal{
			// Equal scores: the newest first.
			// A cancelled change never ran and a rolled-back one left the
			// finding open: neither covers it.
			{VulnID: "CVE-2026-5000", Tier: "critical", Score: 90, EnteredAt: riskT0,
				Assets: []change.ProposalAsset{asset("LIS-01", fs["rolled back"]), asset("Pump-7", fs["cancelled"])},
				Patches: []change.Patch{{Package: "expat", Ecosystem: "Debian:12", TargetVersion: "1.0-2"},
					{Package: "zlib", Ecosystem: "Debian:12", TargetVersion: "1.0-2"}}},
			{VulnID: "CVE-2026-1000", Tier: "critical", Score: 90, EnteredAt: riskT0.Add(-2 * time.Hour),
				Assets:  []change.ProposalAsset{asset("LIS-01", fs["lis A"]), asset("Pump-7", fs["pump A"])},
				Patches: []change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "1.0-2"}}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("EmergencyProposals (-want +got):\n%s", diff)
		}
		if title := got[1].Draft().Title; title != "Emergency: CVE-2026-1000 (CISA KEV) on 2 assets" {
			t.Errorf("draft title = %q", title)
		}
		one := change.Proposal{VulnID: "CVE-2026-9", Assets: got[1].Assets[:1]}
		if title := one.Draft().Title; title != "Emergency: CVE-2026-9 (CISA KEV) on 1 asset" {
			t.Errorf("draft title for one asset = %q", title)
		}
		draft := got[1].Draft()
		if draft.Type != change.Emergency || len(draft.Findings) != 2 || len(draft.Targets.Assets) != 2 || len(draft.Patches) != 1 {
			t.Errorf("Draft = %+v; want an emergency change on both findings and assets with the openssl fix", draft)
		}

		// Once a live change links the rest, nothing is left to propose.
		doc := got[1].Draft()
		doc.ID, doc.State, doc.RequestedBy, doc.RequestedByID, doc.Revision = "chg-emergency", change.Submitted, "tech", "u-tech", 1
		doc.Findings = append(doc.Findings, fs["cancelled"].f.ID, fs["rolled back"].f.ID)
		doc.CreatedAt, doc.UpdatedAt, doc.EditedAt, doc.Risk.Rank = riskT0, riskT0, riskT0, -1
		if err := db.Changes().Transact(ctx, func(tx change.Tx) error { return tx.Insert(ctx, doc) }); err != nil {
			t.Fatal(err)
		}
		if got, err := change.NewProposals(db.Proposals(), defaultPolicy{}).EmergencyProposals(ctx, since); err != nil || len(got) != 0 {
			t.Errorf("after an emergency change links them: %+v, %v; want none", got, err)
		}
	})
}
