package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// fakePM is an in-memory package manager: Apply sets versions unless
// failApply names a version that cannot be installed.
type fakePM struct {
	mu        sync.Mutex
	versions  map[string]string
	applied   [][]agentapi.JobPackage
	failApply map[string]bool
	lockHeld  bool
}

func (f *fakePM) Name() string     { return "fake" }
func (f *fakePM) Supported() error { return nil }
func (f *fakePM) ValidatePackage(name, version string) error {
	return (&Apt{}).ValidatePackage(name, version)
}
func (f *fakePM) Installed(_ context.Context, names []string) (map[string]string, agentapi.Step, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, n := range names {
		out[n] = f.versions[n]
	}
	return out, agentapi.Step{Name: "query installed versions", OK: true}, nil
}
func (f *fakePM) Refresh(context.Context) agentapi.Step {
	return agentapi.Step{Name: "refresh package lists", OK: true}
}
func (f *fakePM) Apply(_ context.Context, want []agentapi.JobPackage) agentapi.Step {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, want)
	for _, w := range want {
		if f.failApply[w.TargetVersion] {
			return agentapi.Step{Name: "install", ExitCode: 100, Output: "E: Version '" + w.TargetVersion + "' not found"}
		}
	}
	for _, w := range want {
		f.versions[w.Name] = w.TargetVersion
	}
	return agentapi.Step{Name: "install", OK: true}
}
func (f *fakePM) LockHolder() (bool, string, error) {
	if f.lockHeld {
		return true, "lock held by process 4242", nil
	}
	return false, "", nil
}

// fakeRunner succeeds for argv[0] "true" and fails otherwise, recording
// what ran.
type fakeRunner struct {
	mu  sync.Mutex
	ran [][]string
}

func (r *fakeRunner) Run(_ context.Context, c Command) agentapi.Step {
	r.mu.Lock()
	r.ran = append(r.ran, c.Argv)
	r.mu.Unlock()
	ok := len(c.Argv) > 0 && c.Argv[0] == "true"
	st := agentapi.Step{Name: c.Name, Command: c.Argv, OK: ok}
	if !ok {
		st.ExitCode = 1
	}
	return st
}

type execFixture struct {
	e   *Executor
	pm  *fakePM
	run *fakeRunner
	now time.Time
}

// newExec builds an executor whose clock is fixed at now and whose window
// is Sunday 01:00–04:00 in New York.
func newExec(t *testing.T, now time.Time) *execFixture {
	t.Helper()
	cfg := Defaults()
	cfg.StateDir = t.TempDir()
	cfg.Hooks = map[string][]string{"snapshot": {"true"}, "restore": {"true"}, "broken-snapshot": {"false"}}
	cfg.Health.Commands = map[string][]string{"ok": {"true"}, "fails": {"false"}}
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &execFixture{pm: &fakePM{versions: map[string]string{"openssl": "3.0.11-1"}}, run: &fakeRunner{}, now: now}
	w := mustWindow(t, "America/New_York", agentapi.Slot{Day: 0, Start: "01:00", End: "04:00"})
	f.e = &Executor{Cfg: cfg, PM: f.pm, Run: f.run, Journal: j,
		Now:     func() time.Time { return f.now },
		Window:  func() *Schedule { return w },
		FreeMiB: func(string) (int64, error) { return 10_000, nil }}
	return f
}

