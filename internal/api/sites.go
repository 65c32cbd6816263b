package api

import (
	"net/http"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/inventory"
)

func (a *API) siteRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/sites", Tag: "sites", Summary: "List sites", Perm: auth.PermAssetRead, Resp: []inventory.Site{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Inventory.Sites(r.Context()))
			}},
		{Method: "POST", Path: "/sites", Tag: "sites", Summary: "Create a site", Perm: auth.PermSiteWrite, Body: inventory.Site{}, Resp: inventory.Site{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in inventory.Site
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusCreated}.send(a.Inventory.CreateSite(r.Context(), p.Actor(authn.ClientAddr(r)), in))
			}},
		{Method: "GET", Path: "/sites/{id}", Tag: "sites", Summary: "Get a site", Perm: auth.PermAssetRead, Resp: inventory.Site{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Inventory.Site(r.Context(), r.PathValue("id")))
			}},
		{Method: "PUT", Path: "/sites/{id}", Tag: "sites", Summary: "Update a site", Perm: auth.PermSiteWrite, Body: inventory.Site{}, Resp: inventory.Site{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in inventory.Site
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(a.Inventory.UpdateSite(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in))
			}},
		{Method: "DELETE", Path: "/sites/{id}", Tag: "sites", Summary: "Delete a site without assets", Perm: auth.PermSiteWrite, Status: http.StatusNoContent,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				if err := a.Inventory.DeleteSite(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id")); err != nil {
					return err
				}
				w.WriteHeader(http.StatusNoContent)
				return nil
			}},
		{Method: "GET", Path: "/groups", Tag: "groups", Summary: "List asset groups", Perm: auth.PermAssetRead, Resp: []inventory.Group{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Inventory.Groups(r.Context()))
			}},
		{Method: "POST", Path: "/groups", Tag: "groups", Summary: "Create an asset group", Perm: auth.PermAssetWrite, Body: inventory.Group{}, Resp: inventory.Group{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in inventory.Group
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusCreated}.send(a.Inventory.CreateGroup(r.Context(), p.Actor(authn.ClientAddr(r)), in))
			}},
		{Method: "GET", Path: "/groups/{id}", Tag: "groups", Summary: "Get an asset group", Perm: auth.PermAssetRead, Resp: inventory.Group{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Inventory.Group(r.Context(), r.PathValue("id")))
			}},
		{Method: "PUT", Path: "/groups/{id}", Tag: "groups", Summary: "Update an asset group", Perm: auth.PermAssetWrite, Body: inventory.Group{}, Resp: inventory.Group{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in inventory.Group
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(a.Inventory.UpdateGroup(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in))
			}},
		{Method: "DELETE", Path: "/groups/{id}", Tag: "groups", Summary: "Delete an asset group (members stay)", Perm: auth.PermAssetWrite, Status: http.StatusNoContent,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				if err := a.Inventory.DeleteGroup(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id")); err != nil {
					return err
				}
				w.WriteHeader(http.StatusNoContent)
				return nil
			}},
	}
}

// reply writes a (value, error) result as JSON with a fixed status, so a
// handler can return reply{w, 200}.send(service call).
type reply struct {
	w      http.ResponseWriter
	status int
}

func (rp reply) send(v any, err error) error {
	if err != nil {
		return err
	}
	WriteJSON(rp.w, rp.status, v)
	return nil
}
