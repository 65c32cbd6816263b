//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/deploy/deploytest"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	pwmatch "github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// The people of the default policy, by the Patchward role its roles grant:
// a technician requests, the IT manager and the security officer approve.
var (
	rolloutTech   = change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-tech", Name: "tech"}, Role: "operator", PolicyRoles: []string{"it-technician"}}
	rolloutITMgr  = change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-itmgr", Name: "itmgr"}, Role: "admin", PolicyRoles: []string{"it-manager"}}
	rolloutSecOff = change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-secoff", Name: "secoff"}, Role: "approver", PolicyRoles: []string{"security-officer"}}
)

// rolloutVuln is the local advisory's vulnerability.
const rolloutVuln = "CVE-2026-49001"

// aheadClock is the real clock moved forward by what the test sets. The
// agent signs requests and checks its window by the host's clock, so the
// fleet service keeps real time; only the rollout engine and the change
// service run ahead, to end a ring's soak without waiting for it.
type aheadClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *aheadClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// reach moves the clock forward to a second past t (never back).
func (c *aheadClock) reach(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := time.Until(t) + time.Second; d > c.off {
		c.off = d
	}
}

// rematch is the server's inventory listener: the matcher re-evaluates a
// host whose agent sent a new inventory, as serve wires it.
type rematch struct {
	t        *testing.T
	findings *pwmatch.Service
}

func (r rematch) InventoryChanged(ctx context.Context, assetID string) {
	if _, err := r.findings.EvaluateHost(ctx, assetID); err != nil {
		r.t.Errorf("re-match asset %s after its new inventory: %v", assetID, err)
	}
}

// rolloutServer is the server side wired as cmd/patchward's buildApp does:
// real SQLite, inventory, matcher, feeds, policy, change control, fleet
// with policy windows, the rollout engine and the agent protocol handler.
type rolloutServer struct {
	db       *store.DB
	clk      *aheadClock
	inv      *inventory.Service
	findings *pwmatch.Service
	feeds    *feeds.Service
	fleet    *fleet.Service
	policies *policy.Service
	changes  *change.Service
	rollouts *deploy.Rollouts
	url      string
}

