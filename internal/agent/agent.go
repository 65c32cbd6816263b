package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Agent is the daemon: it checks in, pulls jobs, runs them one at a time
// on a worker, and uploads results until every one is acknowledged.
type Agent struct {
	Cfg       Config
	State     StateDir
	Client    *Client
	Journal   *Journal
	Executor  *Executor
	Collector Collector
	Runner    Runner
	Log       *slog.Logger
	// Jitter returns a factor in [0.9, 1.1) that spreads check-ins so a
	// fleet restarted together does not arrive together.
	Jitter func() float64

	mu     sync.Mutex
	ident  Identity
	queued map[string]bool // jobs handed to the worker and not yet done
	// executing is set while the worker runs a job (packages are
	// changing); execs counts the times it was set or cleared.
	executing bool
	execs     uint64
	window    *Schedule
	cfgWin    *Schedule
	checkins  int
}

// Backoff bounds for a server that cannot be reached or refuses us.
const (
	minBackoff   = 10 * time.Second
	maxBackoff   = 15 * time.Minute
	revokedDelay = 30 * time.Minute
)

// New wires an agent from its configuration and enrollment.
func New(cfg Config, ident Identity, client *Client, journal *Journal, collector Collector, pm PackageManager, run Runner, log *slog.Logger) (*Agent, error) {
	a := &Agent{Cfg: cfg, State: StateDir{Dir: cfg.StateDir}, Client: client, Journal: journal, Collector: collector, Runner: run, Log: log, ident: ident}
	if cfg.Window != nil {
		w, err := ParseWindow(cfg.Window.Wire())
		if err != nil {
			return nil, err
		}
		a.cfgWin = w
	}
	if ident.Window != nil {
		if w, err := ParseWindow(*ident.Window); err == nil {
			a.window = w
		} else {
			log.Warn("stored server window is invalid; using the configured fallback", "err", err)
		}
	}
	a.Executor = &Executor{
		Cfg: cfg, PM: pm, Run: run, Journal: journal, Log: log,
		Window:         a.Window,
		RebootRequired: RebootRequired,
	}
	return a, nil
}

// Window is the maintenance window in force: the server's latest, else
// the configured fallback, else nil (non-emergency jobs are refused).
func (a *Agent) Window() *Schedule {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.window != nil {
		return a.window
	}
	return a.cfgWin
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

func (a *Agent) jitter(d time.Duration) time.Duration {
	f := 0.9 + 0.2*rand.Float64()
	if a.Jitter != nil {
		f = a.Jitter()
	}
	return time.Duration(float64(d) * f)
}

// Run checks in until ctx ends. A job that is running when ctx ends is
// allowed to finish (its context is detached): killing apt-get halfway
// through would leave dpkg half-configured, which is worse than a late stop.
func (a *Agent) Run(ctx context.Context) error {
	if a.queued == nil {
		a.queued = map[string]bool{}
	}
	work := make(chan agentapi.Job, agentapi.MaxRunning)
	done := make(chan string, agentapi.MaxRunning)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		jobCtx := context.WithoutCancel(ctx)
		for job := range work {
			a.setExecuting(true)
			_, err := a.Executor.Execute(jobCtx, job)
			a.setExecuting(false)
			if err != nil && !errors.Is(err, ErrNotYet) {
				a.log().Error("job could not be recorded", "job", job.ID, "err", err)
			}
			done <- job.ID
		}
	}()
	defer func() {
		close(work)
		wg.Wait()
	}()

	// Jobs left in the journal by a previous run: running ones are resumed
	// (their true state found out), unstarted ones run when due.
	entries, err := a.Journal.List()
	if err != nil {
		a.log().Warn("job journal", "err", err)
	}
	for _, e := range entries {
		if e.State != JobFinished {
			a.enqueue(work, e.Job)
		}
	}

	backoff := time.Duration(0)
	for {
		a.reportResults(ctx)
		if ctx.Err() != nil {
			return nil
		}
		resp, err := a.checkIn(ctx)
		if err == nil && resp.InventoryWanted {
			// The server does not know our inventory: send it right away.
			resp, err = a.checkIn(ctx)
		}
		var wait time.Duration
		if err != nil {
			backoff = a.nextBackoff(backoff, err)
			wait = a.jitter(backoff)
			a.log().Warn("check-in failed", "err", err, "retry_in", wait.Round(time.Second))
		} else {
			backoff = 0
			if resp.JobsAvailable {
				a.pullJobs(ctx, work)
			}
			wait = a.jitter(a.interval(resp))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case id := <-done:
			timer.Stop()
			a.mu.Lock()
			delete(a.queued, id)
			a.mu.Unlock()
		}
	}
}

