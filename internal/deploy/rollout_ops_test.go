package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// oneRing is a single ring that passes on one success, without soak.
const oneRing = `
  - name: all
    min_success: 1
    success_rate: 1
    soak: 0
    halt_failure_rate: 0.5
    max_concurrent: 0
`

// TestRolloutOperatorActions: pause, resume, abort and roll back each do
// their one thing, are audited with who and why, and are refused (a clear
// Conflict) in the states where they make no sense; a resume after a halt
// retries the failed and cancelled assets.
func TestRolloutOperatorActions(t *testing.T) {
	type op func(w *world, id string, u change.User, why string) (Rollout, error)
	pause := func(w *world, id string, u change.User, why string) (Rollout, error) {
		return w.eng.Pause(w.ctx, u, id, why)
	}
	resume := func(w *world, id string, u change.User, why string) (Rollout, error) {
		return w.eng.Resume(w.ctx, u, id, why)
	}
	abort := func(w *world, id string, u change.User, why string) (Rollout, error) {
		return w.eng.Abort(w.ctx, u, id, why)
	}
	rollBack := func(w *world, id string, u change.User, why string) (Rollout, error) {
		return w.eng.RollBack(w.ctx, u, id, why)
	}
	ops := map[string]op{"pause": pause, "resume": resume, "abort": abort, "roll back": rollBack}

	// audited checks the newest audit record of action names the operator
	// and the reason.
	audited := func(t *testing.T, w *world, action, why string) {
		t.Helper()
		recs := w.store.auditsOf(action)
		if len(recs) == 0 {
			t.Fatalf("no %s audit record", action)
		}
		if r := recs[len(recs)-1]; r.Actor.ID != operator.Actor.ID || r.Reason != why {
			t.Errorf("%s audited by %q because %q; want %q because %q", action, r.Actor.ID, r.Reason, operator.Actor.ID, why)
		}
	}

	t.Run("refusals", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		for name, f := range ops {
			if _, err := f(w, ro.ID, operator, "  "); errs.KindOf(err) != errs.Invalid {
				t.Errorf("%s without a reason = %v; want Invalid", name, err)
			}
			if _, err := f(w, ro.ID, viewer, "because"); errs.KindOf(err) != errs.Forbidden {
				t.Errorf("%s by a viewer = %v; want Forbidden", name, err)
			}
		}
		// In the states where they make no sense.
		for _, tc := range []struct {
			state RolloutState
			ops   []string
		}{
			{RolloutRunning, []string{"resume"}},
			{RolloutPaused, []string{"pause"}},
			{RolloutHalted, []string{"pause"}},
			{RolloutRollingBack, []string{"pause", "resume", "abort", "roll back"}},
			{RolloutAwaitingCompletion, []string{"pause", "resume"}},
			{RolloutAborted, []string{"pause", "resume", "abort", "roll back"}},
			{RolloutCompleted, []string{"pause", "resume", "abort", "roll back"}},
			{RolloutRolledBack, []string{"pause", "resume", "abort", "roll back"}},
		} {
			cur := w.get(ro.ID)
			w.store.mu.Lock()
			cur.State = tc.state
			stored := w.store.rollouts[ro.ID]
			stored.State = tc.state
			w.store.rollouts[ro.ID] = stored
			w.store.mu.Unlock()
			for _, name := range tc.ops {
				_, err := ops[name](w, ro.ID, operator, "because")
				if errs.KindOf(err) != errs.Conflict || !strings.Contains(errs.Public(err), "cannot "+name) {
					t.Errorf("%s a %s rollout = %v; want Conflict saying it cannot %s", name, tc.state, err, name)
				}
			}
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		rings := strings.Replace(testRings, "max_concurrent: 0", "max_concurrent: 1", 1)
		w, ro := pilotOf(t, rings, 3)
		if ro, err := w.eng.Pause(w.ctx, operator, ro.ID, "lab reports slow LIS"); err != nil || ro.State != RolloutPaused {
			t.Fatalf("Pause = %s, %v; want paused", ro.State, err)
		}
		audited(t, w, "rollout.pause", "lab reports slow LIS")
		// Paused: the job out is still recorded, no new one starts.
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		w.clk.add(time.Minute)
		w.tick()
		ro = w.get(ro.ID)
		if w.item(ro, "p1", ItemAgent).State != ItemSucceeded || len(w.jobsOf("p2", agentapi.JobInstall)) != 0 {
			t.Fatalf("paused: p1 %s, p2 jobs %d; want the result recorded and no new job", w.item(ro, "p1", ItemAgent).State, len(w.jobsOf("p2", agentapi.JobInstall)))
		}
		ro, err := w.eng.Resume(w.ctx, operator, ro.ID, "LIS vendor says unrelated")
		if err != nil || ro.State != RolloutRunning {
			t.Fatalf("Resume = %s, %v; want running", ro.State, err)
		}
		audited(t, w, "rollout.resume", "LIS vendor says unrelated")
		if len(w.jobsOf("p2", agentapi.JobInstall)) != 1 {
			t.Errorf("after resume p2 has %d jobs; want 1", len(w.jobsOf("p2", agentapi.JobInstall)))
		}
	})

	t.Run("resume after a halt retries failed and cancelled assets", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 4, "auto_on_halt: true", "auto_on_halt: false")
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		w.report("p2", agentapi.JobInstall, fleet.JobFailed)
		w.report("p3", agentapi.JobInstall, fleet.JobFailed)
		w.tick()
		if ro = w.get(ro.ID); ro.State != RolloutHalted || w.item(ro, "p4", ItemAgent).State != ItemCancelled {
			t.Fatalf("rollout %s, p4 %s; want halted with p4 cancelled", ro.State, w.item(ro, "p4", ItemAgent).State)
		}
		ro, err := w.eng.Resume(w.ctx, operator, ro.ID, "disk space freed on p2 and p3")
		if err != nil {
			t.Fatal(err)
		}
		audited(t, w, "rollout.resume", "disk space freed on p2 and p3")
		if ro.State != RolloutRunning || w.changes.state("c1") != change.InProgress {
			t.Errorf("after resume: rollout %s, change %s; want running, in progress", ro.State, w.changes.state("c1"))
		}
		for id, want := range map[string]int{"p1": 1, "p2": 2, "p3": 2, "p4": 2} {
			if n := len(w.jobsOf(id, agentapi.JobInstall)); n != want {
				t.Errorf("%s has %d jobs; want %d", id, n, want)
			}
		}
		if it := w.item(ro, "p2", ItemAgent); it.State != ItemQueued || it.Attempts != 2 {
			t.Errorf("p2 = %s attempt %d; want queued, attempt 2", it.State, it.Attempts)
		}
		// The gate reads the retries, not the old failures.
		for _, id := range []string{"p2", "p3", "p4"} {
			w.report(id, agentapi.JobInstall, fleet.JobSucceeded)
		}
		w.clk.add(2 * time.Hour)
		w.tick()
		if ro = w.get(ro.ID); ro.Waves[0].State != WavePassed {
			t.Errorf("after successful retries the pilot = %s (%s); want passed", ro.Waves[0].State, ro.Waves[0].Reason)
		}
	})

	t.Run("abort", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		w.report("p2", agentapi.JobInstall, fleet.JobRunning)
		ro, err := w.eng.Abort(w.ctx, operator, ro.ID, "wrong package version in the change")
		if err != nil || ro.State != RolloutAborted || ro.FinishedAt == nil {
			t.Fatalf("Abort = %s, %v; want aborted and finished", ro.State, err)
		}
		audited(t, w, "rollout.abort", "wrong package version in the change")
		if j := w.jobsOf("p3", agentapi.JobInstall); j[0].State != fleet.JobCancelled {
			t.Errorf("p3's queued job is %s; want cancelled", j[0].State)
		}
		if j := w.jobsOf("p2", agentapi.JobInstall); j[0].State != fleet.JobRunning {
			t.Errorf("p2's running job is %s; want left running", j[0].State)
		}
		if it := w.item(ro, "r1", ItemAgent); it.State != ItemSkipped {
			t.Errorf("r1 (not reached) = %s; want skipped", it.State)
		}
		if ro.Waves[0].State != WaveHalted || ro.Waves[1].State != WaveSkipped {
			t.Errorf("waves %s, %s; want halted, skipped", ro.Waves[0].State, ro.Waves[1].State)
		}
		if w.changes.state("c1") != change.Cancelled {
			t.Errorf("change = %s; want cancelled", w.changes.state("c1"))
		}
		if m := w.changes.moves[len(w.changes.moves)-1]; m.By != operator.Actor.ID || m.Why != "wrong package version in the change" {
			t.Errorf("the change was cancelled by %q because %q; want the operator's words", m.By, m.Why)
		}
	})

	t.Run("roll back", func(t *testing.T) {
		w, ro := pilotOf(t, testRings, 3)
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		w.report("p2", agentapi.JobInstall, fleet.JobSucceeded)
		ro, err := w.eng.RollBack(w.ctx, operator, ro.ID, "abnormal QC on the chemistry analyzer")
		if err != nil || ro.State != RolloutRollingBack {
			t.Fatalf("RollBack = %s, %v; want rolling_back", ro.State, err)
		}
		audited(t, w, "rollout.rollback", "abnormal QC on the chemistry analyzer")
		if w.changes.state("c1") != change.Halted {
			t.Errorf("change = %s; want halted while rolling back", w.changes.state("c1"))
		}
		for _, id := range []string{"p1", "p2"} {
			if rb := w.jobsOf(id, agentapi.JobRollback); len(rb) != 1 || rb[0].CreatedBy != operator.Actor.ID {
				t.Errorf("%s rollback jobs = %+v; want one by the operator", id, rb)
			}
		}
		if rb := w.jobsOf("p3", agentapi.JobRollback); len(rb) != 0 {
			t.Errorf("p3 (never installed) got %d rollback jobs", len(rb))
		}
		if j := w.jobsOf("p3", agentapi.JobInstall); j[0].State != fleet.JobCancelled {
			t.Errorf("p3's queued install is %s; want cancelled", j[0].State)
		}
		// A failed rollback leaves it halted for an operator, who may try again.
		w.report("p1", agentapi.JobRollback, fleet.JobSucceeded)
		w.report("p2", agentapi.JobRollback, fleet.JobFailed)
		w.tick()
		if ro = w.get(ro.ID); ro.State != RolloutHalted || !strings.Contains(ro.Reason, "host-p2") {
			t.Fatalf("after a failed rollback: %s (%s); want halted naming host-p2", ro.State, ro.Reason)
		}
		if ro, err = w.eng.RollBack(w.ctx, operator, ro.ID, "retry the p2 downgrade"); err != nil {
			t.Fatal(err)
		}
		if rb := w.jobsOf("p2", agentapi.JobRollback); len(rb) != 2 || len(w.jobsOf("p1", agentapi.JobRollback)) != 1 {
			t.Errorf("rollback jobs: p2 %d, p1 %d; want a retry for p2 only", len(rb), len(w.jobsOf("p1", agentapi.JobRollback)))
		}
		w.report("p2", agentapi.JobRollback, fleet.JobSucceeded)
		w.tick()
		if ro = w.get(ro.ID); ro.State != RolloutRolledBack || w.changes.state("c1") != change.RolledBack {
			t.Errorf("rollout %s, change %s; want rolled_back both", ro.State, w.changes.state("c1"))
		}
	})
}

