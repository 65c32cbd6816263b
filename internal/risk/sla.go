package risk

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
)

// ClockInput is everything one step of a finding's SLA clock depends on.
// The clock is a pure function of it: the caller supplies the time, so the
// same inputs always give the same record (and tests need no real clock).
type ClockInput struct {
	// Prev is the stored record, nil on the first assessment.
	Prev       *Record
	Finding    match.Finding
	Assessment Assessment
	// Exception is an approved exception covering the finding now, or nil.
	// The caller may also pass the exception that covered it until
	// recently (expired or revoked): it is then not Active, and its EndedAt
	// says when the clock restarts (without it, the clock restarts at Now).
	Exception     *Exception
	PolicyVersion int
	Policy        *policy.Compiled
	// Location is the asset site's zone, in which calendar days are
	// counted; nil means UTC.
	Location *time.Location
	Now      time.Time
}

// NextRecord advances a finding's SLA clock by one assessment and returns
// the new record, plus the priority-history event when the tier, due date
// or status changed (nil otherwise). These rules are what a clinic defends
// to an auditor, so each is deliberate:
//
//   - First assessment: the clock starts when the finding was first seen
//     (basis first_seen), or — when the policy's sla.clock_start is
//     fix_available — when a fixed version was first known (basis
//     fix_available). FixAvailableAt is recorded whatever the mode: the
//     first time the finding is seen with a fixed version (its FirstSeen
//     when it had one from the start, else the Now at which it was
//     noticed). In fix_available mode with no fix yet the clock has not
//     started: basis awaiting_fix, a zero DueAt, SLA state awaiting_fix. A
//     finding first assessed after it reopened starts from ReopenedAt.
//   - Due date: the remediation target added to the clock start in the
//     site's zone — calendar days keep the local wall-clock time across a
//     DST change ("14d" from 09:00 ends at 09:00), hours are exact elapsed
//     time ("72h" is 72 hours) — or the assessment's AbsoluteDue when a
//     source fixes the date (KEV catalog). A local time that does not exist
//     (the skipped DST hour) is read with the offset before the gap, as
//     RFC 5545 does, and a repeated one as its first occurrence, so a due
//     date never depends on how the zone happens to be stored. DueSoonAt is
//     the tier's due_soon before DueAt; DueReason says all of it in a
//     sentence.
//   - More urgent (a lower tier rank, a new CISA KEV listing, or an EPSS
//     rise of at least sla.epss_jump since the record was computed): the
//     due date becomes the earlier of the current one and the new target
//     from now (basis reprioritized, clock start now). A re-prioritisation
//     never moves a due date later.
//   - Less urgent: the due date stays, unless sla.allow_later_due_date, in
//     which case it is the new target from the clock start.
//   - New policy version: re-baselined to the new target from the same
//     clock start (basis policy_changed; the reason keeps what the start
//     was). A change of clock_start mode affects only clocks that have not
//     started: a started clock is never un-started.
//   - An active exception stops the clock: status excepted, ExceptionID set,
//     DueAt kept for the record. When it no longer covers the finding
//     (expired, revoked), the finding is open again with the full target
//     from when the exception ended (basis exception_ended).
//   - Fixed: status fixed, ResolvedAt the finding's FixedAt,
//     TimeToRemediate from the start of this occurrence (FirstSeen, or
//     ReopenedAt for a reopened finding, so time it spent fixed is not
//     counted) to FixedAt, MetSLA whether FixedAt ≤ DueAt (nil when the
//     clock never started). A finding fixed while excepted keeps its
//     ExceptionID, so reports can show it apart.
//   - Not affected (vendor VEX): status not_affected. When the vendor
//     withdraws the statement the finding is open again with a new clock
//     from then (basis vex_withdrawn): nobody could act on it before.
//   - Reopened (ReopenedAt after the recorded ResolvedAt): a new clock from
//     ReopenedAt (basis reopened); ResolvedAt, TimeToRemediate and MetSLA
//     are cleared until it is fixed again.
//
// KEV and EPSS record the intelligence used, from the finding, so the next
// step can tell a KEV listing or an EPSS jump; ComputedAt is Now.
func NextRecord(in ClockInput) (Record, *Event) {
	c := newClock(in)
	f, prev := in.Finding, in.Prev
	r := Record{
		FindingID:      f.ID,
		AssetID:        f.AssetID,
		VulnID:         f.VulnID,
		Status:         StatusOpen,
		Assessment:     in.Assessment,
		PolicyVersion:  in.PolicyVersion,
		FirstSeen:      f.FirstSeen,
		FixAvailableAt: fixAvailableAt(prev, f, in.Now),
		KEV:            f.KEV,
		EPSS:           f.EPSS,
		ComputedAt:     in.Now,
	}
	c.r = &r

	active := in.Exception != nil && in.Exception.Active(in.Now)
	var why []string
	switch {
	case prev == nil:
		if f.ReopenedAt != nil {
			c.begin(*f.ReopenedAt, BasisReopened)
		} else {
			c.begin(f.FirstSeen, BasisFirstSeen)
		}
		why = append(why, "first assessed: "+r.DueReason)
	case prev.Status == StatusFixed && (f.State == match.StateOpen || reopenedSince(f, prev)):
		at := in.Now
		if f.ReopenedAt != nil && !f.ReopenedAt.After(in.Now) {
			at = *f.ReopenedAt
		}
		c.begin(at, BasisReopened)
		why = append(why, "reopened "+c.stamp(at)+": new clock: "+r.DueReason)
	case prev.Status == StatusNotAffected && f.State == match.StateOpen:
		c.begin(in.Now, BasisVEXWithdrawn)
		why = append(why, "vendor VEX statement withdrawn: new clock: "+r.DueReason)
	case prev.Status == StatusExcepted && !active:
		c.keep(prev)
		at, id := in.Now, prev.ExceptionID
		if e := in.Exception; e != nil && e.ID == prev.ExceptionID {
			at = e.endedAt(in.Now)
		}
		c.begin(at, BasisExceptionEnded)
		why = append(why, fmt.Sprintf("exception %s ended %s: clock restarted: %s", id, c.stamp(at), r.DueReason))
	case prev.Status == StatusExcepted:
		// The clock is stopped: nothing moves it until the exception ends,
		// which restarts it with the full target anyway.
		c.keep(prev)
		if prev.Assessment.Tier != in.Assessment.Tier {
			why = append(why, fmt.Sprintf("tier changed from %s to %s while excepted (clock stopped)", prev.Assessment.Tier, in.Assessment.Tier))
		}
	default:
		c.keep(prev)
		if prev.Status == StatusOpen && f.State == match.StateOpen {
			why = c.advance(prev)
		}
	}

	switch {
	case f.State == match.StateFixed:
		r.Status = StatusFixed
		switch {
		case active:
			r.ExceptionID = in.Exception.ID
		case prev != nil && (prev.Status == StatusExcepted || prev.Status == StatusFixed):
			// Fixed while excepted: the record keeps saying so.
		default:
			r.ExceptionID = ""
		}
		if f.FixedAt != nil {
			fixed := *f.FixedAt
			r.ResolvedAt = &fixed
			ttr := fixed.Sub(occurrenceStart(f))
			r.TimeToRemediate = &ttr
			if !r.DueAt.IsZero() {
				met := !fixed.After(r.DueAt)
				r.MetSLA = &met
			}
		}
		why = append(why, c.fixedReason())
	case f.State == match.StateNotAffected:
		r.Status = StatusNotAffected
		r.ExceptionID = ""
		why = append(why, "vendor VEX: not affected")
	case active:
		r.Status = StatusExcepted
		r.ExceptionID = in.Exception.ID
		if prev == nil || prev.Status != StatusExcepted {
			why = append(why, fmt.Sprintf("covered by exception %s (%s, expires %s): clock stopped",
				in.Exception.ID, in.Exception.Decision, c.stamp(in.Exception.ExpiresAt)))
		}
	default:
		r.ExceptionID = ""
	}
	r.DueSoonAt = time.Time{}
	if !r.DueAt.IsZero() {
		r.DueSoonAt = in.Assessment.DueSoon.Neg().AddTo(r.DueAt, c.loc)
	}

	if prev != nil && prev.Assessment.Tier == r.Assessment.Tier && prev.DueAt.Equal(r.DueAt) && prev.Status == r.Status {
		return r, nil
	}
	if len(why) == 0 {
		why = append(why, "re-assessed")
	}
	return r, &Event{
		FindingID:     r.FindingID,
		At:            in.Now,
		Tier:          r.Assessment.Tier,
		Score:         r.Assessment.Score,
		DueAt:         r.DueAt,
		Status:        r.Status,
		Reason:        strings.Join(why, "; "),
		PolicyVersion: in.PolicyVersion,
	}
}

