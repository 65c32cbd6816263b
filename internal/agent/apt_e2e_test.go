//go:build linux

package agent_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

// alwaysOpen is a window open all week (end == start spans the day).
func alwaysOpen() *agentapi.Window {
	w := &agentapi.Window{Name: "always", TimeZone: "UTC"}
	for d := 0; d < 7; d++ {
		w.Slots = append(w.Slots, agentapi.Slot{Day: d, Start: "00:00", End: "00:00"})
	}
	return w
}

// closedToday opens only on a day three days away, so it is shut now.
func closedToday() *agentapi.Window {
	return &agentapi.Window{Name: "weekly", TimeZone: "UTC", Slots: []agentapi.Slot{
		{Day: (int(time.Now().UTC().Weekday()) + 3) % 7, Start: "01:00", End: "02:00"},
	}}
}

// TestAptEndToEnd runs the real agent daemon — enrollment, signed
// check-ins, job pulls, the executor, apt-get and dpkg — against an
// in-memory server over HTTP, with a private apt repository of two
// versions of a throw-away package: it upgrades inside the window, refuses
// outside it, rolls back explicitly, and rolls back by itself when a
// post-check fails, reporting every step.
func TestAptEndToEnd(t *testing.T) {
	agenttest.NeedRealApt(t)
	repo := agenttest.NewAptRepo(t, "1.0-1", "1.1-1")
	dir := t.TempDir()
	agenttest.MustRun(t, "dpkg", "-i", repo.Debs["1.0-1"])
	if v := agenttest.InstalledVersion(t); v != "1.0-1" {
		t.Fatalf("after dpkg -i: version %q; want 1.0-1", v)
	}

	// apt sees only the private repository and keeps its lists and cache
	// in the test directory: the host's own sources and lists are untouched.
	cfg := agent.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.CheckInInterval = agent.Duration{Duration: time.Second}
	cfg.MinFreeMiB = 1
	cfg.Apt.Options = repo.Options
	cfg.Hooks = map[string][]string{"snapshot": {"true"}}
	cfg.RequireBackupHook = "snapshot"
	cfg.Health.Commands = map[string][]string{"clinic-app": {"true"}, "broken-app": {"false"}}
	cfg.Health.Always = []string{"clinic-app"}
	cfg.RebootCommand = []string{"false"} // never reboot the test host
	// Health checks and version queries need no root: run them as nobody,
	// as a production config would.
	cfg.UnprivilegedUser = "nobody"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	srv := agenttest.New("enroll-me")
	srv.NextCheckIn = time.Second
	srv.Window = alwaysOpen()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	ctx, cancel := context.WithCancel(context.Background())
	st := agent.StateDir{Dir: cfg.StateDir}
	col := agent.NewHostCollector(cfg, agent.ExecRunner{})
	inv, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, st, hs.URL, "enroll-me", inv.Facts, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.LoadKey()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.StateDir, "agent.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	client, err := agent.NewClient(hs.URL, id.AgentID, key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := agent.OpenJournal(st.JobsDir())
	if err != nil {
		t.Fatal(err)
	}
	run := agent.ExecRunner{}
	pm := agent.ManagerFor(inv.Facts.OSID, inv.OSIDLike, cfg, run)
	if pm.Name() != "apt" {
		t.Fatalf("package manager = %s; want apt on this Debian host", pm.Name())
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := agent.New(cfg, id, client, journal, col, pm, run, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	waitResult := func(jobID string) agentapi.JobResult {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			for _, r := range srv.Results() {
				if r.JobID == jobID {
					return r
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no result for job %s; server refused: %v", jobID, srv.Rejected())
		return agentapi.JobResult{}
	}
	logSteps := func(r agentapi.JobResult) {
		t.Helper()
		t.Logf("job %s: %s %s", r.JobID, r.Status, r.Reason)
		for _, s := range r.Steps {
			t.Logf("  %-45s ok=%-5v exit=%d %q %s", s.Name, s.OK, s.ExitCode, s.Command, s.Ended.Sub(s.Started).Round(time.Millisecond))
		}
	}
	stepNames := func(r agentapi.JobResult) string {
		var n []string
		for _, s := range r.Steps {
			n = append(n, s.Name)
		}
		return strings.Join(n, " | ")
	}

	// 1. Upgrade inside the window.
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-upgrade", ChangeID: "chg-1", Kind: agentapi.JobInstall,
		Packages:   []agentapi.JobPackage{{Name: agenttest.E2EPackage, TargetVersion: "1.1-1"}},
		PreChecks:  []agentapi.Check{{Kind: "disk_space", Arg: "1"}, {Kind: "backup_hook", Arg: "snapshot"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "clinic-app"}}})
	r := waitResult("job-upgrade")
	logSteps(r)
	if r.Status != agentapi.StatusSucceeded || agenttest.InstalledVersion(t) != "1.1-1" || r.Installed[agenttest.E2EPackage] != "1.1-1" {
		t.Fatalf("upgrade: status %s (%s), installed %q, reported %v; want succeeded at 1.1-1", r.Status, r.Reason, agenttest.InstalledVersion(t), r.Installed)
	}
	for _, want := range []string{"pre-check: pkg_lock_free", "pre-check: disk_space", "pre-check: backup_hook snapshot", "record previous versions", "refresh package lists", "install", "verify installed versions", "post-check: command clinic-app"} {
		if !strings.Contains(stepNames(r), want) {
			t.Errorf("upgrade steps %q lack %q", stepNames(r), want)
		}
	}
	for _, s := range r.Steps {
		if s.Name == "post-check: command clinic-app" && !s.OK {
			t.Errorf("health command as nobody failed: %+v", s)
		}
		if s.Name == "install" && (len(s.Command) == 0 || s.Command[0] != "apt-get" || !strings.Contains(strings.Join(s.Command, " "), agenttest.E2EPackage+"=1.1-1") || s.ExitCode != 0 || s.Output == "") {
			t.Errorf("install step = %+v; want apt-get … %s=1.1-1 exiting 0 with output", s, agenttest.E2EPackage)
		}
	}

	// 2. Outside the window the agent refuses, whatever the server says.
	srv.Window = closedToday()
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-outside", ChangeID: "chg-2", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: agenttest.E2EPackage, TargetVersion: "1.0-1"}}})
	r = waitResult("job-outside")
	logSteps(r)
	if r.Status != agentapi.StatusRefused || !strings.Contains(r.Reason, "outside maintenance window") || agenttest.InstalledVersion(t) != "1.1-1" {
		t.Fatalf("outside window: status %s (%s), installed %q; want refused, still 1.1-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}

	// 3. An explicit rollback job returns to the version recorded before
	// the change (the job names none).
	srv.Window = alwaysOpen()
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-rollback", ChangeID: "chg-1", Kind: agentapi.JobRollback,
		Packages: []agentapi.JobPackage{{Name: agenttest.E2EPackage}}})
	r = waitResult("job-rollback")
	logSteps(r)
	if r.Status != agentapi.StatusSucceeded || agenttest.InstalledVersion(t) != "1.0-1" {
		t.Fatalf("rollback job: status %s (%s), installed %q; want succeeded at 1.0-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}

	// 4. A failing post-check rolls the upgrade back by itself.
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-broken", ChangeID: "chg-3", Kind: agentapi.JobInstall,
		Packages:   []agentapi.JobPackage{{Name: agenttest.E2EPackage, TargetVersion: "1.1-1"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "broken-app"}}})
	r = waitResult("job-broken")
	logSteps(r)
	if r.Status != agentapi.StatusRolledBack || agenttest.InstalledVersion(t) != "1.0-1" || r.Installed[agenttest.E2EPackage] != "1.0-1" {
		t.Fatalf("failed post-check: status %s (%s), installed %q; want rolled_back to 1.0-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}
	for _, want := range []string{"install", "post-check: command broken-app", "rollback triggered", "rollback: install previous versions", "rollback: verify previous versions"} {
		if !strings.Contains(stepNames(r), want) {
			t.Errorf("rollback steps %q lack %q", stepNames(r), want)
		}
	}

	// 5. A job delivered again after it finished does not run again.
	before := len(srv.Results())
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-upgrade", ChangeID: "chg-1", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: agenttest.E2EPackage, TargetVersion: "1.1-1"}}})
	deadline := time.Now().Add(time.Minute)
	for len(srv.Results()) == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	rs := srv.Results()
	if last := rs[len(rs)-1]; last.JobID != "job-upgrade" || last.Status != agentapi.StatusSucceeded || agenttest.InstalledVersion(t) != "1.0-1" {
		t.Fatalf("re-delivered job: last result %s %s, installed %q; want the recorded success re-sent and 1.0-1 untouched", last.JobID, last.Status, agenttest.InstalledVersion(t))
	}

	// Every request was signed correctly; the inventory went up in full
	// only when it changed.
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Errorf("server refused requests: %v", rej)
	}
	full := 0
	for _, c := range srv.CheckIns() {
		if c.Inventory != nil {
			full++
		}
	}
	if n := len(srv.CheckIns()); full == 0 || full >= n {
		t.Errorf("%d of %d check-ins carried the full inventory; want some, not all", full, n)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
