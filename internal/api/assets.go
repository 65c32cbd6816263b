package api

import (
	"net/http"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/inventory"
)

func (a *API) assetRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/assets", Tag: "assets", Summary: "List assets with filters", Perm: auth.PermAssetRead,
			Query: []Param{
				{Name: "site", Description: "site ID"},
				{Name: "type", Enum: enumStrings(inventory.Types)},
				{Name: "criticality", Enum: enumStrings(inventory.Levels)},
				{Name: "phi", Type: "boolean", Description: "handles PHI"},
				{Name: "exposure", Enum: enumStrings(inventory.Exposures)},
				{Name: "owner", Description: "business or technical owner (exact, case-insensitive)"},
				{Name: "support", Enum: enumStrings(inventory.Supports)},
				{Name: "tag"}, {Name: "group", Description: "group ID"},
				{Name: "q", Description: "substring of name, hostname, serial, asset tag, make or model"},
				{Name: "limit", Type: "integer", Description: "page size (max 1000, default 50)"},
				{Name: "offset", Type: "integer"},
			},
			Resp: inventory.Page{}, Handle: a.listAssets},
		{Method: "POST", Path: "/assets", Tag: "assets", Summary: "Create an asset", Perm: auth.PermAssetWrite,
			Body: inventory.Asset{}, Resp: inventory.Asset{}, Status: http.StatusCreated, Handle: a.createAsset},
		{Method: "GET", Path: "/assets/{id}", Tag: "assets", Summary: "Get an asset with its software", Perm: auth.PermAssetRead,
			Resp: inventory.Asset{}, Handle: a.getAsset},
		{Method: "PUT", Path: "/assets/{id}", Tag: "assets", Summary: "Replace an asset's fields (send the revision you read)", Perm: auth.PermAssetWrite,
			Body: inventory.Asset{}, Resp: inventory.Asset{}, Handle: a.updateAsset},
		{Method: "DELETE", Path: "/assets/{id}", Tag: "assets", Summary: "Delete an asset", Perm: auth.PermAssetWrite,
			Query: []Param{{Name: "reason", Description: "why, for the audit trail"}}, Status: http.StatusNoContent, Handle: a.deleteAsset},
	}
}

// ParseAssetFilter reads the asset list filters shared by the API and UI.
func ParseAssetFilter(r *http.Request) (inventory.Filter, error) {
	q := r.URL.Query()
	f := inventory.Filter{SiteID: q.Get("site"), Owner: q.Get("owner"), Tag: q.Get("tag"), GroupID: q.Get("group"), Q: q.Get("q")}
	var err error
	if f.Type, err = queryEnum(r, "type", inventory.Types); err != nil {
		return f, err
	}
	if f.Criticality, err = queryEnum(r, "criticality", inventory.Levels); err != nil {
		return f, err
	}
	if f.Exposure, err = queryEnum(r, "exposure", inventory.Exposures); err != nil {
		return f, err
	}
	if f.Support, err = queryEnum(r, "support", inventory.Supports); err != nil {
		return f, err
	}
	if f.PHI, err = queryBool(r, "phi"); err != nil {
		return f, err
	}
	if f.Limit, err = queryInt(r, "limit", 50); err != nil {
		return f, err
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return f, err
	}
	return f, nil
}

func (a *API) listAssets(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f, err := ParseAssetFilter(r)
	if err != nil {
		return err
	}
	page, err := a.Inventory.Assets(r.Context(), f)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, page)
	return nil
}

func (a *API) getAsset(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	asset, err := a.Inventory.Asset(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, asset)
	return nil
}

func (a *API) createAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in inventory.Asset
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	out, err := a.Inventory.CreateAsset(r.Context(), p.Actor(authn.ClientAddr(r)), in)
	if err != nil {
		return err
	}
	a.reevaluate(r, out.ID)
	w.Header().Set("Location", Prefix+"/assets/"+out.ID)
	WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) updateAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in inventory.Asset
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	out, err := a.Inventory.UpdateAsset(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	a.reevaluate(r, out.ID)
	WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := a.Inventory.DeleteAsset(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), r.URL.Query().Get("reason")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reevaluate re-matches an asset whose software, CPE or make and model may
// have changed. The change itself is committed, so a failure here is logged
// rather than returned; the feed watcher's next full pass catches up.
func (a *API) reevaluate(r *http.Request, assetID string) {
	if a.Evaluator == nil {
		return
	}
	if _, err := a.Evaluator.EvaluateHost(r.Context(), assetID); err != nil {
		a.Log.ErrorContext(r.Context(), "re-matching an edited asset failed", "asset", assetID, "err", err)
	}
}
