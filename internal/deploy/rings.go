package deploy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/policy"
)

// AssignRings puts each asset in its deployment ring (policy
// Compiled.RingOf: the first ring whose select holds, else the last) and
// returns ring name → asset IDs, in the order the assets were given. Rings
// no asset joins are absent; the policy's ring order is the rollout order.
func AssignRings(pol *policy.Compiled, assets []policy.AssetFacts) (map[string][]string, error) {
	out := map[string][]string{}
	for _, a := range assets {
		r, _, err := pol.RingOf(a)
		if err != nil {
			return nil, fmt.Errorf("assign ring of asset %s: %w", a.ID, err)
		}
		out[r.Name] = append(out[r.Name], a.ID)
	}
	return out, nil
}

// JobState is where one asset's job of a wave stands.
type JobState string

// Job states as the gate reads them.
const (
	JobPending   JobState = "pending"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
)

// Job is one asset's job in a wave, as far as gates and throttling care.
type Job struct {
	AssetID string
	// Site is the throttling group (max_concurrent is per site).
	Site       string
	State      JobState
	StartedAt  time.Time
	FinishedAt time.Time
	// Manual marks a person's task rather than an agent's job, so the
	// gate's reasons name what the wave waits on or lost.
	Manual bool
}

// Verdict is what a gate says about a ring's wave.
type Verdict string

// The verdicts.
const (
	// Advance: the wave met its gate; the next ring may start.
	Advance Verdict = "advance"
	// Wait: not yet; Decision.Until says when to look again if known.
	Wait Verdict = "wait"
	// Halt: failures are above the ring's halt_failure_rate; the rollout
	// stops (and rolls back when the policy says auto_on_halt).
	Halt Verdict = "halt"
	// Blocked: failures stay under the halt threshold but the gate can no
	// longer open on these outcomes (too few assets or successes possible).
	// It is not a failure halt, so nothing rolls back by itself: an
	// operator retries, overrides or aborts.
	Blocked Verdict = "blocked"
)

// Decision is a gate's verdict with its reason, for the operator and the
// audit trail.
type Decision struct {
	Verdict Verdict
	// Until is when a Wait ends by itself (soak time); zero when it waits on
	// jobs to finish.
	Until  time.Time
	Reason string
}

// Gate decides whether a ring's wave lets the rollout move on, as the seeds
// put it: pilot first, then wider rings "after monitoring early results".
// With n jobs, s succeeded and f failed, in this order:
//
//   - Halt when f/n > HaltFailureRate. f/n only grows as jobs finish, so
//     this halts as soon as the outcome is certain, before all jobs end.
//   - Blocked when the gate can never open: even if every unfinished job
//     succeeded there would be fewer than MinSuccess successes or a
//     success rate below SuccessRate. A ring with fewer assets than
//     MinSuccess (a small clinic's one intranet server) needs every one of
//     them to succeed instead: a count it can never reach would stall
//     every rollout that touches it.
//   - Wait while any job is running (its result may still halt the wave).
//   - Wait while s < MinSuccess or s/n < SuccessRate (pending jobs may
//     still bring them up). Jobs not yet started do not hold back a gate
//     that is already met: an offline asset does not stall the rollout, it
//     counts as not succeeded.
//   - Wait until Soak has passed since the last success (Soak.AddTo in
//     loc: calendar days keep the wall-clock time), unless emergency: an
//     approved emergency change does not soak between rings (its own SLA
//     is hours, a routine soak days), though its gates still count.
//   - Advance.
//
// An empty wave advances: there is nothing to prove in a ring the change
// does not touch.
func Gate(ring policy.Ring, jobs []Job, now time.Time, loc *time.Location, emergency bool) Decision {
	n := len(jobs)
	if n == 0 {
		return Decision{Verdict: Advance, Reason: fmt.Sprintf("ring %s has no jobs in this change", ring.Name)}
	}
	var s int
	var failed, running tally
	var lastSuccess time.Time
	for _, j := range jobs {
		switch j.State {
		case JobSucceeded:
			s++
			if j.FinishedAt.After(lastSuccess) {
				lastSuccess = j.FinishedAt
			}
		case JobFailed:
			failed.add(j)
		case JobRunning:
			running.add(j)
		}
	}
	f := failed.all()
	items := itemsOf(jobs)
	rate := func(k int) float64 { return float64(k) / float64(n) }
	if rate(f) > ring.HaltFailureRate {
		return Decision{Verdict: Halt, Reason: fmt.Sprintf("ring %s: %d of %s failed (%s%.1f%%), above the halt threshold of %.1f%%",
			ring.Name, f, items(n), failed.detail(jobs), 100*rate(f), 100*ring.HaltFailureRate)}
	}
	if n < ring.MinSuccess {
		ring.MinSuccess = n
	}
	if best := n - f; best < ring.MinSuccess || rate(best) < ring.SuccessRate {
		return Decision{Verdict: Blocked, Reason: fmt.Sprintf("ring %s: with %d of %s failed (%s%.1f%%) at most %d can succeed (%.1f%%); the gate needs %d and %.1f%%",
			ring.Name, f, items(n), failed.detail(jobs), 100*rate(f), best, 100*rate(best), ring.MinSuccess, 100*ring.SuccessRate)}
	}
	if running.all() > 0 {
		return Decision{Verdict: Wait, Reason: fmt.Sprintf("ring %s: %s", ring.Name, running.open())}
	}
	if s < ring.MinSuccess || rate(s) < ring.SuccessRate {
		return Decision{Verdict: Wait, Reason: fmt.Sprintf("ring %s: %d of %d succeeded (%.1f%%); the gate needs %d and %.1f%%",
			ring.Name, s, n, 100*rate(s), ring.MinSuccess, 100*ring.SuccessRate)}
	}
	if emergency {
		return Decision{Verdict: Advance, Reason: fmt.Sprintf("ring %s: %d of %d succeeded (%.1f%%); emergency: no soak", ring.Name, s, n, 100*rate(s))}
	}
	if !ring.Soak.IsZero() && s > 0 {
		if until := ring.Soak.AddTo(lastSuccess, loc); now.Before(until) {
			return Decision{Verdict: Wait, Until: until, Reason: fmt.Sprintf("ring %s: soaking %s after the last success", ring.Name, ring.Soak.Human())}
		}
	}
	return Decision{Verdict: Advance, Reason: fmt.Sprintf("ring %s: %d of %d succeeded (%.1f%%), soak %s passed", ring.Name, s, n, 100*rate(s), ring.Soak.Human())}
}

