package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
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
	if v.Rows, err = names.rows(ctx, page.Findings); err != nil {
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

// assetNames looks up the names of the assets findings are on, once per
// asset per request: a page of findings usually repeats a few assets.
type assetNames struct {
	inv   Inventory
	cache map[string]string
}

// name returns the asset's name, or its ID when the asset no longer exists:
// findings outlive deleted assets for reporting, and should still list.
func (n *assetNames) name(ctx context.Context, id string) (string, error) {
	if s, ok := n.cache[id]; ok {
		return s, nil
	}
	a, err := n.inv.Asset(ctx, id)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		a.Name = id
	case err != nil:
		return "", err
	}
	if n.cache == nil {
		n.cache = map[string]string{}
	}
	n.cache[id] = a.Name
	return a.Name, nil
}

func (n *assetNames) rows(ctx context.Context, fs []match.Finding) ([]findingRow, error) {
	rows := make([]findingRow, 0, len(fs))
	for _, f := range fs {
		name, err := n.name(ctx, f.AssetID)
		if err != nil {
			return nil, err
		}
		rows = append(rows, findingRow{Finding: f, AssetName: name})
	}
	return rows, nil
}

type findingDetailView struct {
	Finding   match.Finding
	AssetName string
	// AssetFindingsURL lists every finding on the same asset.
	AssetFindingsURL string
	// Advisory is the vulnerability's advisory when the feeds have it:
	// its summary and severity say what the finding is about.
	Advisory   *advisory.Advisory
	Severity   []severityView
	Advisories bool
}

func (ui *UI) showFinding(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	f, err := ui.cfg.Findings.Finding(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	names := assetNames{inv: ui.cfg.Inventory}
	v := findingDetailView{Finding: f, Advisories: ui.cfg.Advisories != nil,
		AssetFindingsURL: "/findings?" + url.Values{"asset": {f.AssetID}, "state": {stateAll}}.Encode()}
	if v.AssetName, err = names.name(ctx, f.AssetID); err != nil {
		return err
	}
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
		v.Rows = append(v.Rows, findingRow{Finding: f, AssetName: a.Name, Advisories: v.Advisories})
	}
	return v, nil
}

// assetRef is the part of an asset the Vulnerabilities section needs.
type assetRef struct{ ID, Name string }
