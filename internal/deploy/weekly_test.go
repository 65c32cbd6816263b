package deploy

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

func zone(t interface {
	Helper()
	Fatal(...any)
}, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// specCorpus holds the compact forms the inventory uses and near misses.
var specCorpus = []string{
	"sun-0200-0500", "WED-2200-2300", " sat-2200-sun-0200 ", "weekends-0600-0700", "daily-1900-2100",
	"weekdays-2200-2330", "daily-2200-0200", "sun-2300-0100", "fri-2359-sat-0000",
	"monthly-baseline", "quarterly-vendor", "sun-2500-0100", "sun-0200-0200", "sat-2200-mon-0200",
	"sat-0200-sun-0300", "daily-2200-mon-0100", "sun-0200", "sun-02:00-05:00", "sun-0260-0300", "",
	"sun--0200-0500", "sun-0200-0500-", "SUN-0000-2359",
}

// TestParseWeeklyWindowMatchesFleet holds the parser to the one that hands
// windows to agents: the same specs are accepted and give the same slots.
func TestParseWeeklyWindowMatchesFleet(t *testing.T) {
	for _, spec := range specCorpus {
		t.Run(spec, func(t *testing.T) { checkSameAsFleet(t, spec) })
	}
}

func FuzzParseWeeklyWindow(f *testing.F) {
	for _, s := range specCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) { checkSameAsFleet(t, spec) })
}

func checkSameAsFleet(t *testing.T, spec string) {
	t.Helper()
	got, err := ParseWeeklyWindow(spec)
	fw, ferr := fleet.ParseWindowRef(spec, "UTC")
	if (err == nil) != (ferr == nil) {
		t.Fatalf("ParseWeeklyWindow(%q) err = %v; fleet.ParseWindowRef err = %v", spec, err, ferr)
	}
	if err != nil {
		if !errors.Is(err, errs.ErrUnsupported) {
			t.Errorf("ParseWeeklyWindow(%q) = %v; want Unsupported", spec, err)
		}
		return
	}
	var want []Opening
	for _, s := range fw.Slots {
		var sh, sm, eh, em int
		fmt.Sscanf(s.Start, "%d:%d", &sh, &sm)
		fmt.Sscanf(s.End, "%d:%d", &eh, &em)
		want = append(want, Opening{Day: time.Weekday(s.Day), Start: sh*60 + sm, End: eh*60 + em})
	}
	if diff := cmp.Diff(want, got.Openings); diff != "" {
		t.Errorf("ParseWeeklyWindow(%q) openings (-fleet +got):\n%s", spec, diff)
	}
}