// TestRolloutEmergency: an approved emergency change's jobs are marked
// Emergency and run in the emergency window (or at once when
// emergency.window is "immediate"), freezes notwithstanding; a normal
// change waits for its own window after the freeze; an emergency that is
// not approved and scheduled never gets a rollout or a job.
func TestRolloutEmergency(t *testing.T) {
	// Wednesday 6 May 2026, 10:00 UTC: inside the shipped policy's
	// proficiency-testing freeze (4–15 May). The asset's own window is
	// Sunday 02:00–06:00.
	at := time.Date(2026, 5, 6, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		typ        change.Type
		replace    []string
		wantStart  time.Time
		wantUrgent bool
	}{
		{"emergency window", change.Emergency, nil, time.Date(2026, 5, 6, 21, 0, 0, 0, time.UTC), true},
		{"immediate", change.Emergency, []string{"  window: emergency\n", "  window: immediate\n"}, at, true},
		{"normal change waits out the freeze", change.Normal, nil, time.Date(2026, 5, 17, 2, 0, 0, 0, time.UTC), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, rolloutPolicy(t, oneRing, tc.replace...), at)
			w.asset("s1", "A", false, true)
			a := w.store.assets["s1"]
			a.Window = "servers-weekly"
			w.store.assets["s1"] = a
			w.change("c1", tc.typ, change.Scheduled, []string{"s1"})
			ro := w.start("c1")
			if ro.Emergency != tc.wantUrgent {
				t.Errorf("rollout emergency = %v; want %v", ro.Emergency, tc.wantUrgent)
			}
			jobs := w.jobsOf("s1", agentapi.JobInstall)
			if len(jobs) != 1 {
				t.Fatalf("s1 has %d jobs; want 1", len(jobs))
			}
			if jobs[0].Emergency != tc.wantUrgent || !jobs[0].NotBefore.Equal(tc.wantStart) {
				t.Errorf("job emergency %v not before %s; want %v, %s", jobs[0].Emergency, jobs[0].NotBefore, tc.wantUrgent, tc.wantStart)
			}
			if tc.wantUrgent {
				// Its rollback goes out the same way.
				w.report("s1", agentapi.JobInstall, fleet.JobSucceeded)
				if _, err := w.eng.RollBack(w.ctx, operator, ro.ID, "post-check failed"); err != nil {
					t.Fatal(err)
				}
				if rb := w.jobsOf("s1", agentapi.JobRollback); len(rb) != 1 || !rb[0].Emergency || rb[0].NotBefore.After(tc.wantStart) {
					t.Errorf("rollback job = %+v; want an emergency job by %s", rb, tc.wantStart)
				}
			}
		})
	}
	for _, st := range []change.State{change.Draft, change.Submitted, change.Approved, change.Rejected} {
		t.Run("emergency "+string(st), func(t *testing.T) {
			w := newWorld(t, rolloutPolicy(t, oneRing, "  window: emergency\n", "  window: immediate\n"), at)
			w.asset("s1", "A", false, true)
			w.change("c1", change.Emergency, st, []string{"s1"})
			if _, err := w.eng.Start(w.ctx, operator, "c1", "now"); errs.KindOf(err) != errs.Conflict {
				t.Errorf("Start of a %s emergency = %v; want Conflict", st, err)
			}
			if n := len(w.jobsOf("s1", agentapi.JobInstall)); n != 0 {
				t.Errorf("a %s emergency got %d jobs", st, n)
			}
			if _, err := w.store.RolloutByChange(w.ctx, "c1"); errs.KindOf(err) != errs.NotFound {
				t.Errorf("a %s emergency has a rollout (%v)", st, err)
			}
		})
	}
}

