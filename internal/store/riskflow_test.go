package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// serviceIntel is the risk engine's view of the matcher's current index.
type serviceIntel struct{ svc *match.Service }

func (i serviceIntel) Intel(id string, aliases []string) (match.Intel, bool) {
	ix := i.svc.Index()
	if ix == nil {
		return match.Intel{}, false
	}
	return ix.Intel(id, aliases), true
}

// realFeeds parses the real NVD record of CVE-2023-4863 (libwebp) and the
// real CISA KEV catalog, which lists it.
func realFeeds(t *testing.T) ([]advisory.Advisory, map[string]advisory.KEV) {
	t.Helper()
	f, err := os.Open("../advisory/testdata/nvd/CVE-2023-4863.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	advs, err := advisory.ParseNVD(f)
	if err != nil {
		t.Fatalf("ParseNVD: %v", err)
	}
	k, err := os.Open("../advisory/testdata/kev/known_exploited_vulnerabilities.json")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	cat, err := advisory.ParseKEV(k)
	if err != nil {
		t.Fatalf("ParseKEV: %v", err)
	}
	kev := map[string]advisory.KEV{}
	for _, e := range cat.Entries {
		kev[e.CVE] = e
	}
	if _, ok := kev["CVE-2023-4863"]; !ok {
		t.Fatal("the real KEV catalog copy no longer lists CVE-2023-4863")
	}
	return advs, kev
}

// TestRiskFlowRealFeeds follows one finding through its whole priority life
// on both engines with an injected clock: first assessment with a due date
// in the site's time zone across a DST change, re-prioritisation when the
// real KEV catalog arrives, risk acceptance with separation of duties, the
// exception's expiry restarting the clock, and the fix closing it against
// its SLA — every step recorded and the audit trail intact.
func TestRiskFlowRealFeeds(t *testing.T) {
	advs, kev := realFeeds(t)
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Thursday 2026-03-05 09:00 in Chicago (CST); DST starts on the 8th.
		clk := &findClock{t: time.Date(2026, 3, 5, 15, 0, 0, 0, time.UTC)}
		inv := inventory.NewService(db.Inventory(), clk.now)
		site, err := inv.CreateSite(ctx, admin, inventory.Site{Name: "Riverside", TimeZone: "America/Chicago"})
		if err != nil {
			t.Fatalf("CreateSite: %v", err)
		}
		web, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "PACS-WEB", Type: inventory.TypeServer, SiteID: site.ID,
			Exposure: inventory.ExposureInternal, Criticality: inventory.LevelHigh,
			CPE: "cpe:2.3:a:webmproject:libwebp:1.3.1:*:*:*:*:*:*:*"})
		if err != nil {
			t.Fatalf("CreateAsset: %v", err)
		}

		findings := match.NewService(db.Findings(), clk.now)
		var changed []string
		findings.OnChange(func(id string) { changed = append(changed, id) })
		findings.SetIndex(match.NewIndex(advs, nil, nil))
		if _, err := findings.EvaluateAll(ctx); err != nil {
			t.Fatalf("EvaluateAll: %v", err)
		}
		if len(changed) != 1 || changed[0] != web.ID {
			t.Fatalf("OnChange heard %v; want [%s]", changed, web.ID)
		}
		page, err := findings.Findings(ctx, match.FindingFilter{AssetID: web.ID})
		if err != nil || page.Total != 1 {
			t.Fatalf("Findings = %d, %v; want the libwebp finding", page.Total, err)
		}
		fid := page.Findings[0].ID

		policies := policy.NewService(db.Policies(), clk.now)
		svc := risk.NewService(db.Risk(), policies, serviceIntel{findings}, risk.Options{Now: clk.now})
		record := func() risk.Record {
			t.Helper()
			x, err := svc.Explain(ctx, fid)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			return x.Record
		}

		// 1. First assessment: CVSS 8.8 on an internal high-criticality
		// server is "high" (14 days); 14 calendar days in Chicago cross
		// the DST change, so the due date keeps 09:00 local = 14:00 UTC.
		if sum, err := svc.Recompute(ctx, ""); err != nil || sum.Changed != 1 {
			t.Fatalf("Recompute = %+v, %v; want one record", sum, err)
		}
		r := record()
		if r.Assessment.Tier != "high" || r.Status != risk.StatusOpen || r.ClockBasis != risk.BasisFirstSeen {
			t.Fatalf("first assessment = tier %s status %s basis %s; want high open first_seen", r.Assessment.Tier, r.Status, r.ClockBasis)
		}
		if want := time.Date(2026, 3, 19, 14, 0, 0, 0, time.UTC); !r.DueAt.Equal(want) {
			t.Errorf("due = %v; want %v (14 calendar days at 09:00 Chicago time across DST)", r.DueAt, want)
		}
		if sum, err := svc.Recompute(ctx, ""); err != nil || sum.Changed != 0 {
			t.Errorf("second Recompute with nothing new = %+v, %v; want no writes", sum, err)
		}

		// 2. Two days later the KEV catalog is imported: the finding is
		// re-matched, re-scored into the top tier, its due date brought
		// forward to 72 h from now, and the reason recorded.
		clk.t = clk.t.Add(48 * time.Hour)
		changed = nil
		ix := match.NewIndex(advs, kev, nil)
		old := findings.SetIndex(ix)
		if _, err := findings.EvaluateChanged(ctx, old, ix); err != nil {
			t.Fatalf("EvaluateChanged: %v", err)
		}
		if len(changed) != 1 {
			t.Fatalf("OnChange after the KEV import heard %v; want the asset", changed)
		}
		sum, err := svc.Recompute(ctx, changed[0])
		if err != nil || sum.Reprioritized != 1 {
			t.Fatalf("Recompute after KEV = %+v, %v; want one re-prioritised", sum, err)
		}
		r = record()
		if r.Assessment.Tier != "critical" || !r.DueAt.Equal(clk.t.Add(72*time.Hour)) || !strings.Contains(r.DueReason, "KEV") {
			t.Fatalf("after KEV: tier %s due %v reason %q; want critical, %v, naming KEV", r.Assessment.Tier, r.DueAt, r.DueReason, clk.t.Add(72*time.Hour))
		}
		if !hasFactor(r.Assessment.Factors, "KEV") {
			t.Errorf("explanation %+v has no KEV factor", r.Assessment.Factors)
		}
		logged, err := db.Audit().List(ctx, audit.Query{Action: "risk.reprioritize", ObjectID: web.ID, Limit: 100})
		if err != nil || len(logged.Entries) == 0 || !strings.Contains(string(logged.Entries[0].After), "KEV") {
			t.Errorf("audit of the re-prioritisation = %+v, %v; want an entry saying why", logged.Entries, err)
		}

		// 3. The device cannot be patched this week: a risk acceptance
		// with a compensating control. Its requester cannot approve it.
		olive := risk.Requester{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-olive", Name: "olive"}, Role: "operator"}
		amy := risk.Requester{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-amy", Name: "amy"}, Role: "approver"}
		exc, err := svc.RequestException(ctx, olive, risk.Exception{Scope: risk.ScopeAsset, Target: web.ID,
			Decision: policy.DecisionMitigate, Reason: "vendor validation of the viewer update pending",
			Controls: []risk.Control{{Kind: policy.ControlSegmentation, Description: "viewer reachable from the radiology VLAN only"}},
			Owner:    "Radiology IT", ExpiresAt: clk.t.Add(10 * 24 * time.Hour)})
		if err != nil {
			t.Fatalf("RequestException: %v", err)
		}
		self := olive
		self.Role = "approver"
		if _, err := svc.DecideException(ctx, self, exc.ID, risk.Decision{Action: "approve"}); errs.KindOf(err) != errs.Forbidden {
			t.Fatalf("requester approving their own exception: err = %v; want Forbidden", err)
		}
		if _, err := svc.DecideException(ctx, amy, exc.ID, risk.Decision{Action: "approve", Revision: exc.Revision + 5}); errs.KindOf(err) != errs.Conflict {
			t.Fatalf("approving a stale revision: err = %v; want Conflict", err)
		}
		if _, err := svc.DecideException(ctx, amy, exc.ID, risk.Decision{Action: "approve", Note: "segmentation verified", Revision: exc.Revision}); err != nil {
			t.Fatalf("approve: %v", err)
		}
		r = record()
		if r.Status != risk.StatusExcepted || r.ExceptionID != exc.ID || !hasFactor(r.Assessment.Factors, "ontrol") {
			t.Fatalf("after approval: status %s exception %q factors %+v; want excepted under %s with a control factor", r.Status, r.ExceptionID, r.Assessment.Factors, exc.ID)
		}
		open, err := svc.Worklist(ctx, risk.WorklistFilter{})
		if err != nil || open.Total != 0 {
			t.Errorf("open worklist while excepted = %d, %v; want 0", open.Total, err)
		}

		// 4. The exception runs out: it expires, the finding is open
		// again and its clock restarts from the expiry.
		clk.t = exc.ExpiresAt.Add(24 * time.Hour)
		sum, err = svc.Recompute(ctx, "")
		if err != nil || sum.ExceptionsExpired != 1 {
			t.Fatalf("Recompute after expiry = %+v, %v; want one exception expired", sum, err)
		}
		r = record()
		if r.Status != risk.StatusOpen || r.ClockBasis != risk.BasisExceptionEnded || !r.ClockStart.Equal(exc.ExpiresAt) ||
			!r.DueAt.Equal(exc.ExpiresAt.Add(72*time.Hour)) {
			t.Fatalf("after expiry: status %s basis %s start %v due %v; want open, exception_ended, %v, %v",
				r.Status, r.ClockBasis, r.ClockStart, r.DueAt, exc.ExpiresAt, exc.ExpiresAt.Add(72*time.Hour))
		}
		if got, _, err := svc.Exception(ctx, exc.ID); err != nil || got.State != risk.ExceptionExpired {
			t.Errorf("exception state = %s, %v; want expired", got.State, err)
		}
		breached, err := svc.Worklist(ctx, risk.WorklistFilter{SLA: risk.SLABreached})
		if err != nil || breached.Total != 0 {
			t.Errorf("breached = %d, %v; want 0 (the restarted clock has 72 h)", breached.Total, err)
		}

		// 5. The fix is installed a day later: the next inventory proves
		// it, the finding closes and the record says the SLA was met.
		clk.t = clk.t.Add(24 * time.Hour)
		a, err := inv.Asset(ctx, web.ID)
		if err != nil {
			t.Fatal(err)
		}
		a.CPE = "cpe:2.3:a:webmproject:libwebp:1.3.2:*:*:*:*:*:*:*"
		if _, err := inv.UpdateAsset(ctx, admin, web.ID, a); err != nil {
			t.Fatalf("UpdateAsset: %v", err)
		}
		if _, err := findings.EvaluateHost(ctx, web.ID); err != nil {
			t.Fatalf("EvaluateHost: %v", err)
		}
		if _, err := svc.Recompute(ctx, web.ID); err != nil {
			t.Fatalf("Recompute after the fix: %v", err)
		}
		r = record()
		if r.Status != risk.StatusFixed || r.MetSLA == nil || !*r.MetSLA || r.TimeToRemediate == nil {
			t.Fatalf("after the fix: status %s met %v ttr %v; want fixed, met, with a time to remediate", r.Status, r.MetSLA, r.TimeToRemediate)
		}
		x, err := svc.Explain(ctx, fid)
		if err != nil {
			t.Fatal(err)
		}
		if x.SLA != risk.SLAMet || len(x.History) < 5 {
			t.Errorf("explanation SLA %s with %d history events; want met and ≥5 (assessed, KEV, excepted, reopened, fixed)", x.SLA, len(x.History))
		}

		// Every step is in the audit trail, and the trail verifies.
		for _, action := range []string{"exception.request", "exception.approve", "exception.expire", "risk.reprioritize"} {
			p, err := db.Audit().List(ctx, audit.Query{Action: action, Limit: 100})
			if err != nil || len(p.Entries) == 0 {
				t.Errorf("audit has no %s entry (%v)", action, err)
			}
		}
		signer := auditSigner(t)
		if _, _, err := audit.NewCheckpointer(db.Audit(), signer, nil, nil).Checkpoint(ctx); err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		if res, err := audit.NewService(db.Audit(), signer.Verifier(), nil).Verify(ctx); err != nil {
			var ve *audit.VerifyError
			errors.As(err, &ve)
			t.Fatalf("audit Verify = %+v, %v", res, err)
		}
	})
}