// SLAState judges a record at now: excepted, met or missed (fixed),
// awaiting_fix (clock not started), breached (past DueAt), due_soon (from
// DueSoonAt up to and including DueAt) or on_track. It is computed at read
// time, never stored, so it is always current. A not_affected finding, and
// a fixed one whose clock never started, have no SLA state: "".
func SLAState(r Record, now time.Time) string {
	switch r.Status {
	case StatusExcepted:
		return SLAExcepted
	case StatusFixed:
		switch {
		case r.MetSLA == nil:
			return ""
		case *r.MetSLA:
			return SLAMet
		default:
			return SLAMissed
		}
	case StatusNotAffected:
		return ""
	}
	switch {
	case r.ClockBasis == BasisAwaitingFix || r.DueAt.IsZero():
		return SLAAwaitingFix
	case now.After(r.DueAt):
		return SLABreached
	case !now.Before(r.DueSoonAt):
		return SLADueSoon
	default:
		return SLAOnTrack
	}
}

// epsilon absorbs floating-point noise when comparing an EPSS rise with the
// policy's jump (0.3−0.1 is 0.19999999999999998).
const epsilon = 1e-9

// clock is one NextRecord step in progress.
type clock struct {
	in  ClockInput
	loc *time.Location
	r   *Record
}