// TestRolloutAwaitingCompletion: when every wave passed but the change
// cannot complete (an emergency without its post-incident review), the
// rollout waits in awaiting_completion saying why, audited once, and
// completes on the first tick after the review is recorded.
func TestRolloutAwaitingCompletion(t *testing.T) {
	w := newWorld(t, rolloutPolicy(t, oneRing, "  window: emergency\n", "  window: immediate\n"), start2026)
	w.asset("s1", "A", false, true)
	w.change("c1", change.Emergency, change.Scheduled, []string{"s1"})
	ro := w.start("c1")
	w.report("s1", agentapi.JobInstall, fleet.JobSucceeded)
	w.tick()
	ro = w.get(ro.ID)
	if ro.State != RolloutAwaitingCompletion || !strings.Contains(ro.Reason, "post-incident review") {
		t.Fatalf("rollout = %s (%s); want awaiting_completion naming the review", ro.State, ro.Reason)
	}
	if w.changes.state("c1") != change.InProgress {
		t.Errorf("change = %s; want still in progress", w.changes.state("c1"))
	}
	w.clk.add(time.Hour)
	w.tick()
	if n := len(w.store.auditsOf("rollout.awaiting_completion")); n != 1 {
		t.Errorf("awaiting_completion audited %d times; want once", n)
	}
	if st := w.get(ro.ID).State; st != RolloutAwaitingCompletion {
		t.Fatalf("without the review the rollout moved to %s", st)
	}
	w.changes.mu.Lock()
	c := w.changes.byID["c1"]
	c.Emergency.PostIncidentReview = &change.Review{By: "Sam Security", At: w.clk.now(), Summary: "patched within 6h, no impact"}
	w.changes.byID["c1"] = c
	w.changes.mu.Unlock()
	w.tick()
	if ro = w.get(ro.ID); ro.State != RolloutCompleted || ro.FinishedAt == nil || w.changes.state("c1") != change.Completed {
		t.Errorf("after the review: rollout %s, change %s; want completed both", ro.State, w.changes.state("c1"))
	}
	if n := len(w.store.auditsOf("rollout.complete")); n != 1 {
		t.Errorf("rollout.complete audited %d times; want once", n)
	}
}

