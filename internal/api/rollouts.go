package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
)

// RolloutActionRequest is the body of an operator's action on a rollout:
// why is required and goes to the audit trail and the rollout's reason.
type RolloutActionRequest struct {
	Why string `json:"why"`
}

// ManualOutcomeRequest records the outcome of an open manual task (a
// vendor-mediated step, or an asset without an agent): done or failed,
// with a note saying what was done, by whom and what was seen.
type ManualOutcomeRequest struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
}

// rolloutStates are the values GET /rollouts?state= takes: every state,
// and "active" for the ones the engine still advances.
var rolloutStates = []deploy.RolloutState{"active", deploy.RolloutRunning, deploy.RolloutPaused, deploy.RolloutHalted,
	deploy.RolloutRollingBack, deploy.RolloutRolledBack, deploy.RolloutAwaitingCompletion, deploy.RolloutCompleted, deploy.RolloutAborted}

// rolloutAction is one operator action offered as its own route.
type rolloutAction struct {
	name, summary string
	do            func(s RolloutService, ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
}

var rolloutActions = []rolloutAction{
	{"pause", "Pause a running rollout: no new wave and no new job starts; jobs already queued still run (why required)",
		RolloutService.Pause},
	{"resume", "Resume a paused or halted rollout; a halted wave's failed and cancelled assets get a new job and the change resumes (why required)",
		RolloutService.Resume},
	{"abort", "Abort a rollout for good: queued jobs are cancelled, assets not reached are skipped and the change is cancelled; what was installed stays (why required)",
		RolloutService.Abort},
	{"rollback", "Roll back every asset the rollout changed: rollback jobs go out, the change halts, and it is rolled back when they all succeed (why: which trigger fired)",
		RolloutService.RollBack},
}

// rolloutRoutes serve the rollout engine: reading rollouts, deployment
// logs and the convergence check needs change:read; steering a rollout
// and recording manual outcomes change:operate (the engine checks the
// operator role again).
func (a *API) rolloutRoutes(ro RolloutService) []Route {
	read, operate := auth.PermChangeRead, auth.PermChangeOperate
	rs := []Route{
		{Method: "GET", Path: "/changes/{id}/rollout", Tag: "rollouts",
			Summary: "A change's rollout: its waves in ring order with the gates' verdicts and reasons, and each asset's item (agent job or manual task, planned start, job, state, outcome)",
			Perm:    read, Resp: deploy.Rollout{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				id := r.PathValue("id")
				if _, err := a.Changes.Get(r.Context(), id); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(ro.ByChange(r.Context(), id))
			}},
		{Method: "GET", Path: "/rollouts", Tag: "rollouts", Summary: "List rollouts, newest first, without their waves",
			Perm: read, Query: []Param{
				{Name: "state", Enum: enumStrings(rolloutStates), Description: "one state, or active for every state the engine still advances"},
				{Name: "change", Description: "change ID"},
				{Name: "limit", Type: "integer", Description: "page size (max 1000, default 100)"}, {Name: "offset", Type: "integer"},
			},
			Resp: []deploy.Rollout{}, Handle: a.listRollouts},
		{Method: "GET", Path: "/rollouts/{id}", Tag: "rollouts", Summary: "Get a rollout with its waves and items",
			Perm: read, Resp: deploy.Rollout{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(ro.Get(r.Context(), r.PathValue("id")))
			}},
		{Method: "POST", Path: "/rollouts/{id}/items/{item}/manual", Tag: "rollouts",
			Summary: "Record the outcome of an open manual task: done or failed, with a note; the wave's gate counts it like a job's result",
			Perm:    operate, Body: ManualOutcomeRequest{}, Resp: deploy.Rollout{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in ManualOutcomeRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				var v errs.Validation
				if in.Outcome != deploy.ManualDone && in.Outcome != deploy.ManualFailed {
					v.Add("outcome", "required: %s or %s", deploy.ManualDone, deploy.ManualFailed)
				}
				if strings.TrimSpace(in.Note) == "" {
					v.Add("note", "required: what was done, by whom, what was seen")
				}
				if err := v.Err("invalid manual task outcome"); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(ro.RecordManual(r.Context(), changeUser(r, p), r.PathValue("id"), r.PathValue("item"), in.Outcome, in.Note))
			}},
		{Method: "GET", Path: "/changes/{id}/deployment-log", Tag: "rollouts",
			Summary: "A change's deployment log, oldest first: per asset the patches, timestamps, the operator or agent, the job's validation steps and any deviation",
			Perm:    read, Query: []Param{{Name: "asset", Description: "asset ID: that asset's log only"}},
			Resp: []deploy.LogEntry{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				id := r.PathValue("id")
				if _, err := a.Changes.Get(r.Context(), id); err != nil {
					return err
				}
				log, err := ro.DeploymentLog(r.Context(), id, strings.TrimSpace(r.URL.Query().Get("asset")))
				return reply{w, http.StatusOK}.send(nonNil(log), err)
			}},
		{Method: "GET", Path: "/changes/{id}/not-converged", Tag: "rollouts",
			Summary: "The change's assets that no newer inventory shows at the target versions yet — the retry list — each with why (failed, skipped, rolled back, not reported, an older version)",
			Perm:    read, Resp: []deploy.Convergence{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				id := r.PathValue("id")
				if _, err := a.Changes.Get(r.Context(), id); err != nil {
					return err
				}
				cs, err := ro.NotConverged(r.Context(), id)
				return reply{w, http.StatusOK}.send(nonNil(cs), err)
			}},
	}
	for _, act := range rolloutActions {
		rs = append(rs, Route{Method: "POST", Path: "/rollouts/{id}/" + act.name, Tag: "rollouts", Summary: act.summary,
			Perm: operate, Body: RolloutActionRequest{}, Resp: deploy.Rollout{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in RolloutActionRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				if strings.TrimSpace(in.Why) == "" {
					return fieldError("why", "required: say why, for the audit trail")
				}
				return reply{w, http.StatusOK}.send(act.do(ro, r.Context(), changeUser(r, p), r.PathValue("id"), in.Why))
			}})
	}
	return rs
}

func (a *API) listRollouts(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f := deploy.RolloutFilter{ChangeID: strings.TrimSpace(r.URL.Query().Get("change"))}
	st, err := queryEnum(r, "state", rolloutStates)
	if err != nil {
		return err
	}
	switch st {
	case "":
	case "active":
		f.States = deploy.ActiveRolloutStates
	default:
		f.States = []deploy.RolloutState{st}
	}
	if f.Limit, err = queryInt(r, "limit", 100); err != nil {
		return err
	}
	if f.Limit > 1000 {
		return errs.E(errs.Invalid, "query parameter limit must be at most 1000")
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	list, err := a.Rollouts.List(r.Context(), f)
	return reply{w, http.StatusOK}.send(nonNil(list), err)
}

// A change and its rollout must never disagree, so the change-level moves
// (halt, resume, rollback, cancel, complete) go through the engine's one
// mapping, deploy.Rollouts.ChangeMove, which acts through the change's
// rollout while the engine still advances one and through the change
// service alone otherwise. The UI and the CLI call the same method.

// moveChange carries out a change-level move through the rollout engine,
// or through the change service alone when the server runs without one.
func (a *API) moveChange(r *http.Request, u change.User, id string, act change.Action, in ActionRequest,
	alone func(*change.Service, context.Context, change.User, string, change.Step) (change.Change, error)) (ChangeResult, error) {
	if a.Rollouts == nil {
		return plain(alone(a.Changes, r.Context(), u, id, step(in)))
	}
	c, ro, err := a.Rollouts.ChangeMove(r.Context(), u, id, act, step(in))
	if err != nil {
		return ChangeResult{}, err
	}
	return ChangeResult{Change: c, Rollout: ro}, nil
}

// withRollout is the change as it stands now, with its rollout if any.
func (a *API) withRollout(ctx context.Context, id string) (ChangeResult, error) {
	c, err := a.Changes.Get(ctx, id)
	if err != nil {
		return ChangeResult{}, err
	}
	return a.attachRollout(ctx, c)
}

// attachRollout adds c's rollout, if it has one, to the reply.
func (a *API) attachRollout(ctx context.Context, c change.Change) (ChangeResult, error) {
	out := ChangeResult{Change: c}
	if a.Rollouts != nil {
		ro, err := a.Rollouts.ByChange(ctx, c.ID)
		switch {
		case err == nil:
			out.Rollout = &ro
		case !errors.Is(err, errs.ErrNotFound):
			return ChangeResult{}, err
		}
	}
	return out, nil
}
