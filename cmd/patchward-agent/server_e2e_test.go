//go:build linux

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// windowSource is a fleet.WindowSource the test can switch.
type windowSource struct {
	mu sync.Mutex
	w  *agentapi.Window
}

func (s *windowSource) Window(context.Context, string) (*agentapi.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w, nil
}

func (s *windowSource) set(w *agentapi.Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}

// TestRealAgentRealServerRealApt is the must-hold end-to-end test: the
// patchward-agent main (enroll, then run as a daemon process) against the
// real server's agent protocol handler and fleet service on a real SQLite
// database, installing with the real apt from a private repository. The
// server queues jobs as an admin would; the agent upgrades inside the
// window, refuses outside it, and rolls back when a health command fails;
// every step arrives in the server's job results.
func TestRealAgentRealServerRealApt(t *testing.T) {
	agenttest.NeedRealApt(t)
	repo := agenttest.NewAptRepo(t, "1.0-1", "1.1-1")
	agenttest.MustRun(t, "dpkg", "-i", repo.Debs["1.0-1"])

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	db := storetest.Open(t, store.SQLite, store.Options{})
	wins := &windowSource{w: weekWindow(true)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{CheckInInterval: time.Second, Windows: wins, Log: log})
	hs := httptest.NewServer(agentserver.Handler(svc, log))
	t.Cleanup(hs.Close) // after the agent stops: cleanups run last first
	admin := audit.Actor{Kind: audit.ActorUser, ID: "u-e2e", Name: "e2e admin"}
	token, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "e2e"})
	if err != nil {
		t.Fatal(err)
	}

	opts, _ := json.Marshal(repo.Options)
	agentID, _ := runAgent(t, ctx, hs.URL, token, []string{
		"checkin_interval: 1s",
		"min_free_mib: 1",
		"reboot_command: [\"false\"]",
		"hooks: {snapshot: [\"true\"]}",
		"require_backup_hook: snapshot",
		"health: {commands: {clinic-app: [\"true\"], broken-app: [\"false\"]}, always: [clinic-app]}",
		"apt: {options: " + string(opts) + "}",
	})

	queue := func(spec fleet.JobSpec) fleet.Result {
		t.Helper()
		spec.AgentID = agentID
		j, err := svc.CreateJob(ctx, admin, spec)
		if err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		for ctx.Err() == nil {
			d, err := svc.Job(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Results) > 0 {
				r := d.Results[len(d.Results)-1]
				t.Logf("job %s (%s): %s %s", j.ID, spec.Kind, r.Status, r.Reason)
				for _, s := range r.Steps {
					t.Logf("  %-40s ok=%-5v exit=%d %s", s.Name, s.OK, s.ExitCode, s.Ended.Sub(s.Started).Round(time.Millisecond))
				}
				return r
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no result for job %s", j.ID)
		return fleet.Result{}
	}
	steps := func(r fleet.Result) string {
		var n []string
		for _, s := range r.Steps {
			n = append(n, s.Name)
		}
		return strings.Join(n, " | ")
	}
	pkg := agenttest.E2EPackage

	r := queue(fleet.JobSpec{Kind: agentapi.JobInstall, ChangeID: "chg-1",
		Packages:   []agentapi.JobPackage{{Name: pkg, TargetVersion: "1.1-1"}},
		PreChecks:  []agentapi.Check{{Kind: "backup_hook", Arg: "snapshot"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "clinic-app"}}})
	if r.Status != agentapi.StatusSucceeded || agenttest.InstalledVersion(t) != "1.1-1" {
		t.Fatalf("upgrade: %s (%s), installed %q; want succeeded at 1.1-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}
	for _, want := range []string{"pre-check: pkg_lock_free", "pre-check: backup_hook snapshot", "record previous versions", "install", "verify installed versions", "post-check: command clinic-app"} {
		if !strings.Contains(steps(r), want) {
			t.Errorf("upgrade steps %q lack %q", steps(r), want)
		}
	}

	wins.set(weekWindow(false))
	r = queue(fleet.JobSpec{Kind: agentapi.JobInstall, ChangeID: "chg-2",
		Packages: []agentapi.JobPackage{{Name: pkg, TargetVersion: "1.0-1"}}})
	if r.Status != agentapi.StatusRefused || !strings.Contains(r.Reason, "outside maintenance window") || agenttest.InstalledVersion(t) != "1.1-1" {
		t.Fatalf("outside the window: %s (%s), installed %q; want refused at 1.1-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}

	wins.set(weekWindow(true))
	r = queue(fleet.JobSpec{Kind: agentapi.JobInstall, ChangeID: "chg-3",
		Packages:   []agentapi.JobPackage{{Name: pkg, TargetVersion: "1.0-1"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "clinic-app"}}})
	if r.Status != agentapi.StatusSucceeded || agenttest.InstalledVersion(t) != "1.0-1" {
		t.Fatalf("downgrade: %s (%s), installed %q", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}
	r = queue(fleet.JobSpec{Kind: agentapi.JobInstall, ChangeID: "chg-4",
		Packages:   []agentapi.JobPackage{{Name: pkg, TargetVersion: "1.1-1"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "broken-app"}}})
	if r.Status != agentapi.StatusRolledBack || agenttest.InstalledVersion(t) != "1.0-1" || r.Installed[pkg] != "1.0-1" {
		t.Fatalf("failed post-check: %s (%s), installed %q; want rolled_back to 1.0-1", r.Status, r.Reason, agenttest.InstalledVersion(t))
	}
	for _, want := range []string{"post-check: command broken-app", "rollback triggered", "rollback: install previous versions", "rollback: verify previous versions"} {
		if !strings.Contains(steps(r), want) {
			t.Errorf("rollback steps %q lack %q", steps(r), want)
		}
	}
}

// syncBuf is a bytes buffer safe for the process's writer goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSimulateAgainstRealServer runs `patchward-agent simulate` with
// tokens made by the real fleet service and reads its JSON stats.
func TestSimulateAgainstRealServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := storetest.Open(t, store.SQLite, store.Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{CheckInInterval: time.Second, Log: log})
	hs := httptest.NewServer(agentserver.Handler(svc, log))
	defer hs.Close()
	admin := audit.Actor{Kind: audit.ActorUser, ID: "u-sim", Name: "sim admin"}
	var toks []string
	for range 3 {
		tok, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "sim"})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	tokFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokFile, []byte(strings.Join(toks, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := agentCmd(ctx, "-log-level", "warn", "simulate", "--server", hs.URL, "--hosts", "3", "--tokens", tokFile,
		"--rounds", "2", "--interval", "1s", "--seed", "7").Output()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	var stats struct {
		Enrolled int `json:"enrolled"`
		CheckIns int `json:"checkins"`
		Errors   int `json:"errors"`
	}
	if err := json.Unmarshal(out, &stats); err != nil {
		t.Fatalf("simulate output %q: %v", out, err)
	}
	if stats.Enrolled != 3 || stats.CheckIns < 6 || stats.Errors != 0 {
		t.Errorf("simulate stats = %+v; want 3 enrolled, at least 6 check-ins, no errors", stats)
	}
}