func TestWeeklySlots(t *testing.T) {
	type sl struct{ Start, End time.Time }
	tests := []struct {
		name     string
		spec     string
		zone     string
		from, to string
		want     []sl
		hours    float64 // total length, a second check
	}{
		{
			name: "Chicago spring forward: 02:00-04:00 is one hour", spec: "sun-0200-0400", zone: "America/Chicago",
			from: "2026-03-08T00:00:00Z", to: "2026-03-09T00:00:00Z",
			want:  []sl{{utc("2026-03-08T08:00:00Z"), utc("2026-03-08T09:00:00Z")}}, // 03:00-04:00 CDT
			hours: 1,
		},
		{
			name: "Chicago ordinary Sunday: two hours", spec: "sun-0200-0400", zone: "America/Chicago",
			from: "2026-03-15T00:00:00Z", to: "2026-03-16T00:00:00Z",
			want:  []sl{{utc("2026-03-15T07:00:00Z"), utc("2026-03-15T09:00:00Z")}},
			hours: 2,
		},
		{
			name: "Chicago start in the gap opens at FromWall(02:30) = 03:30 CDT", spec: "sun-0230-0400", zone: "America/Chicago",
			from: "2026-03-08T00:00:00Z", to: "2026-03-09T00:00:00Z",
			want:  []sl{{utc("2026-03-08T08:30:00Z"), utc("2026-03-08T09:00:00Z")}},
			hours: 0.5,
		},
		{
			name: "Chicago end in the gap closes when the clocks jump", spec: "sun-0000-0230", zone: "America/Chicago",
			from: "2026-03-08T00:00:00Z", to: "2026-03-09T00:00:00Z",
			want:  []sl{{utc("2026-03-08T06:00:00Z"), utc("2026-03-08T08:00:00Z")}}, // 00:00 CST - 03:00 CDT
			hours: 2,
		},
		{
			name: "Chicago fall back: 01:00-03:00 is three hours", spec: "sun-0100-0300", zone: "America/Chicago",
			from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z",
			want:  []sl{{utc("2026-11-01T06:00:00Z"), utc("2026-11-01T09:00:00Z")}}, // 01:00 CDT - 03:00 CST
			hours: 3,
		},
		{
			name: "Chicago fall back: 02:00-04:00 is after the repeated hour, two hours", spec: "sun-0200-0400", zone: "America/Chicago",
			from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z",
			want:  []sl{{utc("2026-11-01T08:00:00Z"), utc("2026-11-01T10:00:00Z")}},
			hours: 2,
		},
		{
			name: "Chicago fall back, start inside the repeated hour: two parts as the agent has", spec: "sun-0130-0300", zone: "America/Chicago",
			from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z",
			want: []sl{
				{utc("2026-11-01T06:30:00Z"), utc("2026-11-01T07:00:00Z")}, // 01:30-02:00 CDT
				{utc("2026-11-01T07:30:00Z"), utc("2026-11-01T09:00:00Z")}, // 01:30-03:00 CST
			},
			hours: 2,
		},
		{
			name: "Berlin spring forward: 02:00-04:00 is one hour", spec: "sun-0200-0400", zone: "Europe/Berlin",
			from: "2026-03-28T00:00:00Z", to: "2026-03-30T00:00:00Z",
			want:  []sl{{utc("2026-03-29T01:00:00Z"), utc("2026-03-29T02:00:00Z")}}, // 03:00-04:00 CEST
			hours: 1,
		},
		{
			name: "Berlin fall back: 02:00-04:00 is three hours", spec: "sun-0200-0400", zone: "Europe/Berlin",
			from: "2026-10-24T00:00:00Z", to: "2026-10-26T00:00:00Z",
			want:  []sl{{utc("2026-10-25T00:00:00Z"), utc("2026-10-25T03:00:00Z")}}, // 02:00 CEST - 04:00 CET
			hours: 3,
		},
		{
			name: "Lord Howe spring forward (30 minutes): 02:00-04:00 is 90 minutes", spec: "sun-0200-0400", zone: "Australia/Lord_Howe",
			from: "2026-10-03T00:00:00Z", to: "2026-10-05T00:00:00Z",
			// 02:00 +10:30 jumps to 02:30 +11; opens 02:30 +11 = 15:30 UTC Saturday.
			want:  []sl{{utc("2026-10-03T15:30:00Z"), utc("2026-10-03T17:00:00Z")}},
			hours: 1.5,
		},
		{
			name: "Lord Howe fall back (30 minutes): 01:00-03:00 is 150 minutes", spec: "sun-0100-0300", zone: "Australia/Lord_Howe",
			from: "2026-04-04T00:00:00Z", to: "2026-04-06T00:00:00Z",
			// 01:00 +11 = 14:00 UTC; 02:00 +11 goes back to 01:30 +10:30; 03:00 +10:30 = 16:30 UTC.
			want:  []sl{{utc("2026-04-04T14:00:00Z"), utc("2026-04-04T16:30:00Z")}},
			hours: 2.5,
		},
		{
			name: "Kolkata has no DST, half-hour offset", spec: "daily-1900-2100", zone: "Asia/Kolkata",
			from: "2026-03-08T00:00:00Z", to: "2026-03-09T00:00:00Z",
			want: []sl{
				{utc("2026-03-08T13:30:00Z"), utc("2026-03-08T15:30:00Z")},
			},
			hours: 2,
		},
		{
			name: "across midnight, Saturday to Sunday", spec: "sat-2200-sun-0200", zone: "America/Chicago",
			from: "2026-06-06T00:00:00Z", to: "2026-06-08T00:00:00Z",
			want:  []sl{{utc("2026-06-07T03:00:00Z"), utc("2026-06-07T07:00:00Z")}},
			hours: 4,
		},
		{
			name: "daily across midnight: openings touch nothing, stay apart", spec: "daily-2200-0200", zone: "UTC",
			from: "2026-06-06T00:00:00Z", to: "2026-06-07T12:00:00Z",
			want: []sl{
				{utc("2026-06-05T22:00:00Z"), utc("2026-06-06T02:00:00Z")},
				{utc("2026-06-06T22:00:00Z"), utc("2026-06-07T02:00:00Z")},
			},
			hours: 8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWeeklyWindow(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Slots(zone(t, tt.zone), utc(tt.from), utc(tt.to))
			norm := make([]sl, len(got))
			var total time.Duration
			for i, s := range got {
				norm[i] = sl{s.Start.UTC(), s.End.UTC()}
				total += s.End.Sub(s.Start)
			}
			if diff := cmp.Diff(tt.want, norm); diff != "" {
				t.Errorf("Slots(%s, %s) (-want +got):\n%s", tt.spec, tt.zone, diff)
			}
			if total.Hours() != tt.hours {
				t.Errorf("Slots(%s, %s) total = %s; want %vh", tt.spec, tt.zone, total, tt.hours)
			}
		})
	}
}

