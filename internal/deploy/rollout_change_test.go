package deploy

import (
	"errors"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// agrees reports whether a change in cs and its rollout in rs tell the
// same story: a running rollout deploys a change in progress, a halted or
// rolling-back one a halted change, an ended one a change that ended the
// same way. A paused rollout, or one awaiting completion, may sit under a
// change in progress or halted: neither issues jobs.
func agrees(cs change.State, rs RolloutState) bool {
	ok := map[RolloutState][]change.State{
		RolloutRunning:            {change.InProgress},
		RolloutPaused:             {change.InProgress, change.Halted},
		RolloutHalted:             {change.Halted},
		RolloutRollingBack:        {change.Halted},
		RolloutAwaitingCompletion: {change.InProgress, change.Halted},
		RolloutCompleted:          {change.Completed},
		RolloutAborted:            {change.Cancelled},
		RolloutRolledBack:         {change.RolledBack},
	}
	for _, s := range ok[rs] {
		if s == cs {
			return true
		}
	}
	return false
}

// setRolloutState forces the stored rollout into st, for the states a
// unit test cannot cheaply reach through the gates.
func setRolloutState(w *world, id string, st RolloutState) {
	w.store.mu.Lock()
	defer w.store.mu.Unlock()
	ro := w.store.rollouts[id]
	ro.State = st
	w.store.rollouts[id] = ro
}

// TestChangeMove runs every change-level move against a change whose
// rollout is in each active state (and ended, and absent): each either
// moves both records to states that agree, or is refused with nothing
// moved.
func TestChangeMove(t *testing.T) {
	const why = "QC out of range on CHEM-01"
	setups := map[string]func(t *testing.T, w *world, ro Rollout){
		"running": func(*testing.T, *world, Rollout) {},
		"paused": func(t *testing.T, w *world, ro Rollout) {
			if _, err := w.eng.Pause(w.ctx, operator, ro.ID, "vendor call"); err != nil {
				t.Fatal(err)
			}
		},
		"paused, change halted": func(t *testing.T, w *world, ro Rollout) {
			if _, err := w.eng.Pause(w.ctx, operator, ro.ID, "vendor call"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.changes.Halt(w.ctx, operator, "c1", change.Step{Why: "vendor asks to stop"}); err != nil {
				t.Fatal(err)
			}
		},
		"halted": func(t *testing.T, w *world, ro Rollout) {
			if _, err := w.eng.Halt(w.ctx, operator, ro.ID, "lab reports slow LIS"); err != nil {
				t.Fatal(err)
			}
		},
		"rolling back": func(t *testing.T, w *world, ro Rollout) {
			w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
			if ro, err := w.eng.RollBack(w.ctx, operator, ro.ID, "abnormal QC"); err != nil || ro.State != RolloutRollingBack {
				t.Fatalf("RollBack = %s, %v; want rolling back", ro.State, err)
			}
		},
		"awaiting completion": func(_ *testing.T, w *world, ro Rollout) {
			setRolloutState(w, ro.ID, RolloutAwaitingCompletion)
		},
		"aborted": func(t *testing.T, w *world, ro Rollout) {
			if _, err := w.eng.Halt(w.ctx, operator, ro.ID, "stop"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.eng.Abort(w.ctx, operator, ro.ID, "superseded"); err != nil {
				t.Fatal(err)
			}
		},
	}
	type want struct {
		cs   change.State
		rs   RolloutState
		fail string // the refusal's words; "" when the move succeeds
	}
	const deployed = "is being deployed by rollout"
	cases := map[string]map[change.Action]want{
		"running": {
			change.ActHalt:     {change.Halted, RolloutHalted, ""},
			change.ActResume:   {change.InProgress, RolloutRunning, "cannot resume a change that is in_progress"},
			change.ActRollBack: {change.RolledBack, RolloutRolledBack, ""},
			change.ActCancel:   {change.InProgress, RolloutRunning, "cannot cancel a change that is in_progress"},
			change.ActComplete: {change.InProgress, RolloutRunning, deployed},
		},
		"paused": {
			change.ActHalt:     {change.Halted, RolloutPaused, ""},
			change.ActResume:   {change.InProgress, RolloutPaused, "cannot resume a change that is in_progress"},
			change.ActRollBack: {change.RolledBack, RolloutRolledBack, ""},
			change.ActCancel:   {change.InProgress, RolloutPaused, "cannot cancel a change that is in_progress"},
			change.ActComplete: {change.InProgress, RolloutPaused, deployed},
		},
		"paused, change halted": {
			change.ActHalt:     {change.Halted, RolloutPaused, "cannot halt a change that is halted"},
			change.ActResume:   {change.InProgress, RolloutRunning, ""},
			change.ActRollBack: {change.RolledBack, RolloutRolledBack, ""},
			change.ActCancel:   {change.Cancelled, RolloutAborted, ""},
			change.ActComplete: {change.Halted, RolloutPaused, "cannot complete a change that is halted"},
		},
		"halted": {
			change.ActHalt:     {change.Halted, RolloutHalted, "cannot halt a change that is halted"},
			change.ActResume:   {change.InProgress, RolloutRunning, ""},
			change.ActRollBack: {change.RolledBack, RolloutRolledBack, ""},
			change.ActCancel:   {change.Cancelled, RolloutAborted, ""},
			change.ActComplete: {change.Halted, RolloutHalted, "cannot complete a change that is halted"},
		},
		"rolling back": {
			change.ActHalt:     {change.Halted, RolloutRollingBack, "cannot halt a change that is halted"},
			change.ActResume:   {change.Halted, RolloutRollingBack, "cannot resume a rollout that is rolling back"},
			change.ActRollBack: {change.Halted, RolloutRollingBack, "cannot roll back a rollout that is rolling back"},
			change.ActCancel:   {change.Halted, RolloutRollingBack, "cannot abort a rollout that is rolling back"},
			change.ActComplete: {change.Halted, RolloutRollingBack, "cannot complete a change that is halted"},
		},
		"awaiting completion": {
			change.ActHalt:     {change.Halted, RolloutAwaitingCompletion, ""},
			change.ActResume:   {change.InProgress, RolloutAwaitingCompletion, "cannot resume a change that is in_progress"},
			change.ActRollBack: {change.RolledBack, RolloutRolledBack, ""},
			change.ActCancel:   {change.InProgress, RolloutAwaitingCompletion, "cannot cancel a change that is in_progress"},
			change.ActComplete: {change.Completed, RolloutCompleted, ""},
		},
		"aborted": {
			change.ActHalt:     {change.Cancelled, RolloutAborted, "cancelled is final"},
			change.ActResume:   {change.Cancelled, RolloutAborted, "cancelled is final"},
			change.ActRollBack: {change.Cancelled, RolloutAborted, "cancelled is final"},
			change.ActCancel:   {change.Cancelled, RolloutAborted, "cancelled is final"},
			change.ActComplete: {change.Cancelled, RolloutAborted, "cancelled is final"},
		},
	}
	for setup, moves := range cases {
		for act, wt := range moves {
			t.Run(setup+"/"+string(act), func(t *testing.T) {
				w, ro := pilotOf(t, testRings, 3)
				setups[setup](t, w, ro)
				before := w.get(ro.ID)
				if !agrees(w.changes.state("c1"), before.State) {
					t.Fatalf("setup: change %s, rollout %s disagree", w.changes.state("c1"), before.State)
				}
				c, got, err := w.eng.ChangeMove(w.ctx, operator, "c1", act, change.Step{Why: why})
				stored := w.get(ro.ID)
				if cs := w.changes.state("c1"); cs != wt.cs || stored.State != wt.rs {
					t.Errorf("after %s: change %s, rollout %s; want %s, %s", act, cs, stored.State, wt.cs, wt.rs)
				}
				if !agrees(w.changes.state("c1"), stored.State) {
					t.Errorf("after %s: change %s and rollout %s disagree", act, w.changes.state("c1"), stored.State)
				}
				if wt.fail != "" {
					if errs.KindOf(err) != errs.Conflict || !strings.Contains(errs.Public(err), wt.fail) {
						t.Errorf("ChangeMove(%s) = %v; want Conflict saying %q", act, err, wt.fail)
					}
					return
				}
				if err != nil {
					t.Fatalf("ChangeMove(%s) = %v", act, err)
				}
				if got == nil || c.State != wt.cs || got.State != wt.rs {
					t.Errorf("ChangeMove(%s) replied change %s, rollout %v; want %s, %s", act, c.State, got, wt.cs, wt.rs)
				}
				// The change moved on the operator's word. (A rollback's last
				// move is the engine's, once every rollback job reported.)
				for _, m := range w.changes.moves {
					if m.Act == act && act != change.ActRollBack && !m.Fail && (m.By != operator.Actor.ID || m.Why != why) {
						t.Errorf("the change's %s was by %q because %q; want the operator's", act, m.By, m.Why)
					}
				}
			})
		}
	}

	t.Run("halt of a running rollout", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		_, got, err := w.eng.ChangeMove(w.ctx, operator, "c1", change.ActHalt, change.Step{Why: why})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got.Reason, "the change is halted") || !strings.Contains(got.Reason, why) {
			t.Errorf("rollout's reason = %q; want it to say the change is halted and why", got.Reason)
		}
		for _, id := range []string{"p1", "p2", "p3"} {
			if j := w.jobsOf(id, agentapi.JobInstall); j[0].State != fleet.JobCancelled {
				t.Errorf("%s's queued job is %s; want cancelled", id, j[0].State)
			}
		}
		if recs := w.store.auditsOf("rollout.halt"); len(recs) != 1 || recs[0].Actor.ID != operator.Actor.ID {
			t.Errorf("rollout.halt audits = %+v; want one by the operator", recs)
		}
		if ro = w.get(ro.ID); ro.Waves[0].State != WaveHalted {
			t.Errorf("pilot wave = %s; want halted", ro.Waves[0].State)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		c, _ := w.changes.Get(w.ctx, "c1")
		for _, act := range []change.Action{change.ActHalt, change.ActRollBack} {
			_, _, err := w.eng.ChangeMove(w.ctx, operator, "c1", act, change.Step{Why: "  "})
			var v *errs.Error
			if errs.KindOf(err) != errs.Invalid || !errors.As(err, &v) || v.Fields["why"] == "" {
				t.Errorf("%s without why = %v; want Invalid naming the why field", act, err)
			}
		}
		if _, _, err := w.eng.ChangeMove(w.ctx, operator, "c1", change.ActHalt, change.Step{Why: why, Revision: c.Revision + 3}); errs.KindOf(err) != errs.Conflict ||
			!strings.Contains(errs.Public(err), "changed since you loaded it") {
			t.Errorf("stale halt = %v; want Conflict", err)
		}
		if _, _, err := w.eng.ChangeMove(w.ctx, viewer, "c1", change.ActHalt, change.Step{Why: why}); errs.KindOf(err) != errs.Forbidden {
			t.Errorf("halt by a viewer = %v; want Forbidden", err)
		}
		if _, _, err := w.eng.ChangeMove(w.ctx, operator, "c1", change.ActStart, change.Step{Why: why}); errs.KindOf(err) != errs.Invalid {
			t.Errorf("start through ChangeMove = %v; want Invalid", err)
		}
		if cs, rs := w.changes.state("c1"), w.get(ro.ID).State; cs != change.InProgress || rs != RolloutRunning {
			t.Errorf("after the refusals: change %s, rollout %s; want in progress and running", cs, rs)
		}
	})

	t.Run("without a rollout", func(t *testing.T) {
		w, _ := pilotOf(t, testRings, 1)
		w.change("c2", change.Normal, change.InProgress, []string{"p1"})
		c, ro, err := w.eng.ChangeMove(w.ctx, operator, "c2", change.ActHalt, change.Step{Why: why})
		if err != nil || c.State != change.Halted || ro != nil {
			t.Fatalf("ChangeMove(halt) = %s, %v, %v; want halted without a rollout", c.State, ro, err)
		}
		// Complete and resume need no reason from the change service.
		if c, _, err = w.eng.ChangeMove(w.ctx, operator, "c2", change.ActResume, change.Step{}); err != nil || c.State != change.InProgress {
			t.Fatalf("ChangeMove(resume) = %s, %v; want in progress", c.State, err)
		}
		if c, _, err = w.eng.ChangeMove(w.ctx, operator, "c2", change.ActComplete, change.Step{}); err != nil || c.State != change.Completed {
			t.Fatalf("ChangeMove(complete) = %s, %v; want completed", c.State, err)
		}
	})
}

// TestOperatorHalt: the operator's halt cancels queued jobs, halts the
// rollout, its wave and the change on the operator's word, is audited,
// and is refused where it makes no sense.
func TestOperatorHalt(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		w.report("p1", agentapi.JobInstall, fleet.JobRunning)
		ro, err := w.eng.Halt(w.ctx, operator, ro.ID, "lab reports slow LIS")
		if err != nil || ro.State != RolloutHalted || ro.Reason != "lab reports slow LIS" {
			t.Fatalf("Halt = %s %q, %v; want halted with the reason", ro.State, ro.Reason, err)
		}
		if w.changes.state("c1") != change.Halted {
			t.Errorf("change = %s; want halted", w.changes.state("c1"))
		}
		if m := w.changes.moves[len(w.changes.moves)-1]; m.By != operator.Actor.ID || m.Why != "lab reports slow LIS" {
			t.Errorf("the change was halted by %q because %q; want the operator's words", m.By, m.Why)
		}
		if j := w.jobsOf("p1", agentapi.JobInstall); j[0].State != fleet.JobRunning {
			t.Errorf("p1's running job is %s; want left running", j[0].State)
		}
		if it := w.item(ro, "p2", ItemAgent); it.State != ItemCancelled {
			t.Errorf("p2 = %s; want cancelled", it.State)
		}
		recs := w.store.auditsOf("rollout.halt")
		if len(recs) != 1 || recs[0].Actor.ID != operator.Actor.ID || recs[0].Reason != "lab reports slow LIS" {
			t.Errorf("rollout.halt audits = %+v; want one by the operator with the reason", recs)
		}
		// Resume retries what the halt cancelled.
		if ro, err = w.eng.Resume(w.ctx, operator, ro.ID, "LIS fine"); err != nil || ro.State != RolloutRunning || w.changes.state("c1") != change.InProgress {
			t.Errorf("Resume after Halt = %s, change %s, %v; want both running", ro.State, w.changes.state("c1"), err)
		}
	})
	t.Run("paused", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		if _, err := w.eng.Pause(w.ctx, operator, ro.ID, "vendor call"); err != nil {
			t.Fatal(err)
		}
		if ro, err := w.eng.Halt(w.ctx, operator, ro.ID, "vendor says stop"); err != nil || ro.State != RolloutHalted || w.changes.state("c1") != change.Halted {
			t.Errorf("Halt of a paused rollout = %s, change %s, %v; want both halted", ro.State, w.changes.state("c1"), err)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		if _, err := w.eng.Halt(w.ctx, operator, ro.ID, " "); errs.KindOf(err) != errs.Invalid {
			t.Errorf("Halt without a reason = %v; want Invalid", err)
		}
		if _, err := w.eng.Halt(w.ctx, viewer, ro.ID, "because"); errs.KindOf(err) != errs.Forbidden {
			t.Errorf("Halt by a viewer = %v; want Forbidden", err)
		}
		for _, st := range []RolloutState{RolloutHalted, RolloutRollingBack, RolloutAwaitingCompletion, RolloutAborted, RolloutCompleted, RolloutRolledBack} {
			setRolloutState(w, ro.ID, st)
			if _, err := w.eng.Halt(w.ctx, operator, ro.ID, "because"); errs.KindOf(err) != errs.Conflict || !strings.Contains(errs.Public(err), "cannot halt") {
				t.Errorf("Halt of a %s rollout = %v; want Conflict saying it cannot halt", st, err)
			}
		}
		if w.changes.state("c1") != change.InProgress {
			t.Errorf("after refused halts the change is %s; want in progress", w.changes.state("c1"))
		}
	})
}
