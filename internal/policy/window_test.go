package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWindowSlots(t *testing.T) {
	chicago, _ := time.LoadLocation("America/Chicago")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
		return time.Date(y, m, d, hh, mm, 0, 0, loc)
	}
	tests := []struct {
		name     string
		w        Window
		site     *time.Location
		from, to time.Time
		want     []Slot
	}{
		{
			name: "patch tuesday plus two, site zone",
			w:    Window{Name: "m", Schedule: "FREQ=MONTHLY;BYDAY=2TU", OffsetDays: 2, Start: "22:00", Duration: Hours(6), TimeZone: TimeZoneSite},
			site: chicago, from: at(chicago, 2026, 1, 1, 0, 0), to: at(chicago, 2026, 4, 1, 0, 0),
			want: []Slot{
				{at(chicago, 2026, 1, 15, 22, 0), at(chicago, 2026, 1, 16, 4, 0)},
				{at(chicago, 2026, 2, 12, 22, 0), at(chicago, 2026, 2, 13, 4, 0)},
				{at(chicago, 2026, 3, 12, 22, 0), at(chicago, 2026, 3, 13, 4, 0)},
			},
		},
		{
			name: "weekly across spring forward keeps local start",
			w:    Window{Name: "w", Schedule: "FREQ=WEEKLY;BYDAY=SU", Start: "01:00", Duration: Hours(3), TimeZone: TimeZoneSite},
			site: chicago, from: at(chicago, 2026, 3, 1, 0, 0), to: at(chicago, 2026, 3, 16, 0, 0),
			want: []Slot{
				{at(chicago, 2026, 3, 1, 1, 0), at(chicago, 2026, 3, 1, 4, 0)},
				// 01:00 CST + 3h exact = 05:00 CDT on the change night.
				{at(chicago, 2026, 3, 8, 1, 0), at(chicago, 2026, 3, 8, 5, 0)},
				{at(chicago, 2026, 3, 15, 1, 0), at(chicago, 2026, 3, 15, 4, 0)},
			},
		},
		{
			name: "window zone overrides site",
			w:    Window{Name: "n", Schedule: "FREQ=DAILY", Start: "23:00", Duration: Hours(4), TimeZone: "Europe/Berlin"},
			site: chicago, from: at(berlin, 2026, 3, 28, 12, 0), to: at(berlin, 2026, 3, 30, 12, 0),
			want: []Slot{
				{at(berlin, 2026, 3, 28, 23, 0), at(berlin, 2026, 3, 29, 4, 0)}, // 4h exact across the 02:00→03:00 jump
				{at(berlin, 2026, 3, 29, 23, 0), at(berlin, 2026, 3, 30, 3, 0)},
			},
		},
		{
			name: "a slot already open at from is included",
			w:    Window{Name: "n", Schedule: "FREQ=DAILY", Start: "22:00", Duration: Hours(6), TimeZone: "UTC"},
			from: time.Date(2026, 5, 2, 1, 0, 0, 0, time.UTC), to: time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC),
			want: []Slot{{time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC), time.Date(2026, 5, 2, 4, 0, 0, 0, time.UTC)}},
		},
		{
			name: "fortnightly from a fixed anchor",
			w:    Window{Name: "f", Schedule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", Start: "06:00", Duration: Hours(1), TimeZone: "UTC"},
			from: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
			want: []Slot{
				{time.Date(2026, 1, 12, 6, 0, 0, 0, time.UTC), time.Date(2026, 1, 12, 7, 0, 0, 0, time.UTC)},
				{time.Date(2026, 1, 26, 6, 0, 0, 0, time.UTC), time.Date(2026, 1, 26, 7, 0, 0, 0, time.UTC)},
			},
		},
		{
			name: "empty range",
			w:    Window{Name: "n", Schedule: "FREQ=DAILY", Start: "22:00", Duration: Hours(1), TimeZone: "UTC"},
			from: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.Slots(tt.site, tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("Slots (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultWindowsHaveSlots(t *testing.T) {
	chicago, _ := time.LoadLocation("America/Chicago")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, chicago)
	for _, w := range Default().Policy().Windows {
		slots, err := w.Slots(chicago, from, from.AddDate(1, 0, 0))
		if err != nil || len(slots) == 0 {
			t.Errorf("window %q: %d slots in 2026, %v", w.Name, len(slots), err)
		}
	}
}

func TestWindowSlotsErrors(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, w := range []Window{
		{Name: "a", Schedule: "FREQ=DAILY", Start: "7am", Duration: Hours(1)},
		{Name: "b", Schedule: "FREQ=HOURLY", Start: "07:00", Duration: Hours(1)},
		{Name: "c", Schedule: "FREQ=DAILY", Start: "07:00", Duration: Hours(1), TimeZone: "Nowhere/Land"},
	} {
		if _, err := w.Slots(nil, from, from.AddDate(0, 1, 0)); err == nil || !strings.Contains(err.Error(), w.Name) {
			t.Errorf("Slots(%+v) error = %v; want one naming the window", w, err)
		}
	}
}

func TestScheduleRules(t *testing.T) {
	start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ rule, msg string }{
		{"FREQ=MONTHLY;BYDAY=2TU", ""},
		{"RRULE:FREQ=WEEKLY;BYDAY=SU", ""},
		{"FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20300101T000000Z", ""},
		{"FREQ=WEEKLY", "needs BYDAY"},
		{"FREQ=MONTHLY", "needs BYDAY or BYMONTHDAY"},
		{"FREQ=YEARLY;BYMONTH=3", "needs BYDAY or BYMONTHDAY"},
		{"FREQ=MINUTELY", "FREQ must be"},
		{"FREQ=DAILY;BYHOUR=3", "must not set BYHOUR"},
		{"FREQ=DAILY;COUNT=3", "COUNT"},
		{"FREQ=DAILY;INTERVAL=5000", "too large"},
		{"FREQ=DAILY\nFREQ=WEEKLY", "single RRULE line"},
		{"BYDAY=2TU", "not a valid RRULE"},
		{"FREQ=MONTHLY;BYDAY=2TU;", "not a valid RRULE"},
	} {
		_, err := parseSchedule(tt.rule, start)
		if tt.msg == "" && err != nil || tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("parseSchedule(%q) error = %v; want %q", tt.rule, err, tt.msg)
		}
	}
	// A rule that parses but can never occur is refused at load.
	src := applyEdits(t, readBase(t), []edit{{old: "    schedule: FREQ=DAILY", new: "    schedule: FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}})
	_, err := Load([]byte(src))
	if got := problemsOf(t, err); len(got) != 1 || got[0].Path != "maintenance_windows[1].schedule" || !strings.Contains(got[0].Message, "never occurs") {
		t.Errorf("Load(30 February) problems = %+v; want one saying it never occurs", got)
	}
}
