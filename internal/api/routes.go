package api

import (
	"log/slog"
	"net/http"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/inventory"
)

// API holds the services the JSON API exposes.
type API struct {
	Inventory *inventory.Service
	Accounts  *auth.Service
	Audit     *audit.Service
	Log       *slog.Logger
	Version   string
}

// Routes returns every API route.
func (a *API) Routes() []Route {
	var rs []Route
	for _, group := range [][]Route{
		a.importRoutes(),
		a.assetRoutes(),
		a.siteRoutes(),
		a.accountRoutes(),
		a.auditRoutes(),
	} {
		rs = append(rs, group...)
	}
	rs = append(rs, Route{Method: "GET", Path: "/openapi.json", Tag: "meta", Summary: "This OpenAPI document",
		Perm: auth.PermAuthenticated, Resp: map[string]any{},
		Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
			WriteJSON(w, http.StatusOK, OpenAPI(a.Routes(), a.Version))
			return nil
		}})
	return rs
}
