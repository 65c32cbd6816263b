package deploy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// testPolicy loads the shipped default policy with its windows, freezes and
// emergency window replaced where the arguments are non-nil.
func testPolicy(t interface {
	Helper()
	Fatalf(string, ...any)
}, windows []map[string]any, freezes []map[string]any, emergencyWindow string) *policy.Compiled {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(policy.DefaultSource(), &doc); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	if windows != nil {
		doc["maintenance_windows"] = windows
	}
	if freezes != nil {
		doc["freezes"] = freezes
	}
	if emergencyWindow != "" {
		doc["emergency"].(map[string]any)["window"] = emergencyWindow
	}
	src, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("marshal policy: %v", err)
	}
	c, err := policy.Load(src)
	if err != nil {
		t.Fatalf("load policy: %v", err)
	}
	return c
}

func newCalendar(t *testing.T, pol *policy.Compiled, tz string) *Calendar {
	t.Helper()
	c, err := NewCalendar(pol, zone(t, tz))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// local reads "2006-01-02 15:04" in tz, a repeated time as its first
// occurrence (policy.FromWall).
func local(t *testing.T, tz, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		t.Fatal(err)
	}
	return policy.FromWall(v, zone(t, tz))
}

func TestNewCalendarResolvesBaselineAndZone(t *testing.T) {
	c, err := NewCalendar(policy.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Baseline(); got != "monthly-baseline" {
		t.Errorf("Baseline() = %q; want monthly-baseline", got)
	}
	p := policy.Default().Policy()
	if got := c.Zone().String(); got != p.Organization.TimeZone && !(p.Organization.TimeZone == "" && got == "UTC") {
		t.Errorf("Zone() = %s; want the organization's %q", got, p.Organization.TimeZone)
	}
	if _, err := NewCalendar(nil, nil); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("NewCalendar(nil) = %v; want Invalid", err)
	}
}