func newClock(in ClockInput) *clock {
	c := &clock{in: in, loc: in.Location}
	if c.loc == nil {
		c.loc = time.UTC
	}
	return c
}

// rules returns the policy's sla section (zero without a policy: clocks
// from first seen, no EPSS re-prioritisation, due dates never later).
func (c *clock) rules() policy.SLA {
	if c.in.Policy == nil {
		return policy.SLA{}
	}
	return c.in.Policy.SLA()
}

// fixMode reports whether clocks start when a fix is available.
func (c *clock) fixMode() bool { return c.rules().ClockStart == policy.ClockFixAvailable }

// keep copies the previous record's clock and outcome.
func (c *clock) keep(prev *Record) {
	r := c.r
	r.ClockStart, r.ClockBasis = prev.ClockStart, prev.ClockBasis
	r.DueAt, r.DueReason, r.DueSoonAt = prev.DueAt, prev.DueReason, prev.DueSoonAt
	r.ExceptionID = prev.ExceptionID
	r.ResolvedAt, r.TimeToRemediate, r.MetSLA = prev.ResolvedAt, prev.TimeToRemediate, prev.MetSLA
}

// begin starts a new clock at the candidate time for the given reason, with
// the full target. In fix_available mode it waits for a fix and never
// starts before one was known. Any earlier outcome is cleared.
func (c *clock) begin(at time.Time, basis string) {
	r := c.r
	r.ResolvedAt, r.TimeToRemediate, r.MetSLA = nil, nil, nil
	if c.fixMode() {
		fa := r.FixAvailableAt
		if fa == nil {
			r.ClockStart, r.ClockBasis, r.DueAt = time.Time{}, BasisAwaitingFix, time.Time{}
			r.DueReason = "clock not started: no fixed version is known yet and the policy starts clocks when a fix is available"
			return
		}
		if basis == BasisFirstSeen || fa.After(at) {
			at, basis = *fa, BasisFixAvailable
		}
	}
	r.ClockStart, r.ClockBasis = at, basis
	r.DueAt = c.dueFrom(at)
	r.DueReason = c.describe(basis, at)
}

