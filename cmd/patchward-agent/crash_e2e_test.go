//go:build linux

package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

// weekWindow is open all week, or (open false) only on a day three days
// away, so it is shut now.
func weekWindow(open bool) *agentapi.Window {
	w := &agentapi.Window{Name: "always", TimeZone: "UTC"}
	if !open {
		// One hour on a day three days away: shut now.
		w.Name = "weekly"
		w.Slots = []agentapi.Slot{{Day: (int(time.Now().UTC().Weekday()) + 3) % 7, Start: "01:00", End: "02:00"}}
		return w
	}
	for d := 0; d < 7; d++ {
		w.Slots = append(w.Slots, agentapi.Slot{Day: d, Start: "00:00", End: "00:00"})
	}
	return w
}

// TestKilledMidJobReportsTrueState kills the agent process (SIGKILL) after
// apt has installed the new version but while a post-check still runs,
// starts it again, and expects it to settle the job from the journal and
// the installed versions — finishing the checks, not running apt again —
// and to report exactly one result.
func TestKilledMidJobReportsTrueState(t *testing.T) {
	agenttest.NeedRealApt(t)
	repo := agenttest.NewAptRepo(t, "1.0-1", "1.1-1")
	agenttest.MustRun(t, "dpkg", "-i", repo.Debs["1.0-1"])

	srv := agenttest.New("tok-crash")
	srv.NextCheckIn = time.Second
	srv.Window = weekWindow(true)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	dir := t.TempDir()
	marker := filepath.Join(dir, "check-started")
	// The first run of this health check hangs (until the agent is killed);
	// later runs pass at once.
	slowOnce := `if [ -e "$0" ]; then exit 0; fi; touch "$0"; sleep 20`
	hc, _ := json.Marshal(map[string][]string{"app": {"sh", "-c", slowOnce, marker}})
	opts, _ := json.Marshal(repo.Options)
	cfg := strings.Join([]string{
		"state_dir: " + filepath.Join(dir, "state"),
		"checkin_interval: 1s",
		"min_free_mib: 1",
		"health: {commands: " + string(hc) + "}",
		"apt: {options: " + string(opts) + "}",
	}, "\n") + "\n"
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := agentCmd(ctx, "-config", cfgPath, "enroll", "--server", hs.URL, "--token", "tok-crash").CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	ids := srv.AgentIDs()
	srv.AddJob(ids[0], agentapi.Job{ID: "job-crash", Kind: agentapi.JobInstall,
		Packages:   []agentapi.JobPackage{{Name: agenttest.E2EPackage, TargetVersion: "1.1-1"}},
		PostChecks: []agentapi.Check{{Kind: "command", Arg: "app"}}})

	first := agentCmd(ctx, "-config", cfgPath, "run")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if ctx.Err() != nil {
			first.Process.Kill()
			t.Fatal("the post-check never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if n := len(srv.Results()); n != 0 {
		t.Fatalf("%d results before the restart; want none", n)
	}
	if v := agenttest.InstalledVersion(t); v != "1.1-1" {
		t.Fatalf("installed %q when the agent died; want 1.1-1", v)
	}

	second := agentCmd(ctx, "-config", cfgPath, "run")
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	var r agentapi.JobResult
	for len(srv.Results()) == 0 && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate upload would arrive by now
	rs := srv.Results()
	if len(rs) != 1 {
		t.Fatalf("%d results; want exactly one", len(rs))
	}
	r = rs[0]
	installs, resumed := 0, false
	for _, s := range r.Steps {
		t.Logf("  %-40s ok=%-5v exit=%d", s.Name, s.OK, s.ExitCode)
		if s.Name == "install" {
			installs++
		}
		if s.Name == "resume after agent restart" {
			resumed = true
		}
	}
	if r.Status != agentapi.StatusSucceeded || !resumed || installs != 1 || r.Installed[agenttest.E2EPackage] != "1.1-1" {
		t.Fatalf("after restart: %s (%s), resumed=%v, apt installs=%d, installed %v; want succeeded, resumed, one install, 1.1-1",
			r.Status, r.Reason, resumed, installs, r.Installed)
	}
}
