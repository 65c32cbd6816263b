package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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
	// waves, agent jobs) starts with it, the rollout routes are offered,
	// and a change's halt, resume, roll back, cancel and complete act on
	// its rollout (rollouts.go says how).
	Rollouts RolloutService
	// Proposals, with Changes, serves emergency proposals and drafts the
	// emergency change one stands for.
	Proposals ProposalLister
	// Clock is the time relative windows (?since=30d) count back from;
	// nil means time.Now.
	Clock   func() time.Time
	Log     *slog.Logger
	Version string
}

// RolloutService is the rollout engine as the API uses it;
// *deploy.Rollouts implements it.
type RolloutService interface {
	Start(ctx context.Context, u change.User, changeID, why string) (deploy.Rollout, error)
	Get(ctx context.Context, id string) (deploy.Rollout, error)
	ByChange(ctx context.Context, changeID string) (deploy.Rollout, error)
	List(ctx context.Context, f deploy.RolloutFilter) ([]deploy.Rollout, error)
	DeploymentLog(ctx context.Context, changeID, assetID string) ([]deploy.LogEntry, error)
	NotConverged(ctx context.Context, changeID string) ([]deploy.Convergence, error)
	Pause(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	Resume(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	Abort(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	RollBack(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	RecordManual(ctx context.Context, u change.User, rolloutID, itemID, outcome, note string) (deploy.Rollout, error)
	// ChangeMove carries out a change-level move (halt, resume, rollback,
	// cancel, complete) through the change's rollout while it is active,
	// so the change and the rollout never disagree.
	ChangeMove(ctx context.Context, u change.User, changeID string, act change.Action, st change.Step) (change.Change, *deploy.Rollout, error)
}

// ProposalLister lists emergency proposals; *change.Proposals implements it.
type ProposalLister interface {
	EmergencyProposals(ctx context.Context, since time.Time) ([]change.Proposal, error)
}

func (a *API) now() time.Time {
	if a.Clock != nil {
		return a.Clock().UTC()
	}
	return time.Now().UTC()
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
	if a.Changes != nil && a.Rollouts != nil {
		rs = append(rs, a.rolloutRoutes(a.Rollouts)...)
	}
	if a.Changes != nil && a.Proposals != nil {
		rs = append(rs, a.proposalRoutes(a.Proposals)...)
	}
	rs = append(rs, Route{Method: "GET", Path: "/openapi.json", Tag: "meta", Summary: "This OpenAPI document",
		Perm: auth.PermAuthenticated, Resp: map[string]any{},
		Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
			WriteJSON(w, http.StatusOK, OpenAPI(a.Routes(), a.Version))
			return nil
		}})
	return rs
}