func newRolloutServer(t *testing.T) *rolloutServer {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := storetest.Open(t, store.SQLite, store.Options{})
	s := &rolloutServer{db: db, clk: &aheadClock{}}
	s.inv = inventory.NewService(db.Inventory(), nil)
	s.findings = pwmatch.NewService(db.Findings(), nil)
	s.feeds = feeds.NewService(db.Feeds(), feeds.Options{Log: log})
	s.policies = policy.NewService(db.Policies(), s.clk.now)
	if _, err := s.policies.Apply(ctx, rolloutITMgr.Actor, rolloutAptPolicy(t), "real-apt rollout test window"); err != nil {
		t.Fatalf("apply policy: %v", err)
	}
	s.changes = change.NewService(db.Changes(), s.policies, db.Risk(), s.clk.now)
	windows := fleet.NewAssetWindows(s.inv, 0, nil)
	windows.Named = fleet.PolicyWindows{Current: func(ctx context.Context) (*policy.Compiled, error) {
		c, _, err := s.policies.Current(ctx)
		return c, err
	}}
	s.fleet = fleet.NewService(db.Fleet(), fleet.Options{CheckInInterval: time.Second, Windows: windows, Log: log,
		Listener: rematch{t: t, findings: s.findings}})
	s.rollouts = deploy.NewRollouts(db.Rollouts(), s.changes, s.fleet, s.policies,
		deploy.RolloutOptions{Now: s.clk.now, Log: log, JobDuration: 10 * time.Minute})
	hs := httptest.NewServer(agentserver.Handler(s.fleet, log))
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

// rolloutAptPolicy is the shipped policy (two approvers for a normal
// change, its rings and gates, automatic rollback on a halt) with a daily
// window open from an hour before now for six hours, and without the
// example freezes, which would hold the change on their dates.
func rolloutAptPolicy(t *testing.T) []byte {
	t.Helper()
	src := string(policy.DefaultSource())
	window := fmt.Sprintf(`maintenance_windows:
  - name: e2e-window
    description: Daily window around the time the real-apt rollout test runs.
    schedule: FREQ=DAILY
    start: %q
    duration: 6h
    time_zone: UTC
`, time.Now().UTC().Add(-time.Hour).Format("15:04"))
	out := strings.Replace(src, "maintenance_windows:\n", window, 1)
	out = regexp.MustCompile(`(?m)^freezes:\n(?:  .*\n)*`).ReplaceAllString(out, "freezes: []\n")
	if !strings.Contains(out, "e2e-window") || !strings.Contains(out, "freezes: []") {
		t.Fatal("the shipped policy no longer has the maintenance_windows and freezes sections this test edits")
	}
	return []byte(out)
}

// enrollAgent enrolls the patchward-agent main against the server with a
// token for the e2e window and runs it as a daemon using repo's apt
// sources, its health check always being the command named always
// ("clinic-app" passes, "broken-app" fails). It waits for the agent's
// first inventory and returns the agent's record as it then is.
func (s *rolloutServer) enrollAgent(t *testing.T, ctx context.Context, repo *agenttest.AptRepo, always string) fleet.AgentDetail {
	t.Helper()
	token, _, err := s.fleet.CreateEnrollmentToken(ctx, rolloutITMgr.Actor, fleet.TokenSpec{Name: "e2e", MaintenanceWindow: "e2e-window"})
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := json.Marshal(repo.Options)
	id, _ := runAgent(t, ctx, s.url, token, []string{
		"checkin_interval: 1s",
		"min_free_mib: 1",
		"health: {commands: {clinic-app: [\"true\"], broken-app: [\"false\"]}, always: [" + always + "]}",
		"apt: {options: " + string(opts) + "}",
	})
	return s.waitAgent(t, ctx, id, "its first inventory", func(a fleet.AgentDetail) bool { return a.InventoryAt != nil })
}

// waitAgent polls the agent's record until cond holds.
func (s *rolloutServer) waitAgent(t *testing.T, ctx context.Context, id, what string, cond func(fleet.AgentDetail) bool) fleet.AgentDetail {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := s.fleet.Agent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s: waited in vain for %s", id, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// software returns the package as the asset's stored inventory lists it.
func (s *rolloutServer) software(t *testing.T, ctx context.Context, assetID string) inventory.Software {
	t.Helper()
	a, err := s.inv.Asset(ctx, assetID)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(a.Software, func(sw inventory.Software) bool { return sw.Name == agenttest.E2EPackage })
	if i < 0 {
		t.Fatalf("asset %s's inventory lacks %s", assetID, agenttest.E2EPackage)
	}
	return a.Software[i]
}

// importAdvisory imports an OSV record, as a clinic imports a file, saying
// the package is vulnerable before 1.1-1 in the ecosystem the agent
// reported it in (Debian:12 here, another on another CI image), and
// matches the estate against it.
func (s *rolloutServer) importAdvisory(t *testing.T, ctx context.Context, ecosystem string) {
	t.Helper()
	rec := map[string]any{
		"id": "PWE2E-2026-0001", "aliases": []string{rolloutVuln}, "summary": agenttest.E2EPackage + " test vulnerability",
		"published": "2026-01-01T00:00:00Z", "modified": "2026-01-02T00:00:00Z",
		"affected": []map[string]any{{
			"package": map[string]string{"ecosystem": ecosystem, "name": agenttest.E2EPackage},
			"ranges":  []map[string]any{{"type": "ECOSYSTEM", "events": []map[string]string{{"introduced": "0"}, {"fixed": "1.1-1"}}}},
		}},
	}
	b, _ := json.Marshal(rec)
	path := filepath.Join(t.TempDir(), "e2e-osv.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.feeds.Sync(ctx, rolloutITMgr.Actor, feeds.Feed{Name: "e2e-osv", Kind: feeds.OSV, Path: path}, feeds.SyncOptions{}); err != nil {
		t.Fatalf("feeds sync: %v", err)
	}
	old, ix, err := s.findings.Refresh(ctx, s.db.Feeds())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.findings.EvaluateChanged(ctx, old, ix); err != nil {
		t.Fatal(err)
	}
}

// finding returns the asset's finding of the test vulnerability.
func (s *rolloutServer) finding(t *testing.T, ctx context.Context, assetID string) pwmatch.Finding {
	t.Helper()
	p, err := s.findings.Findings(ctx, pwmatch.FindingFilter{AssetID: assetID, VulnID: rolloutVuln})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Findings) != 1 {
		t.Fatalf("%d findings of %s on asset %s; want 1", len(p.Findings), rolloutVuln, assetID)
	}
	return p.Findings[0]
}

// scheduledChange records the change that fixes f on the asset and takes
// it through the default policy to scheduled: submitted by the
// technician, approved by two approvers, tested, scheduled in the window.
func (s *rolloutServer) scheduledChange(t *testing.T, ctx context.Context, f pwmatch.Finding) change.Change {
	t.Helper()
	pol, _, err := s.policies.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var protocol []change.TestStep
	for _, tc := range pol.Policy().Testing.Cases {
		protocol = append(protocol, change.TestStep{CaseID: tc.ID})
	}
	c, err := s.changes.Create(ctx, rolloutTech, change.Change{Title: "Upgrade " + agenttest.E2EPackage + " to 1.1-1", Type: change.Normal,
		Findings: []string{f.ID}, Advisories: []string{rolloutVuln},
		Targets:        change.Targets{Assets: []string{f.AssetID}},
		Patches:        []change.Patch{{Package: agenttest.E2EPackage, Ecosystem: f.Ecosystem, TargetVersion: "1.1-1"}},
		TestProtocol:   protocol,
		RollbackPlan:   change.RollbackPlan{Triggers: []string{"The health check fails"}, Steps: []string{"Reinstall 1.0-1"}, Owner: "it-technician"},
		PlannedWindows: []change.PlannedWindow{{Window: "e2e-window"}}})
	if err != nil {
		t.Fatalf("create change: %v", err)
	}
	if c, err = s.changes.Submit(ctx, rolloutTech, c.ID, change.Step{Why: "fixes " + rolloutVuln}); err != nil {
		t.Fatalf("submit: %v", err)
	}
	// The shipped policy's quorum for a normal change is two.
	for i, u := range []change.User{rolloutITMgr, rolloutSecOff} {
		if c, _, err = s.changes.Approve(ctx, u, c.ID, change.Decision{Revision: c.Revision}); err != nil {
			t.Fatalf("approve as %s: %v", u.Actor.Name, err)
		}
		if approved := c.State == change.Approved; approved != (i == 1) {
			t.Fatalf("change is %s after %d approvals; want approved after the second only", c.State, i+1)
		}
	}
	run := change.TestRun{}
	for _, st := range c.TestProtocol {
		run.Results = append(run.Results, change.CaseResult{CaseID: st.CaseID, Result: change.ResultPass})
	}
	if _, err := s.changes.RecordTestRun(ctx, rolloutTech, c.ID, run); err != nil {
		t.Fatalf("record test run: %v", err)
	}
	if c, err = s.changes.Schedule(ctx, rolloutTech, c.ID, nil, change.Step{Why: "in tonight's window"}); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	return c
}

// tickUntil ticks the engine, as its timer and the agents' results would,
// until cond holds; a wave that soaks has the engine's clock moved to the
// soak's end rather than waited for.
func (s *rolloutServer) tickUntil(t *testing.T, ctx context.Context, what, id string, cond func(deploy.Rollout) bool) deploy.Rollout {
	t.Helper()
	return deploytest.TickUntil(t, ctx, s.rollouts, id, what, 45*time.Second, cond, func(ro deploy.Rollout) {
		for _, w := range ro.Waves {
			if w.State == deploy.WaveSoaking && w.WaitUntil != nil {
				t.Logf("ring %s soaks until %s: moving the engine's clock there", w.Ring, w.WaitUntil.Format(time.RFC3339))
				s.clk.reach(*w.WaitUntil)
			}
		}
		time.Sleep(200 * time.Millisecond)
	})
}

// onlyItem is the rollout's one item (the test host) and its wave.
func onlyItem(t *testing.T, ro deploy.Rollout) (deploy.Wave, deploy.Item) {
	t.Helper()
	var (
		wave  deploy.Wave
		items []deploy.Item
	)
	for _, w := range ro.Waves {
		if len(w.Items) > 0 {
			wave = w
		}
		items = append(items, w.Items...)
	}
	if len(items) != 1 {
		t.Fatalf("%d items; want the test host alone: %s", len(items), deploytest.Describe(ro))
	}
	return wave, items[0]
}

// auditActions verifies the audit trail after a signed checkpoint, as
// `patchward audit verify` does, and counts its entries by action.
func (s *rolloutServer) auditActions(t *testing.T, ctx context.Context) map[string]int {
	t.Helper()
	key, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.NewCheckpointer(s.db.Audit(), signer, nil, nil).Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	svc := audit.NewService(s.db.Audit(), signer.Verifier(), nil)
	if res, err := svc.Verify(ctx); err != nil {
		t.Fatalf("audit verify = %+v, %v", res, err)
	}
	p, err := svc.List(ctx, audit.Query{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range p.Entries {
		out[e.Action]++
	}
	return out
}

// agentOutcome reads the asset's deployment log: every entry must name
// the change, the asset, the patch, an actor and a time, and the events
// in want must occur. It returns the entry with event (the agent's
// outcome: it names the job and the agent) and its step names, each step
// timed.
func (s *rolloutServer) agentOutcome(t *testing.T, ctx context.Context, changeID string, agent fleet.AgentDetail, event string, want ...string) (deploy.LogEntry, []string) {
	t.Helper()
	log, err := s.rollouts.DeploymentLog(ctx, changeID, agent.AssetID)
	if err != nil {
		t.Fatal(err)
	}
	var (
		events []string
		out    deploy.LogEntry
		steps  []string
	)
	for _, e := range log {
		events = append(events, e.Event)
		if e.ChangeID != changeID || e.AssetID != agent.AssetID || e.Actor == "" || e.At.IsZero() ||
			!slices.ContainsFunc(e.Packages, func(p agentapi.JobPackage) bool { return p.Name == agenttest.E2EPackage }) {
			t.Errorf("deployment log entry %+v; want the change, the asset, the package, an actor and a time", e)
		}
		if e.Event != event {
			continue
		}
		out = e
		for _, st := range e.Steps {
			steps = append(steps, st.Name)
			if st.Started.IsZero() || st.Ended.Before(st.Started) {
				t.Errorf("step %q ran %s – %s", st.Name, st.Started, st.Ended)
			}
		}
	}
	for _, w := range append(want, event) {
		if !slices.Contains(events, w) {
			t.Errorf("deployment log events %v lack %s", events, w)
		}
	}
	if out.JobID == "" || out.Actor != "agent "+agent.ID {
		t.Errorf("%s entry names job %q and actor %q; want the job and agent %s", event, out.JobID, out.Actor, agent.ID)
	}
	return out, steps
}

// TestChangeRolloutRealApt joins the change workflow to the real agent:
// a finding the matcher opened from a local advisory for the test package
// on this host, a normal change that fixes it approved by two approvers
// under the shipped policy, started through the rollout engine, which the
// test ticks while the real patchward-agent daemon runs against the real
// agent protocol handler and upgrades with the real apt from a private
// repository inside the policy window. A healthy upgrade passes the ring's
// gate (the engine's clock is moved past the soak), completes the change,
// and the finding closes only from the agent's newer inventory; a failing
// health check makes the agent roll back, the gate halt the rollout and
// the change end rolled back with the package at 1.0-1 and the finding
// open. Both deployment logs and audit trails are checked and verified.
func TestChangeRolloutRealApt(t *testing.T) {
	agenttest.NeedRealApt(t)
	repo := agenttest.NewAptRepo(t, "1.0-1", "1.1-1")
	for _, tc := range []struct {
		name   string
		always string
		check  func(t *testing.T, ctx context.Context, s *rolloutServer, c change.Change, agent fleet.AgentDetail, ro deploy.Rollout)
	}{
		{"upgrade passes the gate and fixes the finding", "clinic-app", checkCompleted},
		{"failed health check rolls back and halts", "broken-app", checkRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			agenttest.MustRun(t, "dpkg", "-i", repo.Debs["1.0-1"])
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s := newRolloutServer(t)
			agent := s.enrollAgent(t, ctx, repo, tc.always)
			sw := s.software(t, ctx, agent.AssetID)
			if sw.Version != "1.0-1" {
				t.Fatalf("first inventory shows %s %s; want 1.0-1", sw.Name, sw.Version)
			}
			s.importAdvisory(t, ctx, sw.Ecosystem)
			f := s.finding(t, ctx, agent.AssetID)
			if f.State != pwmatch.StateOpen || f.FixedVersion != "1.1-1" || f.Version != "1.0-1" {
				t.Fatalf("finding = %s at %s, fixed in %s; want open at 1.0-1, fixed in 1.1-1", f.State, f.Version, f.FixedVersion)
			}
			c := s.scheduledChange(t, ctx, f)
			ro, err := s.rollouts.Start(ctx, rolloutTech, c.ID, "the e2e window is open")
			if err != nil {
				t.Fatalf("start rollout: %v", err)
			}
			tc.check(t, ctx, s, c, agent, ro)
			t.Logf("%s in %s", tc.name, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

func checkCompleted(t *testing.T, ctx context.Context, s *rolloutServer, c change.Change, agent fleet.AgentDetail, ro deploy.Rollout) {
	ro = s.tickUntil(t, ctx, "the change to complete", ro.ID, func(ro deploy.Rollout) bool { return ro.State == deploy.RolloutCompleted })
	if v := agenttest.InstalledVersion(t); v != "1.1-1" {
		t.Errorf("installed %s; want 1.1-1", v)
	}
	if got, err := s.changes.Get(ctx, c.ID); err != nil || got.State != change.Completed {
		t.Errorf("change is %s (%v); want completed", got.State, err)
	}
	wave, it := onlyItem(t, ro)
	if wave.State != deploy.WavePassed || !strings.Contains(wave.Reason, "1 of 1 succeeded") || !strings.Contains(wave.Reason, "passed") ||
		it.State != deploy.ItemSucceeded || it.AgentID != agent.ID || it.FinishedAt == nil {
		t.Fatalf("after completion: %s; want the ring's gate passed after its soak", deploytest.Describe(ro))
	}
	job, err := s.fleet.Job(ctx, it.JobID)
	if err != nil {
		t.Fatal(err)
	}
	// The job ran inside its window slot, which the agent was told. (The
	// agent's steps say when it started: a job done between two check-ins
	// is never reported running, so the job has no StartedAt of its own.)
	if len(job.Results) == 0 || len(job.Results[0].Steps) == 0 || job.FinishedAt == nil ||
		job.Results[0].Steps[0].Started.Before(job.NotBefore.Truncate(time.Second)) || job.FinishedAt.After(job.Deadline) {
		t.Errorf("job finished %v with results %+v; its window is %s – %s", job.FinishedAt, job.Results, job.NotBefore, job.Deadline)
	}

	// Verification: the finding closes from the newer inventory, which
	// shows 1.1-1, not from the job's report.
	a := s.waitAgent(t, ctx, agent.ID, "an inventory after the job", func(a fleet.AgentDetail) bool {
		return a.InventoryAt != nil && !a.InventoryAt.Before(*it.FinishedAt)
	})
	if sw := s.software(t, ctx, agent.AssetID); sw.Version != "1.1-1" {
		t.Errorf("newer inventory shows %s; want 1.1-1", sw.Version)
	}
	f := s.finding(t, ctx, agent.AssetID)
	if f.State != pwmatch.StateFixed || f.FixedAt == nil || f.FixedAt.Before(*it.FinishedAt) || f.FixedAt.Before(*a.InventoryAt) {
		t.Errorf("finding = %s, fixed at %v; want fixed by the inventory of %s after the job finished at %s", f.State, f.FixedAt, a.InventoryAt, it.FinishedAt)
	}
	nc, err := s.rollouts.NotConverged(ctx, c.ID)
	if err != nil || len(nc) != 0 {
		t.Errorf("not converged = %+v, %v; want none", nc, err)
	}

	// The deployment log of the asset holds the patch, the job, the agent
	// and its steps, and the convergence.
	e, steps := s.agentOutcome(t, ctx, c.ID, agent, deploy.EventSucceeded, deploy.EventPlanned, deploy.EventJobQueued, deploy.EventConverged)
	if e.JobID != it.JobID || !strings.Contains(e.Detail, agenttest.E2EPackage+" 1.1-1") ||
		!slices.Contains(steps, "install") || !slices.Contains(steps, "post-check: command clinic-app") {
		t.Errorf("succeeded entry: job %s, detail %q, steps %v; want job %s installing 1.1-1 with its checks", e.JobID, e.Detail, steps, it.JobID)
	}

	acts := s.auditActions(t, ctx)
	for _, a := range []string{"finding.open", "change.create", "change.approval", "change.schedule", "change.start", "rollout.start",
		"rollout.wave_start", "job.create", "job.deliver", "job.result", "asset.inventory", "rollout.gate", "rollout.wave_passed",
		"change.complete", "rollout.complete", "finding.fixed"} {
		if acts[a] == 0 {
			t.Errorf("no %s in the audit trail (%v)", a, acts)
		}
	}
}

func checkRolledBack(t *testing.T, ctx context.Context, s *rolloutServer, c change.Change, agent fleet.AgentDetail, ro deploy.Rollout) {
	ro = s.tickUntil(t, ctx, "the rollout to halt and roll back", ro.ID, func(ro deploy.Rollout) bool {
		return ro.State == deploy.RolloutRolledBack || ro.State == deploy.RolloutHalted
	})
	if ro.State != deploy.RolloutRolledBack {
		t.Fatalf("rollout = %s (%s); want rolled back: %s", ro.State, ro.Reason, deploytest.Describe(ro))
	}
	if v := agenttest.InstalledVersion(t); v != "1.0-1" {
		t.Errorf("installed %s; want 1.0-1 again", v)
	}
	if got, err := s.changes.Get(ctx, c.ID); err != nil || got.State != change.RolledBack {
		t.Errorf("change is %s (%v); want rolled_back", got.State, err)
	}
	wave, it := onlyItem(t, ro)
	if wave.Verdict != deploy.Halt || it.State != deploy.ItemFailed || it.RollbackState != deploy.RollbackDone || it.RollbackJobID != "" {
		t.Errorf("after the halt: %s; want the gate halted, the item failed and rolled back by the agent without a rollback job", deploytest.Describe(ro))
	}
	job, err := s.fleet.Job(ctx, it.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != fleet.JobRolledBack || len(job.Results) == 0 || job.Results[len(job.Results)-1].Installed[agenttest.E2EPackage] != "1.0-1" {
		t.Errorf("job is %s with results %+v; want rolled_back, reporting 1.0-1", job.State, job.Results)
	}

	// The host is as it was, so the agent has no newer inventory to send:
	// none reached the server during the job either (a list read while dpkg
	// was halfway through would have closed the finding for seconds). The
	// finding stays open, never fixed, and the asset is not converged.
	a, err := s.fleet.Agent(ctx, agent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.InventoryHash != agent.InventoryHash || !a.InventoryAt.Equal(*agent.InventoryAt) {
		t.Errorf("inventory %s of %s after the rollback; want the enrollment's %s of %s", a.InventoryHash, a.InventoryAt, agent.InventoryHash, agent.InventoryAt)
	}
	if sw := s.software(t, ctx, agent.AssetID); sw.Version != "1.0-1" {
		t.Errorf("inventory after the rollback shows %s; want 1.0-1", sw.Version)
	}
	if f := s.finding(t, ctx, agent.AssetID); f.State != pwmatch.StateOpen || f.FixedAt != nil || f.ReopenCount != 0 {
		t.Errorf("finding after the rollback = %s, fixed at %v, reopened %d times; want open and never fixed", f.State, f.FixedAt, f.ReopenCount)
	}
	if nc, err := s.rollouts.NotConverged(ctx, c.ID); err != nil || len(nc) != 1 {
		t.Errorf("not converged = %+v, %v; want the asset", nc, err)
	}

	e, steps := s.agentOutcome(t, ctx, c.ID, agent, deploy.EventFailed, deploy.EventPlanned, deploy.EventJobQueued)
	if e.Deviation != "rolled back by the agent" ||
		!slices.Contains(steps, "post-check: command broken-app") || !slices.Contains(steps, "rollback: install previous versions") {
		t.Errorf("failed entry: deviation %q, steps %v; want the agent's rollback after the broken-app check", e.Deviation, steps)
	}

	acts := s.auditActions(t, ctx)
	for _, a := range []string{"finding.open", "change.start", "rollout.start", "job.create", "job.result", "rollout.halt", "change.halt",
		"rollout.rollback", "rollout.rolled_back", "change.roll_back"} {
		if acts[a] == 0 {
			t.Errorf("no %s in the audit trail (%v)", a, acts)
		}
	}
	if acts["finding.fixed"] != 0 {
		t.Errorf("%d finding.fixed entries after a rollback; want none", acts["finding.fixed"])
	}
}
