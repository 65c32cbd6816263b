//go:build linux

package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

// e2ePackage is named with a prefix no Debian or Ubuntu package uses, so
// the test can install and purge it on a real host without touching
// anything else.
const e2ePackage = "patchward-e2e-hello"

// needRealApt skips unless the test can drive the real apt as root; in CI
// (CI=true) the same conditions fail the run instead, so the test cannot
// silently stop running there.
func needRealApt(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to install packages"
	}
	for _, b := range []string{"apt-get", "dpkg-deb", "dpkg", "dpkg-query"} {
		if _, err := exec.LookPath(b); err != nil {
			why = b + " not found"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real-apt end-to-end test cannot run in CI: %s", why)
	}
	t.Skip(why)
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildDeb makes a tiny architecture-independent package with dpkg-deb.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	root := filepath.Join(dir, "build-"+version)
	for _, d := range []string{"DEBIAN", "usr/share/" + e2ePackage} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: Patchward tests <tests@patchward.invalid>\nSection: misc\nPriority: optional\nDescription: Patchward agent end-to-end test package\n Installed and purged by the agent's tests; safe to remove.\n", e2ePackage, version)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/share", e2ePackage, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "repo", fmt.Sprintf("%s_%s_all.deb", e2ePackage, version))
	mustRun(t, "dpkg-deb", "--root-owner-group", "--build", root, deb)
	return deb
}

