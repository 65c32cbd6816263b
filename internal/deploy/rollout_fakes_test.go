package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/policy"
)

// This file holds the hand-written fakes the engine's unit tests run on:
// an in-memory RolloutStore with the SQL store's lease and revision rules,
// change control that follows the real state machine and completion guard,
// a job queue whose job states the test sets, and one moving clock.

// clock is the injected clock every fake and the engine read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// clone deep-copies through JSON, the way a store hands out copies: the
// engine must never see the test's (or another replica's) memory.
func clone[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

type leaseRow struct {
	owner string
	until time.Time
}

// fakeStore is RolloutStore in memory.
type fakeStore struct {
	mu        sync.Mutex
	rollouts  map[string]Rollout
	order     []string
	logs      []LogEntry
	audits    []audit.Record
	assets    map[string]AssetInfo
	facts     map[string]policy.AssetFacts
	installed map[string]map[string]InstalledPackage
	leases    map[string]leaseRow
	// lists counts ListRollouts calls: one per Tick.
	lists int
}

func newFakeStore() *fakeStore {
	return &fakeStore{rollouts: map[string]Rollout{}, assets: map[string]AssetInfo{}, facts: map[string]policy.AssetFacts{},
		installed: map[string]map[string]InstalledPackage{}, leases: map[string]leaseRow{}}
}

func (f *fakeStore) GetRollout(_ context.Context, id string) (Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ro, ok := f.rollouts[id]
	if !ok {
		return Rollout{}, errs.E(errs.NotFound, "no rollout %s", id)
	}
	return clone(ro), nil
}

func (f *fakeStore) RolloutByChange(ctx context.Context, changeID string) (Rollout, error) {
	f.mu.Lock()
	var id string
	for _, rid := range f.order {
		if f.rollouts[rid].ChangeID == changeID {
			id = rid
		}
	}
	f.mu.Unlock()
	if id == "" {
		return Rollout{}, errs.E(errs.NotFound, "change %s has no rollout", changeID)
	}
	return f.GetRollout(ctx, id)
}

func (f *fakeStore) ListRollouts(_ context.Context, flt RolloutFilter) ([]Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var out []Rollout
	for i := len(f.order) - 1; i >= 0; i-- {
		ro := f.rollouts[f.order[i]]
		if (flt.ChangeID != "" && ro.ChangeID != flt.ChangeID) || (len(flt.States) > 0 && !slices.Contains(flt.States, ro.State)) {
			continue
		}
		ro = clone(ro)
		ro.Waves = nil
		out = append(out, ro)
	}
	return out, nil
}

func (f *fakeStore) DeploymentLog(_ context.Context, changeID, assetID string) ([]LogEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []LogEntry
	for _, e := range f.logs {
		if e.ChangeID == changeID && (assetID == "" || e.AssetID == assetID) {
			out = append(out, clone(e))
		}
	}
	return out, nil
}

func (f *fakeStore) AssetInfo(_ context.Context, ids []string) ([]AssetInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []AssetInfo
	for _, id := range ids {
		a, ok := f.assets[id]
		if !ok {
			return nil, errs.E(errs.NotFound, "no asset %s", id)
		}
		out = append(out, a)
	}
	return out, nil
}

func (f *fakeStore) Installed(_ context.Context, assetIDs, names []string) (map[string]map[string]InstalledPackage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]InstalledPackage{}
	for _, id := range assetIDs {
		for _, n := range names {
			if p, ok := f.installed[id][n]; ok {
				if out[id] == nil {
					out[id] = map[string]InstalledPackage{}
				}
				out[id][n] = p
			}
		}
	}
	return out, nil
}

func (f *fakeStore) TargetFacts(_ context.Context, t change.Targets) ([]policy.AssetFacts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []policy.AssetFacts
	for _, id := range t.Assets {
		a, ok := f.facts[id]
		if !ok {
			return nil, errs.E(errs.NotFound, "no asset %s", id)
		}
		out = append(out, a)
	}
	return out, nil
}

// TransactRollout runs fn on a snapshot it restores when fn fails, as a
// rolled-back transaction would.
func (f *fakeStore) TransactRollout(ctx context.Context, fn func(RolloutTx) error) error {
	f.mu.Lock()
	saved, order, logs, audits := clone(f.rollouts), slices.Clone(f.order), slices.Clone(f.logs), slices.Clone(f.audits)
	f.mu.Unlock()
	if err := fn(fakeTx{f}); err != nil {
		f.mu.Lock()
		f.rollouts, f.order, f.logs, f.audits = saved, order, logs, audits
		f.mu.Unlock()
		return err
	}
	return nil
}

