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

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/risk"
)

// worklistPageSize is one page of the worklist: enough for "the ten things
// to patch this week" and then some, small enough to read.
const worklistPageSize = 50

// The SLA states the worklist filter offers, in the order a clinic reads
// them: what is late, what is nearly late, what is fine, what cannot be
// patched yet, and what is accepted.
var worklistSLAStates = []string{risk.SLABreached, risk.SLADueSoon, risk.SLAOnTrack, risk.SLAAwaitingFix, risk.SLAExcepted}

// slaLabels are the SLA states as people say them.
var slaLabels = map[string]string{
	risk.SLABreached: "Breached", risk.SLADueSoon: "Due soon", risk.SLAOnTrack: "On track",
	risk.SLAAwaitingFix: "Awaiting fix", risk.SLAExcepted: "Excepted", risk.SLAMet: "Met SLA", risk.SLAMissed: "Missed SLA",
}

func slaLabel(s string) string {
	if l, ok := slaLabels[s]; ok {
		return l
	}
	return label(s)
}

type worklistView struct {
	Selects []formField
	Vuln    string
	AssetID string
	Asset   string // the filtered asset's name
	Limit   string
	// Breached and DueSoon count the open findings in the same scope (every
	// filter but the SLA state), linking to them.
	Breached, DueSoon       int
	BreachedURL, DueSoonURL string
	Rows                    []worklistRow
	Total                   int
	First, Last             int
	PrevURL, NextURL        string
	Filtered                bool
	Error                   string
	// SortedByDue says the list is in due-date order rather than by score.
	SortedByDue bool
	// CanChange offers to turn the selected findings into a change.
	CanChange bool
}

// worklistRow is one finding in priority order, as the table shows it.
type worklistRow struct {
	Rank         int
	FindingID    string
	Score        string
	Tier         string
	Due          dueView
	SLA          string
	AssetID      string
	AssetName    string
	Package      string
	Version      string
	FixedVersion string
	// FixNote is the vendor's fix when it names no version.
	FixNote     string
	VulnID      string
	KEV         bool
	ExceptionID string
}

// worklistQuery parses the worklist's URL. Parameter names match the JSON
// API's worklist (sla, tier, site, asset, vuln, sort), so a link means the
// same in both.
func worklistQuery(q url.Values) (risk.WorklistFilter, string, error) {
	f := risk.WorklistFilter{Tier: strings.TrimSpace(q.Get("tier")), SiteID: strings.TrimSpace(q.Get("site")),
		AssetID: strings.TrimSpace(q.Get("asset")), VulnID: strings.TrimSpace(q.Get("vuln")), Limit: worklistPageSize}
	if s := q.Get("sla"); s != "" {
		if !slices.Contains(worklistSLAStates, s) {
			return f, "", errs.E(errs.Invalid, "sla must be one of %s, not %q", strings.Join(worklistSLAStates, ", "), s)
		}
		f.SLA = s
	}
	switch s := q.Get("sort"); s {
	case "", "score":
	case "due":
		f.Sort = "due"
	default:
		return f, "", errs.E(errs.Invalid, "sort must be score or due, not %q", s)
	}
	limit := ""
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxFindingsPageSize {
			return f, "", errs.E(errs.Invalid, "limit must be a whole number from 1 to %d", maxFindingsPageSize)
		}
		f.Limit, limit = n, s
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, "", errs.E(errs.Invalid, "offset must be a non-negative whole number")
		}
		f.Offset = n
	}
	return f, limit, nil
}

