package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/risk"
)

// option is one choice in a select.
type option struct {
	Value, Label string
	Selected     bool
}

func enumOptions[T ~string](vals []T, selected string) []option {
	out := make([]option, len(vals))
	for i, v := range vals {
		out[i] = option{Value: string(v), Label: label(v), Selected: string(v) == selected}
	}
	return out
}

// anyOption leads a filter select: the empty value does not filter.
func anyOption(text string, opts []option) []option {
	return append([]option{{Value: "", Label: text}}, opts...)
}

type assetListView struct {
	// Selects are the enumerated filters, in display order; Owner and Q
	// are free text.
	Selects  []formField
	Owner, Q string
	// Hidden carries filters the form has no control for (tag, group,
	// page size), so submitting the form keeps them.
	Hidden    []hiddenFilter
	Rows      []assetRow
	Total     int
	First     int // 1-based index of the first row shown
	Last      int
	PrevURL   string
	NextURL   string
	Filtered  bool
	Error     string
	CanWrite  bool
	CanImport bool
}

type hiddenFilter struct {
	Name, Label, Value string
	Display            string // Value as the user knows it (a group's name)
}

type assetRow struct {
	inventory.Asset
	SiteName string
}

func (ui *UI) listAssets(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	v := assetListView{CanWrite: p.Can(auth.PermAssetWrite), CanImport: p.Can(auth.PermAssetImport) && ui.cfg.Importer != nil}
	siteOpts := make([]option, len(sites))
	siteNames := make(map[string]string, len(sites))
	for i, s := range sites {
		siteOpts[i] = option{Value: s.ID, Label: s.Name, Selected: s.ID == q.Get("site")}
		siteNames[s.ID] = s.Name
	}
	sel := func(name, lbl string, opts []option) formField {
		return formField{Name: name, Label: lbl, Kind: "select", Options: opts}
	}
	v.Selects = []formField{
		sel("site", "Site", anyOption("All sites", siteOpts)),
		sel("type", "Type", anyOption("All types", enumOptions(inventory.Types, q.Get("type")))),
		sel("criticality", "Criticality", anyOption("Any", enumOptions(inventory.Levels, q.Get("criticality")))),
		sel("phi", "PHI", []option{{Value: "", Label: "Any"},
			{Value: "true", Label: "Handles PHI", Selected: q.Get("phi") == "true"},
			{Value: "false", Label: "No PHI", Selected: q.Get("phi") == "false"}}),
		sel("exposure", "Exposure", anyOption("Any", enumOptions(inventory.Exposures, q.Get("exposure")))),
		sel("support", "Support status", anyOption("Any", enumOptions(inventory.Supports, q.Get("support")))),
	}
	v.Owner, v.Q = q.Get("owner"), q.Get("q")
	for _, h := range []hiddenFilter{{Name: "tag", Label: "tag"}, {Name: "group", Label: "group"}, {Name: "limit", Label: "page size"}} {
		if h.Value = q.Get(h.Name); h.Value == "" {
			continue
		}
		h.Display = h.Value
		if h.Name == "group" {
			groups, err := ui.cfg.Inventory.Groups(ctx)
			if err != nil {
				return err
			}
			for _, g := range groups {
				if g.ID == h.Value {
					h.Display = g.Name
				}
			}
		}
		v.Hidden = append(v.Hidden, h)
	}
	for _, k := range []string{"site", "type", "criticality", "phi", "exposure", "owner", "support", "q", "tag", "group"} {
		if q.Get(k) != "" {
			v.Filtered = true
		}
	}

	f, err := api.ParseAssetFilter(r)
	if err != nil {
		// A hand-edited URL: show the form so the user can fix it.
		v.Error = errs.Public(err)
		ui.render(w, r, errs.HTTPStatus(err), "assets", "Assets", v)
		return nil
	}
	page, err := ui.cfg.Inventory.Assets(ctx, f)
	if err != nil {
		return err
	}
	v.Total = page.Total
	for _, a := range page.Assets {
		v.Rows = append(v.Rows, assetRow{Asset: a, SiteName: siteNames[a.SiteID]})
	}
	if len(v.Rows) > 0 {
		v.First, v.Last = page.Offset+1, page.Offset+len(v.Rows)
	}
	if page.Offset > 0 {
		v.PrevURL = pageURL(q, max(page.Offset-page.Limit, 0))
	}
	if page.Offset+len(page.Assets) < page.Total {
		v.NextURL = pageURL(q, page.Offset+len(page.Assets))
	}
	ui.render(w, r, http.StatusOK, "assets", "Assets", v)
	return nil
}

