package risk

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST cases must not depend on the host's zoneinfo

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
)

// editedPolicy loads the embedded default policy with edit applied to its
// YAML document, through the real loader and validator.
func editedPolicy(t *testing.T, edit func(doc map[string]any)) *policy.Compiled {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(policy.DefaultSource(), &doc); err != nil {
		t.Fatalf("decode default policy: %v", err)
	}
	edit(doc)
	src, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("encode policy: %v", err)
	}
	p, err := policy.Load(src)
	if err != nil {
		t.Fatalf("load edited policy: %v", err)
	}
	return p
}

// slaPolicy is the default policy with its sla section replaced.
func slaPolicy(t *testing.T, clockStart string, epssJump float64, allowLater bool) *policy.Compiled {
	t.Helper()
	return editedPolicy(t, func(doc map[string]any) {
		doc["sla"] = map[string]any{"clock_start": clockStart, "epss_jump": epssJump, "allow_later_due_date": allowLater}
	})
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at parses "2006-01-02 15:04" in loc.
func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// tierAssessment is an assessment as Assess makes it for a tier with its
// own target.
func tierAssessment(tier string, rank int, target, dueSoon string) Assessment {
	d := policy.MustDuration(target)
	return Assessment{
		Mode: policy.ModeScore, Score: float64(90 - 20*rank), Tier: tier, Rank: rank,
		Target: d, TargetText: d.String(), TargetWhy: "tier " + tier + ": " + d.String(),
		DueSoon: policy.MustDuration(dueSoon),
	}
}

// clockFixture is one finding under one policy, stepped through time.
type clockFixture struct {
	t       *testing.T
	policy  *policy.Compiled
	version int
	loc     *time.Location
	finding match.Finding
}

func newClockFixture(t *testing.T, p *policy.Compiled, loc *time.Location, firstSeen time.Time) *clockFixture {
	return &clockFixture{t: t, policy: p, version: 1, loc: loc, finding: match.Finding{
		ID: "f1", AssetID: "a1", VulnID: "CVE-2026-0001", AdvisoryIDs: []string{"DSA-6000-1"},
		Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.1-1",
		State: match.StateOpen, FirstSeen: firstSeen, LastSeen: firstSeen, EPSS: 0.02,
	}}
}

func (fx *clockFixture) step(prev *Record, a Assessment, ex *Exception, now time.Time) (Record, *Event) {
	return NextRecord(ClockInput{Prev: prev, Finding: fx.finding, Assessment: a, Exception: ex,
		PolicyVersion: fx.version, Policy: fx.policy, Location: fx.loc, Now: now})
}

func TestClockFirstAssessment(t *testing.T) {
	chicago := mustLoc(t, "America/Chicago")
	p := slaPolicy(t, policy.ClockFirstSeen, 0.1, false)
	seen := at(t, chicago, "2026-03-07 14:00")
	now := at(t, chicago, "2026-03-07 15:00")
	fx := newClockFixture(t, p, chicago, seen)
	fx.finding.KEV, fx.finding.EPSS = true, 0.37
	a := tierAssessment("critical", 0, "72h", "24h")

	got, ev := fx.step(nil, a, nil, now)
	due := seen.Add(72 * time.Hour)
	want := Record{
		FindingID: "f1", AssetID: "a1", VulnID: "CVE-2026-0001", Status: StatusOpen,
		Assessment: a, PolicyVersion: 1, FirstSeen: seen,
		ClockStart: seen, ClockBasis: BasisFirstSeen, DueAt: due,
		DueReason: "critical tier: 72h from first seen 2026-03-07 14:00 CST",
		DueSoonAt: due.Add(-24 * time.Hour), KEV: true, EPSS: 0.37, ComputedAt: now,
	}
	if diff := cmp.Diff(want, got, timeEqual); diff != "" {
		t.Errorf("NextRecord first assessment (-want +got):\n%s", diff)
	}
	wantEv := &Event{FindingID: "f1", At: now, Tier: "critical", Score: a.Score, DueAt: due, Status: StatusOpen,
		Reason: "first assessed: critical tier: 72h from first seen 2026-03-07 14:00 CST", PolicyVersion: 1}
	if diff := cmp.Diff(wantEv, ev, timeEqual); diff != "" {
		t.Errorf("first event (-want +got):\n%s", diff)
	}

	// The same inputs a minute later change nothing worth a history entry.
	again, ev := fx.step(&got, a, nil, now.Add(time.Minute))
	if ev != nil {
		t.Errorf("unchanged re-assessment event = %+v; want nil", ev)
	}
	if !again.DueAt.Equal(due) || again.ClockBasis != BasisFirstSeen || !again.ComputedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("unchanged re-assessment = due %v basis %s computed %v; want %v first_seen %v", again.DueAt, again.ClockBasis, again.ComputedAt, due, now.Add(time.Minute))
	}
}