// testZones are the zones the property tests draw from: both DST
// hemispheres, a 30-minute DST shift, half-hour offsets without DST.
var testZones = []string{"America/Chicago", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata",
	"America/New_York", "Australia/Sydney", "Pacific/Chatham", "UTC"}

// genSpec draws a compact weekly spec that parses.
func genSpec(t *rapid.T) string {
	days := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat", "daily", "weekdays", "weekends"}
	// Minutes biased towards the hours where clocks change.
	hm := func(label string) int {
		h := rapid.SampledFrom([]int{0, 1, 2, 3, 4, 22, 23, rapid.IntRange(0, 23).Draw(t, label+"h")}).Draw(t, label+"hh")
		m := rapid.SampledFrom([]int{0, 15, 30, 45, 59}).Draw(t, label+"m")
		return h*60 + m
	}
	for {
		start, end := hm("start"), hm("end")
		if start == end {
			continue
		}
		if rapid.Bool().Draw(t, "nextday") && end < start {
			d := rapid.IntRange(0, 6).Draw(t, "day")
			return fmt.Sprintf("%s-%02d%02d-%s-%02d%02d", days[d], start/60, start%60, days[(d+1)%7], end/60, end%60)
		}
		return fmt.Sprintf("%s-%02d%02d-%02d%02d", rapid.SampledFrom(days).Draw(t, "days"), start/60, start%60, end/60, end%60)
	}
}

// genTime draws an instant in 2026-2027, often near a DST change.
func genTime(t *rapid.T, label string) time.Time {
	base := rapid.SampledFrom([]time.Time{
		utc("2026-03-08T00:00:00Z"), utc("2026-03-29T00:00:00Z"), utc("2026-04-04T00:00:00Z"),
		utc("2026-09-26T00:00:00Z"), utc("2026-10-03T00:00:00Z"), utc("2026-10-25T00:00:00Z"),
		utc("2026-11-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"),
	}).Draw(t, label+"base")
	return base.Add(time.Duration(rapid.IntRange(-3*24*60, 3*24*60).Draw(t, label+"min")) * time.Minute)
}

// TestWeeklySlotsInsideAgentWindow: every instant the server counts as
// inside an asset's weekly window, the agent (which enforces the window on
// its side) counts as inside too, so a planned job is never refused there.
func TestWeeklySlotsInsideAgentWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		tz := rapid.SampledFrom(testZones).Draw(t, "zone")
		loc := zone(t, tz)
		ref, err := fleet.ParseWindowRef(spec, tz)
		if err != nil {
			t.Fatalf("fleet.ParseWindowRef(%q): %v", spec, err)
		}
		sched, err := agent.ParseWindow(*ref)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ParseWeeklyWindow(spec)
		if err != nil {
			t.Fatal(err)
		}
		from := genTime(t, "from")
		for _, s := range w.Slots(loc, from, from.Add(4*24*time.Hour)) {
			for at := s.Start; at.Before(s.End); at = at.Add(time.Minute) {
				if !sched.Contains(at) {
					t.Fatalf("%s in %s: %s (%s) is inside slot %s-%s but the agent says outside",
						spec, tz, at.UTC().Format(time.RFC3339), at.In(loc).Format("Mon 15:04 MST"),
						s.Start.In(loc).Format("Mon 15:04 MST"), s.End.In(loc).Format("Mon 15:04 MST"))
				}
			}
		}
	})
}

// TestWeeklySlotsCoverAgentWindow: the other way round, the agent's window
// holds nothing the server misses except in the spring-forward gap's
// shadow (a start in a gap opens at FromWall's reading, which may be later
// than the agent's first valid minute).
func TestWeeklySlotsCoverAgentWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spec := genSpec(t)
		tz := rapid.SampledFrom(testZones).Draw(t, "zone")
		loc := zone(t, tz)
		ref, _ := fleet.ParseWindowRef(spec, tz)
		sched, err := agent.ParseWindow(*ref)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := ParseWeeklyWindow(spec)
		from := genTime(t, "from")
		slots := w.Slots(loc, from.Add(-2*24*time.Hour), from.Add(2*24*time.Hour))
		at := from.Truncate(time.Minute)
		if !sched.Contains(at) {
			return
		}
		for _, s := range slots {
			if !at.Before(s.Start) && at.Before(s.End) {
				return
			}
		}
		// Allowed only within an hour after a zone transition.
		lt := at.In(loc)
		start, _ := lt.ZoneBounds()
		if !start.IsZero() && at.Sub(start) >= 0 && at.Sub(start) < time.Hour {
			return
		}
		t.Fatalf("%s in %s: agent opens at %s (%s) but no server slot holds it", spec, tz,
			at.Format(time.RFC3339), lt.Format("Mon 15:04 MST"))
	})
}
