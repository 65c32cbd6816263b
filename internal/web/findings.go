package web

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/risk"
)

// findingsPageSize is how many findings one page of the worklist shows;
// maxFindingsPageSize bounds a hand-edited limit.
const (
	findingsPageSize    = 50
	maxFindingsPageSize = 200
)

// stateAll is the state filter value for "every state". The empty value
// cannot mean that: an empty filter is the default worklist, open findings.
const stateAll = "all"

// assetFindingsLimit bounds the open findings listed on an asset's page; the
// section links to the full, paged list when there are more.
const assetFindingsLimit = 25

type findingsView struct {
	State    string // the state select's value: open, fixed, not_affected or all
	States   []option
	KEV      bool
	Package  string
	Vuln     string
	AssetID  string
	Asset    string // the filtered asset's name, or its ID if it is gone
	Limit    string // a non-default page size, carried by the form
	Rows     []findingRow
	Total    int
	First    int
	Last     int
	PrevURL  string
	NextURL  string
	Filtered bool
	Error    string
	// Advisories says whether vulnerability IDs link to advisory pages.
	Advisories bool
}

// findingRow is one finding with the name of its asset, which the finding
// itself only knows by ID, and how the shared row template should show it.
type findingRow struct {
	match.Finding
	AssetName string
	// ShowAsset is false on the asset's own page, where the column would
	// repeat one name.
	ShowAsset bool
	// Advisories says whether the vulnerability ID links to its advisory.
	Advisories bool
	// Times are the finding's lifecycle in its asset's site's time zone.
	Times findingTimes
}

// findingTimes are a finding's lifecycle instants as pages show them.
type findingTimes struct {
	FirstSeen, LastSeen, Fixed, Reopened when
}

func (c clock) finding(f match.Finding) findingTimes {
	return findingTimes{FirstSeen: c.at(f.FirstSeen), LastSeen: c.at(f.LastSeen), Fixed: c.atp(f.FixedAt), Reopened: c.atp(f.ReopenedAt)}
}

// findingQuery is what the findings filter form asked for, parsed.
type findingQuery struct {
	filter match.FindingFilter
	state  string // as shown in the form
	limit  string // as given, when not the default
}

// parseFindingQuery reads the worklist filters from the URL. The parameter
// names are the JSON API's (state, kev, package, vuln, asset), so a URL
// copied between the two means the same thing.
func parseFindingQuery(q url.Values) (findingQuery, error) {
	fq := findingQuery{state: string(match.StateOpen), filter: match.FindingFilter{
		AssetID: strings.TrimSpace(q.Get("asset")), Package: strings.TrimSpace(q.Get("package")),
		VulnID: strings.TrimSpace(q.Get("vuln")), State: match.StateOpen, Limit: findingsPageSize}}
	switch s := q.Get("state"); s {
	case "", string(match.StateOpen):
	case stateAll:
		fq.state, fq.filter.State = stateAll, ""
	case string(match.StateFixed), string(match.StateNotAffected):
		fq.state, fq.filter.State = s, match.State(s)
	default:
		return fq, errs.E(errs.Invalid, "state must be open, fixed, not_affected or all, not %q", s)
	}
	switch q.Get("kev") {
	case "", "false":
	case "true", "on", "1":
		yes := true
		fq.filter.KEV = &yes
	default:
		return fq, errs.E(errs.Invalid, "kev must be true or false")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxFindingsPageSize {
			return fq, errs.E(errs.Invalid, "limit must be a whole number from 1 to %d", maxFindingsPageSize)
		}
		fq.filter.Limit, fq.limit = n, s
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fq, errs.E(errs.Invalid, "offset must be a non-negative whole number")
		}
		fq.filter.Offset = n
	}
	return fq, nil
}

func stateOptions(selected string) []option {
	return []option{
		{Value: string(match.StateOpen), Label: "Open", Selected: selected == string(match.StateOpen)},
		{Value: string(match.StateFixed), Label: "Fixed", Selected: selected == string(match.StateFixed)},
		{Value: string(match.StateNotAffected), Label: "Not affected (vendor VEX)", Selected: selected == string(match.StateNotAffected)},
		{Value: stateAll, Label: "All states", Selected: selected == stateAll},
	}
}

