package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent/agenttest"
)

// TestMain lets the test binary stand in for patchward-agent when re-run
// with PATCHWARD_AGENT_AS_MAIN=1, so CLI tests exercise the real main
// without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("PATCHWARD_AGENT_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// agentCmd runs the agent: a built binary named by PATCHWARD_AGENT_BIN
// (to measure exactly what ships), else this test binary as main.
func agentCmd(ctx context.Context, args ...string) *exec.Cmd {
	bin := os.Args[0]
	if b := os.Getenv("PATCHWARD_AGENT_BIN"); b != "" {
		bin = b
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PATCHWARD_AGENT_AS_MAIN=1")
	return cmd
}

func TestVersionAndUsage(t *testing.T) {
	out, err := agentCmd(context.Background(), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "patchward-agent ") || !strings.Contains(string(out), "protocol 1") {
		t.Errorf("version = %q, %v", out, err)
	}
	out, err = agentCmd(context.Background(), "frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown command "frobnicate"`) {
		t.Errorf("unknown command = %q, %v; want an error naming it", out, err)
	}
	out, err = agentCmd(context.Background(), "-config", "/nonexistent", "-state-dir", t.TempDir(), "run").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "enroll") {
		t.Errorf("run before enrolling = %q, %v; want advice to enroll", out, err)
	}
}

// TestIdleFootprint enrolls the real agent through its CLI, runs the
// daemon against an in-memory server checking in every second, and reads
// the process's resident memory and CPU time from /proc while it idles
// between check-ins. The figure is logged; the aim is RSS < 30 MB.
func TestIdleFootprint(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if testing.Short() {
		t.Skip("runs the daemon for about 15 seconds")
	}
	srv := agenttest.New("tok-idle")
	srv.NextCheckIn = time.Second
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	// A copy of this host's dpkg status keeps the inventory realistic but
	// still while other tests install packages on the same machine.
	admin := filepath.Join(dir, "dpkg")
	if err := os.MkdirAll(admin, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/var/lib/dpkg/status"); err == nil {
		if err := os.WriteFile(filepath.Join(admin, "status"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := "state_dir: " + filepath.Join(dir, "state") + "\ncheckin_interval: 1s\napt: {admin_dir: " + admin + "}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := agentCmd(ctx, "-config", cfgPath, "enroll", "--server", hs.URL, "--token", "tok-idle").CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if out, err := agentCmd(ctx, "-config", cfgPath, "enroll", "--server", hs.URL, "--token", "tok-idle").CombinedOutput(); err == nil {
		t.Fatalf("second enroll succeeded: %s", out)
	}
	// Measure the binary that ships, not this test binary: the tests link
	// the server (for the real-server end-to-end test), which would count
	// against the agent's memory.
	bin := os.Getenv("PATCHWARD_AGENT_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "patchward-agent")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build the agent: %v\n%s", err, out)
		}
	}
	cmd := exec.CommandContext(ctx, bin, "-config", cfgPath, "-log-level", "warn", "run")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Let start-up (first inventory, apt simulation) finish, then measure
	// a quiet stretch.
	deadline := time.Now().Add(time.Minute)
	for len(srv.CheckIns()) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cpu0, start, n0 := cpuTicks(t, pid), time.Now(), len(srv.CheckIns())
	time.Sleep(10 * time.Second)
	cpu1, elapsed, n1 := cpuTicks(t, pid), time.Since(start), len(srv.CheckIns())
	rss, hwm := procStatusKB(t, pid, "VmRSS"), procStatusKB(t, pid, "VmHWM")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v\n%s", err, logs.String())
	}
	const clkTck = 100 // USER_HZ on Linux
	cpuPct := float64(cpu1-cpu0) / clkTck / elapsed.Seconds() * 100
	checkIns := n1 - n0
	t.Logf("idle agent: RSS %.1f MiB (peak %.1f MiB), CPU %.2f%% of one core with a check-in every second (%d check-ins measured, %d with full inventory in all)",
		float64(rss)/1024, float64(hwm)/1024, cpuPct, checkIns, fullInventories(srv))
	if checkIns < 5 {
		t.Errorf("%d check-ins in 10s at a 1s interval; want at least 5\n%s", checkIns, logs.String())
	}
	if rss > 30*1024 {
		t.Errorf("idle RSS %d KiB; aim is under 30 MiB", rss)
	}
	if rej := srv.Rejected(); len(rej) > 0 {
		t.Errorf("server refused: %v", rej)
	}
}

func fullInventories(s *agenttest.Server) int {
	n := 0
	for _, c := range s.CheckIns() {
		if c.Inventory != nil {
			n++
		}
	}
	return n
}

func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	t.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields overall.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
