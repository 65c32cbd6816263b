package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Check kinds a job may name (agentapi.Check.Kind).
const (
	CheckDiskSpace     = "disk_space"
	CheckPkgLockFree   = "pkg_lock_free"
	CheckBackupHook    = "backup_hook"
	CheckServiceActive = "service_active"
	CheckCommand       = "command"
)

// ErrNotYet says a job's NotBefore lies in the future; it stays in the
// journal as received and runs on a later pass.
var ErrNotYet = errors.New("job is not due yet")

// Executor runs jobs: window and validity checks, pre-checks, recording of
// previous versions, the change, verification, post-checks, rollback and
// the reboot decision, journalling after every step.
type Executor struct {
	Cfg     Config
	PM      PackageManager
	Run     Runner
	Journal *Journal
	Now     func() time.Time
	// Window returns the maintenance window in force (nil when none is
	// known).
	Window func() *Schedule
	// RebootRequired reports whether the OS wants a reboot after a change.
	RebootRequired func() bool
	// FreeMiB reports free space at a path.
	FreeMiB func(path string) (int64, error)
	Log     *slog.Logger
}

func (e *Executor) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

func (e *Executor) log() *slog.Logger {
	if e.Log == nil {
		return slog.Default()
	}
	return e.Log
}

// Execute runs job once. A job already in the journal is not run again:
// a finished one returns its recorded outcome (for re-sending), a running
// one — the agent stopped mid-job — is resumed by finding out its true
// state. The returned entry is finished unless the error is ErrNotYet.
func (e *Executor) Execute(ctx context.Context, job agentapi.Job) (Entry, error) {
	entry, err := e.Journal.Get(job.ID)
	switch {
	case err == nil:
		switch entry.State {
		case JobFinished:
			return entry, nil
		case JobRunning:
			return e.Resume(ctx, entry)
		}
		// Received but not started (e.g. was not due yet): run it as
		// recorded, ignoring changes in a re-delivery.
	case errs.KindOf(err) == errs.NotFound:
		entry = Entry{Job: job, State: JobReceived, Attempt: 1, Received: e.now().UTC(), Updated: e.now().UTC()}
		if err := e.Journal.Put(entry); err != nil {
			return entry, err
		}
	default:
		return entry, err
	}
	return e.run(ctx, entry)
}

func (e *Executor) run(ctx context.Context, entry Entry) (Entry, error) {
	job := entry.Job
	now := e.now()
	if reason := e.validate(job); reason != "" {
		return e.finish(entry, agentapi.StatusRefused, reason, nil)
	}
	if !job.Deadline.IsZero() && now.After(job.Deadline) {
		return e.finish(entry, agentapi.StatusRefused, fmt.Sprintf("deadline %s has passed", job.Deadline.UTC().Format(time.RFC3339)), nil)
	}
	if !job.NotBefore.IsZero() && now.Before(job.NotBefore) {
		return entry, ErrNotYet
	}
	if job.Kind == agentapi.JobInventory {
		entry.Steps = append(entry.Steps, note(e.now, "inventory requested", true, now, "the full inventory will be sent with the next check-in"))
		return e.finish(entry, agentapi.StatusSucceeded, "", nil)
	}
	if !job.Emergency {
		if reason := e.outsideWindow(now); reason != "" {
			return e.finish(entry, agentapi.StatusRefused, reason, nil)
		}
	}
	if err := e.PM.Supported(); err != nil {
		return e.finish(entry, agentapi.StatusRefused, errs.Public(err), nil)
	}

	// From here on the host may change: record that before anything runs.
	entry.State = JobRunning
	if err := e.save(&entry); err != nil {
		return entry, err
	}
	if job.Emergency {
		entry.Steps = append(entry.Steps, note(e.now, "emergency job", true, now, "emergency change: the maintenance window does not apply"))
	}

	for _, c := range e.preChecks(job) {
		st := e.check(ctx, "pre-check", c)
		if err := e.step(&entry, st); err != nil {
			return entry, err
		}
		if !st.OK {
			cur, _ := e.installed(ctx, &entry, false)
			return e.finish(entry, agentapi.StatusFailed, st.Name+" failed; nothing was changed", cur)
		}
	}

	prev, err := e.installed(ctx, &entry, true)
	if err != nil {
		return e.finish(entry, agentapi.StatusFailed, "could not read installed versions; nothing was changed", nil)
	}
	entry.Previous = prev
	targets, reason := e.targets(entry)
	if reason != "" {
		return e.finish(entry, agentapi.StatusFailed, reason+"; nothing was changed", prev)
	}
	entry.Targets = targets
	if err := e.save(&entry); err != nil {
		return entry, err
	}
	return e.change(ctx, entry, targets)
}

