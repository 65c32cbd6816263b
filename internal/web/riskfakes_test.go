package web

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// riskNow is the fixed "now" of the risk pages' tests: a Friday afternoon
// in March 2026, after the US switched to daylight time.
var riskNow = time.Date(2026, 3, 20, 15, 0, 0, 0, time.UTC)

// fakeRisk serves a canned worklist, filtered and ordered the way the store
// does, and canned explanations; it records every filter as passed.
type fakeRisk struct {
	mu      sync.Mutex
	items   []risk.WorklistItem
	explain map[string]risk.Explanation
	filters []risk.WorklistFilter
	tiers   []string
}

func newFakeRisk() *fakeRisk {
	h := func(n int) time.Time { return riskNow.Add(time.Duration(n) * time.Hour) }
	item := func(id, asset, name, site, vuln, pkg, ver, fixed string, score float64, tier, sla, status string, due time.Time) risk.WorklistItem {
		return risk.WorklistItem{Record: risk.Record{FindingID: id, AssetID: asset, VulnID: vuln, Status: status,
			Assessment: risk.Assessment{Mode: policy.ModeScore, Score: score, Tier: tier}, DueAt: due, KEV: vuln == "CVE-2024-3094"},
			AssetName: name, SiteID: site, Package: pkg, Version: ver, FixedVersion: fixed, SLA: sla}
	}
	items := []risk.WorklistItem{
		item("f-xz", "a-chem", "Chemistry analyzer", "s-lab", "CVE-2024-3094", "xz-utils", "5.4.1-0.2", "5.4.1-1", 92.5, "critical", risk.SLABreached, risk.StatusOpen, h(-50)),
		item("f-ssl", "a-chem", "Chemistry analyzer", "s-lab", "CVE-2023-0286", "openssl", "1.1.1k", "", 61.25, "high", risk.SLADueSoon, risk.StatusOpen, h(30)),
		item("f-gone", "a-deleted", "", "", "CVE-2023-38545", "curl", "7.88.1-10", "7.88.1-10+deb12u4", 30, "medium", risk.SLAOnTrack, risk.StatusOpen, h(20*24)),
		item("f-awaiting", "a-xp", "X-ray workstation", "s-clinic", "CVE-2025-0001", "dicom-viewer", "4.2", "", 12, "low", risk.SLAAwaitingFix, risk.StatusOpen, time.Time{}),
		item("f-exc", "a-vpn", "VPN gateway", "s-clinic", "CVE-2024-1111", "Acme VPN Gateway", "3.2", "3.2.1", 70, "critical", risk.SLAExcepted, risk.StatusExcepted, h(-100)),
	}
	items[4].ExceptionID = "exc_0000000000000001"
	items[1].FixNote = "Update to OpenSSL 1.1.1t through the analyzer maker's service portal"

	day := func(d int) time.Time { return time.Date(2026, 3, d, 8, 0, 0, 0, time.UTC) }
	xz := risk.Record{FindingID: "f-xz", AssetID: "a-chem", VulnID: "CVE-2024-3094", Status: risk.StatusOpen, PolicyVersion: 1,
		Assessment: risk.Assessment{Mode: policy.ModeScore, Score: 92.5, Tier: "critical", TargetText: "72h", TargetWhy: "tier critical",
			Classes: []string{"lab_system"},
			Factors: []risk.Factor{
				{Name: "CVSS base severity", Input: "10 (CVSS v3.1)", Points: 30},
				{Name: "Known exploited (CISA KEV)", Input: "listed 2024-04-01", Points: 25},
				{Name: "Exploit probability (EPSS)", Input: "86%", Points: 8.6},
				{Name: "Protected health information", Input: "handled", Points: 10},
				{Name: "Rule: lab systems", Input: `asset.type == "analyzer"`, Points: 20, Note: "Analyzers feed patient results"},
				{Name: "Compensating controls", Input: "none", Points: 0},
				{Name: "Score cap", Input: "93.60", Points: -1.1, Note: "scores are capped at 100"},
			}},
		FirstSeen: day(1), FixAvailableAt: ptr(day(1)), ClockStart: riskNow.Add(-122 * time.Hour), ClockBasis: risk.BasisReprioritized,
		DueAt: h(-50), DueSoonAt: h(-74), DueReason: "re-prioritised (newly listed in CISA KEV): 72h from 2026-03-15 09:00 MDT"}
	ssvcRec := risk.Record{FindingID: "f-ssl", AssetID: "a-chem", VulnID: "CVE-2023-0286", Status: risk.StatusOpen, PolicyVersion: 1,
		Assessment: risk.Assessment{Mode: policy.ModeSSVC, Score: 61.25, Tier: "high", TargetText: "14d", TargetWhy: "tier high",
			SSVC: &risk.SSVCDecision{Table: "cisa-2.0.3", Exploitation: "poc", Automatable: "no", TechnicalImpact: "total",
				Mission: "high", Outcome: "attend", Why: map[string]string{"exploitation": "EPSS percentile 0.97 ≥ 0.95",
					"automatable": "the CVSS vector needs user interaction", "technical_impact": "CVSS C:H/I:H/A:H",
					"mission_wellbeing": "mission_high matched"}},
			Factors: []risk.Factor{{Name: "Exploitation", Input: "poc"}}},
		FirstSeen: day(2), ClockStart: day(2), ClockBasis: risk.BasisFirstSeen, DueAt: h(30), DueSoonAt: h(-42),
		DueReason: "14d from first seen 2026-03-02"}
	met := true
	heme := risk.Record{FindingID: "f-heme", AssetID: "a-heme", VulnID: "CVE-2022-1111", Status: risk.StatusFixed, PolicyVersion: 1,
		Assessment: risk.Assessment{Mode: policy.ModeScore, Score: 40, Tier: "medium"}, FirstSeen: day(4), ClockStart: day(4),
		ClockBasis: risk.BasisFirstSeen, DueAt: day(30), DueSoonAt: day(23), ExceptionID: "exc_0000000000000001",
		ResolvedAt: ptr(day(10)), MetSLA: &met}
	return &fakeRisk{items: items, tiers: []string{"critical", "high", "medium", "low"}, explain: map[string]risk.Explanation{
		"f-xz": {Record: xz, SLA: risk.SLABreached, History: []risk.Event{
			{FindingID: "f-xz", At: day(1), Tier: "high", Score: 67.5, DueAt: day(15), Status: risk.StatusOpen, Reason: "first assessed: 14d from first seen", PolicyVersion: 1},
			{FindingID: "f-xz", At: riskNow.Add(-122 * time.Hour), Tier: "critical", Score: 92.5, DueAt: h(-50), Status: risk.StatusOpen, Reason: "re-prioritised: newly listed in CISA KEV", PolicyVersion: 1},
		}},
		"f-ssl":  {Record: ssvcRec, SLA: risk.SLADueSoon},
		"f-heme": {Record: heme, SLA: risk.SLAMet},
	}}
}