func (a *Agent) nextBackoff(prev time.Duration, err error) time.Duration {
	var he *HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
		// Revoked, unknown, or a host clock more than agentapi.MaxClockSkew
		// off: the server's message says which.
		a.log().Error("the server refuses this agent's requests; if it was revoked, re-enroll", "status", he.Status, "reason", he.Message)
		return revokedDelay
	}
	next := prev * 2
	if next < minBackoff {
		next = minBackoff
	}
	if next > maxBackoff {
		next = maxBackoff
	}
	if errors.As(err, &he) && he.RetryAfter > next {
		next = he.RetryAfter
	}
	return next
}

func (a *Agent) interval(resp agentapi.CheckInResponse) time.Duration {
	if d := resp.NextCheckIn.Duration; d >= time.Second {
		return d
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ident.CheckInInterval >= time.Second {
		return a.ident.CheckInInterval
	}
	return a.Cfg.CheckInInterval.Duration
}

// CheckIns counts successful check-ins (for tests and the idle benchmark).
func (a *Agent) CheckIns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checkins
}

func (a *Agent) setExecuting(v bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.executing = v
	a.execs++
}

// jobState says whether a job runs and how often one started or ended.
func (a *Agent) jobState() (bool, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.executing, a.execs
}

func (a *Agent) running() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for id := range a.queued {
		if len(ids) < agentapi.MaxRunning {
			ids = append(ids, id)
		}
	}
	return ids
}

// checkIn sends the heartbeat, with the full inventory only when its hash
// differs from the one the server acknowledged.
func (a *Agent) checkIn(ctx context.Context) (agentapi.CheckInResponse, error) {
	execBefore, execsBefore := a.jobState()
	inv, err := a.Collector.Collect(ctx)
	if err != nil {
		a.log().Warn("inventory collection failed; sending a heartbeat only", "err", err)
	}
	for _, w := range inv.Warnings {
		a.log().Debug("inventory", "warning", w)
	}
	execAfter, execsAfter := a.jobState()
	midJob := execBefore || execAfter || execsBefore != execsAfter
	a.mu.Lock()
	acked := a.ident.AckedInventoryHash
	a.mu.Unlock()
	req := agentapi.CheckInRequest{Facts: inv.Facts, InventoryHash: inv.Hash, Pending: inv.Pending, Running: a.running()}
	claimAcked := func() {
		req.InventoryHash = acked
		if acked == "" {
			req.InventoryHash = agentapi.InventoryHash(nil)
		}
	}
	switch {
	case err != nil || inv.Hash == "":
		// Nothing trustworthy to report: claim the acknowledged hash so the
		// server keeps what it has rather than storing an empty list.
		claimAcked()
		req.Pending = nil
	case midJob:
		// A list read while apt or dpkg is halfway through a job shows
		// packages unpacked, half-configured or briefly gone; the server
		// would close or open findings on a state that lasts seconds. The
		// inventory follows at the first check-in after the job.
		claimAcked()
	case inv.Hash != acked:
		req.Inventory = inv.Packages
		if req.Inventory == nil {
			req.Inventory = []agentapi.Package{}
		}
	}
	resp, err := a.Client.CheckIn(ctx, req)
	if err != nil {
		return resp, err
	}
	a.mu.Lock()
	a.checkins++
	changed := false
	switch {
	case resp.InventoryWanted:
		changed = a.ident.AckedInventoryHash != ""
		a.ident.AckedInventoryHash = ""
	case req.Inventory != nil:
		a.ident.AckedInventoryHash = req.InventoryHash
		changed = true
	}
	if resp.Window != nil {
		if w, werr := ParseWindow(*resp.Window); werr != nil {
			a.log().Warn("server sent an invalid maintenance window; keeping the previous one", "err", werr)
		} else {
			a.window = w
			win := *resp.Window
			a.ident.Window = &win
			changed = true
		}
	}
	if d := resp.NextCheckIn.Duration; d >= time.Second && d != a.ident.CheckInInterval {
		a.ident.CheckInInterval = d
		changed = true
	}
	ident := a.ident
	a.mu.Unlock()
	if changed {
		if err := a.State.SaveIdentity(ident); err != nil {
			a.log().Error("save agent state", "err", err)
		}
	}
	return resp, nil
}

func (a *Agent) enqueue(work chan<- agentapi.Job, job agentapi.Job) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queued[job.ID] {
		return
	}
	select {
	case work <- job:
		a.queued[job.ID] = true
	default:
		// The worker is saturated; the server will offer the job again.
	}
}

// pullJobs fetches ready jobs. A job already finished in the journal is
// not run again: its recorded result is re-sent instead.
func (a *Agent) pullJobs(ctx context.Context, work chan<- agentapi.Job) {
	jobs, err := a.Client.Jobs(ctx)
	if err != nil {
		a.log().Warn("pull jobs", "err", err)
		return
	}
	for _, j := range jobs {
		if !agentapi.ValidID(j.ID) {
			a.log().Warn("ignoring a job with an invalid id", "id", j.ID)
			continue
		}
		e, err := a.Journal.Get(j.ID)
		if err == nil && e.State == JobFinished {
			if e.Reported {
				// The server lost our report (or re-offers the job): resend.
				e.Reported = false
				e.Rejected = ""
				if err := a.Journal.Put(e); err != nil {
					a.log().Error("journal", "err", err)
				}
			}
			continue
		}
		a.enqueue(work, j)
	}
}

