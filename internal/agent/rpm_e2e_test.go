//go:build linux

package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

const (
	hello = agenttest.E2EPackage
	extra = agenttest.E2EExtraPackage
)

// rpmManager returns the real dnf or zypper manager for a fresh install
// root that sees only a private repository of the test packages: the
// host's own packages, repositories and rpm database are never touched.
func rpmManager(t *testing.T, osID string) (agent.PackageManager, agent.Config, string) {
	t.Helper()
	tool := map[string]string{"rocky": "dnf", "opensuse-leap": "zypper"}[osID]
	agenttest.NeedRealRPMTools(t, tool)
	repo := agenttest.NewRPMRepo(t, "1.0-1", "1.1-1")
	root := t.TempDir()
	cfg := agent.Defaults()
	cfg.StateDir = t.TempDir()
	cfg.CommandTimeout = agent.Duration{Duration: 5 * time.Minute}
	switch tool {
	case "dnf":
		cfg.Dnf.Root = root
		cfg.Dnf.Options = repo.DnfOptions
	case "zypper":
		cfg.Zypper.Root = root
		agenttest.MustRun(t, "zypper", "--non-interactive", "--root", root, "addrepo", "--no-gpgcheck", "file://"+repo.Dir, "patchward-e2e")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pm := agent.ManagerFor(osID, nil, cfg, agent.ExecRunner{})
	if pm.Name() != tool {
		t.Fatalf("ManagerFor(%s) = %s; want %s", osID, pm.Name(), tool)
	}
	if err := pm.Supported(); err != nil {
		t.Fatal(err)
	}
	return pm, cfg, root
}

// TestRealRPMManagers drives the real dnf and zypper through install,
// upgrade, a rollback that downgrades one package and removes another,
// a version the repository lacks (nothing may change), and removal —
// asserting each state with rpm --root and with the manager's own
// Installed.
func TestRealRPMManagers(t *testing.T) {
	for _, osID := range []string{"rocky", "opensuse-leap"} {
		t.Run(osID, func(t *testing.T) {
			pm, _, root := rpmManager(t, osID)
			ctx := context.Background()
			if held, detail, err := pm.LockHolder(); err != nil || held {
				t.Fatalf("LockHolder on a fresh root = %v %q %v; want free", held, detail, err)
			}
			if st := pm.Refresh(ctx); !st.OK {
				t.Fatalf("refresh: %+v", st)
			}
			for _, step := range []struct {
				name         string
				want         []agentapi.JobPackage
				ok           bool
				hello, extra string
			}{
				{"install 1.0-1", []agentapi.JobPackage{{Name: hello, TargetVersion: "1.0-1"}}, true, "1.0-1", ""},
				{"upgrade and add a package", []agentapi.JobPackage{{Name: hello, TargetVersion: "1.1-1"}, {Name: extra, TargetVersion: "1.0-1"}}, true, "1.1-1", "1.0-1"},
				{"roll back: downgrade one, remove the other", []agentapi.JobPackage{{Name: hello, TargetVersion: "1.0-1"}, {Name: extra}}, true, "1.0-1", ""},
				{"missing version changes nothing", []agentapi.JobPackage{{Name: hello, TargetVersion: "9.9-9"}}, false, "1.0-1", ""},
				// The database is never left empty: zypper's rpmdb2solv
				// fails on an empty Debian-built rpmdb after a commit.
				{"remove one, add the other", []agentapi.JobPackage{{Name: hello}, {Name: extra, TargetVersion: "1.0-1"}}, true, "", "1.0-1"},
			} {
				st := pm.Apply(ctx, step.want)
				t.Logf("%s: exit %d %q (%s)", step.name, st.ExitCode, st.Command, st.Ended.Sub(st.Started).Round(time.Millisecond))
				if st.OK != step.ok {
					t.Fatalf("%s: ok = %v; want %v\n%s", step.name, st.OK, step.ok, st.Output)
				}
				if len(st.Command) == 0 || st.Command[0] != pm.Name() || st.Output == "" || len(st.Output) > agent.MaxStepOutput+64 {
					t.Errorf("%s: step %q with %d bytes of output; want the %s command and its bounded output", step.name, st.Command, len(st.Output), pm.Name())
				}
				if !step.ok && st.ExitCode == 0 {
					t.Errorf("%s: failed step reports exit code 0", step.name)
				}
				if got := agenttest.RPMVersion(t, root, hello); got != step.hello {
					t.Fatalf("%s: rpm says %s %q; want %q", step.name, hello, got, step.hello)
				}
				if got := agenttest.RPMVersion(t, root, extra); got != step.extra {
					t.Fatalf("%s: rpm says %s %q; want %q", step.name, extra, got, step.extra)
				}
				got, qst, err := pm.Installed(ctx, []string{hello, extra})
				if err != nil || !qst.OK || got[hello] != step.hello || got[extra] != step.extra {
					t.Fatalf("%s: Installed = %v, %v (%+v); want %s=%q %s=%q", step.name, got, err, qst, hello, step.hello, extra, step.extra)
				}
			}
		})
	}
}

// TestRealDnfLockHolder: while a live process's pid is in dnf's rpmdb
// lock file the pre-check sees the database as busy; a stale pid (the
// process died) does not count, as dnf itself decides.
func TestRealDnfLockHolder(t *testing.T) {
	agenttest.NeedRealRPMTools(t, "dnf")
	root := t.TempDir()
	cfg := agent.Defaults()
	cfg.Dnf.Root = root
	pm := agent.NewDnf(cfg, agent.ExecRunner{})
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _, _ = sleeper.Process.Wait() })
	lock := filepath.Join(root, "var/lib/dnf/rpmdb_lock.pid")
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	held, detail, err := pm.LockHolder()
	if err != nil || !held || !strings.Contains(detail, strconv.Itoa(sleeper.Process.Pid)) {
		t.Fatalf("LockHolder with a live pid = %v %q %v; want held by %d", held, detail, err, sleeper.Process.Pid)
	}
	_ = sleeper.Process.Kill()
	_, _ = sleeper.Process.Wait()
	if held, detail, err := pm.LockHolder(); err != nil || held {
		t.Fatalf("LockHolder with a stale pid = %v %q %v; want free", held, detail, err)
	}
}