// writePackagesIndex writes the repository's Packages file: with
// dpkg-scanpackages when dpkg-dev is installed, else from dpkg-deb -f and
// the file's size and checksum, which is all apt needs from a flat
// [trusted=yes] repository.
func writePackagesIndex(t *testing.T, repo string, debs []string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-scanpackages"); err == nil {
		cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dpkg-scanpackages: %v", err)
		}
		if err := os.WriteFile(filepath.Join(repo, "Packages"), out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var b strings.Builder
	for _, deb := range debs {
		b.WriteString(strings.TrimRight(mustRun(t, "dpkg-deb", "-f", deb), "\n"))
		st, err := os.Stat(deb)
		if err != nil {
			t.Fatal(err)
		}
		sum := strings.Fields(mustRun(t, "sha256sum", deb))[0]
		fmt.Fprintf(&b, "\nFilename: ./%s\nSize: %d\nSHA256: %s\n\n", filepath.Base(deb), st.Size(), sum)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func installedVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version} ${db:Status-Status}", e2ePackage).Output()
	if err != nil {
		return ""
	}
	v, status, _ := strings.Cut(string(out), " ")
	if status != "installed" {
		return ""
	}
	return v
}

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
	needRealApt(t)
	if v := installedVersion(t); v != "" {
		t.Fatalf("%s %s is already installed; refusing to disturb it", e2ePackage, v)
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{repo, filepath.Join(dir, "lists/partial"), filepath.Join(dir, "cache/archives/partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deb1 := buildDeb(t, dir, "1.0-1")
	deb2 := buildDeb(t, dir, "1.1-1")
	writePackagesIndex(t, repo, []string{deb1, deb2})
	sources := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(sources, []byte("deb [trusted=yes] file:"+repo+" ./\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out, err := exec.Command("dpkg", "--purge", e2ePackage).CombinedOutput()
		if err != nil {
			t.Errorf("cleanup: dpkg --purge %s: %v\n%s", e2ePackage, err, out)
		}
	})
	mustRun(t, "dpkg", "-i", deb1)
	if v := installedVersion(t); v != "1.0-1" {
		t.Fatalf("after dpkg -i: version %q; want 1.0-1", v)
	}

	// apt sees only the private repository and keeps its lists and cache
	// in the test directory: the host's own sources and lists are untouched.
	cfg := agent.Defaults()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.CheckInInterval = agent.Duration{Duration: time.Second}
	cfg.MinFreeMiB = 1
	cfg.Apt.Options = []string{
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	cfg.Hooks = map[string][]string{"snapshot": {"true"}}
	cfg.RequireBackupHook = "snapshot"
	cfg.Health.Commands = map[string][]string{"clinic-app": {"true"}, "broken-app": {"false"}}
	cfg.Health.Always = []string{"clinic-app"}
	cfg.RebootCommand = []string{"false"} // never reboot the test host
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
		Packages:   []agentapi.JobPackage{{Name: e2ePackage, TargetVersion: "1.1-1"}},
		PreChecks:  []agentapi.Check{{Kind: "disk_space", Arg: "1"}, {Kind: "backup_hook", Arg: "snapshot"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "clinic-app"}}})
	r := waitResult("job-upgrade")
	logSteps(r)
	if r.Status != agentapi.StatusSucceeded || installedVersion(t) != "1.1-1" || r.Installed[e2ePackage] != "1.1-1" {
		t.Fatalf("upgrade: status %s (%s), installed %q, reported %v; want succeeded at 1.1-1", r.Status, r.Reason, installedVersion(t), r.Installed)
	}
	for _, want := range []string{"pre-check: pkg_lock_free", "pre-check: disk_space", "pre-check: backup_hook snapshot", "record previous versions", "refresh package lists", "install", "verify installed versions", "post-check: command clinic-app"} {
		if !strings.Contains(stepNames(r), want) {
			t.Errorf("upgrade steps %q lack %q", stepNames(r), want)
		}
	}
	for _, s := range r.Steps {
		if s.Name == "install" && (len(s.Command) == 0 || s.Command[0] != "apt-get" || !strings.Contains(strings.Join(s.Command, " "), e2ePackage+"=1.1-1") || s.ExitCode != 0 || s.Output == "") {
			t.Errorf("install step = %+v; want apt-get … %s=1.1-1 exiting 0 with output", s, e2ePackage)
		}
	}

	// 2. Outside the window the agent refuses, whatever the server says.
	srv.Window = closedToday()
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-outside", ChangeID: "chg-2", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: e2ePackage, TargetVersion: "1.0-1"}}})
	r = waitResult("job-outside")
	logSteps(r)
	if r.Status != agentapi.StatusRefused || !strings.Contains(r.Reason, "outside maintenance window") || installedVersion(t) != "1.1-1" {
		t.Fatalf("outside window: status %s (%s), installed %q; want refused, still 1.1-1", r.Status, r.Reason, installedVersion(t))
	}

	// 3. An explicit rollback job returns to the version recorded before
	// the change (the job names none).
	srv.Window = alwaysOpen()
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-rollback", ChangeID: "chg-1", Kind: agentapi.JobRollback,
		Packages: []agentapi.JobPackage{{Name: e2ePackage}}})
	r = waitResult("job-rollback")
	logSteps(r)
	if r.Status != agentapi.StatusSucceeded || installedVersion(t) != "1.0-1" {
		t.Fatalf("rollback job: status %s (%s), installed %q; want succeeded at 1.0-1", r.Status, r.Reason, installedVersion(t))
	}

	// 4. A failing post-check rolls the upgrade back by itself.
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-broken", ChangeID: "chg-3", Kind: agentapi.JobInstall,
		Packages:   []agentapi.JobPackage{{Name: e2ePackage, TargetVersion: "1.1-1"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "broken-app"}}})
	r = waitResult("job-broken")
	logSteps(r)
	if r.Status != agentapi.StatusRolledBack || installedVersion(t) != "1.0-1" || r.Installed[e2ePackage] != "1.0-1" {
		t.Fatalf("failed post-check: status %s (%s), installed %q; want rolled_back to 1.0-1", r.Status, r.Reason, installedVersion(t))
	}
	for _, want := range []string{"install", "post-check: command broken-app", "rollback triggered", "rollback: install previous versions", "rollback: verify previous versions"} {
		if !strings.Contains(stepNames(r), want) {
			t.Errorf("rollback steps %q lack %q", stepNames(r), want)
		}
	}

	// 5. A job delivered again after it finished does not run again.
	before := len(srv.Results())
	srv.AddJob(id.AgentID, agentapi.Job{ID: "job-upgrade", ChangeID: "chg-1", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: e2ePackage, TargetVersion: "1.1-1"}}})
	deadline := time.Now().Add(time.Minute)
	for len(srv.Results()) == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	rs := srv.Results()
	if last := rs[len(rs)-1]; last.JobID != "job-upgrade" || last.Status != agentapi.StatusSucceeded || installedVersion(t) != "1.0-1" {
		t.Fatalf("re-delivered job: last result %s %s, installed %q; want the recorded success re-sent and 1.0-1 untouched", last.JobID, last.Status, installedVersion(t))
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
