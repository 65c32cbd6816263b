package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// rolloutEnv is the change environment with the rollout engine wired in
// on the same clock, and the handler rebuilt so the rollout routes exist.
type rolloutEnv struct {
	*changeEnv
	ro *deploy.Rollouts
}

func newRolloutEnv(t *testing.T, db *store.DB) *rolloutEnv {
	t.Helper()
	e := &rolloutEnv{changeEnv: newChangeEnv(t, db)}
	fl := fleet.NewService(db.Fleet(), fleet.Options{Now: e.clock.Now, Windows: fleet.NewAssetWindows(e.a.Inventory, 0, nil)})
	e.ro = deploy.NewRollouts(db.Rollouts(), e.a.Changes, fl, e.a.Policies, deploy.RolloutOptions{Now: e.clock.Now})
	e.a.Rollouts = e.ro
	e.a.Clock = e.clock.Now
	e.rebuild()
	return e
}

// rebuild serves the API's routes as they are now.
func (e *rolloutEnv) rebuild() {
	onErr := func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, e.a.Log, err) }
	e.h = authn.Middleware(e.a.Accounts, onErr)(api.Handler(e.a.Routes(), e.a.Log))
}

// started carries a fresh change on the LIS through approval and a
// passing test run and starts it through the API.
func (e *rolloutEnv) started(user string) (change.Change, deploy.Rollout) {
	e.t.Helper()
	var c change.Change
	e.do(user, "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &c)
	r, _ := e.act(user, c, "submit", nil, http.StatusOK)
	r, _ = e.act("bob", r.Change, "approve", nil, http.StatusOK)
	r, _ = e.act("root", r.Change, "approve", nil, http.StatusOK)
	r, _ = e.act("olga", r.Change, "schedule", nil, http.StatusOK)
	e.passRun("olga", r.Change)
	r, _ = e.act("olga", r.Change, "start", map[string]any{"why": "window tonight"}, http.StatusOK)
	if r.Rollout == nil {
		e.t.Fatalf("start replied without the rollout")
	}
	return r.Change, *r.Rollout
}

// rollout reads a change's rollout through the API.
func (e *rolloutEnv) rollout(changeID string) deploy.Rollout {
	e.t.Helper()
	var ro deploy.Rollout
	e.do("aud", "GET", "/changes/"+changeID+"/rollout", nil, http.StatusOK, &ro)
	return ro
}

// rolloutAct posts an operator action on a rollout.
func (e *rolloutEnv) rolloutAct(user, id, action string, body any, want int) (deploy.Rollout, api.ErrorBody) {
	e.t.Helper()
	var out deploy.Rollout
	eb := e.do(user, "POST", "/rollouts/"+id+"/"+action, body, want, &out)
	return out, eb
}

// manualItem is the rollout's one manual item (the LIS has no agent).
func manualItem(t *testing.T, ro deploy.Rollout) deploy.Item {
	t.Helper()
	for _, w := range ro.Waves {
		for _, it := range w.Items {
			if it.Kind == deploy.ItemManual {
				return it
			}
		}
	}
	t.Fatalf("rollout %s has no manual item: %+v", ro.ID, ro.Waves)
	return deploy.Item{}
}

func (e *rolloutEnv) tick() {
	e.t.Helper()
	if err := e.ro.Tick(context.Background()); err != nil {
		e.t.Fatalf("Tick: %v", err)
	}
}

// TestRolloutAPI: a rollout started through the API is visible with its
// waves and items; pause and resume work and are refused in the wrong
// state with the engine's words; bad bodies are refused; a manual task's
// outcome is recorded and completes the rollout and the change; the
// deployment log and the retry list are reachable; abort and roll back
// end a rollout, and nothing more is accepted after.
func TestRolloutAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRolloutEnv(t, db)
		c, started := e.started("olga")

		ro := e.rollout(c.ID)
		if ro.ID != started.ID || ro.ChangeID != c.ID || ro.State != deploy.RolloutRunning || len(ro.Waves) != 3 {
			t.Fatalf("GET rollout = %s %s with %d waves; want the running rollout of %s", ro.ID, ro.State, len(ro.Waves), c.ID)
		}
		w := ro.Waves[2]
		if w.Ring != "high-criticality" || w.State != deploy.WaveRunning || w.Verdict == "" || w.Reason == "" {
			t.Errorf("LIS wave = %s %s verdict %q reason %q; want the running high-criticality wave with the gate's verdict", w.Ring, w.State, w.Verdict, w.Reason)
		}
		it := manualItem(t, ro)
		if it.AssetID != e.lis.ID || it.State != deploy.ItemOpen || it.PlannedStart == nil || it.Task == "" {
			t.Errorf("LIS item = %+v; want an open manual task with a planned start", it)
		}
		var byID deploy.Rollout
		e.do("vic", "GET", "/rollouts/"+ro.ID, nil, http.StatusOK, &byID)
		if byID.ID != ro.ID || len(byID.Waves) != 3 {
			t.Errorf("GET /rollouts/{id} = %s with %d waves", byID.ID, len(byID.Waves))
		}
		for q, want := range map[string]int{"": 1, "?state=running": 1, "?state=active": 1, "?state=completed": 0, "?change=" + c.ID: 1, "?change=nope": 0} {
			var list []deploy.Rollout
			e.do("vic", "GET", "/rollouts"+q, nil, http.StatusOK, &list)
			if len(list) != want {
				t.Errorf("GET /rollouts%s = %d rollouts; want %d", q, len(list), want)
			}
		}
		e.do("vic", "GET", "/rollouts?state=bogus", nil, http.StatusBadRequest, nil)
		e.do("vic", "GET", "/rollouts?limit=5000", nil, http.StatusBadRequest, nil)
		e.do("vic", "GET", "/rollouts/no-such-rollout", nil, http.StatusNotFound, nil)
		e.do("vic", "GET", "/changes/no-such-change/rollout", nil, http.StatusNotFound, nil)

		// Hostile or incomplete bodies are refused and change nothing.
		post := func(user, path, ctype, body string, want int) api.ErrorBody {
			t.Helper()
			return e.check(e.call(user, "POST", path, ctype, body), "POST "+path, want, nil)
		}
		pause := "/rollouts/" + ro.ID + "/pause"
		if eb := post("olga", pause, "application/json", `{}`, http.StatusBadRequest); eb.Fields["why"] == "" {
			t.Errorf("pause without why: fields = %v; want why", eb.Fields)
		}
		post("olga", pause, "application/json", `{"why":"   "}`, http.StatusBadRequest)
		post("olga", pause, "application/json", ``, http.StatusBadRequest)
		post("olga", pause, "application/json", `{"why":"x","force":true}`, http.StatusBadRequest)
		post("olga", pause, "text/plain", `{"why":"x"}`, http.StatusUnsupportedMediaType)
		post("ann", pause, "application/json", `{"why":"x"}`, http.StatusForbidden)
		post("vic", pause, "application/json", `{"why":"x"}`, http.StatusForbidden)
		if got := e.rollout(c.ID); got.State != deploy.RolloutRunning {
			t.Fatalf("after refused requests: rollout %s; want running", got.State)
		}

		// Pause and resume, each refused where it makes no sense.
		got, _ := e.rolloutAct("olga", ro.ID, "pause", api.RolloutActionRequest{Why: "QC drift on CHEM-01"}, http.StatusOK)
		if got.State != deploy.RolloutPaused || got.Reason != "QC drift on CHEM-01" {
			t.Errorf("after pause: %s %q", got.State, got.Reason)
		}
		_, eb := e.rolloutAct("olga", ro.ID, "pause", api.RolloutActionRequest{Why: "again"}, http.StatusConflict)
		wantMsg(t, "pause a paused rollout", eb, "cannot pause a rollout that is paused")
		got, _ = e.rolloutAct("root", ro.ID, "resume", api.RolloutActionRequest{Why: "QC back in range"}, http.StatusOK)
		if got.State != deploy.RolloutRunning {
			t.Errorf("after resume: %s", got.State)
		}
		_, eb = e.rolloutAct("olga", ro.ID, "resume", api.RolloutActionRequest{Why: "again"}, http.StatusConflict)
		wantMsg(t, "resume a running rollout", eb, "cannot resume a rollout that is running")

		// The manual task: strict body, then its outcome.
		manual := "/rollouts/" + ro.ID + "/items/" + it.ID + "/manual"
		eb = post("olga", manual, "application/json", `{"outcome":"maybe","note":""}`, http.StatusBadRequest)
		if eb.Fields["outcome"] == "" || eb.Fields["note"] == "" {
			t.Errorf("bad manual outcome: fields = %v; want outcome and note", eb.Fields)
		}
		post("olga", manual, "application/json", `{"outcome":"done","note":"x","by":"someone else"}`, http.StatusBadRequest)
		post("aud", manual, "application/json", `{"outcome":"done","note":"x"}`, http.StatusForbidden)
		post("olga", "/rollouts/"+ro.ID+"/items/no-such-item/manual", "application/json", `{"outcome":"done","note":"x"}`, http.StatusNotFound)
		var done deploy.Rollout
		e.do("olga", "POST", manual, api.ManualOutcomeRequest{Outcome: deploy.ManualDone, Note: "installed from the vendor's USB stick; LIS restarted, QC passed"}, http.StatusOK, &done)
		it = manualItem(t, done)
		if it.State != deploy.ItemDone || it.RecordedBy != "olga" || it.Note == "" {
			t.Errorf("manual item after done = %s by %q note %q", it.State, it.RecordedBy, it.Note)
		}
		if done.State != deploy.RolloutCompleted {
			t.Errorf("rollout after its only task is done = %s (%s); want completed", done.State, done.Reason)
		}
		eb = post("olga", manual, "application/json", `{"outcome":"failed","note":"changed my mind"}`, http.StatusConflict)
		wantMsg(t, "second outcome", eb, "only an open manual task takes an outcome")
		var cur change.Change
		e.do("aud", "GET", "/changes/"+c.ID, nil, http.StatusOK, &cur)
		if cur.State != change.Completed {
			t.Errorf("change after its rollout completed = %s; want completed", cur.State)
		}
		for _, action := range []string{"pause", "resume", "abort", "rollback"} {
			_, eb := e.rolloutAct("olga", ro.ID, action, api.RolloutActionRequest{Why: "late"}, http.StatusConflict)
			wantMsg(t, action+" a completed rollout", eb, "a rollout that is completed")
		}

		// The deployment log, whole and per asset, and the retry list.
		var log []deploy.LogEntry
		e.do("aud", "GET", "/changes/"+c.ID+"/deployment-log", nil, http.StatusOK, &log)
		var events []string
		for _, l := range log {
			events = append(events, l.Event)
		}
		if len(log) == 0 || log[0].Event != deploy.EventPlanned || log[len(log)-1].Event != deploy.EventManualDone ||
			log[len(log)-1].Actor != "olga" || len(log[len(log)-1].Packages) != 1 || log[0].AssetID != e.lis.ID {
			t.Errorf("deployment log = %v; want planned … manual_task_done by olga with the patch", events)
		}
		e.do("aud", "GET", "/changes/"+c.ID+"/deployment-log?asset="+e.lis.ID, nil, http.StatusOK, &log)
		if len(log) != len(events) {
			t.Errorf("LIS deployment log = %d entries; want %d", len(log), len(events))
		}
		e.do("aud", "GET", "/changes/"+c.ID+"/deployment-log?asset="+e.pump.ID, nil, http.StatusOK, &log)
		if len(log) != 0 {
			t.Errorf("pump deployment log = %d entries; want none", len(log))
		}
		e.do("aud", "GET", "/changes/no-such-change/deployment-log", nil, http.StatusNotFound, nil)
		var nc []deploy.Convergence
		e.do("vic", "GET", "/changes/"+c.ID+"/not-converged", nil, http.StatusOK, &nc)
		if len(nc) != 1 || nc[0].Item.AssetID != e.lis.ID || !strings.Contains(nc[0].Reason, "no inventory newer") {
			t.Errorf("not converged = %+v; want the LIS, waiting for a newer inventory", nc)
		}
		e.do("vic", "GET", "/changes/no-such-change/not-converged", nil, http.StatusNotFound, nil)

		// Abort: the change is cancelled with it; a second abort is refused.
		c2, ro2 := e.started("olga")
		e.rolloutAct("olga", ro2.ID, "pause", api.RolloutActionRequest{Why: "vendor call"}, http.StatusOK)
		got, _ = e.rolloutAct("olga", ro2.ID, "abort", api.RolloutActionRequest{Why: "vendor withdrew the update"}, http.StatusOK)
		if got.State != deploy.RolloutAborted || manualItem(t, got).State != deploy.ItemSkipped {
			t.Errorf("after abort: %s, item %s; want aborted, skipped", got.State, manualItem(t, got).State)
		}
		e.do("aud", "GET", "/changes/"+c2.ID, nil, http.StatusOK, &cur)
		if cur.State != change.Cancelled {
			t.Errorf("change after abort = %s; want cancelled", cur.State)
		}
		_, eb = e.rolloutAct("olga", ro2.ID, "abort", api.RolloutActionRequest{Why: "again"}, http.StatusConflict)
		wantMsg(t, "abort an aborted rollout", eb, "cannot abort a rollout that is aborted")
		e.do("aud", "GET", "/changes/"+c2.ID+"/not-converged", nil, http.StatusOK, &nc)
		if len(nc) != 1 || !strings.Contains(nc[0].Reason, "skipped") {
			t.Errorf("not converged after abort = %+v; want the LIS, skipped", nc)
		}

		// Roll back: the LIS task is still open, so nobody knows yet
		// whether it was applied; the rollout waits for its outcome, then
		// (not applied) ends and the change is rolled back.
		c3, ro3 := e.started("olga")
		got, _ = e.rolloutAct("olga", ro3.ID, "rollback", api.RolloutActionRequest{Why: "trigger: connectivity loss"}, http.StatusOK)
		if got.State != deploy.RolloutRollingBack {
			t.Errorf("after rollback: %s; want rolling_back", got.State)
		}
		e.do("aud", "GET", "/changes/"+c3.ID, nil, http.StatusOK, &cur)
		if cur.State != change.Halted {
			t.Errorf("change while rolling back = %s; want halted", cur.State)
		}
		_, eb = e.rolloutAct("olga", ro3.ID, "pause", api.RolloutActionRequest{Why: "x"}, http.StatusConflict)
		wantMsg(t, "pause a rolling-back rollout", eb, "cannot pause a rollout that is rolling back")
		e.tick()
		if got := e.rollout(c3.ID); got.State != deploy.RolloutRollingBack {
			t.Errorf("rollback with the task still open: rollout %s; want rolling_back until its outcome", got.State)
		}
		e.do("olga", "POST", "/rollouts/"+ro3.ID+"/items/"+manualItem(t, ro3).ID+"/manual",
			api.ManualOutcomeRequest{Outcome: deploy.ManualFailed, Note: "not applied before the rollback"}, http.StatusOK, nil)
		e.tick()
		if got := e.rollout(c3.ID); got.State != deploy.RolloutRolledBack {
			t.Errorf("after the task's outcome and the engine's step: rollout %s; want rolled_back", got.State)
		}
		e.do("aud", "GET", "/changes/"+c3.ID, nil, http.StatusOK, &cur)
		if cur.State != change.RolledBack {
			t.Errorf("change after the rollback = %s; want rolled_back", cur.State)
		}
		verifyRolloutAudit(t, e, "rollout.start", "rollout.pause", "rollout.resume", "rollout.manual_task", "rollout.complete",
			"rollout.abort", "rollout.rollback", "rollout.rolled_back")
	})
}