// advance is the step for an open clock: a clock waiting for a fix, a new
// policy version, or a re-prioritisation. It returns the reasons for the
// history.
func (c *clock) advance(prev *Record) []string {
	r, a, f, now := c.r, c.in.Assessment, c.in.Finding, c.in.Now
	if prev.ClockBasis == BasisAwaitingFix || prev.DueAt.IsZero() {
		// A clock that has not started follows the policy in force: it
		// starts when a fix is known (or at once, if the mode changed).
		origin := f.FirstSeen
		if f.ReopenedAt != nil {
			origin = *f.ReopenedAt
		}
		if r.FixAvailableAt != nil || c.in.PolicyVersion != prev.PolicyVersion {
			// Otherwise nothing that could start it has changed (and the
			// record already says it is waiting).
			c.begin(origin, BasisFirstSeen)
		}
		if r.ClockBasis == BasisAwaitingFix {
			if prev.Assessment.Tier != a.Tier {
				return []string{fmt.Sprintf("tier changed from %s to %s; clock not started (awaiting a fix)", prev.Assessment.Tier, a.Tier)}
			}
			return nil
		}
		return []string{"clock started: " + r.DueReason}
	}

	if c.in.PolicyVersion != prev.PolicyVersion {
		origin := originBasis(prev, f)
		r.ClockBasis = BasisPolicyChanged
		r.DueAt = c.dueFrom(r.ClockStart)
		r.DueReason = fmt.Sprintf("policy version %d: %s", c.in.PolicyVersion, c.describe(origin, r.ClockStart))
		return []string{fmt.Sprintf("policy version %d re-baselined the due date: %s", c.in.PolicyVersion, c.describe(origin, r.ClockStart))}
	}

	var urgent []string
	if a.Rank < prev.Assessment.Rank {
		urgent = append(urgent, fmt.Sprintf("tier raised from %s to %s", prev.Assessment.Tier, a.Tier))
	}
	if f.KEV && !prev.KEV {
		urgent = append(urgent, ReasonEnteredKEV)
	}
	if f.EPSS > prev.EPSS && c.rules().EPSSJump > 0 && f.EPSS-prev.EPSS >= c.rules().EPSSJump-epsilon {
		urgent = append(urgent, fmt.Sprintf("EPSS rose from %s to %s", fmtEPSS(prev.EPSS), fmtEPSS(f.EPSS)))
	}
	switch {
	case len(urgent) > 0:
		what := strings.Join(urgent, ", ")
		due := c.dueFrom(now)
		if !due.Before(prev.DueAt) {
			return []string{what + "; due date kept: it is already earlier than " + c.describe(BasisReprioritized, now)}
		}
		r.ClockStart, r.ClockBasis, r.DueAt = now, BasisReprioritized, due
		r.DueReason = fmt.Sprintf("re-prioritised (%s): %s", what, c.describe(BasisReprioritized, now))
		return []string{r.DueReason}
	case a.Rank > prev.Assessment.Rank:
		what := fmt.Sprintf("tier lowered from %s to %s", prev.Assessment.Tier, a.Tier)
		if !c.rules().AllowLaterDueDate {
			return []string{what + "; due date kept (the policy does not allow a later due date)"}
		}
		origin := originBasis(prev, f)
		r.DueAt = c.dueFrom(r.ClockStart)
		r.DueReason = fmt.Sprintf("re-prioritised (%s): %s", what, c.describe(origin, r.ClockStart))
		return []string{r.DueReason}
	case prev.Assessment.Tier != a.Tier:
		return []string{fmt.Sprintf("tier changed from %s to %s", prev.Assessment.Tier, a.Tier)}
	}
	return nil
}

// dueFrom is the due date for a clock starting at start.
func (c *clock) dueFrom(start time.Time) time.Time {
	a := c.in.Assessment
	if a.AbsoluteDue != nil {
		return a.AbsoluteDue.In(c.loc)
	}
	return a.Target.AddTo(start, c.loc)
}