func (ui *UI) listFindings(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	fq, err := parseFindingQuery(q)
	v := findingsView{State: fq.state, KEV: fq.filter.KEV != nil, Package: fq.filter.Package, Vuln: fq.filter.VulnID,
		AssetID: fq.filter.AssetID, Limit: fq.limit, Advisories: ui.cfg.Advisories != nil}
	v.States = stateOptions(v.State)
	v.Filtered = v.State != string(match.StateOpen) || v.KEV || v.Package != "" || v.Vuln != "" || v.AssetID != ""
	if err != nil {
		// A hand-edited URL: show the form so the user can fix it.
		v.Error = errs.Public(err)
		ui.render(w, r, errs.HTTPStatus(err), "findings", "Findings", v)
		return nil
	}
	names := assetNames{inv: ui.cfg.Inventory}
	if v.AssetID != "" {
		if v.Asset, err = names.name(ctx, v.AssetID); err != nil {
			return err
		}
	}
	page, err := ui.cfg.Findings.Findings(ctx, fq.filter)
	if err != nil {
		return err
	}
	v.Total = page.Total
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return err
	}
	zones.sites(sites)
	if v.Rows, err = names.rows(ctx, page.Findings, zones, ui.cfg.Now()); err != nil {
		return err
	}
	for i := range v.Rows {
		v.Rows[i].ShowAsset, v.Rows[i].Advisories = true, v.Advisories
	}
	if len(v.Rows) > 0 {
		v.First, v.Last = page.Offset+1, page.Offset+len(v.Rows)
	}
	if page.Offset > 0 {
		v.PrevURL = pageURL(q, max(page.Offset-page.Limit, 0))
	}
	if page.Offset+len(page.Findings) < page.Total {
		v.NextURL = pageURL(q, page.Offset+len(page.Findings))
	}
	ui.render(w, r, http.StatusOK, "findings", "Findings", v)
	return nil
}

// assetNames looks up the names (and sites) of the assets findings are on,
// once per asset per request: a page of findings usually repeats a few
// assets.
type assetNames struct {
	inv   Inventory
	cache map[string]assetRef
}

// name returns the asset's name, or its ID when the asset no longer exists:
// findings outlive deleted assets for reporting, and should still list.
func (n *assetNames) name(ctx context.Context, id string) (string, error) {
	a, err := n.ref(ctx, id)
	return a.Name, err
}

// ref is the asset as findings need it; a deleted asset has its ID for a
// name and no site.
func (n *assetNames) ref(ctx context.Context, id string) (assetRef, error) {
	if r, ok := n.cache[id]; ok {
		return r, nil
	}
	a, err := n.inv.Asset(ctx, id)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		a.Name = id
	case err != nil:
		return assetRef{}, err
	}
	if n.cache == nil {
		n.cache = map[string]assetRef{}
	}
	r := assetRef{ID: id, Name: a.Name, SiteID: a.SiteID}
	n.cache[id] = r
	return r, nil
}

// rows names each finding's asset and shows its times in the zone of the
// asset's site.
func (n *assetNames) rows(ctx context.Context, fs []match.Finding, zones *zoneBook, now time.Time) ([]findingRow, error) {
	rows := make([]findingRow, 0, len(fs))
	for _, f := range fs {
		a, err := n.ref(ctx, f.AssetID)
		if err != nil {
			return nil, err
		}
		rows = append(rows, findingRow{Finding: f, AssetName: a.Name, Times: zones.clock(a.SiteID, now).finding(f)})
	}
	return rows, nil
}

type findingDetailView struct {
	// Finding carries the lifecycle times in the asset's site's zone.
	Finding   findingRow
	AssetName string
	// AssetFindingsURL lists every finding on the same asset.
	AssetFindingsURL string
	// Advisory is the vulnerability's advisory when the feeds have it:
	// its summary and severity say what the finding is about.
	Advisory   *advisory.Advisory
	Severity   []severityView
	Advisories bool
	// Priority is the finding's risk record explained; nil without the
	// risk engine or before the finding was first assessed (Unscored).
	Priority *priorityView
	Unscored bool
	// RequestExceptionURL opens the exception form for this finding when
	// the user may request one.
	RequestExceptionURL string
	// CreateChangeURL opens the change form with this finding, when the
	// change pages are wired and the user may write changes.
	CreateChangeURL string
	// TimeZone is where the page's times are shown: the asset's site's.
	TimeZone string
}