// pageURL is the current list URL with a different offset, keeping every
// filter.
func pageURL(q url.Values, offset int) string {
	q2 := url.Values{}
	for k, vs := range q {
		if k != "offset" && len(vs) > 0 && vs[0] != "" {
			q2.Set(k, vs[0])
		}
	}
	if offset > 0 {
		q2.Set("offset", strconv.Itoa(offset))
	}
	return "?" + q2.Encode()
}

type assetDetailView struct {
	Asset     inventory.Asset
	SiteName  string
	Groups    []string
	CanWrite  bool
	CanAudit  bool
	Updated   bool
	AuditLink string
	// Findings is the Vulnerabilities section; nil when the UI has no
	// findings service.
	Findings *assetFindingsView
	// WorklistURL lists the asset's findings in priority order;
	// RequestExceptionURL starts an exception for all of them. Empty when
	// the user may not, or the UI has no such service.
	WorklistURL         string
	RequestExceptionURL string
	// Times are in the zone of the asset's site.
	Times struct{ LastSeen, Created, Updated when }
}

func (ui *UI) showAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	a, err := ui.cfg.Inventory.Asset(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := assetDetailView{Asset: a, CanWrite: p.Can(auth.PermAssetWrite),
		CanAudit: p.Can(auth.PermAuditRead) && ui.cfg.Audit != nil,
		Updated:  r.URL.Query().Get("saved") == "1"}
	v.AuditLink = "/audit?" + url.Values{"object_type": {"asset"}, "object_id": {a.ID}}.Encode()
	if a.SiteID != "" {
		sites, err := ui.cfg.Inventory.Sites(ctx)
		if err != nil {
			return err
		}
		v.SiteName = a.SiteID
		for _, s := range sites {
			if s.ID == a.SiteID {
				v.SiteName = s.Name
			}
		}
	}
	if len(a.Groups) > 0 {
		groups, err := ui.cfg.Inventory.Groups(ctx)
		if err != nil {
			return err
		}
		names := make(map[string]string, len(groups))
		for _, g := range groups {
			names[g.ID] = g.Name
		}
		for _, id := range a.Groups {
			v.Groups = append(v.Groups, orDefault(names[id], id))
		}
	}
	c, err := ui.assetClock(ctx, a.SiteID)
	if err != nil {
		return err
	}
	v.Times.LastSeen, v.Times.Created, v.Times.Updated = c.atp(a.LastSeenAt), c.at(a.CreatedAt), c.at(a.UpdatedAt)
	if ui.cfg.Findings != nil {
		if v.Findings, err = ui.assetFindings(ctx, assetRef{ID: a.ID, Name: a.Name, SiteID: a.SiteID}); err != nil {
			return err
		}
	}
	if ui.cfg.Risk != nil && p.Can(auth.PermRiskRead) {
		v.WorklistURL = "/worklist?" + url.Values{"asset": {a.ID}}.Encode()
	}
	if ui.cfg.Exceptions != nil && p.Can(auth.PermExceptionRequest) {
		v.RequestExceptionURL = "/exceptions/new?" + url.Values{"scope": {risk.ScopeAsset}, "target": {a.ID}}.Encode()
	}
	ui.render(w, r, http.StatusOK, "asset", a.Name, v)
	return nil
}