// ClaimRollout and RenewRollout follow the SQL store's statements.
func (f *fakeStore) ClaimRollout(_ context.Context, id, owner string, now, until time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[id]
	if l.owner == "" || l.owner == owner || l.until.Before(now) {
		f.leases[id] = leaseRow{owner, until}
		return true, nil
	}
	return false, nil
}

func (f *fakeStore) RenewRollout(_ context.Context, id, owner string, until time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leases[id].owner != owner {
		return false, nil
	}
	f.leases[id] = leaseRow{owner, until}
	return true, nil
}

func (f *fakeStore) ReleaseRollout(_ context.Context, id, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leases[id].owner == owner {
		delete(f.leases, id)
	}
	return nil
}

// auditsOf returns the audit records of one action, in order.
func (f *fakeStore) auditsOf(action string) []audit.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []audit.Record
	for _, r := range f.audits {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// fakeTx is the write side; it writes straight into the store, which
// TransactRollout restores on failure.
type fakeTx struct{ *fakeStore }

func (t fakeTx) AppendAudit(_ context.Context, rec audit.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.audits = append(t.audits, rec)
	return nil
}

func (t fakeTx) LockRollout(ctx context.Context, id string) (Rollout, error) {
	return t.GetRollout(ctx, id)
}

func (t fakeTx) InsertRollout(_ context.Context, r Rollout) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.rollouts[r.ID]; ok {
		return errs.E(errs.Conflict, "rollout %s exists", r.ID)
	}
	t.rollouts[r.ID] = clone(r)
	t.order = append(t.order, r.ID)
	return nil
}

func (t fakeTx) UpdateRollout(_ context.Context, r Rollout) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.rollouts[r.ID]
	if !ok {
		return errs.E(errs.NotFound, "no rollout %s", r.ID)
	}
	if cur.Revision != r.Revision-1 {
		return errs.E(errs.Conflict, "rollout %s is at revision %d, not %d", r.ID, cur.Revision, r.Revision-1)
	}
	waves := cur.Waves
	cur = clone(r)
	cur.Waves = waves // the row only: waves and items are written on their own
	t.rollouts[r.ID] = cur
	return nil
}

func (t fakeTx) UpdateWave(_ context.Context, rolloutID string, w Wave) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ro, ok := t.rollouts[rolloutID]
	if !ok || w.Index >= len(ro.Waves) {
		return errs.E(errs.NotFound, "no wave %d of rollout %s", w.Index, rolloutID)
	}
	items := ro.Waves[w.Index].Items
	nw := clone(w)
	nw.Items = items
	ro.Waves[w.Index] = nw
	return nil
}

func (t fakeTx) UpdateItem(_ context.Context, it Item) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	ro, ok := t.rollouts[it.RolloutID]
	if !ok || it.Wave >= len(ro.Waves) || it.Seq >= len(ro.Waves[it.Wave].Items) || ro.Waves[it.Wave].Items[it.Seq].ID != it.ID {
		return errs.E(errs.NotFound, "no item %s", it.ID)
	}
	ro.Waves[it.Wave].Items[it.Seq] = clone(it)
	return nil
}

func (t fakeTx) AddLog(_ context.Context, e LogEntry) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.ID = int64(len(t.logs) + 1)
	t.logs = append(t.logs, clone(e))
	return nil
}

// changeMove is one move the fake change service made.
type changeMove struct {
	Act  change.Action
	To   change.State
	By   string
	Why  string
	Fail bool
}

// fakeChanges is change control: the real state machine (change.Next) and
// the real completion guard for an emergency's post-incident review.
type fakeChanges struct {
	mu    sync.Mutex
	byID  map[string]change.Change
	moves []changeMove
}

func (f *fakeChanges) Get(_ context.Context, id string) (change.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return change.Change{}, errs.E(errs.NotFound, "no change %s", id)
	}
	return clone(c), nil
}