// TestRolloutRun checks the background loop in a synctest bubble: one tick
// at once, then one per interval and one per Kick (a job result wakes
// it), and it stops when its context ends.
func TestRolloutRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, rolloutPolicy(t, oneRing), start2026)
		w.asset("s1", "A", false, true)
		w.change("c1", change.Normal, change.Scheduled, []string{"s1"})
		ro := w.start("c1")
		ticks := func() int {
			w.store.mu.Lock()
			defer w.store.mu.Unlock()
			return w.store.lists
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.eng.Run(ctx, time.Minute) }()
		synctest.Wait()
		if n := ticks(); n != 1 {
			t.Fatalf("at start: %d ticks; want 1", n)
		}
		time.Sleep(59 * time.Second) // the bubble's clock: no real waiting
		synctest.Wait()
		if n := ticks(); n != 1 {
			t.Fatalf("before the interval: %d ticks; want 1", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := ticks(); n != 2 {
			t.Fatalf("after one interval: %d ticks; want 2", n)
		}
		// A job result kicks the loop: recorded without waiting for the timer.
		w.report("s1", agentapi.JobInstall, fleet.JobSucceeded)
		w.eng.Kick()
		synctest.Wait()
		if n := ticks(); n != 3 {
			t.Fatalf("after a kick: %d ticks; want 3", n)
		}
		if got := w.get(ro.ID); got.State != RolloutCompleted {
			t.Errorf("after the kick the rollout is %s; want completed", got.State)
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v; want context.Canceled", err)
			}
		default:
			t.Fatal("Run did not return when its context ended")
		}
	})
}