// TestExecutorRealDnf runs jobs through the executor on a dnf host: the
// pre-checks, the recorded previous versions, dnf makecache, one dnf
// transaction, verification, a failing post-check and the automatic
// rollback (a downgrade and a removal), then a successful upgrade and an
// explicit rollback job that returns to the recorded version.
func TestExecutorRealDnf(t *testing.T) {
	pm, cfg, root := rpmManager(t, "rocky")
	ctx := context.Background()
	if st := pm.Apply(ctx, []agentapi.JobPackage{{Name: hello, TargetVersion: "1.0-1"}}); !st.OK {
		t.Fatalf("seed 1.0-1: %s", st.Output)
	}
	cfg.Hooks = map[string][]string{"snapshot": {"true"}}
	cfg.RequireBackupHook = "snapshot"
	cfg.Health.Commands = map[string][]string{"clinic-app": {"true"}, "broken-app": {"false"}}
	cfg.Health.Always = []string{"clinic-app"}
	cfg.MinFreeMiB = 1
	journal, err := agent.OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := alwaysOpen()
	sched, err := agent.ParseWindow(*w)
	if err != nil {
		t.Fatal(err)
	}
	e := &agent.Executor{Cfg: cfg, PM: pm, Run: agent.ExecRunner{}, Journal: journal, Now: time.Now,
		Window: func() *agent.Schedule { return sched }}

	run := func(job agentapi.Job, wantStatus, wantHello, wantExtra string, wantSteps ...string) {
		t.Helper()
		start := time.Now()
		entry, err := e.Execute(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		r := entry.Result
		var names []string
		for _, s := range r.Steps {
			names = append(names, s.Name)
			t.Logf("  %-42s ok=%-5v exit=%d %q", s.Name, s.OK, s.ExitCode, s.Command)
		}
		t.Logf("%s: %s (%s) in %s", job.ID, r.Status, r.Reason, time.Since(start).Round(time.Millisecond))
		if r.Status != wantStatus {
			t.Fatalf("%s: status %s (%s); want %s", job.ID, r.Status, r.Reason, wantStatus)
		}
		if got := agenttest.RPMVersion(t, root, hello); got != wantHello {
			t.Fatalf("%s: %s is %q; want %q", job.ID, hello, got, wantHello)
		}
		if got := agenttest.RPMVersion(t, root, extra); got != wantExtra {
			t.Fatalf("%s: %s is %q; want %q", job.ID, extra, got, wantExtra)
		}
		joined := strings.Join(names, " | ")
		for _, s := range wantSteps {
			if !strings.Contains(joined, s) {
				t.Errorf("%s: steps %q lack %q", job.ID, joined, s)
			}
		}
	}

	// A failing post-check rolls back both packages in the same job: the
	// upgraded one is downgraded, the newly installed one removed.
	run(agentapi.Job{ID: "dnf-broken", ChangeID: "chg-dnf-1", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{
			{Name: hello, TargetVersion: "1.1-1"},
			{Name: extra, TargetVersion: "1.0-1"},
		},
		PostChecks: []agentapi.Check{{Kind: agent.CheckCommand, Arg: "broken-app"}}},
		agentapi.StatusRolledBack, "1.0-1", "",
		"pre-check: pkg_lock_free", "pre-check: disk_space", "pre-check: backup_hook snapshot",
		"record previous versions", "refresh package lists", "install", "verify installed versions",
		"post-check: command broken-app", "rollback triggered", "rollback: install previous versions",
		"rollback: verify previous versions", "after rollback: command clinic-app")

	// A healthy upgrade succeeds, and an explicit rollback job naming no
	// version returns to the version recorded before it.
	run(agentapi.Job{ID: "dnf-upgrade", ChangeID: "chg-dnf-2", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: hello, TargetVersion: "1.1-1"}}},
		agentapi.StatusSucceeded, "1.1-1", "", "install", "post-check: command clinic-app")
	run(agentapi.Job{ID: "dnf-rollback", ChangeID: "chg-dnf-2", Kind: agentapi.JobRollback,
		Packages: []agentapi.JobPackage{{Name: hello}}},
		agentapi.StatusSucceeded, "1.0-1", "", "install", "verify installed versions")
}
