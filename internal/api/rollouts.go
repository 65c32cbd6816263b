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

// A change and its rollout must never disagree, so when a change has a
// rollout the engine still advances, the change-level moves act through
// the rollout (the change's own state machine is asked first, so an
// illegal move is refused with the same words either way):
//
//   - halt halts the change, then the engine runs at once: a running
//     rollout whose change is halted cancels its queued jobs and halts
//     (the engine's own rule for a change halted outside it). A paused
//     rollout stays paused: it issues nothing, and resuming the change
//     resumes it.
//   - resume is the rollout's resume when it is halted (the change
//     resumes with it and the failed assets are retried); when it is
//     paused the change resumes and then the rollout; when it is still
//     running or awaiting completion only the change resumes. A rollout
//     that is rolling back refuses.
//   - rollback is the rollout's roll back: rollback jobs go to every
//     asset it changed, the change halts, and the engine rolls the change
//     back when they all succeed. The reply's change is halted until then.
//   - cancel (allowed for a halted change) is the rollout's abort, which
//     cancels the change.
//   - complete is allowed only while the rollout awaits completion (every
//     wave passed, a sign-off or review was missing); while waves are
//     still to run the engine completes the change itself, so a hand
//     completion is refused rather than abandoning them.
//
// Without a rollout, or once it has ended (completed, aborted, rolled
// back), the moves are the change service's alone.

// activeRollout returns the change's rollout when the engine still
// advances it.
func (a *API) activeRollout(ctx context.Context, changeID string) (deploy.Rollout, bool, error) {
	if a.Rollouts == nil {
		return deploy.Rollout{}, false, nil
	}
	ro, err := a.Rollouts.ByChange(ctx, changeID)
	if errors.Is(err, errs.ErrNotFound) {
		return deploy.Rollout{}, false, nil
	}
	if err != nil {
		return deploy.Rollout{}, false, err
	}
	return ro, ro.State.Active(), nil
}

// throughRollout carries out a change-level move on a change with an
// active rollout; handled is false when there is none and the change
// service alone should move it.
func (a *API) throughRollout(r *http.Request, u change.User, id string, act change.Action, in ActionRequest) (out ChangeResult, handled bool, err error) {
	ctx := r.Context()
	ro, active, err := a.activeRollout(ctx, id)
	if err != nil || !active {
		return ChangeResult{}, false, err
	}
	c, err := a.Changes.Get(ctx, id)
	if err != nil {
		return ChangeResult{}, true, err
	}
	if _, err := change.Next(c.State, act); err != nil {
		return ChangeResult{}, true, err
	}
	if in.Revision != 0 && in.Revision != c.Revision {
		return ChangeResult{}, true, errs.E(errs.Conflict, "change %s changed since you loaded it (revision %d, now %d); reload and try again", c.ID, in.Revision, c.Revision)
	}
	if act != change.ActComplete && strings.TrimSpace(in.Why) == "" {
		// The rollout's operations all need a reason; refuse before
		// either half moves.
		return ChangeResult{}, true, fieldError("why", "required: say why, for the change's history and the rollout's audit trail")
	}
	st := step(in)
	switch act {
	case change.ActHalt:
		if _, err = a.Changes.Halt(ctx, u, id, st); err == nil {
			a.settle(ctx)
		}
	case change.ActResume:
		switch ro.State {
		case deploy.RolloutHalted, deploy.RolloutRollingBack:
			_, err = a.Rollouts.Resume(ctx, u, ro.ID, in.Why)
		case deploy.RolloutPaused:
			if _, err = a.Changes.Resume(ctx, u, id, st); err == nil {
				_, err = a.Rollouts.Resume(ctx, u, ro.ID, in.Why)
			}
		default:
			if _, err = a.Changes.Resume(ctx, u, id, st); err == nil {
				a.settle(ctx)
			}
		}
	case change.ActRollBack:
		if _, err = a.Rollouts.RollBack(ctx, u, ro.ID, in.Why); err == nil {
			a.settle(ctx)
		}
	case change.ActCancel:
		_, err = a.Rollouts.Abort(ctx, u, ro.ID, in.Why)
	case change.ActComplete:
		if ro.State != deploy.RolloutAwaitingCompletion {
			return ChangeResult{}, true, errs.E(errs.Conflict,
				"change %s is being deployed by rollout %s, which is %s: the rollout completes the change when every wave has passed its gate; pause, abort or roll it back instead",
				id, ro.ID, strings.ReplaceAll(string(ro.State), "_", " "))
		}
		if _, err = a.Changes.Complete(ctx, u, id, st); err == nil {
			a.settle(ctx)
		}
	default:
		return ChangeResult{}, false, nil
	}
	if err != nil {
		return ChangeResult{}, true, err
	}
	out, err = a.withRollout(ctx, id)
	return out, true, err
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

// settle lets the engine catch up with a change-level move before the
// reply. The move itself succeeded, so a failing step is only logged:
// the engine's loop tries again on its next tick.
func (a *API) settle(ctx context.Context) {
	if err := a.Rollouts.Tick(ctx); err != nil {
		a.Log.WarnContext(ctx, "advancing rollouts after a change-level move failed; the engine retries on its next tick", "err", err)
	}
}