func (f *fakeChanges) move(u change.User, id string, act change.Action, st change.Step) (change.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return change.Change{}, errs.E(errs.NotFound, "no change %s", id)
	}
	next, err := change.Next(c.State, act)
	if err == nil && act == change.ActComplete && c.Type == change.Emergency && (c.Emergency == nil || c.Emergency.PostIncidentReview == nil) {
		err = errs.E(errs.Conflict, "an emergency change needs its post-incident review recorded before it completes")
	}
	if err != nil {
		f.moves = append(f.moves, changeMove{Act: act, By: u.Actor.ID, Why: st.Why, Fail: true})
		return change.Change{}, err
	}
	c.State = next
	c.Revision++
	f.byID[id] = c
	f.moves = append(f.moves, changeMove{Act: act, To: next, By: u.Actor.ID, Why: st.Why})
	return clone(c), nil
}

func (f *fakeChanges) Start(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActStart, st)
}
func (f *fakeChanges) Halt(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActHalt, st)
}
func (f *fakeChanges) Resume(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActResume, st)
}
func (f *fakeChanges) RollBack(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActRollBack, st)
}
func (f *fakeChanges) Complete(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActComplete, st)
}
func (f *fakeChanges) Cancel(_ context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	return f.move(u, id, change.ActCancel, st)
}

func (f *fakeChanges) state(id string) change.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id].State
}

// fakeFleet is the job queue: it records every call (by which engine) and
// every created and cancelled job; the test sets job states.
type fakeFleet struct {
	mu      sync.Mutex
	now     func() time.Time
	jobs    []*fleet.JobDetail
	assetOf map[string]string // agent → asset
	calls   []string          // "who op"
	// onCreate, if set, runs after a job is created, outside the lock: a
	// slow call, or another replica acting meanwhile.
	onCreate func(fleet.Job)
}

func (f *fakeFleet) callsBy(who string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, who+" ") {
			out = append(out, c)
		}
	}
	return out
}

// fleetAs is one engine's view of the shared queue, so the test can tell
// which replica called.
type fleetAs struct {
	f   *fakeFleet
	who string
}

func (a fleetAs) record(op string) {
	a.f.mu.Lock()
	a.f.calls = append(a.f.calls, a.who+" "+op)
	a.f.mu.Unlock()
}

func (a fleetAs) CreateJob(ctx context.Context, actor audit.Actor, spec fleet.JobSpec) (fleet.Job, error) {
	jobs, err := a.CreateJobs(ctx, actor, []fleet.JobSpec{spec})
	if err != nil {
		return fleet.Job{}, err
	}
	return jobs[0], nil
}

// CreateJobs creates all the jobs or none, like the fleet's one
// transaction; onCreate runs once after the call, as a slow call would end.
func (a fleetAs) CreateJobs(_ context.Context, actor audit.Actor, specs []fleet.JobSpec) ([]fleet.Job, error) {
	a.record("create")
	f := a.f
	now := f.now()
	for _, spec := range specs {
		if spec.NotBefore == nil || spec.Deadline == nil {
			return nil, errs.E(errs.Invalid, "the engine must bound every job")
		}
		if !spec.Deadline.After(now) || !spec.Deadline.After(*spec.NotBefore) {
			return nil, errs.E(errs.Invalid, "deadline %s is past or before not_before", spec.Deadline)
		}
	}
	f.mu.Lock()
	var out []fleet.Job
	for _, spec := range specs {
		j := fleet.Job{ID: fmt.Sprintf("job-%d", len(f.jobs)+1), AgentID: spec.AgentID, AssetID: f.assetOf[spec.AgentID],
			ChangeID: spec.ChangeID, Kind: spec.Kind, Emergency: spec.Emergency, Packages: slices.Clone(spec.Packages),
			PreChecks: spec.PreChecks, NotBefore: spec.NotBefore.UTC().Truncate(time.Microsecond),
			Deadline: spec.Deadline.UTC().Truncate(time.Microsecond), State: fleet.JobQueued, CreatedBy: actor.ID, CreatedAt: now, UpdatedAt: now}
		f.jobs = append(f.jobs, &fleet.JobDetail{Job: j})
		out = append(out, j)
	}
	hook := f.onCreate
	f.mu.Unlock()
	if hook != nil {
		hook(out[len(out)-1])
	}
	return out, nil
}

func (a fleetAs) JobStatuses(_ context.Context, changeID string) ([]fleet.JobStatus, error) {
	a.record("list")
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	var out []fleet.JobStatus
	for _, d := range a.f.jobs {
		if j := d.Job; j.ChangeID == changeID {
			out = append(out, fleet.JobStatus{ID: j.ID, AgentID: j.AgentID, AssetID: j.AssetID, Kind: j.Kind, State: j.State, NotBefore: j.NotBefore})
		}
	}
	return out, nil
}