func upgrade(id string) agentapi.Job {
	return agentapi.Job{ID: id, ChangeID: "chg", Kind: agentapi.JobInstall,
		Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.13-1"}}}
}

var (
	insideNY  = utc("2026-03-08T07:30:00Z") // Sunday 03:30 EDT, after the spring-forward gap
	outsideNY = utc("2026-03-08T08:30:00Z") // Sunday 04:30 EDT
)

func TestExecuteWindow(t *testing.T) {
	tests := []struct {
		name      string
		at        time.Time
		emergency bool
		want      string
	}{
		{"inside", insideNY, false, agentapi.StatusSucceeded},
		{"outside", outsideNY, false, agentapi.StatusRefused},
		{"outside but emergency", outsideNY, true, agentapi.StatusSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExec(t, tt.at)
			job := upgrade("j1")
			job.Emergency = tt.emergency
			e, err := f.e.Execute(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			if e.Result.Status != tt.want {
				t.Fatalf("status = %s (%s); want %s", e.Result.Status, e.Result.Reason, tt.want)
			}
			if tt.want == agentapi.StatusRefused {
				if len(f.pm.applied) != 0 || !strings.Contains(e.Result.Reason, "outside maintenance window") || !strings.Contains(e.Result.Reason, "next opening Sun 2026-03-15 01:00 EDT") {
					t.Errorf("refusal: applied %v, reason %q", f.pm.applied, e.Result.Reason)
				}
			}
		})
	}
}

// TestExecuteDatedOpenings: a named window arrives as dated openings; a job
// runs inside one and is refused after the last one the agent knows of.
func TestExecuteDatedOpenings(t *testing.T) {
	w, err := ParseWindow(agentapi.Window{Name: "monthly-baseline", TimeZone: "America/New_York",
		Openings: []agentapi.Opening{{Start: utc("2026-03-13T03:00:00Z"), End: utc("2026-03-13T07:00:00Z")}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{utc("2026-03-13T04:00:00Z"), agentapi.StatusSucceeded},
		{utc("2026-03-14T04:00:00Z"), agentapi.StatusRefused},
	} {
		f := newExec(t, tc.at)
		f.e.Window = func() *Schedule { return w }
		e, err := f.e.Execute(context.Background(), upgrade("j1"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Result.Status != tc.want {
			t.Fatalf("at %v: status %s (%s); want %s", tc.at, e.Result.Status, e.Result.Reason, tc.want)
		}
		if tc.want == agentapi.StatusRefused && (len(f.pm.applied) != 0 || !strings.Contains(e.Result.Reason, "no later opening known")) {
			t.Errorf("refusal after the last opening: applied %v, reason %q", f.pm.applied, e.Result.Reason)
		}
	}
}

func TestExecuteNoWindowRefuses(t *testing.T) {
	f := newExec(t, insideNY)
	f.e.Window = func() *Schedule { return nil }
	e, _ := f.e.Execute(context.Background(), upgrade("j1"))
	if e.Result.Status != agentapi.StatusRefused || len(f.pm.applied) != 0 {
		t.Fatalf("status %s, applied %v; want refused with nothing applied", e.Result.Status, f.pm.applied)
	}
}

// TestExecuteRefusesUntrustedInput: the server may only name configured
// hooks, valid package names and known check kinds.
func TestExecuteRefusesUntrustedInput(t *testing.T) {
	tests := map[string]func(*agentapi.Job){
		"option as package": func(j *agentapi.Job) { j.Packages[0].Name = "-oAPT::Update::Pre-Invoke::=touch/tmp/pwned" },
		"option as version": func(j *agentapi.Job) { j.Packages[0].TargetVersion = "--reinstall" },
		"unconfigured hook": func(j *agentapi.Job) { j.PreChecks = []agentapi.Check{{Kind: "backup_hook", Arg: "rm -rf /"}} },
		"unconfigured cmd":  func(j *agentapi.Job) { j.PostChecks = []agentapi.Check{{Kind: "command", Arg: "sh"}} },
		"unknown check":     func(j *agentapi.Job) { j.PostChecks = []agentapi.Check{{Kind: "shell", Arg: "id"}} },
		"bad service":       func(j *agentapi.Job) { j.PreChecks = []agentapi.Check{{Kind: "service_active", Arg: "--all"}} },
		"unknown kind":      func(j *agentapi.Job) { j.Kind = "exec" },
		"no packages":       func(j *agentapi.Job) { j.Packages = nil },
		"deadline passed":   func(j *agentapi.Job) { j.Deadline = insideNY.Add(-time.Minute) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			f := newExec(t, insideNY)
			job := upgrade("j1")
			mutate(&job)
			e, err := f.e.Execute(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			if e.Result.Status != agentapi.StatusRefused || len(f.pm.applied) != 0 || len(f.run.ran) != 0 {
				t.Fatalf("status %s (%s), applied %v, ran %v; want refused, nothing run", e.Result.Status, e.Result.Reason, f.pm.applied, f.run.ran)
			}
		})
	}
}

func TestExecuteUnsupportedManagerRefuses(t *testing.T) {
	f := newExec(t, insideNY)
	f.e.PM = ManagerFor("macos", nil, f.e.Cfg, f.run)
	e, _ := f.e.Execute(context.Background(), upgrade("j1"))
	if e.Result.Status != agentapi.StatusRefused || e.Result.Reason != "softwareupdate: not supported on this OS yet" {
		t.Fatalf("status %s reason %q; want refused: softwareupdate: not supported on this OS yet", e.Result.Status, e.Result.Reason)
	}
}

func TestExecutePreCheckFailureChangesNothing(t *testing.T) {
	for name, setup := range map[string]func(*execFixture, *agentapi.Job){
		"lock held": func(f *execFixture, _ *agentapi.Job) { f.pm.lockHeld = true },
		"backup fails": func(_ *execFixture, j *agentapi.Job) {
			j.PreChecks = []agentapi.Check{{Kind: "backup_hook", Arg: "broken-snapshot"}}
		},
		"disk full": func(f *execFixture, _ *agentapi.Job) { f.e.FreeMiB = func(string) (int64, error) { return 10, nil } },
	} {
		t.Run(name, func(t *testing.T) {
			f := newExec(t, insideNY)
			job := upgrade("j1")
			setup(f, &job)
			e, _ := f.e.Execute(context.Background(), job)
			if e.Result.Status != agentapi.StatusFailed || len(f.pm.applied) != 0 || f.pm.versions["openssl"] != "3.0.11-1" {
				t.Fatalf("status %s (%s), applied %v; want failed with nothing applied", e.Result.Status, e.Result.Reason, f.pm.applied)
			}
		})
	}
}

func TestExecuteOnce(t *testing.T) {
	f := newExec(t, insideNY)
	first, _ := f.e.Execute(context.Background(), upgrade("j1"))
	again, _ := f.e.Execute(context.Background(), upgrade("j1"))
	if len(f.pm.applied) != 1 {
		t.Fatalf("Apply ran %d times for one job delivered twice; want 1", len(f.pm.applied))
	}
	if again.Result.Status != first.Result.Status || again.Attempt != first.Attempt {
		t.Errorf("second delivery = %s/%d; want the recorded %s/%d", again.Result.Status, again.Attempt, first.Result.Status, first.Attempt)
	}
}

func TestRollbackFallsBackToRecoveryHook(t *testing.T) {
	f := newExec(t, insideNY)
	f.e.Cfg.RecoveryHook = "restore"
	f.pm.failApply = map[string]bool{"3.0.11-1": true} // the old version is gone from the mirror
	job := upgrade("j1")
	job.PostChecks = []agentapi.Check{{Kind: "command", Arg: "fails"}}
	e, _ := f.e.Execute(context.Background(), job)
	if e.Result.Status != agentapi.StatusRolledBack || !strings.Contains(e.Result.Reason, "recovered with hook restore") {
		t.Fatalf("status %s (%s); want rolled_back by the recovery hook", e.Result.Status, e.Result.Reason)
	}
	f2 := newExec(t, insideNY)
	f2.pm.failApply = map[string]bool{"3.0.11-1": true}
	e, _ = f2.e.Execute(context.Background(), job)
	if e.Result.Status != agentapi.StatusFailed || !strings.Contains(e.Result.Reason, "rollback failed") {
		t.Fatalf("without a hook: status %s (%s); want failed: rollback failed", e.Result.Status, e.Result.Reason)
	}
}

// TestResumeAfterCrash: a job journalled as running when the agent died is
// settled from the installed versions, never re-run.
func TestResumeAfterCrash(t *testing.T) {
	tests := []struct {
		name      string
		installed string
		previous  map[string]string
		want      string
		applies   int
	}{
		{"change completed", "3.0.13-1", map[string]string{"openssl": "3.0.11-1"}, agentapi.StatusSucceeded, 0},
		{"change never happened", "3.0.11-1", map[string]string{"openssl": "3.0.11-1"}, agentapi.StatusFailed, 0},
		{"died before recording", "3.0.11-1", nil, agentapi.StatusFailed, 0},
		{"half applied", "3.0.12-1", map[string]string{"openssl": "3.0.11-1"}, agentapi.StatusRolledBack, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newExec(t, outsideNY) // resuming is allowed after the window closed
			f.pm.versions["openssl"] = tt.installed
			entry := Entry{Job: upgrade("j1"), State: JobRunning, Attempt: 1, Received: insideNY, Previous: tt.previous}
			if err := f.e.Journal.Put(entry); err != nil {
				t.Fatal(err)
			}
			e, err := f.e.Execute(context.Background(), upgrade("j1"))
			if err != nil {
				t.Fatal(err)
			}
			if e.Result.Status != tt.want || len(f.pm.applied) != tt.applies {
				t.Fatalf("status %s (%s), applies %d; want %s, %d", e.Result.Status, e.Result.Reason, len(f.pm.applied), tt.want, tt.applies)
			}
			if e.Result.Steps[0].Name != "resume after agent restart" {
				t.Errorf("first step %q; want the resume note", e.Result.Steps[0].Name)
			}
			if got, _ := f.e.Journal.Get("j1"); got.State != JobFinished {
				t.Errorf("journal state %s; want finished", got.State)
			}
		})
	}
}

func TestRollbackJobUsesRecordedPrevious(t *testing.T) {
	f := newExec(t, insideNY)
	if e, _ := f.e.Execute(context.Background(), upgrade("j1")); e.Result.Status != agentapi.StatusSucceeded {
		t.Fatal(e.Result.Reason)
	}
	rb := agentapi.Job{ID: "j2", ChangeID: "chg", Kind: agentapi.JobRollback, Packages: []agentapi.JobPackage{{Name: "openssl"}}}
	e, _ := f.e.Execute(context.Background(), rb)
	if e.Result.Status != agentapi.StatusSucceeded || f.pm.versions["openssl"] != "3.0.11-1" {
		t.Fatalf("rollback: %s (%s), version %s; want succeeded at 3.0.11-1", e.Result.Status, e.Result.Reason, f.pm.versions["openssl"])
	}
}

func TestRebootOnlyWhenAllowedAndInWindow(t *testing.T) {
	for _, tt := range []struct {
		name      string
		at        time.Time
		allow     bool
		emergency bool
		want      bool
	}{
		{"allowed in window", insideNY, true, false, true},
		{"not allowed", insideNY, false, false, false},
		{"emergency outside window", outsideNY, true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newExec(t, tt.at)
			f.e.RebootRequired = func() bool { return true }
			job := upgrade("j1")
			job.AllowReboot, job.Emergency = tt.allow, tt.emergency
			e, _ := f.e.Execute(context.Background(), job)
			if e.RebootPending != tt.want || e.Result.Status != agentapi.StatusSucceeded {
				t.Fatalf("reboot pending = %v (status %s); want %v", e.RebootPending, e.Result.Status, tt.want)
			}
		})
	}
}

func TestInstallFailureThatChangedNothingIsFailedNotRolledBack(t *testing.T) {
	f := newExec(t, insideNY)
	f.pm.failApply = map[string]bool{"3.0.13-1": true}
	e, _ := f.e.Execute(context.Background(), upgrade("j1"))
	if e.Result.Status != agentapi.StatusFailed || !strings.Contains(e.Result.Reason, "install exited 100") || !strings.Contains(e.Result.Reason, "nothing had changed") || len(f.pm.applied) != 1 {
		t.Fatalf("status %s (%s), applies %d; want failed, nothing changed, one apply", e.Result.Status, e.Result.Reason, len(f.pm.applied))
	}
}

// TestResumeRollbackJobKeepsItsTarget: a rollback job interrupted after
// it recorded its plan resumes towards the version it resolved, not the
// one that was installed when it started.
func TestResumeRollbackJobKeepsItsTarget(t *testing.T) {
	f := newExec(t, insideNY)
	if e, _ := f.e.Execute(context.Background(), upgrade("j1")); e.Result.Status != agentapi.StatusSucceeded {
		t.Fatal(e.Result.Reason)
	}
	rb := agentapi.Job{ID: "j2", ChangeID: "chg", Kind: agentapi.JobRollback, Packages: []agentapi.JobPackage{{Name: "openssl"}}}
	e, _ := f.e.Execute(context.Background(), rb)
	if e.Result.Status != agentapi.StatusSucceeded {
		t.Fatal(e.Result.Reason)
	}
	// Replay the rollback as if the agent had died right after applying.
	e.State, e.Result, e.Steps = JobRunning, nil, nil
	e.Job.ID = "j3"
	if err := f.e.Journal.Put(e); err != nil {
		t.Fatal(err)
	}
	got, _ := f.e.Execute(context.Background(), e.Job)
	if got.Result.Status != agentapi.StatusSucceeded || f.pm.versions["openssl"] != "3.0.11-1" {
		t.Fatalf("resumed rollback: %s (%s), version %s; want succeeded at 3.0.11-1", got.Result.Status, got.Result.Reason, f.pm.versions["openssl"])
	}
}