// timeEqual compares times as instants, whatever their location.
var timeEqual = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestClockReasonNamesAssetClassAndAbsoluteDue(t *testing.T) {
	chicago := mustLoc(t, "America/Chicago")
	p := slaPolicy(t, policy.ClockFirstSeen, 0.1, false)
	seen := at(t, chicago, "2026-03-07 14:00")
	fx := newClockFixture(t, p, chicago, seen)

	a := tierAssessment("critical", 0, "72h", "12h")
	a.Target, a.TargetText = policy.Hours(24), "24h"
	a.TargetWhy = "asset class domain-controller: 24h for tier critical (instead of tier critical: 72h)"
	r, _ := fx.step(nil, a, nil, seen)
	wantReason := "critical tier: 24h from first seen 2026-03-07 14:00 CST (asset class domain-controller: 24h for tier critical (instead of tier critical: 72h))"
	if r.DueReason != wantReason || !r.DueAt.Equal(seen.Add(24*time.Hour)) {
		t.Errorf("class target = %v %q; want %v %q", r.DueAt, r.DueReason, seen.Add(24*time.Hour), wantReason)
	}

	kevDue := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC)
	b := tierAssessment("critical", 0, "72h", "24h")
	b.AbsoluteDue, b.TargetText = &kevDue, "2026-03-28"
	b.TargetWhy = "CISA KEV catalog due date 2026-03-28 (BOD 22-01)"
	r, _ = fx.step(nil, b, nil, seen)
	wantReason = "critical tier: due 2026-03-27 19:00 CDT (CISA KEV catalog due date 2026-03-28 (BOD 22-01))"
	if !r.DueAt.Equal(kevDue) || r.DueReason != wantReason || !r.DueSoonAt.Equal(kevDue.Add(-24*time.Hour)) {
		t.Errorf("absolute due = %v (soon %v) %q; want %v %q", r.DueAt, r.DueSoonAt, r.DueReason, kevDue, wantReason)
	}
}

func TestClockFixAvailableMode(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-05-01 08:00")
	a := tierAssessment("high", 1, "14d", "3d")

	t.Run("fix known at first sight", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFixAvailable, 0.1, false), utc, seen)
		fx.finding.FixedVersion = "3.0.1-2"
		r, _ := fx.step(nil, a, nil, seen.Add(time.Hour))
		if r.ClockBasis != BasisFixAvailable || !r.ClockStart.Equal(seen) || r.FixAvailableAt == nil || !r.FixAvailableAt.Equal(seen) {
			t.Errorf("clock = %s from %v (fix %v); want fix_available from %v", r.ClockBasis, r.ClockStart, r.FixAvailableAt, seen)
		}
		if !r.DueAt.Equal(seen.AddDate(0, 0, 14)) {
			t.Errorf("DueAt = %v; want %v", r.DueAt, seen.AddDate(0, 0, 14))
		}
	})

	t.Run("awaiting a fix, then one appears", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFixAvailable, 0.1, false), utc, seen)
		r, ev := fx.step(nil, a, nil, seen)
		if r.ClockBasis != BasisAwaitingFix || !r.DueAt.IsZero() || !r.ClockStart.IsZero() || !r.DueSoonAt.IsZero() || r.FixAvailableAt != nil {
			t.Fatalf("no fix yet: basis %s start %v due %v soon %v fix %v; want awaiting_fix and zero times", r.ClockBasis, r.ClockStart, r.DueAt, r.DueSoonAt, r.FixAvailableAt)
		}
		if got := SLAState(r, seen.AddDate(1, 0, 0)); got != SLAAwaitingFix {
			t.Errorf("SLAState(awaiting) = %q; want %q", got, SLAAwaitingFix)
		}
		if ev == nil || !ev.DueAt.IsZero() || !strings.Contains(ev.Reason, "clock not started") {
			t.Errorf("first event = %+v; want one with a zero due date saying the clock has not started", ev)
		}

		// Still no fix a week later: nothing happens.
		r2, ev := fx.step(&r, a, nil, seen.AddDate(0, 0, 7))
		if ev != nil || r2.ClockBasis != BasisAwaitingFix {
			t.Errorf("still no fix: basis %s event %+v; want awaiting_fix, no event", r2.ClockBasis, ev)
		}

		// The fix is noticed on 10 May: the clock starts then.
		fixSeen := at(t, utc, "2026-05-10 12:00")
		fx.finding.FixedVersion = "3.0.1-2"
		r3, ev := fx.step(&r2, a, nil, fixSeen)
		if r3.FixAvailableAt == nil || !r3.FixAvailableAt.Equal(fixSeen) || r3.ClockBasis != BasisFixAvailable || !r3.ClockStart.Equal(fixSeen) {
			t.Fatalf("fix appears: fix %v basis %s start %v; want fix_available from %v", r3.FixAvailableAt, r3.ClockBasis, r3.ClockStart, fixSeen)
		}
		if want := fixSeen.AddDate(0, 0, 14); !r3.DueAt.Equal(want) {
			t.Errorf("DueAt = %v; want %v", r3.DueAt, want)
		}
		if ev == nil || !strings.HasPrefix(ev.Reason, "clock started: high tier: 14d from fix available 2026-05-10 12:00 UTC") {
			t.Errorf("fix event = %+v; want the clock start", ev)
		}

		// It stays recorded at the first sighting.
		r4, _ := fx.step(&r3, a, nil, fixSeen.AddDate(0, 0, 1))
		if !r4.FixAvailableAt.Equal(fixSeen) {
			t.Errorf("FixAvailableAt moved to %v; want %v", r4.FixAvailableAt, fixSeen)
		}
	})

	t.Run("first_seen mode still records the fix", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.1, false), utc, seen)
		r, _ := fx.step(nil, a, nil, seen)
		fix := seen.AddDate(0, 0, 2)
		fx.finding.FixedVersion = "3.0.1-2"
		r2, ev := fx.step(&r, a, nil, fix)
		if r2.FixAvailableAt == nil || !r2.FixAvailableAt.Equal(fix) {
			t.Errorf("FixAvailableAt = %v; want %v", r2.FixAvailableAt, fix)
		}
		if ev != nil || !r2.DueAt.Equal(r.DueAt) || r2.ClockBasis != BasisFirstSeen {
			t.Errorf("clock moved in first_seen mode: %s %v (event %+v)", r2.ClockBasis, r2.DueAt, ev)
		}
	})
}

