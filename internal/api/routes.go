package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// API holds the services the JSON API exposes.
type API struct {
	Inventory *inventory.Service
	Accounts  *auth.Service
	Audit     *audit.Service
	// Findings, Advisories and Evaluator serve vulnerability intelligence;
	// without them those routes are not offered.
	Findings   FindingsReader
	Advisories feeds.Reader
	Evaluator  HostEvaluator
	// Fleet serves the endpoint agents' admin routes when set.
	Fleet *fleet.Service
	// Policies serves the policy in force, its versions and document;
	// Risk the prioritised worklist, score explanations and exceptions.
	// Each group of routes is offered only when its service is set.
	Policies *policy.Service
	Risk     *risk.Service
	// Changes serves change records, approvals, test runs and evidence;
	// Calendar the maintenance calendar, its iCalendar feed and feed
	// tokens (which need Accounts).
	Changes  *change.Service
	Calendar CalendarSource
	// Rollouts, when set, is how a change starts: its rollout (rings,
	// waves, agent jobs) starts with it.
	Rollouts RolloutStarter
	Log      *slog.Logger
	Version  string
}

// RolloutStarter starts a change's rollout; *deploy.Rollouts implements it.
type RolloutStarter interface {
	Start(ctx context.Context, u change.User, changeID, why string) (deploy.Rollout, error)
}

// FindingsReader lists findings; *match.Service implements it.
type FindingsReader interface {
	Findings(ctx context.Context, f match.FindingFilter) (match.FindingPage, error)
	Finding(ctx context.Context, id string) (match.Finding, error)
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
		a.vulnRoutes(),
	} {
		rs = append(rs, group...)
	}
	if a.Fleet != nil {
		rs = append(rs, a.fleetRoutes(a.Fleet)...)
	}
	if a.Policies != nil {
		rs = append(rs, a.policyRoutes(a.Policies)...)
	}
	if a.Risk != nil {
		rs = append(rs, a.riskRoutes(a.Risk)...)
	}
	if a.Changes != nil {
		rs = append(rs, a.changeRoutes()...)
	}
	if a.Calendar != nil {
		rs = append(rs, a.calendarRoutes(a.Calendar)...)
	}
	rs = append(rs, Route{Method: "GET", Path: "/openapi.json", Tag: "meta", Summary: "This OpenAPI document",
		Perm: auth.PermAuthenticated, Resp: map[string]any{},
		Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
			WriteJSON(w, http.StatusOK, OpenAPI(a.Routes(), a.Version))
			return nil
		}})
	return rs
}