// priorityView is the Priority section of the finding page: the score and
// every term that made it, the SSVC walk when the policy uses SSVC, the SLA
// clock with its reasons, the exception that stops it, and the history of
// every change of tier or due date.
type priorityView struct {
	Score   string
	Tier    string
	Mode    string
	Band    string
	Classes []string
	Factors []factorRow
	SSVC    *risk.SSVCDecision
	// SSVCWhy are the SSVC inputs with how each was derived, in the
	// decision table's order.
	SSVCWhy       []ssvcInput
	Target        string
	TargetWhy     string
	PolicyVersion int

	SLA          string
	FirstSeen    when
	FixAvailable when
	ClockStart   when
	ClockBasis   string
	Due          dueView
	DueSoonAt    when
	DueReason    string
	Resolved     when
	MetSLA       *bool
	TimeZone     string

	ExceptionID string
	// ExceptionLink says whether the exception has a page to link to.
	ExceptionLink bool
	History       []historyRow
}

type factorRow struct {
	Name, Input, Points, Note string
}

type ssvcInput struct {
	Name, Value, Why string
}

type historyRow struct {
	At            when
	Tier          string
	Score         string
	Due           when
	Status        string
	Reason        string
	PolicyVersion int
}

// fmtPoints shows a factor's points signed, so a compensating control's
// reduction reads as one: "+30", "−5", "0".
func fmtPoints(f float64) string {
	s := fmtScore(math.Abs(f))
	switch {
	case s == "0":
		return "0"
	case f < 0:
		return "−" + s
	}
	return "+" + s
}

// priority builds the Priority section for f, on c: the clock of its
// asset's site.
func (ui *UI) priority(ctx context.Context, f match.Finding, c clock) (*priorityView, error) {
	ex, err := ui.cfg.Risk.Explain(ctx, f.ID)
	if err != nil {
		return nil, err
	}
	rec, as := ex.Record, ex.Record.Assessment
	at, atp := c.at, c.atp
	v := &priorityView{Score: fmtScore(as.Score), Tier: as.Tier, Mode: as.Mode, Band: as.Band, Classes: as.Classes,
		SSVC: as.SSVC, Target: as.TargetText, TargetWhy: as.TargetWhy, PolicyVersion: rec.PolicyVersion,
		SLA: ex.SLA, FirstSeen: at(rec.FirstSeen), FixAvailable: atp(rec.FixAvailableAt), ClockStart: at(rec.ClockStart),
		ClockBasis: rec.ClockBasis, Due: dueOf(rec.DueAt, ex.SLA, c.loc, c.now), DueReason: rec.DueReason,
		Resolved: atp(rec.ResolvedAt), MetSLA: rec.MetSLA, TimeZone: c.loc.String(),
		ExceptionID: rec.ExceptionID, ExceptionLink: ui.cfg.Exceptions != nil}
	if rec.ClockBasis != risk.BasisAwaitingFix && !rec.DueSoonAt.IsZero() {
		v.DueSoonAt = at(rec.DueSoonAt)
	}
	if rec.ClockBasis == risk.BasisAwaitingFix {
		v.ClockStart = when{}
	}
	for _, fa := range as.Factors {
		v.Factors = append(v.Factors, factorRow{Name: fa.Name, Input: fa.Input, Points: fmtPoints(fa.Points), Note: fa.Note})
	}
	if d := as.SSVC; d != nil {
		v.SSVCWhy = []ssvcInput{
			{"Exploitation", d.Exploitation, d.Why["exploitation"]},
			{"Automatable", d.Automatable, d.Why["automatable"]},
			{"Technical impact", d.TechnicalImpact, d.Why["technical_impact"]},
			{"Mission & well-being", d.Mission, d.Why["mission_wellbeing"]},
		}
	}
	// Newest first: the question is usually "why did this change?".
	for _, e := range slices.Backward(ex.History) {
		v.History = append(v.History, historyRow{At: at(e.At), Tier: e.Tier, Score: fmtScore(e.Score), Due: at(e.DueAt),
			Status: e.Status, Reason: e.Reason, PolicyVersion: e.PolicyVersion})
	}
	return v, nil
}