func ptr[T any](v T) *T { return &v }

func (f *fakeRisk) Worklist(_ context.Context, flt risk.WorklistFilter) (risk.WorklistPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	if flt.Tier != "" && !slices.Contains(f.tiers, flt.Tier) {
		return risk.WorklistPage{}, errs.E(errs.Invalid, "tier %q is not a tier of the policy in force", flt.Tier)
	}
	var all []risk.WorklistItem
	for _, it := range f.items {
		if (flt.SLA == "" && it.Status != risk.StatusOpen) || (flt.SLA != "" && it.SLA != flt.SLA) ||
			(flt.Tier != "" && it.Assessment.Tier != flt.Tier) || (flt.AssetID != "" && it.AssetID != flt.AssetID) ||
			(flt.SiteID != "" && it.SiteID != flt.SiteID) || (flt.VulnID != "" && it.VulnID != flt.VulnID) {
			continue
		}
		all = append(all, it)
	}
	slices.SortStableFunc(all, func(a, b risk.WorklistItem) int {
		byScore := cmp.Compare(b.Assessment.Score, a.Assessment.Score)
		if flt.Sort != "due" {
			return byScore
		}
		switch {
		case a.DueAt.IsZero() != b.DueAt.IsZero():
			if a.DueAt.IsZero() {
				return 1
			}
			return -1
		}
		return cmp.Or(a.DueAt.Compare(b.DueAt), byScore)
	})
	limit := cmp.Or(flt.Limit, 50)
	p := risk.WorklistPage{Items: []risk.WorklistItem{}, Total: len(all), Limit: limit, Offset: flt.Offset}
	if flt.Offset < len(all) {
		p.Items = all[flt.Offset:min(len(all), flt.Offset+limit)]
	}
	return p, nil
}

func (f *fakeRisk) Explain(_ context.Context, id string) (risk.Explanation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, ok := f.explain[id]
	if !ok {
		return risk.Explanation{}, errs.E(errs.NotFound, "finding %s has not been assessed", id)
	}
	return ex, nil
}

func (f *fakeRisk) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.filters)
}

// fakeExceptions keeps exceptions in memory and runs the risk package's own
// lifecycle rules (NewException, Approve, Reject, Revoke, ReviewException,
// Aging) under the default policy, so messages are the domain's own.
type fakeExceptions struct {
	mu         sync.Mutex
	exceptions map[string]risk.Exception
	reviews    map[string][]risk.Review
	// targets are the "scope/id" pairs that exist.
	targets   map[string]bool
	requests  []risk.Requester
	decisions []risk.Decision
	filters   []risk.ExceptionFilter
	reviewsBy []time.Time
}

