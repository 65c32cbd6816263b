package deploy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// pilotOf builds a world with n agent assets in the pilot ring (p1…pn)
// and two in the rest (r1, r2), all at one site, and starts a normal
// change on them.
func pilotOf(t *testing.T, rings string, n int, replace ...string) (*world, Rollout) {
	t.Helper()
	w := newWorld(t, rolloutPolicy(t, rings, replace...), start2026)
	var ids []string
	for i := 1; i <= n; i++ {
		id := "p" + itoa(i)
		w.asset(id, "site-a", true, true)
		ids = append(ids, id)
	}
	w.asset("r1", "site-a", false, true)
	w.asset("r2", "site-a", false, true)
	w.change("c1", change.Normal, change.Scheduled, append(ids, "r1", "r2"))
	return w, w.start("c1")
}

func pilotRing(minSuccess int, rate, halt float64) string {
	return strings.NewReplacer("min_success: 2", "min_success: "+itoa(minSuccess), "success_rate: 0.6", "success_rate: "+ftoa(rate),
		"halt_failure_rate: 0.3", "halt_failure_rate: "+ftoa(halt)).Replace(testRings)
}

func itoa(i int) string { return strconv.Itoa(i) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// TestRolloutGates runs the pilot's gate through its outcomes: a wave
// advances only on min_success and success_rate, then waits out its soak
// before the next ring gets a job; failures above halt_failure_rate halt;
// a gate that can no longer open is Blocked and waits for an operator.
func TestRolloutGates(t *testing.T) {
	for _, tc := range []struct {
		name       string
		min        int
		rate, halt float64
		// outcomes of p1..p4; "" leaves the job queued.
		outcomes []fleet.JobState
		want     Verdict
		wantText string
	}{
		{"gate met", 2, 0.6, 0.3, []fleet.JobState{fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded}, Advance, "soak"},
		{"a queued job does not hold a met gate", 2, 0.7, 0.3, []fleet.JobState{fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded, ""}, Advance, "soak"},
		{"min_success holds it", 3, 0.5, 0.3, []fleet.JobState{fleet.JobSucceeded, fleet.JobSucceeded, "", ""}, Wait, "2 of 4 succeeded"},
		{"success_rate holds it", 1, 0.8, 0.3, []fleet.JobState{fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded, ""}, Wait, "3 of 4 succeeded (75.0%)"},
		{"a running job holds it", 1, 0.5, 0.3, []fleet.JobState{fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobRunning}, Wait, "1 job still running"},
		{"failures at the threshold pass", 2, 0.7, 0.25, []fleet.JobState{fleet.JobFailed, fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded}, Advance, "soak"},
		{"failures above the threshold halt", 2, 0.7, 0.2, []fleet.JobState{fleet.JobFailed, fleet.JobSucceeded, fleet.JobSucceeded, fleet.JobSucceeded}, Halt, "above the halt threshold"},
		{"a gate that cannot open is blocked", 4, 0.5, 0.5, []fleet.JobState{fleet.JobFailed, fleet.JobSucceeded, "", ""}, Blocked, "at most 3 can succeed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ro := pilotOf(t, pilotRing(tc.min, tc.rate, tc.halt), 4, "auto_on_halt: true", "auto_on_halt: false")
			if ro.Waves[0].State != WaveRunning || ro.Waves[1].State != WavePending {
				t.Fatalf("after Start waves are %s, %s; want running, pending", ro.Waves[0].State, ro.Waves[1].State)
			}
			for i, st := range tc.outcomes {
				if st != "" {
					w.report("p"+itoa(i+1), agentapi.JobInstall, st)
				}
			}
			w.clk.add(time.Minute)
			w.tick()
			ro = w.get(ro.ID)
			pilot := ro.Waves[0]
			if pilot.Verdict != tc.want && !(tc.want == Advance && pilot.Verdict == Wait && pilot.State == WaveSoaking) {
				t.Fatalf("pilot verdict = %s (%s); want %s", pilot.Verdict, pilot.Reason, tc.want)
			}
			if !strings.Contains(pilot.Reason, tc.wantText) {
				t.Errorf("pilot reason = %q; want it to say %q", pilot.Reason, tc.wantText)
			}
			rest := len(w.jobsOf("r1", agentapi.JobInstall)) + len(w.jobsOf("r2", agentapi.JobInstall))
			switch tc.want {
			case Advance:
				// Soaking: one hour after the last success, not a minute less.
				lastSuccess := start2026
				if pilot.State != WaveSoaking || pilot.WaitUntil == nil || !pilot.WaitUntil.Equal(lastSuccess.Add(time.Hour)) {
					t.Fatalf("pilot = %s until %v; want soaking until %s", pilot.State, pilot.WaitUntil, lastSuccess.Add(time.Hour))
				}
				if rest != 0 {
					t.Fatalf("the next ring got %d jobs while the pilot soaked", rest)
				}
				w.clk.add(58 * time.Minute)
				w.tick()
				if got := w.get(ro.ID); got.Waves[0].State != WaveSoaking || len(w.jobsOf("r1", agentapi.JobInstall)) != 0 {
					t.Fatalf("a minute before the soak ended: pilot %s, r1 jobs %d; want soaking, 0", got.Waves[0].State, len(w.jobsOf("r1", agentapi.JobInstall)))
				}
				w.clk.add(time.Minute)
				w.tick()
				ro = w.get(ro.ID)
				if ro.Waves[0].State != WavePassed || ro.Waves[1].State != WaveRunning {
					t.Fatalf("after the soak waves are %s, %s; want passed, running", ro.Waves[0].State, ro.Waves[1].State)
				}
				if len(w.jobsOf("r1", agentapi.JobInstall)) != 1 || len(w.jobsOf("r2", agentapi.JobInstall)) != 1 {
					t.Errorf("the next ring's assets have %d and %d jobs; want 1 each", len(w.jobsOf("r1", agentapi.JobInstall)), len(w.jobsOf("r2", agentapi.JobInstall)))
				}
				if len(w.store.auditsOf("rollout.wave_passed")) != 1 {
					t.Errorf("wave_passed audited %d times; want 1", len(w.store.auditsOf("rollout.wave_passed")))
				}
			case Wait, Blocked:
				if ro.State != RolloutRunning || pilot.State != WaveRunning || rest != 0 {
					t.Errorf("rollout %s, pilot %s, next ring jobs %d; want running, running, 0", ro.State, pilot.State, rest)
				}
				if tc.want == Blocked {
					// Nothing moves by itself: hours later it still waits for an operator.
					w.clk.add(6 * time.Hour)
					w.tick()
					if got := w.get(ro.ID); got.State != RolloutRunning || got.Waves[0].Verdict != Blocked || len(w.jobsOf("r1", agentapi.JobInstall)) != 0 {
						t.Errorf("hours later: %s, verdict %s; want running and still blocked", got.State, got.Waves[0].Verdict)
					}
					if recs := w.store.auditsOf("rollout.gate"); len(recs) == 0 || !strings.Contains(recs[len(recs)-1].Reason, "at most 3 can succeed") {
						t.Errorf("the blocked gate was not audited with its reason: %+v", recs)
					}
				}
			case Halt:
				if ro.State != RolloutHalted || pilot.State != WaveHalted || rest != 0 {
					t.Errorf("rollout %s, pilot %s, next ring jobs %d; want halted, halted, 0", ro.State, pilot.State, rest)
				}
			}
		})
	}
}