func (ui *UI) showFinding(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	f, err := ui.cfg.Findings.Finding(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	names := assetNames{inv: ui.cfg.Inventory}
	a, err := names.ref(ctx, f.AssetID)
	if err != nil {
		return err
	}
	c, err := ui.assetClock(ctx, a.SiteID)
	if err != nil {
		return err
	}
	v := findingDetailView{Finding: findingRow{Finding: f, AssetName: a.Name, Times: c.finding(f)}, AssetName: a.Name,
		Advisories: ui.cfg.Advisories != nil, TimeZone: c.loc.String(),
		AssetFindingsURL: "/findings?" + url.Values{"asset": {f.AssetID}, "state": {stateAll}}.Encode()}
	if ui.cfg.Advisories != nil {
		a, err := ui.cfg.Advisories.Advisory(ctx, f.VulnID)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			// The feed that produced the finding may have dropped the
			// record since; the finding still stands on its own.
		case err != nil:
			return err
		default:
			v.Advisory = &a
			v.Severity = severities(a.Severity)
		}
	}
	if ui.cfg.Risk != nil && p.Can(auth.PermRiskRead) {
		v.Priority, err = ui.priority(ctx, f, c)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			// Not assessed yet: the engine scores new findings within
			// moments of matching, or once advisory data has loaded.
			v.Unscored = true
		case err != nil:
			return err
		}
	}
	// A finding an exception already covers is not offered another one.
	excepted := v.Priority != nil && v.Priority.ExceptionID != "" && v.Priority.SLA == risk.SLAExcepted
	if ui.cfg.Exceptions != nil && p.Can(auth.PermExceptionRequest) && f.State == match.StateOpen && !excepted {
		v.RequestExceptionURL = "/exceptions/new?" + url.Values{"scope": {risk.ScopeFinding}, "target": {f.ID}, "vuln": {f.VulnID}}.Encode()
	}
	if ui.cfg.Changes != nil && p.Can(auth.PermChangeWrite) && f.State == match.StateOpen {
		v.CreateChangeURL = "/changes/new?" + url.Values{"finding": {f.ID}}.Encode()
	}
	ui.render(w, r, http.StatusOK, "finding", f.VulnID+" on "+v.AssetName, v)
	return nil
}

// assetFindingsView is the Vulnerabilities section of the asset page.
type assetFindingsView struct {
	Rows []findingRow
	// Open counts the asset's open findings; Rows may show fewer.
	Open int
	// Suppressed counts findings a vendor VEX statement marks not affected:
	// hidden from the worklist but never from the record.
	Suppressed    int
	OpenURL       string
	AllURL        string
	SuppressedURL string
	Advisories    bool
}

// assetFindings loads the asset page's Vulnerabilities section: its open
// findings (newest first, as the store lists them) and how many are
// suppressed by VEX.
func (ui *UI) assetFindings(ctx context.Context, a assetRef) (*assetFindingsView, error) {
	c, err := ui.assetClock(ctx, a.SiteID)
	if err != nil {
		return nil, err
	}
	open, err := ui.cfg.Findings.Findings(ctx, match.FindingFilter{AssetID: a.ID, State: match.StateOpen, Limit: assetFindingsLimit})
	if err != nil {
		return nil, err
	}
	// Limit 1: only the total is wanted, and a zero limit means "default".
	na, err := ui.cfg.Findings.Findings(ctx, match.FindingFilter{AssetID: a.ID, State: match.StateNotAffected, Limit: 1})
	if err != nil {
		return nil, err
	}
	link := func(state string) string {
		return "/findings?" + url.Values{"asset": {a.ID}, "state": {state}}.Encode()
	}
	v := &assetFindingsView{Open: open.Total, Suppressed: na.Total, Advisories: ui.cfg.Advisories != nil,
		OpenURL: link(string(match.StateOpen)), AllURL: link(stateAll), SuppressedURL: link(string(match.StateNotAffected))}
	for _, f := range open.Findings {
		v.Rows = append(v.Rows, findingRow{Finding: f, AssetName: a.Name, Advisories: v.Advisories, Times: c.finding(f)})
	}
	return v, nil
}

// assetRef is the part of an asset that findings pages need: the site
// says which time zone their times are shown in.
type assetRef struct{ ID, Name, SiteID string }