func newFakeExceptions() *fakeExceptions {
	d := func(days int) time.Time { return riskNow.AddDate(0, 0, days) }
	f := &fakeExceptions{exceptions: map[string]risk.Exception{}, reviews: map[string][]risk.Review{}, targets: map[string]bool{}}
	for _, t := range []string{"finding/f-xz", "finding/f-ssl", "finding/f-heme", "asset/a-chem", "asset/a-vpn", "asset/a-heme", "group/g-lab"} {
		f.targets[t] = true
	}
	for _, e := range []risk.Exception{
		{ID: "exc_0000000000000001", Scope: risk.ScopeAsset, Target: "a-vpn", Decision: policy.DecisionMitigate,
			Reason: "Vendor validates firmware 3.2.1 in Q2", Owner: "Clinic IT manager",
			Controls: []risk.Control{{Kind: policy.ControlSegmentation, Description: "Management interface on VLAN 40 only"}},
			State:    risk.ExceptionApproved, RequestedBy: "operator", RequestedAt: d(-100), DecidedBy: "approver", DecidedAt: ptr(d(-99)),
			DecisionNote: "Accepted until the vendor ships", ExpiresAt: d(20), NextReviewAt: d(-1), Revision: 2, UpdatedAt: d(-99)},
		{ID: "exc_0000000000000002", Scope: risk.ScopeFinding, Target: "f-xz", VulnID: "CVE-2024-3094", Decision: policy.DecisionAccept,
			Reason: "Analyzer validated by the vendor; patch pending", Owner: "Lab director", State: risk.ExceptionRequested,
			RequestedBy: "admin", RequestedAt: d(-1), ExpiresAt: d(60), NextReviewAt: d(60), Revision: 1, UpdatedAt: d(-1)},
		{ID: "exc_0000000000000003", Scope: risk.ScopeAsset, Target: "a-heme", Decision: policy.DecisionAccept,
			Reason: "Replacement ordered", Owner: "Lab director", State: risk.ExceptionRequested,
			RequestedBy: "approver", RequestedAt: d(-2), ExpiresAt: d(30), NextReviewAt: d(30), Revision: 1, UpdatedAt: d(-2)},
	} {
		f.exceptions[e.ID] = e
	}
	return f
}

func (f *fakeExceptions) name(who risk.Requester) string { return cmp.Or(who.Actor.Name, who.Actor.ID) }

func (f *fakeExceptions) RequestException(_ context.Context, who risk.Requester, e risk.Exception) (risk.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, err := risk.NewException(e, f.name(who), policy.Default(), riskNow)
	if err != nil {
		return risk.Exception{}, err
	}
	if !f.targets[e.Scope+"/"+e.Target] {
		return risk.Exception{}, fmt.Errorf("exception target: %w", errs.E(errs.NotFound, "no %s %q", e.Scope, e.Target))
	}
	f.requests = append(f.requests, who)
	f.exceptions[e.ID] = e
	return e, nil
}

func (f *fakeExceptions) DecideException(_ context.Context, who risk.Requester, id string, d risk.Decision) (risk.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decisions = append(f.decisions, d)
	cur, ok := f.exceptions[id]
	if !ok {
		return risk.Exception{}, errs.E(errs.NotFound, "no exception %q", id)
	}
	if d.Revision != 0 && d.Revision != cur.Revision {
		return risk.Exception{}, errs.E(errs.Conflict, "exception %s changed since you loaded it (revision %d, now %d); reload and decide again", id, d.Revision, cur.Revision)
	}
	var (
		out risk.Exception
		rev risk.Review
		err error
	)
	pol, name := policy.Default(), f.name(who)
	switch d.Action {
	case "approve":
		out, err = risk.Approve(cur, name, who.Role, d.Note, pol, riskNow)
	case "reject":
		out, err = risk.Reject(cur, name, who.Role, d.Note, pol, riskNow)
	case "revoke":
		out, err = risk.Revoke(cur, name, d.Note, riskNow)
	case "review":
		out, rev, err = risk.ReviewException(cur, name, d.Outcome, d.Note, pol, riskNow)
	default:
		err = errs.E(errs.Invalid, "action must be approve, reject, revoke or review")
	}
	if err != nil {
		return risk.Exception{}, fmt.Errorf("%s exception %s: %w", d.Action, id, err)
	}
	if d.Action == "review" {
		f.reviews[id] = append(f.reviews[id], rev)
	}
	f.exceptions[id] = out
	return out, nil
}