// TestRolloutHalt: failures above the threshold halt the rollout, cancel
// the jobs still queued, halt the change, and — only when the policy says
// rollback.auto_on_halt — send rollback jobs to the assets already
// changed, with the versions they had before; their results roll the
// rollout and the change back.
func TestRolloutHalt(t *testing.T) {
	for _, auto := range []bool{true, false} {
		name := "auto_on_halt"
		if !auto {
			name = "no auto rollback"
		}
		t.Run(name, func(t *testing.T) {
			replace := []string{}
			if !auto {
				replace = []string{"auto_on_halt: true", "auto_on_halt: false"}
			}
			w, ro := pilotOf(t, pilotRing(2, 0.6, 0.3), 4, replace...)
			w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
			w.report("p2", agentapi.JobInstall, fleet.JobFailed)
			w.report("p3", agentapi.JobInstall, fleet.JobFailed)
			w.clk.add(time.Minute)
			w.tick()
			ro = w.get(ro.ID)

			// p4's job was still queued: cancelled, and recorded so.
			if j := w.jobsOf("p4", agentapi.JobInstall); len(j) != 1 || j[0].State != fleet.JobCancelled {
				t.Fatalf("p4's job = %+v; want one, cancelled", j)
			}
			if it := w.item(ro, "p4", ItemAgent); it.State != ItemCancelled {
				t.Errorf("p4 item = %s; want cancelled", it.State)
			}
			if ro.Waves[0].State != WaveHalted || ro.Waves[0].Verdict != Halt {
				t.Errorf("pilot = %s/%s; want halted/halt", ro.Waves[0].State, ro.Waves[0].Verdict)
			}
			if recs := w.store.auditsOf("rollout.halt"); len(recs) != 1 || recs[0].Actor.ID != Engine.Actor.ID || !strings.Contains(recs[0].Reason, "2 of 4 jobs failed") {
				t.Errorf("halt audit = %+v; want one by the engine naming the failures", recs)
			}
			rollbacks := func() (n int) {
				for _, id := range []string{"p1", "p2", "p3", "p4", "r1", "r2"} {
					n += len(w.jobsOf(id, agentapi.JobRollback))
				}
				return n
			}
			if !auto {
				if ro.State != RolloutHalted || w.changes.state("c1") != change.Halted || rollbacks() != 0 {
					t.Fatalf("rollout %s, change %s, rollback jobs %d; want halted, halted, 0", ro.State, w.changes.state("c1"), rollbacks())
				}
				w.clk.add(time.Hour)
				w.tick()
				if rollbacks() != 0 || w.get(ro.ID).State != RolloutHalted {
					t.Errorf("a later tick sent %d rollback jobs; want none without auto_on_halt", rollbacks())
				}
				return
			}
			if ro.State != RolloutRollingBack || rollbacks() != 1 {
				t.Fatalf("rollout %s with %d rollback jobs; want rolling_back with 1 (p1, the only changed asset)", ro.State, rollbacks())
			}
			rb := w.jobsOf("p1", agentapi.JobRollback)
			if len(rb) != 1 || rb[0].Packages[0].TargetVersion != "3.0.11-1~deb12u2" {
				t.Fatalf("p1 rollback = %+v; want one back to 3.0.11-1~deb12u2", rb)
			}
			if it := w.item(ro, "p1", ItemAgent); it.RollbackState != RollbackQueued || it.RollbackJobID != rb[0].ID {
				t.Errorf("p1 item rollback = %s %s; want queued %s", it.RollbackState, it.RollbackJobID, rb[0].ID)
			}
			w.report("p1", agentapi.JobRollback, fleet.JobSucceeded)
			w.clk.add(time.Minute)
			w.tick()
			ro = w.get(ro.ID)
			if ro.State != RolloutRolledBack || w.changes.state("c1") != change.RolledBack {
				t.Errorf("after the rollback: rollout %s, change %s; want rolled_back both", ro.State, w.changes.state("c1"))
			}
			if ro.Waves[0].State != WaveRolledBack || ro.Waves[1].State != WaveSkipped {
				t.Errorf("waves %s, %s; want rolled_back, skipped", ro.Waves[0].State, ro.Waves[1].State)
			}
			var events []string
			log, _ := w.store.DeploymentLog(w.ctx, "c1", "p1")
			for _, e := range log {
				events = append(events, e.Event)
				// p1's job ran between two ticks: its start is still logged,
				// at the time the job started.
				if e.Event == EventJobStarted && (e.JobID == "" || !e.At.Equal(*w.jobsOf("p1", agentapi.JobInstall)[0].StartedAt)) {
					t.Errorf("job_started entry %+v; want the job and its start time", e)
				}
			}
			want := []string{EventPlanned, EventJobQueued, EventJobStarted, EventSucceeded, EventRollback, EventRolledBack}
			if diff := cmp.Diff(want, events); diff != "" {
				t.Errorf("p1's deployment log (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRolloutThrottle: no site runs more than the ring's max_concurrent
// jobs at once; a finished job frees a place on the next tick.
func TestRolloutThrottle(t *testing.T) {
	rings := strings.Replace(testRings, "max_concurrent: 0", "max_concurrent: 2", 1)
	w := newWorld(t, rolloutPolicy(t, rings), start2026)
	for _, a := range []struct{ id, site string }{{"a1", "A"}, {"a2", "A"}, {"a3", "A"}, {"a4", "A"}, {"b1", "B"}, {"b2", "B"}, {"b3", "B"}} {
		w.asset(a.id, a.site, true, true)
	}
	w.change("c1", change.Normal, change.Scheduled, []string{"a1", "a2", "a3", "a4", "b1", "b2", "b3"})
	w.start("c1")
	check := func(when string, want map[string]int) {
		t.Helper()
		if diff := cmp.Diff(want, w.live(agentapi.JobInstall)); diff != "" {
			t.Errorf("%s: live jobs per site (-want +got):\n%s", when, diff)
		}
	}
	check("at start", map[string]int{"A": 2, "B": 2})
	w.tick()
	check("a tick later", map[string]int{"A": 2, "B": 2})
	w.report("a1", agentapi.JobInstall, fleet.JobRunning)
	w.report("a2", agentapi.JobInstall, fleet.JobSucceeded)
	w.clk.add(10 * time.Minute)
	w.tick()
	check("after a2 finished", map[string]int{"A": 2, "B": 2})
	if len(w.jobsOf("a3", agentapi.JobInstall)) != 1 || len(w.jobsOf("a4", agentapi.JobInstall)) != 0 {
		t.Errorf("a3, a4 jobs = %d, %d; want the freed place to a3 only", len(w.jobsOf("a3", agentapi.JobInstall)), len(w.jobsOf("a4", agentapi.JobInstall)))
	}
}

// TestRolloutManualTasks: an asset without an agent and a vendor task
// become manual items of the same wave; an open task holds the gate like
// a running job; RecordManual done lets it pass, failed counts as a
// failure; outcomes only on open manual items.
func TestRolloutManualTasks(t *testing.T) {
	w := newWorld(t, rolloutPolicy(t, pilotRing(2, 1, 0.3)), start2026)
	w.asset("p1", "A", true, true)
	w.asset("p2", "A", true, false) // no agent
	w.asset("r1", "A", false, true)
	due := start2026.Add(48 * time.Hour)
	w.change("c1", change.Normal, change.Scheduled, []string{"p1", "p2", "r1"},
		change.Patch{Manual: &change.ManualTask{Description: "Vendor re-flashes the analyzer firmware", Owner: "Acme field service", Due: &due}})
	ro := w.start("c1")

	noAgent := w.item(ro, "p2", ItemManual)
	if noAgent.State != ItemOpen || noAgent.Owner != "owner-p2" || !strings.Contains(noAgent.Task, "No enrolled agent") || noAgent.Due == nil {
		t.Fatalf("p2 item = %s owner %q task %q due %v; want an open task for its owner with a due time", noAgent.State, noAgent.Owner, noAgent.Task, noAgent.Due)
	}
	var vendor []Item
	for _, it := range ro.Waves[0].Items {
		if it.Kind == ItemManual && it.Owner == "Acme field service" {
			vendor = append(vendor, it)
		}
	}
	if len(vendor) != 2 || !vendor[0].Due.Equal(due) || vendor[0].State != ItemOpen {
		t.Fatalf("vendor tasks in the pilot = %+v; want one open per pilot asset, due %s", vendor, due)
	}
	if len(w.jobsOf("p2", agentapi.JobInstall)) != 0 {
		t.Error("an asset without an agent got a job")
	}
	if len(ro.Waves[1].Items) != 2 {
		t.Errorf("rest wave has %d items; want r1's job and its vendor task", len(ro.Waves[1].Items))
	}

	w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
	w.clk.add(2 * time.Hour)
	w.tick()
	ro = w.get(ro.ID)
	if ro.Waves[0].Verdict != Wait || !strings.Contains(ro.Waves[0].Reason, "3 tasks still open") {
		t.Fatalf("with three open tasks the pilot = %s (%s); want wait on them", ro.Waves[0].Verdict, ro.Waves[0].Reason)
	}

	// Outcomes are checked before anything is written.
	for _, tc := range []struct {
		name, item, outcome, note string
		want                      errs.Kind
	}{
		{"bad outcome", noAgent.ID, "maybe", "n", errs.Invalid},
		{"no note", noAgent.ID, ManualDone, " ", errs.Invalid},
		{"unknown item", "nope", ManualDone, "n", errs.NotFound},
		{"an agent item", w.item(ro, "p1", ItemAgent).ID, ManualDone, "n", errs.Conflict},
		{"viewer", noAgent.ID, ManualDone, "n", errs.Forbidden},
	} {
		u := operator
		if tc.name == "viewer" {
			u = viewer
		}
		if _, err := w.eng.RecordManual(w.ctx, u, ro.ID, tc.item, tc.outcome, tc.note); errs.KindOf(err) != tc.want {
			t.Errorf("RecordManual(%s) = %v; want %s", tc.name, err, tc.want)
		}
	}

	ro, err := w.eng.RecordManual(w.ctx, operator, ro.ID, noAgent.ID, ManualDone, "installed from USB by Tom, service restarted")
	if err != nil {
		t.Fatal(err)
	}
	if it := w.item(ro, "p2", ItemManual); it.State != ItemDone || it.RecordedBy != "Olga Operator" || it.Note == "" {
		t.Errorf("p2 after RecordManual = %s by %q; want done by Olga Operator with the note", it.State, it.RecordedBy)
	}
	if _, err := w.eng.RecordManual(w.ctx, operator, ro.ID, noAgent.ID, ManualFailed, "again"); errs.KindOf(err) != errs.Conflict {
		t.Errorf("a second outcome on a done task = %v; want Conflict", err)
	}
	for _, v := range vendor {
		if _, err := w.eng.RecordManual(w.ctx, operator, ro.ID, v.ID, ManualDone, "firmware 2.4 flashed, QC passed"); err != nil {
			t.Fatal(err)
		}
	}
	ro = w.get(ro.ID)
	if ro.Waves[0].State != WaveSoaking {
		t.Fatalf("with every task done the pilot = %s (%s); want soaking", ro.Waves[0].State, ro.Waves[0].Reason)
	}
	if recs := w.store.auditsOf("rollout.manual_task"); len(recs) != 3 || recs[0].Actor.ID != operator.Actor.ID || recs[0].Reason == "" {
		t.Errorf("manual outcomes audited %d times (%+v); want 3, by the operator with the note", len(recs), recs)
	}

	// A failed manual task is a failure like a job's.
	w.clk.add(2 * time.Hour)
	w.tick()
	ro = w.get(ro.ID)
	var rv Item
	for _, it := range ro.Waves[1].Items {
		if it.Kind == ItemManual {
			rv = it
		}
	}
	if ro.Waves[1].State != WaveRunning || rv.State != ItemOpen {
		t.Fatalf("rest wave %s, vendor task %s; want running, open", ro.Waves[1].State, rv.State)
	}
	if ro, err = w.eng.RecordManual(w.ctx, operator, ro.ID, rv.ID, ManualFailed, "vendor engineer could not reach the device"); err != nil {
		t.Fatal(err)
	}
	// One of two failed: at the rest ring's 50 % halt threshold, not above
	// it, but its 100 % success rate can no longer be met.
	if ro.State != RolloutRunning || ro.Waves[1].Verdict != Blocked {
		t.Errorf("after a failed vendor task: rollout %s, rest verdict %s (%s); want running, blocked", ro.State, ro.Waves[1].Verdict, ro.Waves[1].Reason)
	}
	if it := w.item(ro, "r1", ItemManual); it.State != ItemFailed || it.Outcome != ManualFailed {
		t.Errorf("r1 vendor task = %s %q; want failed", it.State, it.Outcome)
	}
}

// TestRolloutEmergencyNoSoak: an approved emergency change moves to the
// next ring as soon as a wave meets its gate, without the ring's soak,
// and says so; a normal change on the same rings soaks.
func TestRolloutEmergencyNoSoak(t *testing.T) {
	for _, typ := range []change.Type{change.Emergency, change.Normal} {
		t.Run(string(typ), func(t *testing.T) {
			w := newWorld(t, rolloutPolicy(t, testRings, "  window: emergency\n", "  window: immediate\n"), start2026)
			for _, id := range []string{"p1", "p2"} {
				w.asset(id, "A", true, true)
			}
			w.asset("r1", "A", false, true)
			w.change("c1", typ, change.Scheduled, []string{"p1", "p2", "r1"})
			ro := w.start("c1")
			w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
			w.report("p2", agentapi.JobInstall, fleet.JobSucceeded)
			w.clk.add(time.Minute)
			w.tick()
			ro = w.get(ro.ID)
			pilot, r1 := ro.Waves[0], len(w.jobsOf("r1", agentapi.JobInstall))
			if typ == change.Normal {
				if pilot.State != WaveSoaking || r1 != 0 {
					t.Fatalf("normal change: pilot %s, r1 jobs %d; want soaking, 0", pilot.State, r1)
				}
				return
			}
			if pilot.State != WavePassed || !strings.Contains(pilot.Reason, "emergency: no soak") || r1 != 1 {
				t.Fatalf("emergency: pilot %s (%s), r1 jobs %d; want passed saying emergency: no soak, and r1's job out", pilot.State, pilot.Reason, r1)
			}
		})
	}
}

// TestRolloutManualRollback: rolling back a change applied by hand opens
// a manual rollback task for each manual item recorded done (none for
// one that failed), for the rollback plan's owner, with the previous
// versions and the plan's steps; the rollout stays rolling back and the
// change halted until every task has an outcome, each logged and
// audited; a failed one halts the rollout naming the asset, and rolling
// back again reopens it.
func TestRolloutManualRollback(t *testing.T) {
	setup := func(t *testing.T, assets map[string]bool) (*world, Rollout) {
		w := newWorld(t, rolloutPolicy(t, oneRing), start2026)
		var ids []string
		for _, id := range []string{"s1", "m1", "m2", "m3"} {
			if agent, ok := assets[id]; ok {
				w.asset(id, "A", false, agent)
				ids = append(ids, id)
			}
		}
		c := w.change("c1", change.Normal, change.Scheduled, ids)
		c.RollbackPlan = change.RollbackPlan{Owner: "it-technician", Triggers: []string{"LIS errors"},
			Steps: []string{"stop the LIS interface", "reinstall the previous package", "restart and check QC"}}
		w.changes.byID["c1"] = c
		return w, w.start("c1")
	}
	record := func(t *testing.T, w *world, ro Rollout, id, outcome string) Rollout {
		t.Helper()
		got, err := w.eng.RecordManual(w.ctx, operator, ro.ID, w.item(w.get(ro.ID), id, ItemManual).ID, outcome, "by hand: "+outcome)
		if err != nil {
			t.Fatalf("RecordManual(%s, %s): %v", id, outcome, err)
		}
		return got
	}
	opened := func(t *testing.T, w *world, id string) LogEntry {
		t.Helper()
		log, _ := w.store.DeploymentLog(w.ctx, "c1", id)
		for _, e := range log {
			if e.Event == EventRollback {
				return e
			}
		}
		t.Fatalf("%s's deployment log has no rollback entry", id)
		return LogEntry{}
	}

	t.Run("operator rollback", func(t *testing.T) {
		w, ro := setup(t, map[string]bool{"s1": true, "m1": false, "m2": false})
		w.report("s1", agentapi.JobInstall, fleet.JobSucceeded)
		record(t, w, ro, "m1", ManualDone)
		ro = record(t, w, ro, "m2", ManualFailed)
		ro, err := w.eng.RollBack(w.ctx, operator, ro.ID, "LIS errors after the update")
		if err != nil {
			t.Fatal(err)
		}
		if ro.State != RolloutRollingBack {
			t.Fatalf("RollBack = %s; want rolling_back", ro.State)
		}
		if it := w.item(ro, "m1", ItemManual); it.RollbackState != RollbackQueued {
			t.Errorf("m1 (done by hand) rollback = %q; want queued", it.RollbackState)
		}
		if it := w.item(ro, "m2", ItemManual); it.RollbackState != RollbackNone {
			t.Errorf("m2 (failed, not applied) rollback = %q; want none", it.RollbackState)
		}
		e := opened(t, w, "m1")
		for _, want := range []string{"it-technician", "openssl to 3.0.11-1~deb12u2", "1. stop the LIS interface", "3. restart and check QC"} {
			if !strings.Contains(e.Detail, want) {
				t.Errorf("m1's rollback task %q does not say %q", e.Detail, want)
			}
		}
		if recs := w.store.auditsOf("rollout.manual_rollback_open"); len(recs) != 1 || recs[0].Actor.ID != operator.Actor.ID {
			t.Errorf("rollback tasks opened audited %+v; want one by the operator", recs)
		}

		// The agent's rollback alone does not roll the change back.
		w.report("s1", agentapi.JobRollback, fleet.JobSucceeded)
		w.clk.add(time.Minute)
		w.tick()
		if ro = w.get(ro.ID); ro.State != RolloutRollingBack || w.changes.state("c1") != change.Halted {
			t.Fatalf("with m1's task open: rollout %s, change %s; want rolling_back, halted", ro.State, w.changes.state("c1"))
		}

		// A failed manual rollback halts it naming the asset; rolling back
		// again reopens the task.
		ro = record(t, w, ro, "m1", ManualFailed)
		if ro.State != RolloutHalted || !strings.Contains(ro.Reason, "host-m1") || w.item(ro, "m1", ItemManual).RollbackState != RollbackFailed {
			t.Fatalf("after a failed manual rollback: %s (%s); want halted naming host-m1", ro.State, ro.Reason)
		}
		if ro, err = w.eng.RollBack(w.ctx, operator, ro.ID, "second attempt with the vendor"); err != nil {
			t.Fatal(err)
		}
		if it := w.item(ro, "m1", ItemManual); it.RollbackState != RollbackQueued || ro.State != RolloutRollingBack {
			t.Fatalf("after rolling back again: rollout %s, m1 rollback %q; want rolling_back, queued", ro.State, it.RollbackState)
		}
		ro = record(t, w, ro, "m1", ManualDone)
		if ro.State != RolloutRolledBack || w.changes.state("c1") != change.RolledBack {
			t.Errorf("after the manual rollback: rollout %s, change %s; want rolled_back both", ro.State, w.changes.state("c1"))
		}
		if it := w.item(ro, "m1", ItemManual); it.RollbackState != RollbackDone || it.State != ItemDone || it.Note != "by hand: done" {
			t.Errorf("m1 = %s, rollback %q, note %q; want done, rolled back, its install note kept", it.State, it.RollbackState, it.Note)
		}
		var events []string
		log, _ := w.store.DeploymentLog(w.ctx, "c1", "m1")
		for _, e := range log {
			if e.Event == EventRolledBack || e.Event == EventRollbackKO {
				events = append(events, e.Event+" by "+e.Actor+": "+e.Detail)
			}
		}
		want := []string{EventRollbackKO + " by Olga Operator: by hand: failed", EventRolledBack + " by Olga Operator: by hand: done"}
		if diff := cmp.Diff(want, events); diff != "" {
			t.Errorf("m1's rollback outcomes in the log (-want +got):\n%s", diff)
		}
		if recs := w.store.auditsOf("rollout.manual_rollback"); len(recs) != 2 || recs[1].Reason != "by hand: done" {
			t.Errorf("manual rollback outcomes audited %+v; want 2 with the notes", recs)
		}
	})

	t.Run("automatic rollback on a gate halt", func(t *testing.T) {
		w, ro := setup(t, map[string]bool{"m1": false, "m2": false, "m3": false})
		record(t, w, ro, "m1", ManualDone)
		record(t, w, ro, "m2", ManualFailed)
		ro = record(t, w, ro, "m3", ManualFailed)
		if ro.State != RolloutRollingBack || w.changes.state("c1") != change.Halted {
			t.Fatalf("after the gate halted: rollout %s (%s), change %s; want rolling_back, halted", ro.State, ro.Reason, w.changes.state("c1"))
		}
		if e := opened(t, w, "m1"); e.Actor != Engine.Actor.Name || !strings.Contains(e.Detail, "auto_on_halt") {
			t.Errorf("m1's rollback task opened by %q (%s); want the engine, saying why", e.Actor, e.Detail)
		}
		w.clk.add(time.Hour)
		w.tick()
		if st := w.get(ro.ID).State; st != RolloutRollingBack {
			t.Fatalf("an hour later the rollout is %s; want still rolling_back", st)
		}
		ro = record(t, w, ro, "m1", ManualDone)
		if ro.State != RolloutRolledBack || w.changes.state("c1") != change.RolledBack {
			t.Errorf("rollout %s, change %s; want rolled_back both", ro.State, w.changes.state("c1"))
		}
	})
}

// TestRolloutManualEarly: a manual outcome recorded before the task's
// planned start is accepted, and the deployment log and the audit trail
// say so.
func TestRolloutManualEarly(t *testing.T) {
	w := newWorld(t, rolloutPolicy(t, oneRing), start2026) // Thursday
	w.asset("m1", "A", false, false)
	a := w.store.assets["m1"]
	a.Window = "servers-weekly" // Sunday 02:00–06:00
	w.store.assets["m1"] = a
	w.change("c1", change.Normal, change.Scheduled, []string{"m1"})
	ro := w.start("c1")
	it := w.item(ro, "m1", ItemManual)
	if it.PlannedStart == nil || !it.PlannedStart.After(w.clk.now()) {
		t.Fatalf("m1 planned start = %v; want after %s", it.PlannedStart, w.clk.now())
	}
	if _, err := w.eng.RecordManual(w.ctx, operator, ro.ID, it.ID, ManualDone, "done on Thursday, the ward was empty"); err != nil {
		t.Fatal(err)
	}
	log, _ := w.store.DeploymentLog(w.ctx, "c1", "m1")
	e := log[len(log)-1]
	if want := "recorded before its planned start " + it.PlannedStart.Format(time.RFC3339); e.Event != EventManualDone || e.Deviation != want {
		t.Errorf("log entry %s deviation %q; want %s with %q", e.Event, e.Deviation, EventManualDone, want)
	}
	if recs := w.store.auditsOf("rollout.manual_task"); len(recs) != 1 || recs[0].After.(map[string]any)["before_planned_start"] != true {
		t.Errorf("manual outcome audited %+v; want it marked before_planned_start", recs)
	}
}
