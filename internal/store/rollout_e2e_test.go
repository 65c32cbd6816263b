package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/agentsim"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/deploy/deploytest"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// rolloutPolicy is the shipped policy with a daily clinic window and three
// rings: a pilot group (gate: 3 successes, 80 %, 1 h soak, halt above
// 25 % failures, 2 jobs at once per site), a ring no simulated host
// joins (its wave is skipped) and everything else.
func rolloutPolicy(t testing.TB, pilotGroup string) []byte {
	t.Helper()
	src, err := os.ReadFile("../policy/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	rings := fmt.Sprintf(`rings:
  - name: pilot
    select: '%q in asset.groups'
    min_success: 3
    success_rate: 0.8
    soak: 1h
    halt_failure_rate: 0.25
    max_concurrent: 2
  - name: clinical
    select: 'asset.patient_safety_impact == "high"'
    min_success: 1
    success_rate: 1
    soak: 0
    halt_failure_rate: 0
    max_concurrent: 1
  - name: rest
    min_success: 1
    success_rate: 1
    soak: 0
    halt_failure_rate: 0.5
    max_concurrent: 0

testing:`, pilotGroup)
	s = regexp.MustCompile(`(?s)\nrings:.*?\ntesting:`).ReplaceAllString(s, "\n"+rings)
	s = strings.Replace(s, "maintenance_windows:\n", `maintenance_windows:
  - name: clinic-hours
    description: Daily clinic window for the rollout test.
    schedule: FREQ=DAILY
    start: "00:00"
    duration: 23h
    time_zone: UTC
`, 1)
	return []byte(s)
}

// rolloutWorld is one server: real store, fleet, change control and the
// agent protocol handler on an httptest server, all on one moving clock.
type rolloutWorld struct {
	db       *store.DB
	clk      *changeClock
	fleet    *fleet.Service
	changes  *change.Service
	policies *policy.Service
	rollouts *deploy.Rollouts
	inv      *inventory.Service
	url      string
	pilot    string
	rest     string
	log      *slog.Logger
}

func newRolloutWorld(t testing.TB, db *store.DB) *rolloutWorld {
	t.Helper()
	ctx := context.Background()
	clk := &changeClock{t: time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC)}
	w := &rolloutWorld{db: db, clk: clk, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w.inv = inventory.NewService(db.Inventory(), clk.now)
	pg, err := w.inv.CreateGroup(ctx, admin, inventory.Group{Name: "pilot"})
	if err != nil {
		t.Fatal(err)
	}
	rg, err := w.inv.CreateGroup(ctx, admin, inventory.Group{Name: "clinic"})
	if err != nil {
		t.Fatal(err)
	}
	w.pilot, w.rest = pg.ID, rg.ID
	w.policies = policy.NewService(db.Policies(), clk.now)
	if _, err := w.policies.Apply(ctx, admin, rolloutPolicy(t, pg.ID), "rollout test rings"); err != nil {
		t.Fatalf("apply policy: %v", err)
	}
	w.changes = change.NewService(db.Changes(), w.policies, db.Risk(), clk.now)
	kick := &kicker{}
	w.fleet = fleet.NewService(db.Fleet(), fleet.Options{Log: w.log, Now: clk.now, Listener: kick})
	w.rollouts = deploy.NewRollouts(db.Rollouts(), w.changes, w.fleet, w.policies,
		deploy.RolloutOptions{Now: clk.now, Log: w.log, JobDuration: 10 * time.Minute})
	kick.r = w.rollouts
	srv := httptest.NewServer(agentserver.Handler(w.fleet, w.log))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

type kicker struct{ r *deploy.Rollouts }

func (k *kicker) InventoryChanged(ctx context.Context, id string) { k.r.InventoryChanged(ctx, id) }

// sim starts simulated agents enrolled into group with the clinic window;
// hold, if not nil, keeps them from checking in until it is closed.
func (w *rolloutWorld) sim(t *testing.T, ctx context.Context, wg *sync.WaitGroup, prefix, group string, hosts int, failure float64, hold <-chan struct{}) <-chan []agentsim.Host {
	t.Helper()
	var tokens []string
	for i := 0; i < hosts; i++ {
		s, _, err := w.fleet.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: prefix, Groups: []string{group}, MaintenanceWindow: "clinic-hours"})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, s)
	}
	enrolled := make(chan []agentsim.Host, 1)
	wg.Go(func() {
		_, err := agentsim.Run(ctx, agentsim.Options{Server: w.url, Hosts: hosts, HostPrefix: prefix, EnrollmentTokens: tokens,
			CheckInInterval: 15 * time.Millisecond, Ramp: 15 * time.Millisecond, FailureRate: failure, Seed: 11,
			PackagesFrom: "../agentsim/testdata/debian12-dpkg-status", Log: w.log, Now: w.clk.now,
			Enrolled: func(ctx context.Context, hs []agentsim.Host) error {
				enrolled <- hs
				if hold != nil {
					select {
					case <-hold:
					case <-ctx.Done():
					}
				}
				return nil
			}})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agentsim %s: %v", prefix, err)
		}
	})
	return enrolled
}

// scheduledChange drives a normal change on both groups to scheduled, the
// way people would: created, tested, approved by two, scheduled.
func (w *rolloutWorld) scheduledChange(t testing.TB) change.Change {
	t.Helper()
	ctx := context.Background()
	pol, _, err := w.policies.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.changes.Create(ctx, tech, change.Change{Title: "openssl 3.0.16", Type: change.Normal,
		Targets:        change.Targets{Groups: []string{w.pilot, w.rest}},
		Patches:        []change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "3.0.16-1~deb12u1"}},
		TestProtocol:   allCases(pol),
		RollbackPlan:   change.RollbackPlan{Triggers: []string{"A test case fails"}, Steps: []string{"Downgrade openssl"}, Owner: "it-technician"},
		PlannedWindows: []change.PlannedWindow{{Window: "clinic-hours"}}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c, err = w.changes.Submit(ctx, tech, c.ID, change.Step{Why: "ready"}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if c, _, err = w.changes.Approve(ctx, itMgr, c.ID, change.Decision{Revision: c.Revision}); err != nil {
		t.Fatal(err)
	}
	if c, _, err = w.changes.Approve(ctx, secOff, c.ID, change.Decision{Revision: c.Revision}); err != nil || c.State != change.Approved {
		t.Fatalf("Approve = %s, %v", c.State, err)
	}
	run := change.TestRun{}
	for _, s := range c.TestProtocol {
		run.Results = append(run.Results, change.CaseResult{CaseID: s.CaseID, Result: change.ResultPass})
	}
	if _, err := w.changes.RecordTestRun(ctx, tech, c.ID, run); err != nil {
		t.Fatal(err)
	}
	if c, err = w.changes.Schedule(ctx, tech, c.ID, nil, change.Step{Why: "clinic window"}); err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	return c
}

// until ticks the engine, moving the clock 30 s a round, until cond holds
// (or fails the test after 60 s of real time).
func (w *rolloutWorld) until(t *testing.T, what string, cond func(deploy.Rollout) bool, id string) deploy.Rollout {
	t.Helper()
	return deploytest.TickUntil(t, context.Background(), w.rollouts, id, what, 60*time.Second, cond, func(deploy.Rollout) {
		w.clk.advance(30 * time.Second)
		time.Sleep(10 * time.Millisecond)
	})
}

func waitInventories(t *testing.T, w *rolloutWorld, hosts []agentsim.Host) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hosts {
		for {
			a, err := w.fleet.Agent(context.Background(), h.AgentID)
			if err != nil {
				t.Fatal(err)
			}
			if a.InventoryAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s sent no inventory", h.Hostname)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// assertJobsInWindows checks every job of the change: a job that is not
// an approved emergency's starts where the calendar allows a start and
// ends by its window's end.
func assertJobsInWindows(t *testing.T, w *rolloutWorld, changeID string) []fleet.Job {
	t.Helper()
	ctx := context.Background()
	page, err := w.fleet.Jobs(ctx, fleet.JobFilter{ChangeID: changeID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	pol, _, err := w.policies.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := deploy.NewCalendar(pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		if j.Emergency {
			t.Errorf("job %s is marked emergency on a normal change", j.ID)
		}
		a, err := w.inv.Asset(ctx, j.AssetID)
		if err != nil {
			t.Fatal(err)
		}
		slot, err := cal.NextSlot(deploy.Asset{ID: a.ID, Window: a.MaintenanceWindow}, policy.ChangeNormal, j.NotBefore, time.Minute)
		if err != nil || !slot.Start.Equal(j.NotBefore) || j.Deadline.After(slot.End) {
			t.Errorf("job %s (%s) runs %s – %s; the window allows %s – %s (%v)", j.ID, j.Kind, j.NotBefore, j.Deadline, slot.Start, slot.End, err)
		}
	}
	return page.Jobs
}

func rolloutAudit(t *testing.T, db *store.DB) map[string]int {
	t.Helper()
	signer := auditSigner(t)
	p, err := audit.NewService(db.Audit(), signer.Verifier(), nil).List(context.Background(), audit.Query{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range p.Entries {
		out[e.Action]++
	}
	return out
}

// TestRolloutEndToEnd is issue 6's must-hold test with simulated agents
// on the real agent protocol handler and a real store, on both engines:
// a pilot that succeeds opens the next wave and the rollout completes; a
// pilot whose failures pass the gate halts the rollout, cancels the jobs
// still queued and sends rollback jobs to the assets it changed. Every
// step is in the audit trail, which verifies, and no job is ever placed
// outside its window.
func TestRolloutEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated agents")
	}
	t.Run("pilot passes", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, db *store.DB) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			w := newRolloutWorld(t, db)
			pilots := <-w.sim(t, ctx, &wg, "pilot", w.pilot, 3, 0, nil)
			rest := <-w.sim(t, ctx, &wg, "ward", w.rest, 3, 0, nil)
			waitInventories(t, w, append(pilots, rest...))
			c := w.scheduledChange(t)
			ro, err := w.rollouts.Start(ctx, tech, c.ID, "clinic window open")
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if got := []deploy.WaveState{ro.Waves[0].State, ro.Waves[1].State, ro.Waves[2].State}; !slices.Equal(got, []deploy.WaveState{deploy.WaveRunning, deploy.WaveSkipped, deploy.WavePending}) {
				t.Fatalf("waves after start = %v; want pilot running, clinical skipped, rest pending", got)
			}
			// Throttling: two of the three pilot jobs go out at first.
			queued := 0
			for _, it := range ro.Waves[0].Items {
				if it.JobID != "" {
					queued++
				}
			}
			if queued != 2 {
				t.Errorf("%d pilot jobs queued at start; want 2 (max_concurrent 2 on one site)", queued)
			}
			if jobs := assertJobsInWindows(t, w, c.ID); len(jobs) != 2 {
				t.Errorf("%d jobs after start; want only the first wave's (2)", len(jobs))
			}
			ro = w.until(t, "the pilot to pass and the next wave to start", func(ro deploy.Rollout) bool {
				return ro.Waves[0].State == deploy.WavePassed && ro.Waves[2].State != deploy.WavePending
			}, ro.ID)
			ro = w.until(t, "the rollout to complete", func(ro deploy.Rollout) bool { return ro.State == deploy.RolloutCompleted }, ro.ID)
			if got, _ := w.changes.Get(ctx, c.ID); got.State != change.Completed {
				t.Errorf("change is %s; want completed", got.State)
			}
			jobs := assertJobsInWindows(t, w, c.ID)
			if len(jobs) != 6 {
				t.Errorf("%d jobs; want one per asset (6)", len(jobs))
			}
			// Verification: every asset converges once its next inventory
			// shows the target version.
			deadline := time.Now().Add(30 * time.Second)
			for {
				nc, err := w.rollouts.NotConverged(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(nc) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not converged: %d, first %s: %s", len(nc), nc[0].Item.AssetName, nc[0].Reason)
				}
				w.clk.advance(30 * time.Second)
				time.Sleep(10 * time.Millisecond)
			}
			log, err := w.rollouts.DeploymentLog(ctx, c.ID, pilots[0].AssetID)
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for _, e := range log {
				events = append(events, e.Event)
				if e.Event == deploy.EventSucceeded && (len(e.Steps) == 0 || e.JobID == "" || !strings.Contains(e.Detail, "3.0.16-1~deb12u1")) {
					t.Errorf("succeeded entry = %+v; want the job, its steps and the installed version", e)
				}
			}
			for _, want := range []string{deploy.EventPlanned, deploy.EventJobQueued, deploy.EventSucceeded} {
				if !slices.Contains(events, want) {
					t.Errorf("deployment log of %s = %v; want %s", pilots[0].Hostname, events, want)
				}
			}
			acts := rolloutAudit(t, db)
			for _, a := range []string{"rollout.start", "rollout.wave_start", "rollout.gate", "rollout.wave_passed", "rollout.complete", "job.create", "job.result"} {
				if acts[a] == 0 {
					t.Errorf("no %s in the audit trail (%v)", a, acts)
				}
			}
			if acts["rollout.wave_start"] != 2 || acts["rollout.wave_passed"] != 2 {
				t.Errorf("audit: %d wave starts and %d passed waves; want 2 each (the skipped ring never starts)", acts["rollout.wave_start"], acts["rollout.wave_passed"])
			}
			verifyAudit(t, db)
		})
	})
	t.Run("pilot failures halt and roll back", func(t *testing.T) {
		storetest.Each(t, func(t *testing.T, db *store.DB) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			never := make(chan struct{})
			release := make(chan struct{})
			defer func() { cancel(); wg.Wait() }()
			w := newRolloutWorld(t, db)
			good := <-w.sim(t, ctx, &wg, "pilot-ok", w.pilot, 3, 0, nil)
			<-w.sim(t, ctx, &wg, "pilot-bad", w.pilot, 2, 1, release)
			offline := <-w.sim(t, ctx, &wg, "pilot-off", w.pilot, 1, 0, never)
			rest := <-w.sim(t, ctx, &wg, "ward", w.rest, 2, 0, nil)
			waitInventories(t, w, append(good, rest...))
			c := w.scheduledChange(t)
			ro, err := w.rollouts.Start(ctx, tech, c.ID, "clinic window open")
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			goodIDs := map[string]bool{}
			for _, h := range good {
				goodIDs[h.AssetID] = true
			}
			ro = w.until(t, "the good pilots to succeed", func(ro deploy.Rollout) bool {
				n := 0
				for _, it := range ro.Waves[0].Items {
					if goodIDs[it.AssetID] && it.State == deploy.ItemSucceeded {
						n++
					}
				}
				return n == 3
			}, ro.ID)
			if ro.Waves[0].State == deploy.WavePassed {
				t.Fatalf("the pilot passed with 3 of 6: %s", deploytest.Describe(ro))
			}
			close(release)
			ro = w.until(t, "the rollout to halt and roll back", func(ro deploy.Rollout) bool {
				return ro.State == deploy.RolloutRolledBack || (ro.State == deploy.RolloutHalted && strings.Contains(ro.Reason, "rollback failed"))
			}, ro.ID)
			if ro.State != deploy.RolloutRolledBack {
				t.Fatalf("rollout = %s (%s); want rolled back: %s", ro.State, ro.Reason, deploytest.Describe(ro))
			}
			if got, _ := w.changes.Get(ctx, c.ID); got.State != change.RolledBack {
				t.Errorf("change is %s; want rolled_back", got.State)
			}
			if ro.Waves[0].State != deploy.WaveRolledBack || ro.Waves[0].Verdict != deploy.Halt || ro.Waves[2].StartedAt != nil {
				t.Errorf("waves = %s; want the pilot rolled back after a halt, the rest never started", deploytest.Describe(ro))
			}
			for _, it := range ro.Waves[0].Items {
				switch {
				case goodIDs[it.AssetID]:
					if it.RollbackJobID == "" || it.RollbackState != deploy.RollbackDone {
						t.Errorf("good pilot %s: rollback job %q, %s; want rolled back", it.AssetName, it.RollbackJobID, it.RollbackState)
					}
				case it.AssetID == offline[0].AssetID:
					j, err := w.fleet.Job(ctx, it.JobID)
					if err != nil {
						t.Fatal(err)
					}
					if it.State != deploy.ItemCancelled || j.State != fleet.JobCancelled {
						t.Errorf("offline pilot: item %s, job %s; want both cancelled", it.State, j.State)
					}
				default:
					if it.State != deploy.ItemFailed {
						t.Errorf("bad pilot %s is %s; want failed", it.AssetName, it.State)
					}
				}
			}
			jobs := assertJobsInWindows(t, w, c.ID)
			rollbacks := 0
			for _, j := range jobs {
				if j.Kind == agentapi.JobRollback {
					rollbacks++
					if j.Packages[0].TargetVersion == "" || j.Packages[0].TargetVersion == "3.0.16-1~deb12u1" {
						t.Errorf("rollback job %s goes to %q; want the previous version", j.ID, j.Packages[0].TargetVersion)
					}
				}
				if j.AssetID == rest[0].AssetID || j.AssetID == rest[1].AssetID {
					t.Errorf("job %s went to the later ring after the halt", j.ID)
				}
			}
			if rollbacks != 3 {
				t.Errorf("%d rollback jobs; want 3 (one per changed pilot)", rollbacks)
			}
			// The hosts' next inventories show the previous versions again.
			deadline := time.Now().Add(30 * time.Second)
			for _, h := range good {
				for {
					a, err := w.inv.Asset(ctx, h.AssetID)
					if err != nil {
						t.Fatal(err)
					}
					i := slices.IndexFunc(a.Software, func(s inventory.Software) bool { return s.Name == "openssl" })
					if i >= 0 && a.Software[i].Version != "3.0.16-1~deb12u1" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s still reports openssl 3.0.16-1~deb12u1 after the rollback", h.Hostname)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			nc, err := w.rollouts.NotConverged(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(nc) != 8 {
				t.Errorf("%d not converged; want every asset (rolled back, failed, cancelled or never reached)", len(nc))
			}
			acts := rolloutAudit(t, db)
			for _, a := range []string{"rollout.start", "rollout.wave_start", "rollout.gate", "rollout.halt", "rollout.rollback", "rollout.rolled_back", "job.cancel"} {
				if acts[a] == 0 {
					t.Errorf("no %s in the audit trail (%v)", a, acts)
				}
			}
			verifyAudit(t, db)
			close(never)
		})
	})
}