func TestNextSlot(t *testing.T) {
	def := policy.Default() // freezes 2026-05-04..15 and 2026-09-14..18
	immediate := testPolicy(t, nil, nil, policy.WindowImmediate)
	overlap := testPolicy(t, []map[string]any{
		{"name": "monthly-baseline", "schedule": "FREQ=MONTHLY;BYDAY=2TU", "offset_days": 2, "start": "22:00", "duration": "6h", "time_zone": "site"},
		{"name": "evening-a", "schedule": "FREQ=DAILY", "start": "18:00", "duration": "3h", "time_zone": "site"},
		{"name": "emergency", "schedule": "FREQ=DAILY", "start": "20:00", "duration": "4h", "time_zone": "site", "emergency": true},
	}, nil, "emergency")
	const chi = "America/Chicago"
	tests := []struct {
		name   string
		pol    *policy.Compiled
		zone   string
		asset  Asset
		change string
		after  string // local in zone
		dur    time.Duration
		wantS  string // local start
		wantE  string // local end; "" means open-ended
		err    error
	}{
		{
			name: "inside the asset's window with time to spare starts now", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100"}, change: policy.ChangeNormal,
			after: "2026-03-02 19:30", dur: time.Hour, wantS: "2026-03-02 19:30", wantE: "2026-03-02 21:00",
		},
		{
			name: "too little left tonight carries over to tomorrow", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100"}, change: policy.ChangeNormal,
			after: "2026-03-02 20:30", dur: time.Hour, wantS: "2026-03-03 19:00", wantE: "2026-03-03 21:00",
		},
		{
			name: "before the window waits for it", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "sun-0200-0500"}, change: policy.ChangeStandard,
			after: "2026-03-18 12:00", dur: time.Hour, wantS: "2026-03-22 02:00", wantE: "2026-03-22 05:00",
		},
		{
			name: "a named policy window", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "servers-weekly"}, change: policy.ChangeNormal,
			after: "2026-06-01 00:00", dur: time.Hour, wantS: "2026-06-07 02:00", wantE: "2026-06-07 06:00",
		},
		{
			name: "no window: the baseline, two days after Patch Tuesday", pol: def, zone: chi,
			asset: Asset{ID: "a"}, change: policy.ChangeNormal,
			after: "2026-06-01 00:00", dur: time.Hour, wantS: "2026-06-11 22:00", wantE: "2026-06-12 04:00",
		},
		{
			name: "a freeze (2026-05-04..15, whole local days) skips to the day after", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100"}, change: policy.ChangeNormal,
			after: "2026-05-03 20:30", dur: time.Hour, wantS: "2026-05-16 19:00", wantE: "2026-05-16 21:00",
		},
		{
			name: "a freeze cuts a window across midnight at the freeze's first midnight", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "sun-2200-mon-0200"}, change: policy.ChangeNormal,
			after: "2026-05-03 12:00", dur: time.Hour, wantS: "2026-05-03 22:00", wantE: "2026-05-04 00:00",
		},
		{
			name: "a job longer than the cut window waits for the freeze to end", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "sun-2200-mon-0200"}, change: policy.ChangeNormal,
			after: "2026-05-03 12:00", dur: 3 * time.Hour, wantS: "2026-05-17 22:00", wantE: "2026-05-18 02:00",
		},
		{
			name: "freeze days are the site's: Berlin's freeze ends at Berlin midnight", pol: def, zone: "Europe/Berlin",
			asset: Asset{ID: "a", Window: "daily-0000-0100"}, change: policy.ChangeNormal,
			after: "2026-05-10 12:00", dur: 30 * time.Minute, wantS: "2026-05-16 00:00", wantE: "2026-05-16 01:00",
		},
		{
			name: "an emergency ignores the freeze and may use the emergency window", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "sun-0200-0500"}, change: policy.ChangeEmergency,
			after: "2026-05-06 12:00", dur: time.Hour, wantS: "2026-05-06 21:00", wantE: "2026-05-07 01:00",
		},
		{
			name: "an emergency may also use the asset's own window", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-0600-0800"}, change: policy.ChangeEmergency,
			after: "2026-05-06 05:00", dur: time.Hour, wantS: "2026-05-06 06:00", wantE: "2026-05-06 08:00",
		},
		{
			name: "an approved emergency under immediate starts now, open-ended", pol: immediate, zone: chi,
			asset: Asset{ID: "a", Window: "sun-0200-0500"}, change: policy.ChangeEmergency,
			after: "2026-05-06 12:34", dur: 5 * time.Hour, wantS: "2026-05-06 12:34",
		},
		{
			name: "immediate does not apply to a normal change", pol: immediate, zone: chi,
			asset: Asset{ID: "a", Window: "sun-0200-0500"}, change: policy.ChangeNormal,
			after: "2026-06-01 12:00", dur: time.Hour, wantS: "2026-06-07 02:00", wantE: "2026-06-07 05:00",
		},
		{
			name: "overlapping windows merge: 4h job fits 19:00-24:00 only merged", pol: overlap, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100"}, change: policy.ChangeEmergency,
			after: "2026-06-01 19:00", dur: 4 * time.Hour, wantS: "2026-06-01 19:00", wantE: "2026-06-02 00:00",
		},
		{
			name: "a job that fits no occurrence of the window", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100"}, change: policy.ChangeNormal,
			after: "2026-06-01 19:00", dur: 3 * time.Hour, err: ErrNoSlot,
		},
		{
			name: "an unknown window name is refused, not replaced", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "quarterly-vendor"}, change: policy.ChangeNormal,
			after: "2026-06-01 19:00", dur: time.Hour, err: errs.ErrInvalid,
		},
		{
			name: "an unknown change type is refused", pol: def, zone: chi,
			asset: Asset{ID: "a"}, change: "urgent",
			after: "2026-06-01 19:00", dur: time.Hour, err: errs.ErrInvalid,
		},
		// Time zones and DST.
		{
			name: "policy window on the spring-forward night: 02:00 reads 03:00 CDT, 4h exact", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "servers-weekly"}, change: policy.ChangeNormal,
			after: "2026-03-07 12:00", dur: time.Hour, wantS: "2026-03-08 03:00", wantE: "2026-03-08 07:00",
		},
		{
			name: "asset window on the spring-forward night is an hour shorter", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "sun-0200-0400"}, change: policy.ChangeNormal,
			after: "2026-03-07 12:00", dur: 90 * time.Minute, wantS: "2026-03-15 02:00", wantE: "2026-03-15 04:00",
		},
		{
			name: "asset window on the fall-back night is an hour longer (Berlin)", pol: def, zone: "Europe/Berlin",
			asset: Asset{ID: "a", Window: "sun-0200-0400"}, change: policy.ChangeNormal,
			after: "2026-10-24 12:00", dur: 150 * time.Minute, wantS: "2026-10-25 02:00", wantE: "2026-10-25 04:00",
		},
		{
			name: "Lord Howe spring forward: 90 minutes, a 2h job waits a week", pol: def, zone: "Australia/Lord_Howe",
			asset: Asset{ID: "a", Window: "sun-0200-0400"}, change: policy.ChangeNormal,
			after: "2026-10-03 12:00", dur: 2 * time.Hour, wantS: "2026-10-11 02:00", wantE: "2026-10-11 04:00",
		},
		{
			name: "Kolkata", pol: def, zone: "Asia/Kolkata",
			asset: Asset{ID: "a", Window: "weekdays-2200-2330"}, change: policy.ChangeNormal,
			after: "2026-06-06 12:00", dur: time.Hour, wantS: "2026-06-08 22:00", wantE: "2026-06-08 23:30",
		},
		{
			name: "the asset's own zone beats the calendar's", pol: def, zone: chi,
			asset: Asset{ID: "a", Window: "daily-1900-2100", Location: zone(t, "Asia/Kolkata")}, change: policy.ChangeNormal,
			after: "2026-06-01 00:00", dur: time.Hour, wantS: "2026-06-01 08:30", wantE: "2026-06-01 10:30", // 19:00-21:00 IST in Chicago
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCalendar(t, tt.pol, tt.zone)
			got, err := c.NextSlot(tt.asset, tt.change, local(t, tt.zone, tt.after), tt.dur)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("NextSlot() error = %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Slot{Start: local(t, tt.zone, tt.wantS)}
			if tt.wantE != "" {
				want.End = local(t, tt.zone, tt.wantE)
			}
			// The Berlin fall-back end 04:00 is CET; local() reads it so.
			if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
				loc := zone(t, tt.zone)
				t.Errorf("NextSlot() = %s – %s; want %s – %s", fmtT(got.Start, loc), fmtT(got.End, loc), fmtT(want.Start, loc), fmtT(want.End, loc))
			}
		})
	}
}