// describe is the sentence behind a due date: "critical tier: 72h from
// first seen 2026-03-07 14:00 CST", with the assessment's reason for the
// target when it says more than the tier's own target.
func (c *clock) describe(basis string, start time.Time) string {
	a := c.in.Assessment
	var s string
	if a.AbsoluteDue != nil {
		s = fmt.Sprintf("%s tier: due %s", a.Tier, c.stamp(*a.AbsoluteDue))
	} else {
		target := a.TargetText
		if target == "" {
			target = a.Target.String()
		}
		s = fmt.Sprintf("%s tier: %s from %s %s", a.Tier, target, basisPhrase(basis), c.stamp(start))
	}
	if a.TargetWhy != "" && !strings.HasPrefix(a.TargetWhy, "tier "+a.Tier+":") {
		s += " (" + a.TargetWhy + ")"
	}
	return s
}

// fixedReason says how a remediation measured up against the due date.
func (c *clock) fixedReason() string {
	r := c.r
	if r.ResolvedAt == nil {
		return "fixed"
	}
	s := "fixed " + c.stamp(*r.ResolvedAt)
	switch {
	case r.MetSLA == nil:
		return s + " before the clock started"
	case *r.MetSLA:
		return s + ", within the SLA"
	default:
		return s + ", " + r.ResolvedAt.Sub(r.DueAt).Round(time.Minute).String() + " after the due date"
	}
}

// stamp formats a time in the site's zone, with the zone named, for
// reasons people read.
func (c *clock) stamp(t time.Time) string { return t.In(c.loc).Format("2006-01-02 15:04 MST") }

func basisPhrase(basis string) string {
	switch basis {
	case BasisFirstSeen:
		return "first seen"
	case BasisFixAvailable:
		return "fix available"
	case BasisReopened:
		return "reopened"
	case BasisExceptionEnded:
		return "exception ended"
	case BasisReprioritized:
		return "re-prioritisation"
	case BasisVEXWithdrawn:
		return "VEX statement withdrawn"
	default:
		return "clock start"
	}
}

// originBasis is why a started clock started, looking through a
// re-baseline (whose basis records the policy change, not the start).
func originBasis(prev *Record, f match.Finding) string {
	if prev.ClockBasis != BasisPolicyChanged {
		return prev.ClockBasis
	}
	switch start := prev.ClockStart; {
	case f.ReopenedAt != nil && start.Equal(*f.ReopenedAt):
		return BasisReopened
	case start.Equal(prev.FirstSeen):
		return BasisFirstSeen
	case prev.FixAvailableAt != nil && start.Equal(*prev.FixAvailableAt):
		return BasisFixAvailable
	}
	return ""
}

// fixAvailableAt is when a fixed version was first known: kept once
// recorded; the finding's FirstSeen when it had one at its first
// assessment; else now, the first time one is seen.
func fixAvailableAt(prev *Record, f match.Finding, now time.Time) *time.Time {
	var t time.Time
	switch {
	case prev != nil && prev.FixAvailableAt != nil:
		t = *prev.FixAvailableAt
	case f.FixedVersion == "" && f.FixNote == "":
		return nil
	case prev == nil:
		t = f.FirstSeen
	default:
		t = now
	}
	return &t
}

// reopenedSince reports whether the finding reopened after the record's
// resolution.
func reopenedSince(f match.Finding, prev *Record) bool {
	return f.ReopenedAt != nil && (prev.ResolvedAt == nil || f.ReopenedAt.After(*prev.ResolvedAt))
}

// occurrenceStart is when the finding's current occurrence began.
func occurrenceStart(f match.Finding) time.Time {
	if f.ReopenedAt != nil && (f.FixedAt == nil || !f.FixedAt.Before(*f.ReopenedAt)) {
		return *f.ReopenedAt
	}
	return f.FirstSeen
}

func fmtEPSS(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// ReasonEnteredKEV is written into a re-prioritisation's reason when a
// finding's vulnerability appears in CISA's KEV catalog; change control's
// emergency proposals look for it.
const ReasonEnteredKEV = "entered CISA KEV"
