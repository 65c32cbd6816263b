package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// RolloutService is the rollout engine as the UI uses it; *deploy.Rollouts
// implements it. The engine checks the operator's role, the rollout's
// state and the lease, so the page only offers what applies and shows
// what the engine says when it refuses.
type RolloutService interface {
	// ByChange returns the change's rollout; NotFound when it has none.
	ByChange(ctx context.Context, changeID string) (deploy.Rollout, error)
	DeploymentLog(ctx context.Context, changeID, assetID string) ([]deploy.LogEntry, error)
	NotConverged(ctx context.Context, changeID string) ([]deploy.Convergence, error)
	Pause(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	Resume(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	Abort(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	RollBack(ctx context.Context, u change.User, id, why string) (deploy.Rollout, error)
	RecordManual(ctx context.Context, u change.User, rolloutID, itemID, outcome, note string) (deploy.Rollout, error)
	// ChangeMove halts, resumes, rolls back, cancels or completes a
	// change, through its rollout while that is active.
	ChangeMove(ctx context.Context, u change.User, changeID string, act change.Action, st change.Step) (change.Change, *deploy.Rollout, error)
}

// JobReader reads one agent job with the results its agent reported:
// each step's command, exit code and (agent-bounded) output, which the
// deployment log keeps only as names and exit codes; *fleet.Service
// implements it.
type JobReader interface {
	Job(ctx context.Context, id string) (fleet.JobDetail, error)
}

var (
	_ RolloutService = (*deploy.Rollouts)(nil)
	_ JobReader      = (*fleet.Service)(nil)
)

// maxStepOutput bounds a step's output on the log page: agents bound it
// already, but a page of many jobs should stay readable.
const maxStepOutput = 8 << 10

// rolloutOps is each operator action on a rollout: its button, the
// rollout states it applies in and whether it is destructive. Every one
// needs a why; the engine refuses the others with a Conflict anyway.
var rolloutOps = []struct {
	op, button string
	states     []deploy.RolloutState
	danger     bool
}{
	{"pause", "Pause rollout", []deploy.RolloutState{deploy.RolloutRunning}, false},
	{"resume", "Resume rollout", []deploy.RolloutState{deploy.RolloutPaused, deploy.RolloutHalted}, false},
	{"roll_back", "Roll back rollout", []deploy.RolloutState{deploy.RolloutRunning, deploy.RolloutPaused, deploy.RolloutHalted, deploy.RolloutAwaitingCompletion}, true},
	{"abort", "Abort rollout", []deploy.RolloutState{deploy.RolloutRunning, deploy.RolloutPaused, deploy.RolloutHalted, deploy.RolloutAwaitingCompletion}, true},
}

// offeredUnderRollout reports whether the change page offers the change's
// own move act while the change's rollout is active in st. Every
// change-level move acts through the rollout (deploy.Rollouts.ChangeMove),
// but where the Deployment section has the same operation (resume, roll
// back, abort) the page offers only that one. Halting the change halts
// the rollout with it; completing is offered only once the rollout awaits
// completion.
func offeredUnderRollout(act change.Action, st deploy.RolloutState) bool {
	switch act {
	case change.ActHalt:
		return true
	case change.ActComplete:
		return st == deploy.RolloutAwaitingCompletion
	case change.ActResume:
		// A change halted while its rollout was paused: only the
		// change-level resume brings both back (the rollout's own resume
		// would run into the halted change and be halted again).
		return st == deploy.RolloutPaused
	}
	return false
}

// deploymentView is the change page's Deployment section.
type deploymentView struct {
	R        deploy.Rollout
	Created  when
	Finished when
	Waves    []waveRow
	// Ops are the operator's forms that apply now; empty for a role
	// without change:operate.
	Ops []rolloutOp
	// CanManual offers the outcome forms on open manual items.
	CanManual    bool
	NotConverged []convergenceRow
	// Active says the rollout steers the change (see offeredUnderRollout).
	Active bool
	// Failed* give back what the user typed into a refused form.
	Failed, FailedItem, FailedText string
}

type waveRow struct {
	deploy.Wave
	Decided, SoakUntil, Start, End               when
	Succeeded, Failed, Running, Pending, Skipped int
	Items                                        []itemRow
}

type itemRow struct {
	deploy.Item
	Planned  when
	Due      when
	Recorded when
	LogURL   string
	// Manual offers the done/failed form: on an open manual task, or on
	// its rollback task while that is open (Rollback).
	Manual   bool
	Rollback bool
	// RollbackOwner and RollbackTask describe a manual item's rollback
	// task once the rollout rolls it back (deploy.ManualRollbackTask).
	RollbackOwner, RollbackTask string
}

type rolloutOp struct {
	Op, Button string
	Danger     bool
	Why        string
}

type convergenceRow struct {
	deploy.Convergence
	LogURL string
}

func logURL(changeID, assetID string) string {
	return changeURL(changeID) + "/log?" + url.Values{"asset": {assetID}}.Encode()
}

// deployment reads a change's rollout for its page; nil when the change
// has none (or the engine is not wired).
func (ui *UI) deployment(ctx context.Context, p auth.Principal, changeID string, zones *zoneBook) (*deploymentView, error) {
	if ui.cfg.Rollouts == nil {
		return nil, nil
	}
	ro, err := ui.cfg.Rollouts.ByChange(ctx, changeID)
	if errs.KindOf(err) == errs.NotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return nil, err
	}
	zones.sites(sites)
	now := ui.cfg.Now()
	org := func(t *time.Time) when {
		if t == nil {
			return when{}
		}
		return whenAt(*t, zones.org, now)
	}
	v := &deploymentView{R: ro, Created: whenAt(ro.CreatedAt, zones.org, now), Finished: org(ro.FinishedAt), Active: ro.State.Active()}
	operate := p.Can(auth.PermChangeOperate)
	if operate {
		for _, op := range rolloutOps {
			if slices.Contains(op.states, ro.State) {
				v.Ops = append(v.Ops, rolloutOp{Op: op.op, Button: op.button, Danger: op.danger})
			}
		}
	}
	var c *change.Change // read when a manual item has a rollback task
	for _, w := range ro.Waves {
		row := waveRow{Wave: w, Decided: org(w.DecidedAt), SoakUntil: org(w.WaitUntil), Start: org(w.PlannedStart), End: org(w.PlannedEnd)}
		for _, it := range w.Items {
			switch it.State {
			case deploy.ItemSucceeded, deploy.ItemDone:
				row.Succeeded++
			case deploy.ItemFailed, deploy.ItemCancelled:
				row.Failed++
			case deploy.ItemQueued, deploy.ItemRunning, deploy.ItemOpen:
				row.Running++
			case deploy.ItemPending:
				row.Pending++
			case deploy.ItemSkipped:
				row.Skipped++
			}
			loc := zones.of(it.SiteID)
			rollbackOpen := it.Kind == deploy.ItemManual && it.RollbackState == deploy.RollbackQueued
			ir := itemRow{Item: it, LogURL: logURL(changeID, it.AssetID), Rollback: operate && rollbackOpen,
				Manual: operate && it.Kind == deploy.ItemManual && (it.State == deploy.ItemOpen || rollbackOpen)}
			if it.Kind == deploy.ItemManual && it.RollbackState != deploy.RollbackNone {
				if c == nil {
					got, err := ui.cfg.Changes.Get(ctx, changeID)
					if err != nil {
						return nil, err
					}
					c = &got
				}
				ir.RollbackOwner, ir.RollbackTask = deploy.ManualRollbackTask(*c, it)
			}
			if it.PlannedStart != nil {
				ir.Planned = whenAt(*it.PlannedStart, loc, now)
			}
			if it.Due != nil {
				ir.Due = whenAt(*it.Due, loc, now)
			}
			if it.FinishedAt != nil {
				ir.Recorded = whenAt(*it.FinishedAt, loc, now)
			}
			v.CanManual = v.CanManual || ir.Manual
			row.Items = append(row.Items, ir)
		}
		v.Waves = append(v.Waves, row)
	}
	nc, err := ui.cfg.Rollouts.NotConverged(ctx, changeID)
	if err != nil {
		return nil, err
	}
	for _, c := range nc {
		v.NotConverged = append(v.NotConverged, convergenceRow{Convergence: c, LogURL: logURL(changeID, c.Item.AssetID)})
	}
	return v, nil
}

// operateRollout carries out pause, resume, abort or roll back from the
// change page's Deployment section.
func (ui *UI) operateRollout(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	op := r.PostForm.Get("op")
	why := strings.TrimSpace(r.PostForm.Get("why"))
	ro, err := ui.cfg.Rollouts.ByChange(ctx, id)
	if err != nil {
		return err
	}
	// A form from another rollout of the page (there is one per change,
	// but a stale tab may outlive a restart) must not steer this one.
	if rid := r.PostForm.Get("rollout"); rid != ro.ID {
		err = errs.E(errs.Conflict, "the rollout on this page is no longer the change's rollout; reload the page")
	} else {
		u := changeUser(r, p)
		switch op {
		case "pause":
			_, err = ui.cfg.Rollouts.Pause(ctx, u, ro.ID, why)
		case "resume":
			_, err = ui.cfg.Rollouts.Resume(ctx, u, ro.ID, why)
		case "abort":
			_, err = ui.cfg.Rollouts.Abort(ctx, u, ro.ID, why)
		case "roll_back":
			_, err = ui.cfg.Rollouts.RollBack(ctx, u, ro.ID, why)
		default:
			err = errs.E(errs.Invalid, "%q is not an operation on a rollout", op)
		}
	}
	if err == nil {
		http.Redirect(w, r, changeURL(id)+"?done=rollout_"+url.QueryEscape(op)+"#deployment", http.StatusSeeOther)
		return nil
	}
	return ui.failRollout(w, r, p, id, "rollout-"+op, "", why, err)
}

// recordManual records a manual task's outcome (done or failed) with the
// operator's note.
func (ui *UI) recordManual(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	item, note := r.PostForm.Get("item"), r.PostForm.Get("note")
	ro, err := ui.cfg.Rollouts.ByChange(ctx, id)
	if err != nil {
		return err
	}
	if rid := r.PostForm.Get("rollout"); rid != ro.ID {
		err = errs.E(errs.Conflict, "the rollout on this page is no longer the change's rollout; reload the page")
	} else {
		_, err = ui.cfg.Rollouts.RecordManual(ctx, changeUser(r, p), ro.ID, item, r.PostForm.Get("outcome"), note)
	}
	if err == nil {
		http.Redirect(w, r, changeURL(id)+"?done=manual#deployment", http.StatusSeeOther)
		return nil
	}
	return ui.failRollout(w, r, p, id, "manual", item, note, err)
}

// failRollout shows the change page with why a rollout form was refused
// and what was typed into it.
func (ui *UI) failRollout(w http.ResponseWriter, r *http.Request, p auth.Principal, id, failed, item, typed string, err error) error {
	kind := errs.KindOf(err)
	if kind != errs.Invalid && kind != errs.Forbidden && kind != errs.Conflict && kind != errs.NotFound {
		return err
	}
	v, verr := ui.changePage(r, p, id)
	if verr != nil {
		return verr
	}
	v.Message = errs.Public(err)
	if kind == errs.Conflict {
		v.Message += " The page now shows the rollout as it is."
	}
	if d := v.Deploy; d != nil {
		d.Failed, d.FailedItem, d.FailedText = failed, item, typed
		for i := range d.Ops {
			if "rollout-"+d.Ops[i].Op == failed {
				d.Ops[i].Why = typed
			}
		}
	}
	ui.render(w, r, errs.HTTPStatus(err), "change", v.C.Title, v)
	return nil
}

// ---- the per-asset deployment log ----

type deployLogView struct {
	C       change.Change
	AssetID string
	Asset   string
	// AssetURL links the inventory page when the asset still exists.
	AssetURL string
	Entries  []logRow
	Jobs     []jobView
	// JobsShown says the step output is read from the fleet.
	JobsShown bool
}

type logRow struct {
	deploy.LogEntry
	At when
}

// jobView is one job's steps as its agent reported them, the last
// attempt's.
type jobView struct {
	ID, State, Reason string
	Attempt           int
	Received          when
	Steps             []stepView
	Installed         []string
}

type stepView struct {
	agentapi.Step
	Command   string
	Truncated bool
}

func (ui *UI) deploymentLog(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	id := r.PathValue("id")
	assetID := strings.TrimSpace(r.URL.Query().Get("asset"))
	if assetID == "" {
		return errs.E(errs.Invalid, "name the asset whose deployment log to show (?asset=…)")
	}
	c, err := ui.cfg.Changes.Get(ctx, id)
	if err != nil {
		return err
	}
	entries, err := ui.cfg.Rollouts.DeploymentLog(ctx, c.ID, assetID)
	if err != nil {
		return err
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	loc := zones.org
	v := deployLogView{C: c, AssetID: assetID, Asset: assetID, JobsShown: ui.cfg.Jobs != nil}
	if len(entries) == 0 {
		return errs.E(errs.NotFound, "change %s has deployed nothing to asset %s", c.ID, assetID)
	}
	// The log outlives the asset: a deleted one still shows, by ID.
	a, err := ui.cfg.Inventory.Asset(ctx, assetID)
	switch {
	case err == nil:
		v.Asset, v.AssetURL = a.Name, "/assets/"+url.PathEscape(a.ID)
		sites, err := ui.cfg.Inventory.Sites(ctx)
		if err != nil {
			return err
		}
		zones.sites(sites)
		loc = zones.of(a.SiteID)
	case errs.KindOf(err) != errs.NotFound:
		return err
	}
	now := ui.cfg.Now()
	var jobIDs []string
	for _, e := range entries {
		v.Entries = append(v.Entries, logRow{LogEntry: e, At: whenAt(e.At, loc, now)})
		if e.JobID != "" && !slices.Contains(jobIDs, e.JobID) {
			jobIDs = append(jobIDs, e.JobID)
		}
	}
	if ui.cfg.Jobs != nil {
		for _, jid := range jobIDs {
			d, err := ui.cfg.Jobs.Job(ctx, jid)
			if errs.KindOf(err) == errs.NotFound {
				continue
			} else if err != nil {
				return err
			}
			jv := jobView{ID: d.ID, State: string(d.State), Reason: d.Reason}
			if n := len(d.Results); n > 0 {
				res := d.Results[n-1]
				jv.Attempt, jv.Received = res.Attempt, whenAt(res.ReceivedAt, loc, now)
				for _, st := range res.Steps {
					sv := stepView{Step: st, Command: strings.Join(st.Command, " ")}
					if len(sv.Output) > maxStepOutput {
						sv.Output, sv.Truncated = sv.Output[:maxStepOutput], true
					}
					jv.Steps = append(jv.Steps, sv)
				}
				for name, ver := range res.Installed {
					jv.Installed = append(jv.Installed, name+" "+ver)
				}
				slices.Sort(jv.Installed)
			}
			v.Jobs = append(v.Jobs, jv)
		}
	}
	ui.render(w, r, http.StatusOK, "change_log", "Deployment log: "+v.Asset, v)
	return nil
}