func TestClockReprioritisation(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-06-01 09:00")
	now := at(t, utc, "2026-06-10 09:00")
	high := tierAssessment("high", 1, "30d", "5d")
	critical := tierAssessment("critical", 0, "72h", "24h")
	low := tierAssessment("low", 2, "90d", "10d")
	kevDue := at(t, utc, "2026-06-11 00:00")
	kevCritical := critical
	kevCritical.AbsoluteDue = &kevDue

	tests := []struct {
		name       string
		allowLater bool
		prevEPSS   float64
		next       Assessment
		kev        bool
		epss       float64
		wantDue    time.Time
		wantStart  time.Time
		wantBasis  string
		wantEvent  bool
		wantReason string // substring of the event reason
	}{
		{name: "entered KEV and tier raised", next: critical, kev: true, epss: 0.02,
			wantDue: now.Add(72 * time.Hour), wantStart: now, wantBasis: BasisReprioritized, wantEvent: true,
			wantReason: "re-prioritised (tier raised from high to critical, entered CISA KEV): critical tier: 72h from re-prioritisation 2026-06-10 09:00 UTC"},
		{name: "EPSS jump with tier raised", next: critical, epss: 0.41,
			wantDue: now.Add(72 * time.Hour), wantStart: now, wantBasis: BasisReprioritized, wantEvent: true,
			wantReason: "tier raised from high to critical, EPSS rose from 0.02 to 0.41"},
		{name: "EPSS rise below the jump", next: critical, epss: 0.1,
			wantDue: now.Add(72 * time.Hour), wantStart: now, wantBasis: BasisReprioritized, wantEvent: true,
			wantReason: "re-prioritised (tier raised from high to critical):"},
		{name: "EPSS jump at the threshold despite float noise", prevEPSS: 0.4, next: critical, epss: 0.7,
			wantDue: now.Add(72 * time.Hour), wantStart: now, wantBasis: BasisReprioritized, wantEvent: true,
			wantReason: "tier raised from high to critical, EPSS rose from 0.4 to 0.7"},
		{name: "KEV catalog due date", next: kevCritical, kev: true, epss: 0.02,
			wantDue: kevDue, wantStart: now, wantBasis: BasisReprioritized, wantEvent: true,
			wantReason: "critical tier: due 2026-06-11 00:00 UTC"},
		{name: "less urgent keeps the due date", next: low, epss: 0.02,
			wantDue: seen.AddDate(0, 0, 30), wantStart: seen, wantBasis: BasisFirstSeen, wantEvent: true,
			wantReason: "tier lowered from high to low; due date kept (the policy does not allow a later due date)"},
		{name: "less urgent with allow_later_due_date", allowLater: true, next: low, epss: 0.02,
			wantDue: seen.AddDate(0, 0, 90), wantStart: seen, wantBasis: BasisFirstSeen, wantEvent: true,
			wantReason: "re-prioritised (tier lowered from high to low): low tier: 90d from first seen 2026-06-01 09:00 UTC"},
		{name: "same tier, nothing new", next: high, epss: 0.05,
			wantDue: seen.AddDate(0, 0, 30), wantStart: seen, wantBasis: BasisFirstSeen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, tt.allowLater), utc, seen)
			prev, _ := fx.step(nil, high, nil, seen)
			if tt.prevEPSS != 0 {
				prev.EPSS = tt.prevEPSS // 0.7−0.4 is 0.29999999999999993
			}
			fx.finding.KEV, fx.finding.EPSS = tt.kev, tt.epss
			got, ev := fx.step(&prev, tt.next, nil, now)
			if !got.DueAt.Equal(tt.wantDue) || !got.ClockStart.Equal(tt.wantStart) || got.ClockBasis != tt.wantBasis {
				t.Errorf("clock = %s from %v due %v; want %s from %v due %v", got.ClockBasis, got.ClockStart, got.DueAt, tt.wantBasis, tt.wantStart, tt.wantDue)
			}
			if (ev != nil) != tt.wantEvent {
				t.Fatalf("event = %+v; want event %v", ev, tt.wantEvent)
			}
			if ev != nil && !strings.Contains(ev.Reason, tt.wantReason) {
				t.Errorf("event reason = %q; want it to contain %q", ev.Reason, tt.wantReason)
			}
			if got.KEV != tt.kev || got.EPSS != tt.epss {
				t.Errorf("stored intelligence KEV %v EPSS %v; want %v %v", got.KEV, got.EPSS, tt.kev, tt.epss)
			}
		})
	}
}