func (a fleetAs) Job(_ context.Context, id string) (fleet.JobDetail, error) {
	a.record("get")
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	for _, j := range a.f.jobs {
		if j.ID == id {
			return clone(*j), nil
		}
	}
	return fleet.JobDetail{}, errs.E(errs.NotFound, "no job %s", id)
}

func (a fleetAs) CancelJob(_ context.Context, actor audit.Actor, id, reason string) (fleet.Job, error) {
	a.record("cancel")
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	for _, j := range a.f.jobs {
		if j.ID != id {
			continue
		}
		if j.State != fleet.JobQueued && j.State != fleet.JobDelivered {
			return fleet.Job{}, errs.E(errs.Conflict, "job %s is %s", id, j.State)
		}
		now := a.f.now()
		j.State, j.Reason, j.UpdatedAt, j.FinishedAt = fleet.JobCancelled, reason, now, &now
		return j.Job, nil
	}
	return fleet.Job{}, errs.E(errs.NotFound, "no job %s", id)
}

// fakePolicies serves one compiled policy.
type fakePolicies struct{ pol *policy.Compiled }

func (p fakePolicies) Current(context.Context) (*policy.Compiled, policy.Version, error) {
	return p.pol, policy.Version{}, nil
}

// testRings is the default ring set of these tests: a pilot of tagged
// assets (gate: 2 successes, 60 %, 1 h soak, halt above 30 % failures)
// and the rest (1 success, 100 %, no soak, halt above 50 %).
const testRings = `
  - name: pilot
    select: '"pilot" in asset.tags'
    min_success: 2
    success_rate: 0.6
    soak: 1h
    halt_failure_rate: 0.3
    max_concurrent: 0
  - name: rest
    min_success: 1
    success_rate: 1
    soak: 0
    halt_failure_rate: 0.5
    max_concurrent: 0
`