// change applies targets, verifies, and rolls back an install on a failed
// post-check. entry.Previous is recorded.
func (e *Executor) change(ctx context.Context, entry Entry, targets []agentapi.JobPackage) (Entry, error) {
	var todo []agentapi.JobPackage
	for _, t := range targets {
		if entry.Previous[t.Name] != t.TargetVersion {
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		if err := e.step(&entry, note(e.now, "install", true, e.now(), "every package is already at its target version; nothing to install")); err != nil {
			return entry, err
		}
	} else {
		if e.Cfg.updateBeforeInstall() {
			st := e.PM.Refresh(ctx)
			if err := e.step(&entry, st); err != nil {
				return entry, err
			}
			if !st.OK {
				return e.finish(entry, agentapi.StatusFailed, "refreshing package lists failed; nothing was changed", entry.Previous)
			}
		}
		st := e.PM.Apply(ctx, todo)
		if err := e.step(&entry, st); err != nil {
			return entry, err
		}
		if !st.OK {
			return e.settle(ctx, entry, targets, fmt.Sprintf("%s install exited %d", e.PM.Name(), st.ExitCode))
		}
	}
	return e.verifyAndSettle(ctx, entry, targets)
}

// verifyAndSettle runs the post-checks and decides the outcome.
func (e *Executor) verifyAndSettle(ctx context.Context, entry Entry, targets []agentapi.JobPackage) (Entry, error) {
	job := entry.Job
	cur, verified, err := e.verify(ctx, &entry, "verify installed versions", targets)
	if err != nil {
		return entry, err
	}
	failed := ""
	if !verified {
		failed = "installed versions differ from the targets"
	} else {
		for _, c := range e.postChecks(job) {
			st := e.check(ctx, "post-check", c)
			if err := e.step(&entry, st); err != nil {
				return entry, err
			}
			if !st.OK && failed == "" {
				failed = st.Name + " failed"
			}
		}
	}
	if failed != "" {
		return e.settle(ctx, entry, targets, failed)
	}
	e.decideReboot(&entry)
	return e.finish(entry, agentapi.StatusSucceeded, "", cur)
}

// settle ends a job whose change or checks failed: an install is rolled
// back, a failed rollback job is reported as it stands.
func (e *Executor) settle(ctx context.Context, entry Entry, targets []agentapi.JobPackage, failed string) (Entry, error) {
	if entry.Job.Kind == agentapi.JobRollback {
		cur, _ := e.installed(ctx, &entry, false)
		return e.finish(entry, agentapi.StatusFailed, "rollback: "+failed, cur)
	}
	return e.rollback(ctx, entry, failed)
}

// rollback returns the packages to entry.Previous (removing those that
// were not installed before), then falls back to the recovery hook.
func (e *Executor) rollback(ctx context.Context, entry Entry, trigger string) (Entry, error) {
	var want []agentapi.JobPackage
	for _, p := range entry.Job.Packages {
		want = append(want, agentapi.JobPackage{Name: p.Name, TargetVersion: entry.Previous[p.Name]})
	}
	start := e.now()
	if err := e.step(&entry, note(e.now, "rollback triggered", true, start, "%s; returning to the versions installed before the job: %s", trigger, describe(want))); err != nil {
		return entry, err
	}
	cur, _ := e.installed(ctx, &entry, false)
	var todo []agentapi.JobPackage
	for _, w := range want {
		if cur == nil || cur[w.Name] != w.TargetVersion {
			todo = append(todo, w)
		}
	}
	if cur != nil && len(todo) == 0 {
		// The change never took effect: there is nothing to roll back.
		return e.finish(entry, agentapi.StatusFailed, trigger+"; nothing had changed (the previous versions are still installed)", cur)
	}
	if len(todo) > 0 {
		st := e.PM.Apply(ctx, todo)
		st.Name = "rollback: install previous versions"
		if err := e.step(&entry, st); err != nil {
			return entry, err
		}
	}
	cur, ok, err := e.verify(ctx, &entry, "rollback: verify previous versions", want)
	if err != nil {
		return entry, err
	}
	if !ok && e.Cfg.RecoveryHook != "" {
		st := e.Run.Run(ctx, Command{Name: "rollback: recovery hook " + e.Cfg.RecoveryHook, Argv: e.Cfg.Hooks[e.Cfg.RecoveryHook], Timeout: e.Cfg.CommandTimeout.Duration})
		if err := e.step(&entry, st); err != nil {
			return entry, err
		}
		cur, _ = e.installed(ctx, &entry, false)
		if st.OK {
			e.healthAfterRollback(ctx, &entry)
			return e.finish(entry, agentapi.StatusRolledBack, trigger+"; package downgrade failed, recovered with hook "+e.Cfg.RecoveryHook, cur)
		}
	}
	if !ok {
		return e.finish(entry, agentapi.StatusFailed, trigger+"; rollback failed: the host needs attention", cur)
	}
	e.healthAfterRollback(ctx, &entry)
	return e.finish(entry, agentapi.StatusRolledBack, trigger+"; rolled back to the previous versions", cur)
}

// healthAfterRollback re-runs the configured health checks so the report
// shows whether the service came back; they do not change the outcome.
func (e *Executor) healthAfterRollback(ctx context.Context, entry *Entry) {
	for _, c := range e.configPostChecks() {
		st := e.check(ctx, "after rollback", c)
		_ = e.step(entry, st)
	}
}

// Resume settles a job that was running when the agent stopped. It does
// not re-run the change blindly: it reads the installed versions and
// reports what is true, finishing verification (or rolling back a partly
// applied install) as needed.
func (e *Executor) Resume(ctx context.Context, entry Entry) (Entry, error) {
	start := e.now()
	if err := e.step(&entry, note(e.now, "resume after agent restart", true, start,
		"the agent stopped while this job was running; checking the installed versions instead of running it again")); err != nil {
		return entry, err
	}
	if err := e.PM.Supported(); err != nil {
		return e.finish(entry, agentapi.StatusFailed, "interrupted: "+errs.Public(err), nil)
	}
	if entry.Previous == nil {
		cur, _ := e.installed(ctx, &entry, false)
		return e.finish(entry, agentapi.StatusFailed, "interrupted before the package manager ran; nothing was changed", cur)
	}
	targets := entry.Targets
	if targets == nil {
		var reason string
		if targets, reason = e.targets(entry); reason != "" {
			return e.finish(entry, agentapi.StatusFailed, "interrupted: "+reason, entry.Previous)
		}
	}
	cur, err := e.installed(ctx, &entry, false)
	if err != nil {
		return e.finish(entry, agentapi.StatusFailed, "interrupted, and the installed versions cannot be read: the host needs attention", nil)
	}
	atTarget, atPrevious := true, true
	for _, t := range targets {
		if cur[t.Name] != t.TargetVersion {
			atTarget = false
		}
		if cur[t.Name] != entry.Previous[t.Name] {
			atPrevious = false
		}
	}
	switch {
	case atTarget:
		// The change completed; finish what the agent did not get to.
		return e.verifyAndSettle(ctx, entry, targets)
	case atPrevious:
		return e.finish(entry, agentapi.StatusFailed, "interrupted before the change took effect; the previous versions are still installed", cur)
	case entry.Job.Kind == agentapi.JobInstall:
		return e.rollback(ctx, entry, "interrupted mid-install (some packages changed)")
	default:
		return e.finish(entry, agentapi.StatusFailed, "interrupted mid-rollback: the host needs attention", cur)
	}
}

// validate returns a refusal reason for a job the agent must not run.
func (e *Executor) validate(job agentapi.Job) string {
	switch job.Kind {
	case agentapi.JobInstall, agentapi.JobRollback:
	case agentapi.JobInventory:
		return ""
	default:
		return fmt.Sprintf("unknown job kind %q", job.Kind)
	}
	if len(job.Packages) == 0 {
		return "the job names no packages"
	}
	seen := map[string]bool{}
	for _, p := range job.Packages {
		if seen[p.Name] {
			return fmt.Sprintf("package %q is named twice", p.Name)
		}
		seen[p.Name] = true
		if job.Kind == agentapi.JobInstall && p.TargetVersion == "" {
			return fmt.Sprintf("package %q has no target version", p.Name)
		}
		if err := e.PM.ValidatePackage(p.Name, p.TargetVersion); err != nil {
			return errs.Public(err)
		}
		if err := e.PM.ValidatePackage(p.Name, p.PreviousVersion); err != nil {
			return errs.Public(err)
		}
	}
	for _, c := range append(append([]agentapi.Check{}, job.PreChecks...), job.PostChecks...) {
		if reason := e.validateCheck(c); reason != "" {
			return reason
		}
	}
	return ""
}

// validateCheck makes sure a check only names things configured here.
func (e *Executor) validateCheck(c agentapi.Check) string {
	switch c.Kind {
	case CheckDiskSpace:
		if n, err := strconv.ParseInt(c.Arg, 10, 64); err != nil || n < 0 {
			return fmt.Sprintf("disk_space check: %q is not a number of MiB", c.Arg)
		}
	case CheckPkgLockFree:
	case CheckBackupHook:
		if _, ok := e.Cfg.Hooks[c.Arg]; !ok {
			return fmt.Sprintf("backup hook %q is not configured on this agent", c.Arg)
		}
	case CheckCommand:
		if _, ok := e.Cfg.Health.Commands[c.Arg]; !ok {
			return fmt.Sprintf("health command %q is not configured on this agent", c.Arg)
		}
	case CheckServiceActive:
		if !hookNameRE.MatchString(c.Arg) {
			return fmt.Sprintf("%q is not a service name", c.Arg)
		}
	default:
		return fmt.Sprintf("unknown check kind %q", c.Kind)
	}
	return ""
}

func (e *Executor) outsideWindow(now time.Time) string {
	var w *Schedule
	if e.Window != nil {
		w = e.Window()
	}
	if w == nil {
		return "no maintenance window is known to this agent; only emergency jobs may run"
	}
	if w.Contains(now) {
		return ""
	}
	next := w.Next(now)
	if next.IsZero() {
		// Only dated openings, all past: the server has not sent newer
		// ones, and the agent does not guess.
		return fmt.Sprintf("outside maintenance window %q (now %s; no later opening known — the server sends them at check-in)", w.Name,
			now.In(w.Location()).Format("Mon 2006-01-02 15:04 MST"))
	}
	return fmt.Sprintf("outside maintenance window %q (now %s; next opening %s)", w.Name,
		now.In(w.Location()).Format("Mon 2006-01-02 15:04 MST"), next.In(w.Location()).Format("Mon 2006-01-02 15:04 MST"))
}

// preChecks are the job's plus those the local administrator requires.
func (e *Executor) preChecks(job agentapi.Job) []agentapi.Check {
	cs := []agentapi.Check{{Kind: CheckPkgLockFree}}
	if e.Cfg.MinFreeMiB > 0 {
		cs = append(cs, agentapi.Check{Kind: CheckDiskSpace, Arg: strconv.FormatInt(e.Cfg.MinFreeMiB, 10)})
	}
	if e.Cfg.RequireBackupHook != "" {
		cs = append(cs, agentapi.Check{Kind: CheckBackupHook, Arg: e.Cfg.RequireBackupHook})
	}
	for _, s := range e.Cfg.Health.Services {
		cs = append(cs, agentapi.Check{Kind: CheckServiceActive, Arg: s})
	}
	return dedupeChecks(append(cs, job.PreChecks...))
}

func (e *Executor) configPostChecks() []agentapi.Check {
	var cs []agentapi.Check
	for _, n := range e.Cfg.Health.Always {
		cs = append(cs, agentapi.Check{Kind: CheckCommand, Arg: n})
	}
	for _, s := range e.Cfg.Health.Services {
		cs = append(cs, agentapi.Check{Kind: CheckServiceActive, Arg: s})
	}
	return cs
}

func (e *Executor) postChecks(job agentapi.Job) []agentapi.Check {
	return dedupeChecks(append(e.configPostChecks(), job.PostChecks...))
}

func dedupeChecks(cs []agentapi.Check) []agentapi.Check {
	seen := map[agentapi.Check]bool{}
	out := cs[:0:0]
	for _, c := range cs {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// check runs one pre- or post-check and reports it as a step.
func (e *Executor) check(ctx context.Context, phase string, c agentapi.Check) agentapi.Step {
	start := e.now()
	name := phase + ": " + c.Kind
	if c.Arg != "" {
		name += " " + c.Arg
	}
	if reason := e.validateCheck(c); reason != "" {
		return note(e.now, name, false, start, "%s", reason)
	}
	switch c.Kind {
	case CheckDiskSpace:
		need, _ := strconv.ParseInt(c.Arg, 10, 64)
		var msgs []string
		ok := true
		for _, p := range diskPaths() {
			free, err := e.freeMiB(p)
			if err != nil {
				ok = false
				msgs = append(msgs, fmt.Sprintf("%s: %v", p, err))
				continue
			}
			if free < need {
				ok = false
			}
			msgs = append(msgs, fmt.Sprintf("%s: %d MiB free (need %d)", p, free, need))
		}
		return note(e.now, name, ok, start, "%s", strings.Join(msgs, "; "))
	case CheckPkgLockFree:
		held, detail, err := e.PM.LockHolder()
		switch {
		case err != nil:
			return note(e.now, name, false, start, "%v", err)
		case held:
			return note(e.now, name, false, start, "%s", detail)
		}
		return note(e.now, name, true, start, "%s package database lock is free", e.PM.Name())
	case CheckBackupHook:
		st := e.Run.Run(ctx, Command{Name: name, Argv: e.Cfg.Hooks[c.Arg], Timeout: e.Cfg.CommandTimeout.Duration})
		return st
	case CheckCommand:
		return e.Run.Run(ctx, Command{Name: name, Argv: e.Cfg.Health.Commands[c.Arg], Timeout: e.Cfg.CommandTimeout.Duration, User: e.Cfg.UnprivilegedUser})
	case CheckServiceActive:
		if runtime.GOOS != "linux" {
			return note(e.now, name, false, start, "service checks are not supported on %s yet", runtime.GOOS)
		}
		return e.Run.Run(ctx, Command{Name: name, Argv: []string{"systemctl", "is-active", "--", c.Arg}, Timeout: time.Minute, User: e.Cfg.UnprivilegedUser})
	}
	return note(e.now, name, false, start, "unknown check kind %q", c.Kind)
}

func (e *Executor) freeMiB(p string) (int64, error) {
	if e.FreeMiB != nil {
		return e.FreeMiB(p)
	}
	return freeMiB(p)
}

// installed records a version query as a step (when record is set or it
// failed) and returns the versions of the job's packages.
func (e *Executor) installed(ctx context.Context, entry *Entry, record bool) (map[string]string, error) {
	names := make([]string, 0, len(entry.Job.Packages))
	for _, p := range entry.Job.Packages {
		names = append(names, p.Name)
	}
	got, st, err := e.PM.Installed(ctx, names)
	if record || err != nil {
		if record && err == nil {
			st.Name = "record previous versions"
		}
		if serr := e.step(entry, st); serr != nil && err == nil {
			err = serr
		}
	}
	return got, err
}

// verify compares installed versions with want and records the result.
func (e *Executor) verify(ctx context.Context, entry *Entry, name string, want []agentapi.JobPackage) (map[string]string, bool, error) {
	start := e.now()
	cur, err := e.installed(ctx, entry, false)
	if err != nil {
		return nil, false, e.step(entry, note(e.now, name, false, start, "cannot read installed versions: %v", err))
	}
	var bad, good []string
	for _, w := range want {
		if cur[w.Name] != w.TargetVersion {
			bad = append(bad, fmt.Sprintf("%s is %s, want %s", w.Name, orNone(cur[w.Name]), orNone(w.TargetVersion)))
		} else {
			good = append(good, fmt.Sprintf("%s %s", w.Name, orNone(w.TargetVersion)))
		}
	}
	ok := len(bad) == 0
	msg := "installed: " + strings.Join(good, ", ")
	if !ok {
		msg = strings.Join(bad, "; ")
	}
	return cur, ok, e.step(entry, note(e.now, name, ok, start, "%s", msg))
}

// targets resolves each package's target version. A rollback job names
// the versions to return to; when it leaves one empty the agent uses the
// previous version it recorded for the same change.
func (e *Executor) targets(entry Entry) ([]agentapi.JobPackage, string) {
	var out []agentapi.JobPackage
	for _, p := range entry.Job.Packages {
		t := p.TargetVersion
		if entry.Job.Kind == agentapi.JobRollback && t == "" {
			t = p.PreviousVersion
			if t == "" {
				t = e.recordedPrevious(entry.Job, p.Name)
			}
			if t == "" {
				return nil, fmt.Sprintf("rollback names no version for %q and the journal has none recorded for change %q", p.Name, entry.Job.ChangeID)
			}
		}
		out = append(out, agentapi.JobPackage{Name: p.Name, TargetVersion: t, PreviousVersion: entry.Previous[p.Name]})
	}
	return out, ""
}

// recordedPrevious finds the version this agent recorded before the most
// recent install of name for the same change.
func (e *Executor) recordedPrevious(job agentapi.Job, name string) string {
	if job.ChangeID == "" {
		return ""
	}
	entries, _ := e.Journal.List()
	v := ""
	for _, en := range entries {
		if en.Job.ChangeID != job.ChangeID || en.Job.Kind != agentapi.JobInstall || en.Previous == nil {
			continue
		}
		if p, ok := en.Previous[name]; ok && p != "" {
			v = p // later entries win: List is oldest first
		}
	}
	return v
}

// decideReboot schedules a reboot only when the OS wants one, the job
// allows it and the window is open (emergency or not).
func (e *Executor) decideReboot(entry *Entry) {
	if e.RebootRequired == nil || !e.RebootRequired() {
		return
	}
	start := e.now()
	switch {
	case !entry.Job.AllowReboot:
		_ = e.step(entry, note(e.now, "reboot", true, start, "the host needs a reboot; the job does not allow one"))
	case e.outsideWindow(start) != "":
		_ = e.step(entry, note(e.now, "reboot", true, start, "the host needs a reboot; deferred: %s", e.outsideWindow(start)))
	default:
		entry.RebootPending = true
		_ = e.step(entry, note(e.now, "reboot", true, start, "the host needs a reboot; rebooting after this result is reported"))
	}
}

// step appends st and journals the entry, so a crash loses no step.
func (e *Executor) step(entry *Entry, st agentapi.Step) error {
	entry.Steps = append(entry.Steps, st)
	return e.save(entry)
}

func (e *Executor) save(entry *Entry) error {
	entry.Updated = e.now().UTC()
	return e.Journal.Put(*entry)
}

func (e *Executor) finish(entry Entry, status, reason string, installed map[string]string) (Entry, error) {
	entry.State = JobFinished
	entry.Result = &agentapi.JobResult{
		JobID:     entry.Job.ID,
		Attempt:   entry.Attempt,
		Status:    status,
		Reason:    reason,
		Steps:     entry.Steps,
		Installed: installed,
	}
	lvl := slog.LevelInfo
	if status != agentapi.StatusSucceeded {
		lvl = slog.LevelWarn
	}
	e.log().Log(context.Background(), lvl, "job finished", "job", entry.Job.ID, "kind", entry.Job.Kind, "status", status, "reason", reason)
	return entry, e.save(&entry)
}

func describe(ps []agentapi.JobPackage) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, p.Name+" "+orNone(p.TargetVersion))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func orNone(v string) string {
	if v == "" {
		return "(not installed)"
	}
	return v
}