func TestClockReprioritisationNeverLater(t *testing.T) {
	// Seen long ago with a short target: the new, more urgent target from
	// now would be later than the due date already in force.
	utc := time.UTC
	seen := at(t, utc, "2026-06-01 09:00")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
	medium := tierAssessment("medium", 1, "3d", "1d")
	critical := tierAssessment("critical", 0, "72h", "24h")
	prev, _ := fx.step(nil, medium, nil, seen)
	now := seen.Add(48 * time.Hour)
	fx.finding.KEV = true
	got, ev := fx.step(&prev, critical, nil, now)
	if !got.DueAt.Equal(prev.DueAt) || got.ClockBasis != BasisFirstSeen {
		t.Errorf("due = %v basis %s; want the earlier %v kept", got.DueAt, got.ClockBasis, prev.DueAt)
	}
	if ev == nil || !strings.Contains(ev.Reason, "entered CISA KEV; due date kept: it is already earlier than critical tier: 72h from re-prioritisation") {
		t.Errorf("event = %+v; want the tier change recorded with the due date kept", ev)
	}
}

func TestClockPolicyChange(t *testing.T) {
	chicago := mustLoc(t, "America/Chicago")
	seen := at(t, chicago, "2026-04-01 10:00")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), chicago, seen)
	prev, _ := fx.step(nil, tierAssessment("high", 1, "14d", "3d"), nil, seen)

	fx.version = 2
	now := seen.AddDate(0, 0, 3)
	got, ev := fx.step(&prev, tierAssessment("high", 1, "7d", "2d"), nil, now)
	want := seen.AddDate(0, 0, 7)
	if !got.DueAt.Equal(want) || !got.ClockStart.Equal(seen) || got.ClockBasis != BasisPolicyChanged || got.PolicyVersion != 2 {
		t.Errorf("re-baseline = %s from %v due %v v%d; want policy_changed from %v due %v v2", got.ClockBasis, got.ClockStart, got.DueAt, got.PolicyVersion, seen, want)
	}
	if wantReason := "policy version 2: high tier: 7d from first seen 2026-04-01 10:00 CDT"; got.DueReason != wantReason {
		t.Errorf("DueReason = %q; want %q", got.DueReason, wantReason)
	}
	if ev == nil || ev.PolicyVersion != 2 || !strings.Contains(ev.Reason, "policy version 2 re-baselined the due date") {
		t.Errorf("event = %+v; want a v2 re-baseline", ev)
	}

	// A further version still says where the clock started, and may move
	// the due date later: a re-baseline is not a re-prioritisation.
	fx.version = 3
	got2, _ := fx.step(&got, tierAssessment("high", 1, "21d", "2d"), nil, now.Add(time.Hour))
	if want := seen.AddDate(0, 0, 21); !got2.DueAt.Equal(want) || got2.DueReason != "policy version 3: high tier: 21d from first seen 2026-04-01 10:00 CDT" {
		t.Errorf("second re-baseline = %v %q; want %v from first seen", got2.DueAt, got2.DueReason, want)
	}
}

func testException(id string, approvedAt, expires time.Time) *Exception {
	return &Exception{ID: id, Scope: ScopeFinding, Target: "f1", Decision: policy.DecisionMitigate,
		Reason: "validated device", Owner: "lab director", State: ExceptionApproved,
		RequestedBy: "alice", RequestedAt: approvedAt, DecidedBy: "bob", DecidedAt: &approvedAt,
		ExpiresAt: expires, NextReviewAt: expires, Revision: 2}
}