// reportResults uploads every finished, unreported result, then performs
// a pending reboot.
func (a *Agent) reportResults(ctx context.Context) {
	entries, err := a.Journal.List()
	if err != nil {
		a.log().Warn("job journal", "err", err)
	}
	for _, e := range entries {
		if e.State != JobFinished || e.Result == nil {
			continue
		}
		if !e.Reported && e.Rejected == "" {
			a.upload(ctx, &e)
		}
		if e.RebootPending && !e.RebootDone {
			a.reboot(ctx, &e)
		}
	}
	if err := a.Journal.Prune(time.Now().Add(-30 * 24 * time.Hour)); err != nil {
		a.log().Warn("prune job journal", "err", err)
	}
}

// upload sends one result with a few quick retries; what still fails stays
// in the journal and is retried on the next pass.
func (a *Agent) upload(ctx context.Context, e *Entry) {
	res := BoundResult(*e.Result)
	var err error
	for try, delay := 0, time.Second; try < 3; try, delay = try+1, delay*4 {
		if err = a.Client.Result(ctx, res); err == nil || !Temporary(err) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	var he *HTTPError
	switch {
	case err == nil:
		e.Reported = true
		if e.Job.Kind == agentapi.JobInventory {
			// The job asked for the full inventory: forget the ack.
			a.mu.Lock()
			a.ident.AckedInventoryHash = ""
			a.mu.Unlock()
		}
	case errors.As(err, &he) && he.Status == http.StatusConflict:
		// The server already holds a result for this job.
		e.Reported = true
	case errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden):
		// A wrong host clock or a revoked credential: the result stays
		// queued, to be sent once the operator has fixed the cause.
		a.log().Warn("the server refused the result's credentials; will retry", "job", e.Job.ID, "err", err)
		return
	case !Temporary(err):
		e.Rejected = err.Error()
		a.log().Error("the server rejected a job result; it will not be re-sent", "job", e.Job.ID, "err", err)
	default:
		a.log().Warn("upload job result; will retry", "job", e.Job.ID, "err", err)
		return
	}
	if perr := a.Journal.Put(*e); perr != nil {
		a.log().Error("journal", "err", perr)
	}
}

// reboot runs the configured reboot command once, after recording that it
// did so: a reboot that comes back must not reboot again.
func (a *Agent) reboot(ctx context.Context, e *Entry) {
	if w := a.Window(); w == nil || !w.Contains(time.Now()) {
		a.log().Warn("reboot deferred: the maintenance window has closed", "job", e.Job.ID)
		return
	}
	e.RebootDone = true
	if err := a.Journal.Put(*e); err != nil {
		a.log().Error("journal; not rebooting", "err", err)
		return
	}
	a.log().Info("rebooting as job allowed", "job", e.Job.ID, "command", a.Cfg.RebootCommand)
	st := a.Runner.Run(ctx, Command{Name: "reboot", Argv: a.Cfg.RebootCommand, Timeout: 5 * time.Minute})
	if !st.OK {
		a.log().Error("reboot command failed", "exit", st.ExitCode, "output", st.Output)
	}
}

// BoundResult trims a result to the protocol's limits, keeping the first
// and last steps (the failure and the rollback are what matter).
func BoundResult(r agentapi.JobResult) agentapi.JobResult {
	// Copy the steps: the caller's entry must keep its full record.
	r.Steps = append([]agentapi.Step(nil), r.Steps...)
	for i := range r.Steps {
		r.Steps[i].Command = append([]string(nil), r.Steps[i].Command...)
	}
	if len(r.Reason) > agentapi.MaxReason {
		r.Reason = r.Reason[:agentapi.MaxReason]
	}
	if n := len(r.Steps); n > agentapi.MaxSteps {
		keep := agentapi.MaxSteps - 1
		head := keep / 2
		steps := append([]agentapi.Step{}, r.Steps[:head]...)
		steps = append(steps, agentapi.Step{Name: "steps omitted", OK: true, Output: errs.E(errs.TooLarge, "%d steps omitted", n-keep).Error()})
		r.Steps = append(steps, r.Steps[n-(keep-head):]...)
	}
	for i := range r.Steps {
		s := &r.Steps[i]
		if len(s.Output) > agentapi.MaxStepOutput {
			s.Output = s.Output[len(s.Output)-agentapi.MaxStepOutput:]
		}
		if len(s.Name) > agentapi.MaxField {
			s.Name = s.Name[:agentapi.MaxField]
		}
		if len(s.Command) > agentapi.MaxCommandArgs {
			s.Command = s.Command[:agentapi.MaxCommandArgs]
		}
		for k, arg := range s.Command {
			if len(arg) > agentapi.MaxArgLen {
				s.Command[k] = arg[:agentapi.MaxArgLen]
			}
		}
	}
	return r
}