// tally counts a wave's jobs and manual tasks in one state.
type tally struct{ jobs, tasks int }

func (t *tally) add(j Job) {
	if j.Manual {
		t.tasks++
	} else {
		t.jobs++
	}
}

func (t tally) all() int { return t.jobs + t.tasks }

// detail breaks the count down by kind when the wave holds manual
// tasks ("1 job, 1 manual task; "), for a failure rate that follows it;
// "" for a wave of jobs alone.
func (t tally) detail(jobs []Job) string {
	if t.all() == 0 || !slices.ContainsFunc(jobs, func(j Job) bool { return j.Manual }) {
		return ""
	}
	var parts []string
	if t.jobs > 0 {
		parts = append(parts, count(t.jobs, "job", "jobs"))
	}
	if t.tasks > 0 {
		parts = append(parts, count(t.tasks, "manual task", "manual tasks"))
	}
	return strings.Join(parts, ", ") + "; "
}

// open says what the wave still waits on: "1 job still running", "2
// tasks still open", or both.
func (t tally) open() string {
	var parts []string
	if t.jobs > 0 {
		parts = append(parts, count(t.jobs, "job", "jobs")+" still running")
	}
	if t.tasks > 0 {
		parts = append(parts, count(t.tasks, "task", "tasks")+" still open")
	}
	return strings.Join(parts, " and ")
}

// itemsOf names a wave's n items by what they are, as in "1 of 3
// jobs": jobs when they all are, items otherwise.
func itemsOf(jobs []Job) func(n int) string {
	noun := "jobs"
	if slices.ContainsFunc(jobs, func(j Job) bool { return j.Manual }) {
		noun = "items"
	}
	return func(n int) string { return fmt.Sprintf("%d %s", n, noun) }
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Throttle picks which pending jobs may start now so that no site runs
// more than maxConcurrent jobs at once (0: no limit), for sensitive clinical
// networks and vendor guidance. Running jobs count against their site;
// pending jobs are taken in the order given (the plan's order), and the
// result keeps it.
func Throttle(maxConcurrent int, running, pending []Job) []Job {
	if maxConcurrent <= 0 {
		return append([]Job(nil), pending...)
	}
	load := map[string]int{}
	for _, j := range running {
		load[j.Site]++
	}
	var out []Job
	for _, j := range pending {
		if load[j.Site] < maxConcurrent {
			load[j.Site]++
			out = append(out, j)
		}
	}
	return out
}