func TestClockException(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-01-05 09:00")
	a := tierAssessment("high", 1, "14d", "3d")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
	open, _ := fx.step(nil, a, nil, seen)

	approved := at(t, utc, "2026-01-10 09:00")
	ex := testException("exc_1", approved, at(t, utc, "2026-03-01 00:00"))
	excepted, ev := fx.step(&open, a, ex, approved)
	if excepted.Status != StatusExcepted || excepted.ExceptionID != "exc_1" || !excepted.DueAt.Equal(open.DueAt) {
		t.Fatalf("covered: status %s exception %q due %v; want excepted exc_1 due %v kept", excepted.Status, excepted.ExceptionID, excepted.DueAt, open.DueAt)
	}
	if ev == nil || ev.Status != StatusExcepted || !strings.Contains(ev.Reason, "covered by exception exc_1 (mitigate, expires 2026-03-01 00:00 UTC): clock stopped") {
		t.Errorf("excepted event = %+v", ev)
	}
	if got := SLAState(excepted, at(t, utc, "2026-02-20 00:00")); got != SLAExcepted {
		t.Errorf("SLAState(excepted, after due) = %q; want %q", got, SLAExcepted)
	}

	// Past the original due date, still covered: stopped, no history, even
	// when the finding is re-prioritised meanwhile.
	fx.finding.KEV = true
	still, ev := fx.step(&excepted, a, ex, at(t, utc, "2026-02-01 00:00"))
	if ev != nil || still.Status != StatusExcepted || !still.DueAt.Equal(open.DueAt) {
		t.Errorf("still covered: %s due %v event %+v; want excepted, unchanged, no event", still.Status, still.DueAt, ev)
	}

	t.Run("expired exception restarts at its end", func(t *testing.T) {
		end := ex.ExpiresAt
		ended := *ex
		ended.State, ended.EndedAt = ExceptionExpired, &end
		now := at(t, utc, "2026-03-01 06:00")
		r, ev := fx.step(&still, a, &ended, now)
		if r.Status != StatusOpen || r.ExceptionID != "" || r.ClockBasis != BasisExceptionEnded || !r.ClockStart.Equal(end) {
			t.Fatalf("after expiry: %s %q %s from %v; want open, exception_ended from %v", r.Status, r.ExceptionID, r.ClockBasis, r.ClockStart, end)
		}
		if want := end.AddDate(0, 0, 14); !r.DueAt.Equal(want) {
			t.Errorf("DueAt = %v; want full target %v", r.DueAt, want)
		}
		if ev == nil || !strings.HasPrefix(ev.Reason, "exception exc_1 ended 2026-03-01 00:00 UTC: clock restarted: high tier: 14d from exception ended") {
			t.Errorf("event = %+v", ev)
		}
	})
	t.Run("approved but past expiry before the sweep", func(t *testing.T) {
		now := at(t, utc, "2026-03-02 00:00")
		r, _ := fx.step(&still, a, ex, now)
		if r.Status != StatusOpen || !r.ClockStart.Equal(ex.ExpiresAt) {
			t.Errorf("lapsed exception: %s from %v; want open from %v", r.Status, r.ClockStart, ex.ExpiresAt)
		}
	})
	t.Run("revoked and no longer passed", func(t *testing.T) {
		now := at(t, utc, "2026-02-10 12:00")
		r, _ := fx.step(&still, a, nil, now)
		if r.Status != StatusOpen || r.ClockBasis != BasisExceptionEnded || !r.ClockStart.Equal(now) || !r.DueAt.Equal(now.AddDate(0, 0, 14)) {
			t.Errorf("exception gone: %s %s from %v due %v; want open from now", r.Status, r.ClockBasis, r.ClockStart, r.DueAt)
		}
	})
	t.Run("fixed while excepted", func(t *testing.T) {
		fixed := at(t, utc, "2026-02-15 00:00")
		f := fx.finding
		fx.finding.State, fx.finding.FixedAt = match.StateFixed, &fixed
		defer func() { fx.finding = f }()
		r, ev := fx.step(&still, a, ex, fixed.Add(time.Hour))
		if r.Status != StatusFixed || r.ExceptionID != "exc_1" || r.MetSLA == nil || *r.MetSLA {
			t.Errorf("fixed while excepted: %s %q met %v; want fixed, exc_1 kept, missed", r.Status, r.ExceptionID, r.MetSLA)
		}
		if ev == nil || ev.Status != StatusFixed {
			t.Errorf("event = %+v; want the fix", ev)
		}
		// And it stays recorded on the next step.
		r2, ev := fx.step(&r, a, nil, fixed.Add(48*time.Hour))
		if r2.ExceptionID != "exc_1" || ev != nil {
			t.Errorf("next step: exception %q event %+v; want exc_1 kept, no event", r2.ExceptionID, ev)
		}
	})
}