func fmtT(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.In(loc).Format("Mon 2006-01-02 15:04 MST")
}

func TestPlan(t *testing.T) {
	const chi = "America/Chicago"
	c := newCalendar(t, policy.Default(), chi)
	assets := func(n int, window, site string) []Asset {
		var out []Asset
		for i := range n {
			out = append(out, Asset{ID: string(rune('a' + i)), Site: site, Window: window})
		}
		return out
	}
	type start struct{ ID, At string }
	tests := []struct {
		name string
		wave []Asset
		dur  time.Duration
		from string
		opts PlanOptions
		want []start
	}{
		{
			name: "no cap: everyone at the window's start",
			wave: assets(3, "sun-0200-0500", "clinic"), dur: time.Hour, from: "2026-06-01 00:00",
			opts: PlanOptions{ChangeType: policy.ChangeNormal},
			want: []start{{"a", "2026-06-07 02:00"}, {"b", "2026-06-07 02:00"}, {"c", "2026-06-07 02:00"}},
		},
		{
			name: "two at a time per site; the seventh carries over to next week",
			wave: assets(7, "sun-0200-0500", "clinic"), dur: time.Hour, from: "2026-06-01 00:00",
			opts: PlanOptions{ChangeType: policy.ChangeNormal, MaxConcurrent: 2},
			want: []start{
				{"a", "2026-06-07 02:00"}, {"b", "2026-06-07 02:00"}, {"c", "2026-06-07 03:00"}, {"d", "2026-06-07 03:00"},
				{"e", "2026-06-07 04:00"}, {"f", "2026-06-07 04:00"}, {"g", "2026-06-14 02:00"},
			},
		},
		{
			name: "the cap is per site",
			wave: append(assets(2, "sun-0200-0500", "north"), Asset{ID: "z", Site: "south", Window: "sun-0200-0500"}),
			dur:  2 * time.Hour, from: "2026-06-01 00:00",
			opts: PlanOptions{ChangeType: policy.ChangeNormal, MaxConcurrent: 1},
			want: []start{{"a", "2026-06-07 02:00"}, {"b", "2026-06-14 02:00"}, {"z", "2026-06-07 02:00"}},
		},
		{
			name: "starting late in a window: what does not fit carries over",
			wave: assets(2, "sun-0200-0500", "clinic"), dur: time.Hour, from: "2026-06-07 03:30",
			opts: PlanOptions{ChangeType: policy.ChangeNormal, MaxConcurrent: 1},
			want: []start{{"a", "2026-06-07 03:30"}, {"b", "2026-06-14 02:00"}},
		},
		{
			name: "a freeze in the way",
			wave: assets(1, "sun-0200-0500", "clinic"), dur: time.Hour, from: "2026-05-01 00:00",
			opts: PlanOptions{ChangeType: policy.ChangeNormal},
			want: []start{{"a", "2026-05-03 02:00"}},
		},
		{
			name: "a freeze in the way, one week later",
			wave: assets(1, "sun-0200-0500", "clinic"), dur: time.Hour, from: "2026-05-04 00:00",
			opts: PlanOptions{ChangeType: policy.ChangeNormal},
			want: []start{{"a", "2026-05-17 02:00"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Plan(tt.wave, tt.dur, local(t, chi, tt.from), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			loc := zone(t, chi)
			var gs []start
			for _, p := range got {
				gs = append(gs, start{p.AssetID, p.Start.In(loc).Format("2006-01-02 15:04")})
				if !p.End.Equal(p.Start.Add(tt.dur)) || p.End.After(p.Slot.End) || p.Start.Before(p.Slot.Start) {
					t.Errorf("%s: job %s–%s not inside its slot %s–%s", p.AssetID, p.Start, p.End, p.Slot.Start, p.Slot.End)
				}
			}
			if diff := cmp.Diff(tt.want, gs); diff != "" {
				t.Errorf("Plan() (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := c.Plan(assets(1, "", "x"), 0, time.Now(), PlanOptions{ChangeType: policy.ChangeNormal}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("Plan(duration 0) = %v; want Invalid", err)
	}
	if _, err := c.Plan(assets(1, "nowhere", "x"), time.Hour, time.Now(), PlanOptions{ChangeType: policy.ChangeNormal}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("Plan(unknown window) = %v; want Invalid", err)
	}
}