// TestRolloutLease runs two replicas on one store: a step that takes longer
// than the lease keeps renewing it, so the other replica never acts on
// the rollout meanwhile; a step whose lease was taken over stops before
// writing or calling out again.
func TestRolloutLease(t *testing.T) {
	setup := func(t *testing.T) (*world, *Rollouts, Rollout) {
		rings := `
  - name: pilot
    select: '"pilot" in asset.tags'
    min_success: 1
    success_rate: 1
    soak: 0
    halt_failure_rate: 0.5
    max_concurrent: 0
` + oneRing
		w := newWorld(t, rolloutPolicy(t, rings), start2026)
		w.asset("p1", "A", true, true)
		for _, id := range []string{"r1", "r2", "r3", "r4"} {
			w.asset(id, "A", false, true)
		}
		w.change("c1", change.Normal, change.Scheduled, []string{"p1", "r1", "r2", "r3", "r4"})
		ro := w.start("c1")
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		return w, w.engine("B"), ro
	}
	// once queued per asset, and one job each.
	onceEach := func(t *testing.T, w *world) {
		t.Helper()
		for _, id := range []string{"r1", "r2", "r3", "r4"} {
			log, _ := w.store.DeploymentLog(w.ctx, "c1", id)
			queued := 0
			for _, e := range log {
				if e.Event == EventJobQueued {
					queued++
				}
			}
			if n := len(w.jobsOf(id, agentapi.JobInstall)); n != 1 || queued != 1 {
				t.Errorf("%s: %d jobs, %d job_queued log entries; want 1 and 1", id, n, queued)
			}
		}
	}

	t.Run("a long step renews its lease", func(t *testing.T) {
		w, b, _ := setup(t)
		var bErr error
		// Every call that creates jobs takes 70 s (the lease is 3 min);
		// the other replica ticks meanwhile.
		w.fleet.onCreate = func(fleet.Job) {
			w.clk.add(70 * time.Second)
			bErr = errors.Join(bErr, b.Tick(w.ctx))
		}
		w.tick()
		w.fleet.onCreate = nil
		if bErr != nil {
			t.Errorf("replica B's ticks: %v", bErr)
		}
		if calls := w.fleet.callsBy("B"); len(calls) != 0 {
			t.Errorf("replica B acted while A held the rollout: %v", calls)
		}
		onceEach(t, w)
		// Once A is done B takes its turn.
		if err := b.Tick(w.ctx); err != nil || len(w.fleet.callsBy("B")) == 0 {
			t.Errorf("B after A: %v, %d calls; want B to work the rollout", err, len(w.fleet.callsBy("B")))
		}
	})

	t.Run("a step that lost its lease stops", func(t *testing.T) {
		w, b, _ := setup(t)
		var bErr error
		var aCallsBefore int
		w.fleet.onCreate = func(fleet.Job) {
			w.fleet.onCreate = nil
			w.clk.add(4 * time.Minute) // past A's lease
			aCallsBefore = len(w.fleet.callsBy("A"))
			bErr = b.Tick(w.ctx)
		}
		err := w.eng.Tick(w.ctx)
		if errs.KindOf(err) != errs.Conflict || !strings.Contains(err.Error(), "another replica took the rollout over") {
			t.Errorf("A's tick = %v; want Conflict: another replica took over", err)
		}
		if bErr != nil {
			t.Errorf("B's tick: %v", bErr)
		}
		if calls := w.fleet.callsBy("A"); len(calls) != aCallsBefore {
			t.Errorf("A called the fleet after losing its lease: %v", calls[aCallsBefore:])
		}
		onceEach(t, w)
	})
}