func TestClockFixedAndReopened(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-02-01 09:00")
	a := tierAssessment("high", 1, "14d", "3d")
	tests := []struct {
		name    string
		fixedAt time.Time
		wantMet bool
	}{
		{"within the SLA", at(t, utc, "2026-02-10 09:00"), true},
		{"exactly at the due date", at(t, utc, "2026-02-15 09:00"), true},
		{"a minute late", at(t, utc, "2026-02-15 09:01"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
			open, _ := fx.step(nil, a, nil, seen)
			fx.finding.State, fx.finding.FixedAt = match.StateFixed, ptr(tt.fixedAt)
			r, ev := fx.step(&open, a, nil, tt.fixedAt.Add(time.Hour))
			if r.Status != StatusFixed || r.ResolvedAt == nil || !r.ResolvedAt.Equal(tt.fixedAt) {
				t.Fatalf("fixed: %s resolved %v; want fixed at %v", r.Status, r.ResolvedAt, tt.fixedAt)
			}
			if r.TimeToRemediate == nil || *r.TimeToRemediate != tt.fixedAt.Sub(seen) {
				t.Errorf("TimeToRemediate = %v; want %v", r.TimeToRemediate, tt.fixedAt.Sub(seen))
			}
			if r.MetSLA == nil || *r.MetSLA != tt.wantMet {
				t.Errorf("MetSLA = %v; want %v", r.MetSLA, tt.wantMet)
			}
			want := map[bool]string{true: SLAMet, false: SLAMissed}[tt.wantMet]
			if got := SLAState(r, tt.fixedAt.AddDate(1, 0, 0)); got != want {
				t.Errorf("SLAState = %q; want %q", got, want)
			}
			if ev == nil || ev.Status != StatusFixed {
				t.Errorf("event = %+v; want the fix", ev)
			}
		})
	}

	t.Run("reopened: a new clock", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
		open, _ := fx.step(nil, a, nil, seen)
		fixed := at(t, utc, "2026-02-05 09:00")
		fx.finding.State, fx.finding.FixedAt = match.StateFixed, &fixed
		closed, _ := fx.step(&open, a, nil, fixed)

		reopened := at(t, utc, "2026-04-01 09:00")
		fx.finding.State, fx.finding.ReopenedAt, fx.finding.ReopenCount = match.StateOpen, &reopened, 1
		r, ev := fx.step(&closed, a, nil, reopened.Add(time.Hour))
		if r.Status != StatusOpen || r.ClockBasis != BasisReopened || !r.ClockStart.Equal(reopened) || !r.DueAt.Equal(reopened.AddDate(0, 0, 14)) {
			t.Errorf("reopened: %s %s from %v due %v; want open, reopened from %v", r.Status, r.ClockBasis, r.ClockStart, r.DueAt, reopened)
		}
		if r.ResolvedAt != nil || r.TimeToRemediate != nil || r.MetSLA != nil {
			t.Errorf("reopened kept the old outcome: %v %v %v", r.ResolvedAt, r.TimeToRemediate, r.MetSLA)
		}
		if ev == nil || !strings.HasPrefix(ev.Reason, "reopened 2026-04-01 09:00 UTC: new clock") {
			t.Errorf("event = %+v", ev)
		}

		// Fixed again: measured from the reopening, not the first sighting.
		again := at(t, utc, "2026-04-03 09:00")
		fx.finding.State, fx.finding.FixedAt = match.StateFixed, &again
		r2, _ := fx.step(&r, a, nil, again)
		if r2.TimeToRemediate == nil || *r2.TimeToRemediate != 48*time.Hour || r2.MetSLA == nil || !*r2.MetSLA {
			t.Errorf("fixed again: TTR %v met %v; want 48h, met", r2.TimeToRemediate, r2.MetSLA)
		}
	})

	t.Run("fixed before the clock started", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFixAvailable, 0.3, false), utc, seen)
		open, _ := fx.step(nil, a, nil, seen)
		fixed := seen.AddDate(0, 0, 3)
		fx.finding.State, fx.finding.FixedAt = match.StateFixed, &fixed
		r, _ := fx.step(&open, a, nil, fixed)
		if r.Status != StatusFixed || r.MetSLA != nil || r.TimeToRemediate == nil {
			t.Errorf("fixed while awaiting: %s met %v ttr %v; want fixed, no verdict, a TTR", r.Status, r.MetSLA, r.TimeToRemediate)
		}
		if got := SLAState(r, fixed); got != "" {
			t.Errorf("SLAState = %q; want none", got)
		}
	})

	t.Run("not affected, then the VEX is withdrawn", func(t *testing.T) {
		fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
		open, _ := fx.step(nil, a, nil, seen)
		fx.finding.State = match.StateNotAffected
		na, ev := fx.step(&open, a, nil, seen.AddDate(0, 0, 1))
		if na.Status != StatusNotAffected || ev == nil || ev.Reason != "vendor VEX: not affected" {
			t.Errorf("not affected: %s event %+v", na.Status, ev)
		}
		if got := SLAState(na, seen.AddDate(1, 0, 0)); got != "" {
			t.Errorf("SLAState(not_affected) = %q; want none", got)
		}
		now := seen.AddDate(0, 0, 40)
		fx.finding.State = match.StateOpen
		r, _ := fx.step(&na, a, nil, now)
		if r.Status != StatusOpen || r.ClockBasis != BasisVEXWithdrawn || !r.ClockStart.Equal(now) {
			t.Errorf("VEX withdrawn: %s %s from %v; want open from %v", r.Status, r.ClockBasis, r.ClockStart, now)
		}
	})
}

