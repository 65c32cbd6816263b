package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// enteredKEV records that finding f was re-prioritised into the top tier
// by a KEV listing at at, the way the risk engine's re-scoring does: its
// record in the critical tier and a risk event whose reason names KEV.
func (e *rolloutEnv) enteredKEV(f string, assetID, vuln string, at time.Time) {
	e.t.Helper()
	ctx := context.Background()
	err := e.db.Risk().Transact(ctx, func(tx risk.Tx) error {
		if err := tx.PutRecords(ctx, []risk.Record{{FindingID: f, AssetID: assetID, VulnID: vuln, Status: risk.StatusOpen,
			Assessment:    risk.Assessment{Mode: "score", Score: 92, Tier: "critical", Rank: 0, Factors: []risk.Factor{}},
			PolicyVersion: 1, FirstSeen: at.Add(-72 * time.Hour), ClockBasis: risk.BasisAwaitingFix, ComputedAt: at, KEV: true}}); err != nil {
			return err
		}
		return tx.AddEvents(ctx, []risk.Event{
			{FindingID: f, At: at.Add(-72 * time.Hour), Tier: "high", Score: 60, Status: risk.StatusOpen, Reason: "first assessed", PolicyVersion: 1},
			{FindingID: f, At: at, Tier: "critical", Score: 92, Status: risk.StatusOpen, PolicyVersion: 1,
				Reason: "re-prioritised (tier raised from high to critical, " + change.KEVReason + "): due 72h after " + at.Format(time.RFC3339)},
		})
	})
	if err != nil {
		e.t.Fatalf("seed KEV re-prioritisation: %v", err)
	}
}

// TestEmergencyProposalsAPI: a finding that entered the top tier through
// KEV is proposed with its draft; ?since bounds it; the draft is created
// as the caller (the emergency authority applies), 201 with Location, and
// the proposal then drops out because a live change covers it.
func TestEmergencyProposalsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRolloutEnv(t, db)
		e.a.Proposals = change.NewProposals(db.Proposals(), e.a.Policies)
		e.rebuild()
		e.enteredKEV(e.kev.ID, e.lis.ID, e.kev.VulnID, e.clock.Now().Add(-24*time.Hour))

		var ps []api.EmergencyProposal
		e.do("vic", "GET", "/emergency-proposals", nil, http.StatusOK, &ps)
		if len(ps) != 1 || ps[0].VulnID != "CVE-2024-0001" || len(ps[0].Assets) != 1 || ps[0].Assets[0].AssetID != e.lis.ID ||
			ps[0].Draft.Type != change.Emergency || len(ps[0].Draft.Findings) != 1 || ps[0].Draft.Findings[0] != e.kev.ID {
			t.Fatalf("proposals = %+v; want CVE-2024-0001 on the LIS with its emergency draft", ps)
		}
		for q, want := range map[string]int{"?since=12h": 0, "?since=2d": 1, "?since=" + e.clock.Now().Add(-48*time.Hour).Format(time.RFC3339): 1} {
			e.do("vic", "GET", "/emergency-proposals"+q, nil, http.StatusOK, &ps)
			if len(ps) != want {
				t.Errorf("GET /emergency-proposals%s = %d; want %d", q, len(ps), want)
			}
		}
		for _, bad := range []string{"?since=soon", "?since=-3d", "?since=0h"} {
			e.do("vic", "GET", "/emergency-proposals"+bad, nil, http.StatusBadRequest, nil)
		}

		path := "/emergency-proposals/CVE-2024-0001/draft"
		e.do("vic", "POST", path, api.DraftProposalRequest{Justification: "x"}, http.StatusForbidden, nil)
		// The operator may draft changes, but not declare an emergency.
		e.do("olga", "POST", path, api.DraftProposalRequest{Justification: "x"}, http.StatusForbidden, nil)
		eb := e.do("ann", "POST", path, nil, http.StatusBadRequest, nil)
		if eb.Fields["emergency.justification"] == "" {
			t.Errorf("draft without justification: fields = %v", eb.Fields)
		}
		e.check(e.call("ann", "POST", path, "application/json", `{"justification":"x","state":"approved"}`), "draft with an unknown field", http.StatusBadRequest, nil)
		e.do("ann", "POST", "/emergency-proposals/CVE-1999-0001/draft", api.DraftProposalRequest{Justification: "x"}, http.StatusNotFound, nil)
		e.do("ann", "POST", path+"?since=12h", api.DraftProposalRequest{Justification: "x"}, http.StatusNotFound, nil)

		rec := e.call("ann", "POST", path, "", api.DraftProposalRequest{Justification: "KEV-listed, exploited against LIS vendors"})
		var c change.Change
		e.check(rec, "POST draft", http.StatusCreated, &c)
		if rec.Header().Get("Location") != api.Prefix+"/changes/"+c.ID || c.State != change.Draft || c.Type != change.Emergency ||
			c.RequestedBy != "ann" || c.Emergency == nil || c.Emergency.GoNoGoBy.IsZero() ||
			len(c.Targets.Assets) != 1 || c.Targets.Assets[0] != e.lis.ID || len(c.Patches) != 1 || c.Patches[0].TargetVersion != "1.0-2" {
			t.Errorf("drafted change = %+v (Location %q)", c, rec.Header().Get("Location"))
		}
		e.do("vic", "GET", "/emergency-proposals", nil, http.StatusOK, &ps)
		if len(ps) != 0 {
			t.Errorf("proposals after the draft = %+v; want none (a live change covers the finding)", ps)
		}
		e.do("ann", "POST", path, api.DraftProposalRequest{Justification: "again"}, http.StatusNotFound, nil)
		verifyChangeAudit(t, e.changeEnv, c.ID, "change.create")
	})
}