func hasFactor(fs []risk.Factor, name string) bool {
	for _, f := range fs {
		if strings.Contains(f.Name, name) && f.Points != 0 {
			return true
		}
	}
	return false
}

// IntelVersion names the index in use, so the watcher can tell a new one.
func (i serviceIntel) IntelVersion() string { return fmt.Sprintf("%p", i.svc.Index()) }

// TestRiskWatcherTick checks what a periodic tick re-scores: nothing while
// the policy and the advisory index are unchanged, everything after a new
// policy version or a new index, everything once a day; and that an edited
// asset is re-scored although its findings did not change.
func TestRiskWatcherTick(t *testing.T) {
	advs, kev := realFeeds(t)
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := &findClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
		inv := inventory.NewService(db.Inventory(), clk.now)
		web, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "PACS-WEB", Type: inventory.TypeServer,
			Exposure: inventory.ExposureInternal, Criticality: inventory.LevelHigh,
			CPE: "cpe:2.3:a:webmproject:libwebp:1.3.1:*:*:*:*:*:*:*"})
		if err != nil {
			t.Fatal(err)
		}
		findings := match.NewService(db.Findings(), clk.now)
		findings.SetIndex(match.NewIndex(advs, nil, nil))
		if _, err := findings.EvaluateAll(ctx); err != nil {
			t.Fatal(err)
		}
		policies := policy.NewService(db.Policies(), clk.now)
		svc := risk.NewService(db.Risk(), policies, serviceIntel{findings}, risk.Options{Now: clk.now})
		w := risk.NewWatcher(svc, nil)
		findings.OnChange(w.Notify)
		var told []risk.Summary
		svc.OnRecompute(func(_ context.Context, _ string, s risk.Summary) { told = append(told, s) })
		pass := func(what string, wantAssessed int) risk.Summary {
			t.Helper()
			told = nil
			sum, err := w.Pass(ctx)
			if err != nil || sum.Assessed != wantAssessed {
				t.Fatalf("%s: Pass = %+v, %v; want %d assessed", what, sum, err, wantAssessed)
			}
			// OnRecompute hears of exactly the recomputes that wrote records.
			if wantTold := sum.Changed > 0; (len(told) == 1 && told[0] == sum) != wantTold || len(told) > 1 {
				t.Fatalf("%s: OnRecompute told %+v of a pass that changed %d records", what, told, sum.Changed)
			}
			return sum
		}
		pass("start", 1)
		w.Tick(ctx)
		pass("tick with nothing new", 0)

		// A new policy version: the next tick re-scores the estate.
		src := strings.Replace(string(policy.DefaultSource()), "name: Example Clinic and Laboratory", "name: Riverside Clinic", 1)
		if _, err := policies.Apply(ctx, admin, []byte(src), "our name"); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		w.Tick(ctx)
		if sum := pass("tick after a policy apply", 1); sum.Changed != 1 {
			t.Errorf("policy apply: %d records rewritten; want 1 (new policy version)", sum.Changed)
		}

		// A new advisory index (the KEV catalog arrived).
		ix := match.NewIndex(advs, kev, nil)
		old := findings.SetIndex(ix)
		if _, err := findings.EvaluateChanged(ctx, old, ix); err != nil {
			t.Fatal(err)
		}
		w.Tick(ctx)
		pass("tick after a new index", 1)
		// The listing put the finding in the top tier: people on call are
		// told once, from the real catalog's data.
		box := &outbox{}
		alerts := change.NewProposalAlerts(change.NewProposals(db.Proposals(), policies), db.Changes(),
			audit.NewService(db.Audit(), nil, nil), box, clk.now)
		if n, err := alerts.Check(ctx); err != nil || n != 1 || !strings.Contains(box.sent[0].body, "PACS-WEB: webmproject:libwebp") {
			t.Fatalf("alerts after KEV listed the finding = %d, %v, %+v; want one alert naming PACS-WEB", n, err, box.sent)
		}

		// An edited asset whose findings stay the same is re-scored.
		a, err := inv.Asset(ctx, web.ID)
		if err != nil {
			t.Fatal(err)
		}
		before, err := svc.Explain(ctx, pageOne(t, findings, web.ID))
		if err != nil {
			t.Fatal(err)
		}
		a.Exposure = inventory.ExposureIsolated
		if _, err := inv.UpdateAsset(ctx, admin, web.ID, a); err != nil {
			t.Fatal(err)
		}
		if _, err := findings.EvaluateHost(ctx, web.ID); err != nil {
			t.Fatal(err)
		}
		pass("after an asset edit", 1)
		after, err := svc.Explain(ctx, before.Record.FindingID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Record.Assessment.Score >= before.Record.Assessment.Score {
			t.Errorf("isolating the asset: score %v → %v; want lower", before.Record.Assessment.Score, after.Record.Assessment.Score)
		}

		// A day later the estate is re-scored whatever happened.
		w.Tick(ctx)
		pass("tick an hour later", 0)
		clk.t = clk.t.Add(25 * time.Hour)
		w.Tick(ctx)
		pass("tick a day later", 1)
	})
}