// verifyRolloutAudit checks the trail holds each rollout action.
func verifyRolloutAudit(t *testing.T, e *rolloutEnv, actions ...string) {
	t.Helper()
	page, err := audit.NewService(e.db.Audit(), nil, nil).List(context.Background(), audit.Query{ObjectType: "rollout", Limit: audit.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, en := range page.Entries {
		have[en.Action] = true
	}
	for _, a := range actions {
		if !have[a] {
			t.Errorf("audit trail lacks %s (has %v)", a, have)
		}
	}
}

// TestChangeMovesFollowRollout: while a change has an active rollout, the
// change-level halt, resume, roll back, cancel and complete act through
// it, so the two never disagree; illegal moves are refused by the
// change's state machine with its words, a missing why before either
// half moves.
func TestChangeMovesFollowRollout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRolloutEnv(t, db)
		agree := func(what string, r api.ChangeResult, cs change.State, rs deploy.RolloutState) {
			t.Helper()
			if r.Rollout == nil {
				t.Fatalf("%s: reply has no rollout", what)
			}
			ro := e.rollout(r.ID)
			if r.State != cs || r.Rollout.State != rs || ro.State != rs {
				t.Errorf("%s: change %s, rollout %s (stored %s); want %s and %s", what, r.State, r.Rollout.State, ro.State, cs, rs)
			}
		}

		// Halt: the engine halts the rollout and says why; resume brings
		// both back.
		c, ro := e.started("olga")
		_, eb := e.act("olga", c, "halt", map[string]any{"why": "x", "revision": c.Revision + 3}, http.StatusConflict)
		wantMsg(t, "stale halt", eb, "changed since you loaded it")
		r, _ := e.act("olga", c, "halt", map[string]any{"why": "QC out of range on CHEM-01"}, http.StatusOK)
		agree("halt", r, change.Halted, deploy.RolloutHalted)
		if !strings.Contains(r.Rollout.Reason, "the change is halted") {
			t.Errorf("halted rollout's reason = %q", r.Rollout.Reason)
		}
		_, eb = e.act("olga", r.Change, "halt", map[string]any{"why": "again"}, http.StatusConflict)
		wantMsg(t, "halt a halted change", eb, "cannot halt a change that is halted")
		_, eb = e.act("olga", r.Change, "resume", nil, http.StatusBadRequest)
		if eb.Fields["why"] == "" {
			t.Errorf("resume without why: fields = %v", eb.Fields)
		}
		agree("refused resume", api.ChangeResult{Change: r.Change, Rollout: r.Rollout}, change.Halted, deploy.RolloutHalted)
		r, _ = e.act("olga", r.Change, "resume", map[string]any{"why": "QC back in range"}, http.StatusOK)
		agree("resume a halted rollout", r, change.InProgress, deploy.RolloutRunning)

		// A paused rollout stays paused under a halted change; resuming
		// the change resumes both.
		e.rolloutAct("olga", ro.ID, "pause", api.RolloutActionRequest{Why: "vendor call at 9"}, http.StatusOK)
		r, _ = e.act("olga", r.Change, "halt", map[string]any{"why": "vendor asks to stop"}, http.StatusOK)
		agree("halt with a paused rollout", r, change.Halted, deploy.RolloutPaused)
		r, _ = e.act("root", r.Change, "resume", map[string]any{"why": "vendor agrees"}, http.StatusOK)
		agree("resume with a paused rollout", r, change.InProgress, deploy.RolloutRunning)

		// Complete is the engine's while waves still run.
		_, eb = e.act("olga", r.Change, "complete", nil, http.StatusConflict)
		wantMsg(t, "complete during the rollout", eb, "is being deployed by rollout", "running")
		// Cancel needs a halted change, then aborts the rollout.
		_, eb = e.act("ann", r.Change, "cancel", map[string]any{"why": "superseded"}, http.StatusConflict)
		wantMsg(t, "cancel in progress", eb, "cannot cancel a change that is in_progress")
		r, _ = e.act("olga", r.Change, "halt", map[string]any{"why": "superseded by the vendor's cumulative update"}, http.StatusOK)
		// Cancelling a deployment is aborting its rollout: an operator's
		// job, not an approver's.
		_, eb = e.act("ann", r.Change, "cancel", map[string]any{"why": "superseded"}, http.StatusForbidden)
		wantMsg(t, "cancel by an approver", eb, "may not abort a rollout")
		r, _ = e.act("olga", r.Change, "cancel", map[string]any{"why": "superseded by the vendor's cumulative update"}, http.StatusOK)
		agree("cancel", r, change.Cancelled, deploy.RolloutAborted)
		// The rollout has ended: the change's own state machine answers.
		_, eb = e.act("olga", r.Change, "resume", map[string]any{"why": "x"}, http.StatusConflict)
		wantMsg(t, "resume a cancelled change", eb, "cancelled is final")

		// Roll back: the rollout rolls back and the change halts; once the
		// LIS task, still open, is recorded as not applied, the engine's
		// next step rolls both back.
		c2, ro2 := e.started("olga")
		_, eb = e.act("olga", c2, "rollback", nil, http.StatusBadRequest)
		if eb.Fields["why"] == "" {
			t.Errorf("rollback without why: fields = %v", eb.Fields)
		}
		r, _ = e.act("olga", c2, "rollback", map[string]any{"why": "trigger: abnormal QC"}, http.StatusOK)
		agree("rollback with an open task", r, change.Halted, deploy.RolloutRollingBack)
		e.do("olga", "POST", "/rollouts/"+ro2.ID+"/items/"+manualItem(t, ro2).ID+"/manual",
			api.ManualOutcomeRequest{Outcome: deploy.ManualFailed, Note: "not applied before the rollback"}, http.StatusOK, nil)
		e.tick()
		if got := e.rollout(c2.ID); got.State != deploy.RolloutRolledBack {
			t.Errorf("rollback after the task's outcome: rollout %s; want rolled_back", got.State)
		}
		var back change.Change
		e.do("aud", "GET", "/changes/"+c2.ID, nil, http.StatusOK, &back)
		if back.State != change.RolledBack {
			t.Errorf("change after the rollback = %s; want rolled_back", back.State)
		}

		// Complete once the rollout awaits a missing sign-off.
		body := e.draftJSON(change.Normal, e.lis.ID)
		body["sign_offs"] = []map[string]any{{"role": "laboratory-director"}}
		var d change.Change
		e.do("olga", "POST", "/changes", body, http.StatusCreated, &d)
		r, _ = e.act("olga", d, "submit", nil, http.StatusOK)
		r, _ = e.act("bob", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("root", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("olga", r.Change, "schedule", nil, http.StatusOK)
		e.passRun("olga", r.Change)
		r, _ = e.act("olga", r.Change, "start", map[string]any{"why": "tonight"}, http.StatusOK)
		it := manualItem(t, *r.Rollout)
		var ro4 deploy.Rollout
		e.do("olga", "POST", "/rollouts/"+r.Rollout.ID+"/items/"+it.ID+"/manual",
			api.ManualOutcomeRequest{Outcome: deploy.ManualDone, Note: "installed; QC passed"}, http.StatusOK, &ro4)
		if ro4.State != deploy.RolloutAwaitingCompletion || !strings.Contains(ro4.Reason, "laboratory-director") {
			t.Fatalf("rollout after its task = %s %q; want awaiting the sign-off", ro4.State, ro4.Reason)
		}
		var signed change.Change
		e.do("cat", "POST", "/changes/"+d.ID+"/sign-offs", api.SignOffRequest{Role: "laboratory-director", Note: "QC within limits"}, http.StatusOK, &signed)
		r, _ = e.act("olga", signed, "complete", map[string]any{"why": "signed off"}, http.StatusOK)
		agree("complete awaiting", r, change.Completed, deploy.RolloutCompleted)
	})
}