func (f *fakeExceptions) Exception(_ context.Context, id string) (risk.Exception, []risk.Review, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.exceptions[id]
	if !ok {
		return risk.Exception{}, nil, errs.E(errs.NotFound, "no exception %q", id)
	}
	return e, f.reviews[id], nil
}

func (f *fakeExceptions) Exceptions(_ context.Context, flt risk.ExceptionFilter) ([]risk.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	var out []risk.Exception
	for _, e := range f.exceptions {
		if (flt.State != "" && e.State != flt.State) || (flt.ExpiringBy != nil && e.ExpiresAt.After(*flt.ExpiringBy)) ||
			(flt.ReviewDueBy != nil && e.NextReviewAt.After(*flt.ReviewDueBy)) {
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b risk.Exception) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeExceptions) ExceptionAging(ctx context.Context) (risk.AgingReport, error) {
	es, err := f.Exceptions(ctx, risk.ExceptionFilter{})
	if err != nil {
		return risk.AgingReport{}, err
	}
	return risk.Aging(es, riskNow), nil
}

func (f *fakeExceptions) ReviewsDue(ctx context.Context, by time.Time) ([]risk.Exception, error) {
	f.mu.Lock()
	f.reviewsBy = append(f.reviewsBy, by)
	f.mu.Unlock()
	return f.Exceptions(ctx, risk.ExceptionFilter{State: risk.ExceptionApproved, ReviewDueBy: &by})
}

// fakePolicy keeps applied versions in memory and loads, validates and
// renders with the policy package itself, as policy.Service does.
type fakePolicy struct {
	mu       sync.Mutex
	versions []policy.Version // oldest first
	applies  []audit.Actor
}

func newFakePolicy() *fakePolicy {
	src := policy.DefaultSource()
	sum := sha256.Sum256(src)
	return &fakePolicy{versions: []policy.Version{{Version: 1, Source: string(src), SHA256: hex.EncodeToString(sum[:]),
		AppliedBy: "admin", AppliedAt: riskNow.AddDate(0, 0, -30), Comment: "Adopted the shipped policy (CAB 2026-02)"}}}
}

func (f *fakePolicy) Current(ctx context.Context) (*policy.Compiled, policy.Version, error) {
	f.mu.Lock()
	n := len(f.versions)
	f.mu.Unlock()
	return f.Version(ctx, n)
}

func (f *fakePolicy) Validate(src []byte) (*policy.Compiled, error) {
	c, err := policy.Load(src)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "policy is invalid")
	}
	return c, nil
}

func (f *fakePolicy) Apply(_ context.Context, actor audit.Actor, src []byte, comment string) (policy.Version, error) {
	if _, err := f.Validate(src); err != nil {
		return policy.Version{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256(src)
	if n := len(f.versions); n > 0 && f.versions[n-1].SHA256 == hex.EncodeToString(sum[:]) {
		return policy.Version{}, fmt.Errorf("apply policy: %w", errs.E(errs.Conflict, "this policy is already in force as version %d", n))
	}
	v := policy.Version{Version: len(f.versions) + 1, Source: string(src), SHA256: hex.EncodeToString(sum[:]),
		AppliedBy: actor.Name, AppliedAt: riskNow, Comment: comment}
	f.versions = append(f.versions, v)
	f.applies = append(f.applies, actor)
	return v, nil
}

func (f *fakePolicy) Versions(context.Context) ([]policy.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []policy.Version
	for _, v := range slices.Backward(f.versions) {
		v.Source = ""
		out = append(out, v)
	}
	return out, nil
}

func (f *fakePolicy) Version(_ context.Context, n int) (*policy.Compiled, policy.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == 0 {
		d := policy.Default()
		return d, policy.Version{AppliedBy: "built-in default", Source: string(d.Source()), SHA256: d.SHA256()}, nil
	}
	if n < 0 || n > len(f.versions) {
		return nil, policy.Version{}, errs.E(errs.NotFound, "no policy version %d", n)
	}
	v := f.versions[n-1]
	c, err := policy.Load([]byte(v.Source))
	if err != nil {
		return nil, policy.Version{}, err
	}
	return c, v, nil
}

func (f *fakePolicy) Document(ctx context.Context, n int, format string) ([]byte, error) {
	var (
		c   *policy.Compiled
		v   policy.Version
		err error
	)
	if n < 0 {
		c, v, err = f.Current(ctx)
	} else {
		c, v, err = f.Version(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	return policy.Render(c, format, policy.RenderMeta{Version: v.Version, AppliedAt: v.AppliedAt, AppliedBy: v.AppliedBy})
}

func (f *fakePolicy) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.versions)
}