// TestClockDST pins the calendar arithmetic in the zones clinics are in.
func TestClockDST(t *testing.T) {
	tests := []struct {
		zone, start, target string
		wantLocal           string // due date's local wall clock and abbreviation
		wantElapsed         time.Duration
	}{
		// Chicago springs forward on 8 March 2026 and falls back on 1 November.
		{"America/Chicago", "2026-03-01 09:00", "14d", "2026-03-15 09:00 CDT", 13*24*time.Hour + 23*time.Hour},
		{"America/Chicago", "2026-03-07 09:00", "72h", "2026-03-10 10:00 CDT", 72 * time.Hour},
		{"America/Chicago", "2026-10-25 09:00", "14d", "2026-11-08 09:00 CST", 14*24*time.Hour + time.Hour},
		{"America/Chicago", "2026-03-07 09:00", "1d12h", "2026-03-08 21:00 CDT", 35 * time.Hour},
		// Berlin: last Sunday of March (29th) and of October (25th).
		{"Europe/Berlin", "2026-03-20 09:00", "14d", "2026-04-03 09:00 CEST", 14*24*time.Hour - time.Hour},
		{"Europe/Berlin", "2026-03-28 09:00", "72h", "2026-03-31 10:00 CEST", 72 * time.Hour},
		{"Europe/Berlin", "2026-10-20 09:00", "14d", "2026-11-03 09:00 CET", 14*24*time.Hour + time.Hour},
		{"Europe/Berlin", "2026-10-24 09:00", "72h", "2026-10-27 08:00 CET", 72 * time.Hour},
		// Lord Howe shifts by 30 minutes: back on 5 April, forward on 4 October.
		{"Australia/Lord_Howe", "2026-04-01 09:00", "14d", "2026-04-15 09:00 +1030", 14*24*time.Hour + 30*time.Minute},
		{"Australia/Lord_Howe", "2026-04-03 09:00", "72h", "2026-04-06 08:30 +1030", 72 * time.Hour},
		{"Australia/Lord_Howe", "2026-10-01 09:00", "14d", "2026-10-15 09:00 +11", 14*24*time.Hour - 30*time.Minute},
		// Kolkata has no DST: days are always 24 hours.
		{"Asia/Kolkata", "2026-03-01 09:00", "14d", "2026-03-15 09:00 IST", 14 * 24 * time.Hour},
		{"Asia/Kolkata", "2026-10-20 09:00", "72h", "2026-10-23 09:00 IST", 72 * time.Hour},
		// A due date in the skipped hour is read with the offset before the
		// gap (RFC 5545): the same elapsed time as on any other week.
		{"America/Chicago", "2026-03-01 02:30", "7d", "2026-03-08 03:30 CDT", 7 * 24 * time.Hour},
		{"Europe/Berlin", "2026-03-22 02:30", "7d", "2026-03-29 03:30 CEST", 7 * 24 * time.Hour},
		{"Australia/Lord_Howe", "2026-09-27 02:15", "7d", "2026-10-04 02:45 +11", 7 * 24 * time.Hour},
		// A repeated hour is its first occurrence (the stricter due date).
		{"America/Chicago", "2026-10-25 01:30", "7d", "2026-11-01 01:30 CDT", 7 * 24 * time.Hour},
		{"Europe/Berlin", "2026-10-18 02:30", "7d", "2026-10-25 02:30 CEST", 7 * 24 * time.Hour},
	}
	p := slaPolicy(t, policy.ClockFirstSeen, 0.3, false)
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.start+" +"+tt.target, func(t *testing.T) {
			loc := mustLoc(t, tt.zone)
			start := at(t, loc, tt.start)
			fx := newClockFixture(t, p, loc, start)
			r, _ := fx.step(nil, tierAssessment("high", 1, tt.target, "1h"), nil, start)
			if got := r.DueAt.In(loc).Format("2006-01-02 15:04 MST"); got != tt.wantLocal {
				t.Errorf("due = %s; want %s", got, tt.wantLocal)
			}
			if got := r.DueAt.Sub(start); got != tt.wantElapsed {
				t.Errorf("elapsed = %v; want %v", got, tt.wantElapsed)
			}
			if got := r.DueAt.Sub(r.DueSoonAt); got != time.Hour {
				t.Errorf("due soon %v before due; want 1h", got)
			}
		})
	}
}

func TestClockDueSoonAcrossDST(t *testing.T) {
	// due_soon in days is calendar days back from the due date.
	chicago := mustLoc(t, "America/Chicago")
	start := at(t, chicago, "2026-03-01 09:00")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), chicago, start)
	r, _ := fx.step(nil, tierAssessment("high", 1, "14d", "10d"), nil, start)
	if want := at(t, chicago, "2026-03-05 09:00"); !r.DueSoonAt.Equal(want) {
		t.Errorf("DueSoonAt = %v; want %v", r.DueSoonAt.In(chicago), want)
	}
}

func TestSLAStateBoundaries(t *testing.T) {
	utc := time.UTC
	due := at(t, utc, "2026-07-10 12:00")
	soon := at(t, utc, "2026-07-07 12:00")
	r := Record{Status: StatusOpen, ClockBasis: BasisFirstSeen, ClockStart: at(t, utc, "2026-06-26 12:00"), DueAt: due, DueSoonAt: soon}
	tests := []struct {
		now  time.Time
		want string
	}{
		{soon.Add(-time.Nanosecond), SLAOnTrack},
		{soon, SLADueSoon},
		{due.Add(-time.Nanosecond), SLADueSoon},
		{due, SLADueSoon},
		{due.Add(time.Nanosecond), SLABreached},
	}
	for _, tt := range tests {
		if got := SLAState(r, tt.now); got != tt.want {
			t.Errorf("SLAState(due %v, soon %v, now %v) = %q; want %q", due, soon, tt.now, got, tt.want)
		}
	}
	for _, tt := range []struct {
		r    Record
		want string
	}{
		{Record{Status: StatusExcepted, DueAt: due}, SLAExcepted},
		{Record{Status: StatusFixed, MetSLA: ptr(true)}, SLAMet},
		{Record{Status: StatusFixed, MetSLA: ptr(false)}, SLAMissed},
		{Record{Status: StatusOpen, ClockBasis: BasisAwaitingFix}, SLAAwaitingFix},
		{Record{Status: StatusNotAffected, DueAt: due}, ""},
	} {
		if got := SLAState(tt.r, due.AddDate(0, 1, 0)); got != tt.want {
			t.Errorf("SLAState(status %s) = %q; want %q", tt.r.Status, got, tt.want)
		}
	}
}