func pageOne(t *testing.T, svc *match.Service, assetID string) string {
	t.Helper()
	p, err := svc.Findings(context.Background(), match.FindingFilter{AssetID: assetID})
	if err != nil || len(p.Findings) == 0 {
		t.Fatalf("Findings(%s) = %v, %v", assetID, p.Total, err)
	}
	return p.Findings[0].ID
}

// TestVendorFixNote: a maker's "update to 21.12" without a fixed product
// version is stored on the finding, read back on both engines, counts as a
// fix for the score and the fix-available clock, and reaches the worklist.
func TestVendorFixNote(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := &findClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
		inv := inventory.NewService(db.Inventory(), clk.now)
		cctv, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: "CCTV-01", Type: inventory.TypeServer,
			Make: "Johnson Controls", Model: "exacq Enterprise Manager", FirmwareVersion: "21.06"})
		if err != nil {
			t.Fatal(err)
		}
		adv := advisory.Advisory{ID: "ICSA-21-357-02:CVE-2021-44228", Source: "csaf", Aliases: []string{"CVE-2021-44228"},
			Document: &advisory.Document{Tracking: "ICSA-21-357-02", Publisher: "CISA"},
			Affected: []advisory.Affected{{Ecosystem: advisory.EcosystemCSAF, Vendor: "Johnson Controls", Package: "exacq Enterprise Manager",
				Status: advisory.StatusKnownAffected, Ranges: []advisory.Range{{LastAffected: "21.06"}},
				Remediations: []advisory.Remediation{{Category: "vendor_fix", Details: "Update to version 21.12"}}}}}
		findings := match.NewService(db.Findings(), clk.now)
		findings.SetIndex(match.NewIndex([]advisory.Advisory{adv}, nil, nil))
		if _, err := findings.EvaluateAll(ctx); err != nil {
			t.Fatal(err)
		}
		fid := pageOne(t, findings, cctv.ID)
		f, err := findings.Finding(ctx, fid)
		if err != nil || f.FixNote != "Update to version 21.12" || f.FixedVersion != "" {
			t.Fatalf("finding = fix note %q, fixed version %q, %v; want the vendor's note and no version", f.FixNote, f.FixedVersion, err)
		}
		svc := risk.NewService(db.Risk(), policy.NewService(db.Policies(), clk.now), match.ServiceIntel{Svc: findings}, risk.Options{Now: clk.now})
		if _, err := svc.Recompute(ctx, ""); err != nil {
			t.Fatal(err)
		}
		x, err := svc.Explain(ctx, fid)
		if err != nil {
			t.Fatal(err)
		}
		if x.Record.FixAvailableAt == nil {
			t.Errorf("record has no fix-available time although the vendor offers a fix")
		}
		fixPoints := 0.0
		for _, fa := range x.Record.Assessment.Factors {
			if strings.Contains(strings.ToLower(fa.Name), "fix") {
				fixPoints = fa.Points
			}
		}
		if fixPoints <= 0 {
			t.Errorf("fix factor = %v points; want the policy's fix_available weight", fixPoints)
		}
		wl, err := svc.Worklist(ctx, risk.WorklistFilter{})
		if err != nil || len(wl.Items) != 1 || wl.Items[0].FixNote != "Update to version 21.12" {
			t.Errorf("worklist = %+v, %v; want the item with its fix note", wl.Items, err)
		}
	})
}
