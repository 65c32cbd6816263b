package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/policy"
)

func TestAssignRings(t *testing.T) {
	assets := []policy.AssetFacts{
		{ID: "it-laptop", Type: "endpoint", Criticality: "low", SafetyImpact: "none", Tags: []string{"pilot"}},
		{ID: "front-desk", Type: "endpoint", Criticality: "medium", SafetyImpact: "none"},
		{ID: "analyzer", Type: "analyzer", Criticality: "high", SafetyImpact: "high", RegulatedDevice: true},
		{ID: "pump", Type: "iomt", Criticality: "critical", SafetyImpact: "direct_patient_care", RegulatedDevice: true},
		{ID: "test-server", Type: "server", Criticality: "high", SafetyImpact: "none", Tags: []string{"pilot"}},
	}
	got, err := AssignRings(policy.Default(), assets)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"pilot":            {"it-laptop", "test-server"},
		"low-risk":         {"front-desk"},
		"high-criticality": {"analyzer", "pump"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AssignRings() (-want +got):\n%s", diff)
	}
}

func TestGate(t *testing.T) {
	now := utc("2026-06-10T12:00:00Z")
	pilot := policy.Ring{Name: "pilot", MinSuccess: 3, SuccessRate: 0.95, Soak: policy.Hours(48), HaltFailureRate: 0.1}
	done := func(state JobState, finished string) Job {
		return Job{State: state, StartedAt: utc(finished).Add(-time.Hour), FinishedAt: utc(finished)}
	}
	ok := func(finished string) Job { return done(JobSucceeded, finished) }
	fail := func(finished string) Job { return done(JobFailed, finished) }
	pending := Job{State: JobPending}
	running := Job{State: JobRunning, StartedAt: now.Add(-time.Minute)}
	repeat := func(j Job, n int) []Job {
		out := make([]Job, n)
		for i := range out {
			out[i] = j
		}
		return out
	}
	join := func(parts ...[]Job) []Job {
		var out []Job
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		ring    policy.Ring
		jobs    []Job
		loc     *time.Location
		want    Verdict
		wantTil time.Time
		// emergency gates an approved emergency change's wave; wantText
		// is part of the reason, when set.
		emergency bool
		wantText  string
	}{
		{name: "all succeeded, soaked", ring: pilot, jobs: repeat(ok("2026-06-07T12:00:00Z"), 5), want: Advance},
		{name: "all succeeded, soaking until 48h after the last success", ring: pilot,
			jobs: join(repeat(ok("2026-06-07T12:00:00Z"), 4), []Job{ok("2026-06-09T08:00:00Z")}),
			want: Wait, wantTil: utc("2026-06-11T08:00:00Z")},
		{name: "soak exactly over", ring: pilot, jobs: repeat(ok("2026-06-08T12:00:00Z"), 3), want: Advance},
		{name: "a running job holds the gate", ring: pilot, jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 20), []Job{running}), want: Wait},
		{name: "one pending job of 20 does not hold a gate already met (95%)", ring: pilot,
			jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 19), []Job{pending}), want: Advance},
		{name: "two pending of 20: 90% < 95%, wait for them", ring: pilot,
			jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 18), repeat(pending, 2)), want: Wait},
		{name: "not enough successes yet", ring: pilot, jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 2), []Job{pending}), want: Wait},
		{name: "failures above the threshold halt before the rest finish", ring: pilot,
			jobs: join(repeat(fail("2026-06-10T11:00:00Z"), 3), repeat(pending, 17)), want: Halt},
		{name: "failures at the threshold do not halt, but the gate cannot open", ring: pilot,
			jobs: join(repeat(fail("2026-06-10T11:00:00Z"), 2), repeat(pending, 18)), want: Blocked},
		{name: "one failure of 20 with the rest pending: still reachable", ring: pilot,
			jobs: join([]Job{fail("2026-06-10T11:00:00Z")}, repeat(pending, 19)), want: Wait},
		{name: "fewer assets than min_success: all of them must succeed", ring: pilot, jobs: repeat(ok("2026-06-01T00:00:00Z"), 2), want: Advance},
		{name: "fewer assets than min_success: one still pending waits", ring: pilot,
			jobs: join([]Job{ok("2026-06-01T00:00:00Z")}, []Job{pending}), want: Wait},
		{name: "empty ring advances", ring: pilot, want: Advance},
		{name: "strict ring: any failure halts", ring: policy.Ring{Name: "hc", SuccessRate: 1, HaltFailureRate: 0.02},
			jobs: join([]Job{fail("2026-06-10T11:00:00Z")}, repeat(ok("2026-06-10T11:00:00Z"), 10)), want: Halt},
		{name: "no soak: advance as soon as met", ring: policy.Ring{Name: "hc", SuccessRate: 1, HaltFailureRate: 0.02},
			jobs: repeat(ok("2026-06-10T11:59:00Z"), 3), want: Advance},
		{name: "a soak in days keeps the wall-clock time across DST", ring: policy.Ring{Name: "d", SuccessRate: 1, HaltFailureRate: 0.5, Soak: policy.Days(1)},
			jobs: repeat(ok("2026-03-07T18:00:00Z"), 1),                                         // 12:00 CST Saturday
			loc:  zone(t, "America/Chicago"), want: Wait, wantTil: utc("2026-03-08T17:00:00Z")}, // 12:00 CDT Sunday
		{name: "an emergency does not soak", ring: pilot, emergency: true,
			jobs: join(repeat(ok("2026-06-07T12:00:00Z"), 4), []Job{ok("2026-06-10T11:59:00Z")}), want: Advance, wantText: "emergency: no soak"},
		{name: "an emergency still needs its successes", ring: pilot, emergency: true,
			jobs: join(repeat(ok("2026-06-10T11:00:00Z"), 2), []Job{pending}), want: Wait, wantText: "2 of 3 succeeded"},
		{name: "an emergency still halts on failures", ring: pilot, emergency: true,
			jobs: join(repeat(fail("2026-06-10T11:00:00Z"), 3), repeat(ok("2026-06-10T11:00:00Z"), 7)), want: Halt, wantText: "3 of 10 jobs failed"},
		{name: "one running job", ring: pilot, jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 3), []Job{running}), want: Wait, wantText: "ring pilot: 1 job still running"},
		{name: "an open manual task is open, not running", ring: pilot,
			jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 3), []Job{{State: JobRunning, Manual: true}}), want: Wait, wantText: "ring pilot: 1 task still open"},
		{name: "jobs running and tasks open", ring: pilot,
			jobs: join(repeat(ok("2026-06-01T00:00:00Z"), 3), repeat(running, 2), repeat(Job{State: JobRunning, Manual: true}, 2)), want: Wait,
			wantText: "ring pilot: 2 jobs still running and 2 tasks still open"},
		{name: "a failed manual task is an item, not a job", ring: policy.Ring{Name: "low-risk", SuccessRate: 1, HaltFailureRate: 0.5},
			jobs: []Job{{State: JobFailed, Manual: true}}, want: Halt, wantText: "ring low-risk: 1 of 1 items failed (1 manual task; 100.0%)"},
		{name: "failures in a mixed wave are broken down", ring: pilot,
			jobs: join([]Job{fail("2026-06-10T11:00:00Z"), {State: JobFailed, Manual: true}}, repeat(pending, 8)), want: Halt,
			wantText: "2 of 10 items failed (1 job, 1 manual task; 20.0%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if tt.loc != nil {
				at = utc("2026-03-08T10:00:00Z")
			}
			got := Gate(tt.ring, tt.jobs, at, tt.loc, tt.emergency)
			if got.Verdict != tt.want || !got.Until.Equal(tt.wantTil) {
				t.Errorf("Gate() = %s until %v (%s); want %s until %v", got.Verdict, got.Until, got.Reason, tt.want, tt.wantTil)
			}
			if got.Reason == "" {
				t.Errorf("Gate() gave no reason")
			}
			if !strings.Contains(got.Reason, tt.wantText) {
				t.Errorf("Gate() reason = %q; want it to say %q", got.Reason, tt.wantText)
			}
		})
	}
}

func TestThrottle(t *testing.T) {
	j := func(id, site string) Job { return Job{AssetID: id, Site: site} }
	ids := func(js []Job) []string {
		var out []string
		for _, x := range js {
			out = append(out, x.AssetID)
		}
		return out
	}
	tests := []struct {
		name             string
		max              int
		running, pending []Job
		want             []string
	}{
		{"no limit", 0, []Job{j("r", "a")}, []Job{j("1", "a"), j("2", "a")}, []string{"1", "2"}},
		{"fills each site up to the cap", 2, []Job{j("r", "a")},
			[]Job{j("1", "a"), j("2", "a"), j("3", "b"), j("4", "b"), j("5", "b")}, []string{"1", "3", "4"}},
		{"a full site starts nothing", 1, []Job{j("r", "a")}, []Job{j("1", "a")}, nil},
		{"order kept", 3, nil, []Job{j("3", "x"), j("1", "y"), j("2", "x")}, []string{"3", "1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(Throttle(tt.max, tt.running, tt.pending))); diff != "" {
				t.Errorf("Throttle() (-want +got):\n%s", diff)
			}
		})
	}
}