// rolloutPolicy is the shipped policy with rings, a daily clinic window
// (00:00–23:00 UTC) and the given text replacements (old, new pairs).
func rolloutPolicy(t *testing.T, rings string, replace ...string) *policy.Compiled {
	t.Helper()
	src, err := os.ReadFile("../policy/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`(?s)\nrings:.*?\ntesting:`).ReplaceAllString(string(src), "\nrings:"+rings+"\ntesting:")
	s = strings.Replace(s, "maintenance_windows:\n", `maintenance_windows:
  - name: clinic-hours
    description: Daily clinic window for the rollout tests.
    schedule: FREQ=DAILY
    start: "00:00"
    duration: 23h
    time_zone: UTC
`, 1)
	for i := 0; i+1 < len(replace); i += 2 {
		if strings.Count(s, replace[i]) != 1 {
			t.Fatalf("rolloutPolicy: %q occurs %d times in the policy", replace[i], strings.Count(s, replace[i]))
		}
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	pol, err := policy.Load([]byte(s))
	if err != nil {
		t.Fatalf("load test policy: %v", err)
	}
	return pol
}

// Users of the tests.
var (
	operator = change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-olga", Name: "Olga Operator"}, Role: "operator"}
	viewer   = change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-vic", Name: "Vic Viewer"}, Role: "viewer"}
)

// world is one engine on the fakes.
type world struct {
	t       *testing.T
	ctx     context.Context
	clk     *clock
	store   *fakeStore
	changes *fakeChanges
	fleet   *fakeFleet
	pol     *policy.Compiled
	eng     *Rollouts
}

// start2026 is a Thursday with no freeze, inside the clinic window.
var start2026 = time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, pol *policy.Compiled, at time.Time) *world {
	t.Helper()
	clk := &clock{t: at}
	w := &world{t: t, ctx: context.Background(), clk: clk, store: newFakeStore(),
		changes: &fakeChanges{byID: map[string]change.Change{}},
		fleet:   &fakeFleet{now: clk.now, assetOf: map[string]string{}}, pol: pol}
	w.eng = w.engine("A")
	return w
}

// engine builds a Rollouts replica named who on the world's fakes.
func (w *world) engine(who string) *Rollouts {
	return NewRollouts(w.store, w.changes, fleetAs{w.fleet, who}, fakePolicies{w.pol},
		RolloutOptions{Now: w.clk.now, JobDuration: 30 * time.Minute, Owner: "replica-" + who, LeaseTTL: 3 * time.Minute})
}

// asset adds an asset at site, in the pilot ring when pilot, with an agent
// when agent, running openssl 3.0.11.
func (w *world) asset(id, site string, pilot, agent bool) {
	a := AssetInfo{ID: id, Name: "host-" + id, SiteID: site, TimeZone: "UTC", Window: "clinic-hours", Owner: "owner-" + id, UpdatedAt: w.clk.now()}
	if agent {
		a.AgentID = "ag-" + id
		w.fleet.assetOf[a.AgentID] = id
	}
	f := policy.AssetFacts{ID: id, Name: a.Name, Site: site}
	if pilot {
		f.Tags = []string{"pilot"}
	}
	w.store.assets[id], w.store.facts[id] = a, f
	w.store.installed[id] = map[string]InstalledPackage{"openssl": {Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12"}}
}

// change adds a change of typ in state st on the assets, patching openssl
// (and the extra patches).
func (w *world) change(id string, typ change.Type, st change.State, assets []string, extra ...change.Patch) change.Change {
	c := change.Change{ID: id, Title: "openssl " + id, Type: typ, State: st, Targets: change.Targets{Assets: assets},
		Patches:      append([]change.Patch{{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "3.0.16-1~deb12u1"}}, extra...),
		RollbackPlan: change.RollbackPlan{Owner: "it-technician"}, RequestedBy: "Tom Tech", Revision: 1}
	if typ == change.Emergency {
		c.Emergency = &change.EmergencyInfo{DeclaredAt: w.clk.now(), GoNoGoBy: w.clk.now().Add(4 * time.Hour), Justification: "KEV"}
	}
	w.changes.byID[id] = c
	return c
}

func (w *world) start(changeID string) Rollout {
	w.t.Helper()
	ro, err := w.eng.Start(w.ctx, operator, changeID, "go for the pilot")
	if err != nil {
		w.t.Fatalf("Start(%s): %v", changeID, err)
	}
	return ro
}

func (w *world) tick() {
	w.t.Helper()
	if err := w.eng.Tick(w.ctx); err != nil {
		w.t.Fatalf("Tick: %v", err)
	}
}

func (w *world) get(id string) Rollout {
	w.t.Helper()
	ro, err := w.store.GetRollout(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return ro
}

// item returns the asset's item of kind k.
func (w *world) item(ro Rollout, assetID string, k ItemKind) Item {
	w.t.Helper()
	for _, wv := range ro.Waves {
		for _, it := range wv.Items {
			if it.AssetID == assetID && it.Kind == k {
				return it
			}
		}
	}
	w.t.Fatalf("rollout has no %s item for asset %s", k, assetID)
	return Item{}
}

// jobsOf returns the asset's jobs of kind, oldest first.
func (w *world) jobsOf(assetID, kind string) []fleet.Job {
	w.fleet.mu.Lock()
	defer w.fleet.mu.Unlock()
	var out []fleet.Job
	for _, j := range w.fleet.jobs {
		if j.AssetID == assetID && j.Kind == kind {
			out = append(out, j.Job)
		}
	}
	return out
}

// report sets the state of the asset's newest job of kind, as an agent's
// result would.
func (w *world) report(assetID, kind string, st fleet.JobState) {
	w.t.Helper()
	w.fleet.mu.Lock()
	defer w.fleet.mu.Unlock()
	for i := len(w.fleet.jobs) - 1; i >= 0; i-- {
		j := w.fleet.jobs[i]
		if j.AssetID != assetID || j.Kind != kind {
			continue
		}
		now := w.clk.now()
		j.State, j.UpdatedAt, j.StartedAt = st, now, &now
		if st.Finished() {
			j.FinishedAt = &now
			inst := map[string]string{}
			for _, p := range j.Packages {
				inst[p.Name] = p.TargetVersion
			}
			j.Results = append(j.Results, fleet.Result{JobID: j.ID, Attempt: 1, Status: string(st), Installed: inst, ReceivedAt: now,
				Steps: []agentapi.Step{{Name: "install", OK: st == fleet.JobSucceeded}}})
		}
		return
	}
	w.t.Fatalf("asset %s has no %s job", assetID, kind)
}

// queued counts the jobs of kind waiting or running, per site.
func (w *world) live(kind string) map[string]int {
	w.fleet.mu.Lock()
	defer w.fleet.mu.Unlock()
	out := map[string]int{}
	for _, j := range w.fleet.jobs {
		if j.Kind == kind && (j.State == fleet.JobQueued || j.State == fleet.JobDelivered || j.State == fleet.JobRunning) {
			out[w.store.assets[j.AssetID].SiteID]++
		}
	}
	return out
}