func TestClockReopenedBeforeFirstAssessment(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2025-01-01 00:00")
	reopened := at(t, utc, "2026-05-01 00:00")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFirstSeen, 0.3, false), utc, seen)
	fx.finding.FixedAt, fx.finding.ReopenedAt = ptr(at(t, utc, "2025-02-01 00:00")), &reopened
	r, _ := fx.step(nil, tierAssessment("high", 1, "14d", "3d"), nil, reopened.Add(time.Hour))
	if r.ClockBasis != BasisReopened || !r.ClockStart.Equal(reopened) {
		t.Errorf("first assessment of a reopened finding: %s from %v; want reopened from %v", r.ClockBasis, r.ClockStart, reopened)
	}
}

func TestClockModeChangeStartsWaitingClock(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-05-01 08:00")
	a := tierAssessment("high", 1, "14d", "3d")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFixAvailable, 0.1, false), utc, seen)
	waiting, _ := fx.step(nil, a, nil, seen)

	// Version 2 starts clocks at first sight: the waiting clock starts, from
	// when the finding was first seen.
	fx.policy, fx.version = slaPolicy(t, policy.ClockFirstSeen, 0.1, false), 2
	now := seen.AddDate(0, 0, 3)
	r, ev := fx.step(&waiting, a, nil, now)
	if r.ClockBasis != BasisFirstSeen || !r.ClockStart.Equal(seen) || !r.DueAt.Equal(seen.AddDate(0, 0, 14)) || r.PolicyVersion != 2 {
		t.Errorf("after the mode change: %s from %v due %v v%d; want first_seen from %v", r.ClockBasis, r.ClockStart, r.DueAt, r.PolicyVersion, seen)
	}
	if ev == nil || !strings.HasPrefix(ev.Reason, "clock started: high tier: 14d from first seen") {
		t.Errorf("event = %+v", ev)
	}

	// A started clock is not un-started by switching back.
	fx.policy, fx.version = slaPolicy(t, policy.ClockFixAvailable, 0.1, false), 3
	r2, _ := fx.step(&r, a, nil, now.Add(time.Hour))
	if r2.ClockBasis == BasisAwaitingFix || !r2.ClockStart.Equal(seen) {
		t.Errorf("switching back: %s from %v; want the started clock kept", r2.ClockBasis, r2.ClockStart)
	}
}

func TestClockReopenedInFixAvailableMode(t *testing.T) {
	utc := time.UTC
	seen := at(t, utc, "2026-05-01 08:00")
	a := tierAssessment("high", 1, "14d", "3d")
	fx := newClockFixture(t, slaPolicy(t, policy.ClockFixAvailable, 0.1, false), utc, seen)
	fx.finding.FixedVersion = "3.0.1-2"
	open, _ := fx.step(nil, a, nil, seen)
	fixed := seen.AddDate(0, 0, 2)
	fx.finding.State, fx.finding.FixedAt = match.StateFixed, &fixed
	closed, _ := fx.step(&open, a, nil, fixed)
	reopened := seen.AddDate(0, 1, 0)
	fx.finding.State, fx.finding.ReopenedAt = match.StateOpen, &reopened
	r, _ := fx.step(&closed, a, nil, reopened)
	if r.ClockBasis != BasisReopened || !r.ClockStart.Equal(reopened) || !r.FixAvailableAt.Equal(seen) {
		t.Errorf("reopened with a fix long known: %s from %v (fix %v); want reopened from %v", r.ClockBasis, r.ClockStart, r.FixAvailableAt, reopened)
	}
}

func TestClockWithoutPolicy(t *testing.T) {
	// No policy (a caller's mistake) still gives a defined clock: from
	// first seen, never later.
	seen := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	fx := newClockFixture(t, nil, nil, seen)
	r, _ := fx.step(nil, tierAssessment("high", 1, "14d", "3d"), nil, seen)
	if r.ClockBasis != BasisFirstSeen || !r.DueAt.Equal(seen.AddDate(0, 0, 14)) {
		t.Errorf("no policy: %s due %v", r.ClockBasis, r.DueAt)
	}
}

// BenchmarkNextRecordUnchanged is the common case of a periodic
// re-assessment: an open finding whose inputs did not change.
func BenchmarkNextRecordUnchanged(b *testing.B) {
	p := policy.Default()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		b.Fatal(err)
	}
	fx := &clockFixture{policy: p, version: 1, loc: chicago}
	fx.finding.FirstSeen = now
	a := tierAssessment("high", 1, "14d", "3d")
	prev, _ := fx.step(nil, a, nil, now)
	for b.Loop() {
		fx.step(&prev, a, nil, now.Add(time.Hour))
	}
}