func (ui *UI) worklist(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	f, limit, qerr := worklistQuery(q)
	v := worklistView{Vuln: f.VulnID, AssetID: f.AssetID, Limit: limit, SortedByDue: f.Sort == "due",
		CanChange: ui.cfg.Changes != nil && p.Can(auth.PermChangeWrite),
		Filtered:  f.SLA != "" || f.Tier != "" || f.SiteID != "" || f.AssetID != "" || f.VulnID != "" || f.Sort != ""}
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return err
	}
	tiers, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	zones.sites(sites)
	siteOpts := make([]option, 0, len(sites))
	for _, s := range sites {
		siteOpts = append(siteOpts, option{Value: s.ID, Label: s.Name, Selected: s.ID == f.SiteID})
	}
	if f.Tier != "" && !slices.Contains(tiers, f.Tier) {
		tiers = append(tiers, f.Tier) // a tier of an older policy: keep the filter visible
	}
	tierOpts := make([]option, 0, len(tiers))
	for _, t := range tiers {
		tierOpts = append(tierOpts, option{Value: t, Label: label(t), Selected: t == f.Tier})
	}
	slaOpts := make([]option, 0, len(worklistSLAStates))
	for _, s := range worklistSLAStates {
		slaOpts = append(slaOpts, option{Value: s, Label: slaLabel(s), Selected: s == f.SLA})
	}
	sel := func(name, lbl string, opts []option) formField {
		return formField{Name: name, Label: lbl, Kind: "select", Options: opts}
	}
	v.Selects = []formField{
		sel("sla", "SLA state", anyOption("Open (excepted ones apart)", slaOpts)),
		sel("tier", "Tier", anyOption("Any tier", tierOpts)),
		sel("site", "Site", anyOption("Any site", siteOpts)),
		sel("sort", "Order", []option{{Value: "", Label: "Highest score first"},
			{Value: "due", Label: "Soonest due first", Selected: f.Sort == "due"}}),
	}
	// A filter the URL got wrong, or the service refuses (a tier that is
	// not the policy's), comes back on the form so the user can fix it.
	bad := func(err error) error {
		if errs.KindOf(err) != errs.Invalid {
			return err
		}
		v.Error = errs.Public(err)
		ui.render(w, r, http.StatusBadRequest, "worklist", "Worklist", v)
		return nil
	}
	if qerr != nil {
		return bad(qerr)
	}
	names := assetNames{inv: ui.cfg.Inventory}
	if f.AssetID != "" {
		if v.Asset, err = names.name(ctx, f.AssetID); err != nil {
			return err
		}
	}
	// The headline counts cover the same scope as the list, whatever SLA
	// state it is narrowed to, so they say how bad this part of the estate is.
	scope := f
	scope.SLA, scope.Sort, scope.Offset, scope.Limit = "", "", 0, 1
	for _, c := range []struct {
		state string
		n     *int
		link  *string
	}{{risk.SLABreached, &v.Breached, &v.BreachedURL}, {risk.SLADueSoon, &v.DueSoon, &v.DueSoonURL}} {
		sf := scope
		sf.SLA = c.state
		page, err := ui.cfg.Risk.Worklist(ctx, sf)
		if err != nil {
			return bad(err)
		}
		*c.n = page.Total
		lq := url.Values{}
		for k, vs := range q {
			if k != "offset" && k != "sla" && len(vs) > 0 && vs[0] != "" {
				lq.Set(k, vs[0])
			}
		}
		lq.Set("sla", c.state)
		*c.link = "/worklist?" + lq.Encode()
	}
	page, err := ui.cfg.Risk.Worklist(ctx, f)
	if err != nil {
		return bad(err)
	}
	now := ui.cfg.Now()
	for i, it := range page.Items {
		name := it.AssetName
		if name == "" {
			name = it.AssetID // the asset was deleted; its findings stay on record
		}
		v.Rows = append(v.Rows, worklistRow{Rank: page.Offset + i + 1, FindingID: it.FindingID,
			Score: fmtScore(it.Assessment.Score), Tier: it.Assessment.Tier, Due: dueOf(it.DueAt, it.SLA, zones.of(it.SiteID), now),
			SLA: it.SLA, AssetID: it.AssetID, AssetName: name, Package: it.Package, Version: it.Version,
			FixedVersion: it.FixedVersion, FixNote: it.FixNote, VulnID: it.VulnID, KEV: it.KEV, ExceptionID: it.ExceptionID})
	}
	v.Total = page.Total
	if len(v.Rows) > 0 {
		v.First, v.Last = page.Offset+1, page.Offset+len(v.Rows)
	}
	if page.Offset > 0 {
		v.PrevURL = pageURL(q, max(page.Offset-page.Limit, 0))
	}
	if page.Offset+len(page.Items) < page.Total {
		v.NextURL = pageURL(q, page.Offset+len(page.Items))
	}
	ui.render(w, r, http.StatusOK, "worklist", "Worklist", v)
	return nil
}

// policyFacts reads what the pages need from the policy in force: the tier
// names, most urgent first, and the organisation's time zone. Without a
// policy service there are no tier names and times show in UTC.
func (ui *UI) policyFacts(ctx context.Context) ([]string, *zoneBook, error) {
	zb := &zoneBook{org: time.UTC}
	if ui.cfg.Policy == nil {
		return nil, zb, nil
	}
	c, _, err := ui.cfg.Policy.Current(ctx)
	if err != nil {
		return nil, nil, err
	}
	p := c.Policy()
	var tiers []string
	for _, t := range p.Risk.Tiers {
		tiers = append(tiers, t.Name)
	}
	if p.Organization.TimeZone != "" {
		if l, err := time.LoadLocation(p.Organization.TimeZone); err == nil {
			zb.org = l
		}
	}
	return tiers, zb, nil
}

// zoneBook finds the time zone to show a finding's dates in: its site's,
// where SLA calendar days are counted, else the organisation's.
type zoneBook struct {
	org    *time.Location
	bySite map[string]*time.Location
}

func (z *zoneBook) sites(sites []inventory.Site) {
	z.bySite = map[string]*time.Location{}
	for _, s := range sites {
		if s.TimeZone == "" {
			continue
		}
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			z.bySite[s.ID] = l
		}
	}
}

func (z *zoneBook) of(siteID string) *time.Location {
	if l, ok := z.bySite[siteID]; ok {
		return l
	}
	return z.org
}

// clock shows instants at now in the zone of the site siteID.
func (z *zoneBook) clock(siteID string, now time.Time) clock {
	return clock{loc: z.of(siteID), now: now}
}

// dueView is a due date with a word on where it stands.
type dueView struct {
	When when
	// Note is "in 3 days", "2 days overdue", or why there is no running
	// clock (excepted, awaiting a fix).
	Note string
}

func dueOf(t time.Time, sla string, loc *time.Location, now time.Time) dueView {
	d := dueView{When: whenAt(t, loc, now)}
	switch {
	case sla == risk.SLAExcepted:
		d.Note = "clock stopped by an exception"
	case sla == risk.SLAAwaitingFix || t.IsZero():
		d.Note = "clock starts when a fix is available"
	case sla == risk.SLAMet || sla == risk.SLAMissed:
	case d.When.Past:
		d.Note = d.When.Span + " overdue"
	default:
		d.Note = "in " + d.When.Span
	}
	return d
}

// fmtScore shows a score with at most one decimal: "87.5", "60".
func fmtScore(f float64) string {
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}
