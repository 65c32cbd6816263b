package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
)

// TestCalendarPage renders the rolling calendar of the built-in policy
// from the fixed clock (20 March 2026): three month grids with compact
// markers, the baseline window two days after Patch Tuesday at 22:00 site
// time, the CAP proficiency testing freeze in May as one detail, the front
// desk PC's own weekly window, each window summarised once, and the kiosk
// whose window cannot be read.
func TestCalendarPage(t *testing.T) {
	e := newChangeEnv(t)
	w := e.get("/calendar", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	months := doc.Find("section.month h2").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"March 2026", "April 2026", "May 2026"}, months); diff != "" {
		t.Errorf("months (-want +got):\n%s", diff)
	}
	// Weeks start on Monday: 1 March 2026 is a Sunday.
	first := doc.Find("#month-2026-03 tbody tr").First().Find("td")
	if got := first.First().AttrOr("data-date", ""); got != "2026-02-23" {
		t.Errorf("first cell = %q", got)
	}
	if !doc.Find(`#month-2026-03 td[data-date="2026-03-20"]`).HasClass("today") {
		t.Error("today not marked")
	}
	// Patch Tuesday is 10 March; the baseline window opens on the 12th, in
	// the calendar's zone and again in the lab's (Denver): one marker,
	// both times in its title.
	base := doc.Find(`#month-2026-03 td[data-date="2026-03-12"] .cal-entry.baseline`)
	if base.Length() != 1 || text(base) != "monthly-baseline" || base.AttrOr("title", "") != "Baseline window: 22:00–04:00 CDT, 22:00–04:00 MDT" {
		t.Errorf("baseline markers = %d %q title %q; want one monthly-baseline with both zones' times", base.Length(), text(base), base.AttrOr("title", ""))
	}
	for _, d := range []string{"2026-05-04", "2026-05-15"} {
		cell := doc.Find(`td[data-date="` + d + `"]`)
		if !cell.HasClass("frozen") || !strings.Contains(cell.Find(".cal-freeze").AttrOr("title", ""), "proficiency-testing-q2") {
			t.Errorf("%s not frozen: %q", d, text(cell))
		}
		if got := cell.Find("a.day").AttrOr("href", ""); got != "#day-2026-05-04" {
			t.Errorf("%s links to %q; want the freeze's one detail #day-2026-05-04", d, got)
		}
	}
	if doc.Find(`td[data-date="2026-05-16"]`).HasClass("frozen") {
		t.Error("16 May frozen")
	}
	// The freeze is one detail, not twelve.
	days := doc.Find("#days .day-detail")
	if days.Length() != 1 || text(days.Find("h3")) != "Mon 4 May 2026 – Fri 15 May 2026" {
		t.Errorf("day details = %d, first %q; want the freeze once", days.Length(), text(days.First().Find("h3")))
	}
	// The PC's own weekly window, Sundays 02:00–05:00 Chicago time.
	pc := doc.Find(`td[data-date="2026-03-22"] .cal-entry[data-kind="asset-window"]`)
	if text(pc) != "sun-0200-0500" || pc.AttrOr("title", "") != "Asset window: 02:00–05:00 CDT" {
		t.Errorf("asset window = %q (%q)", text(pc), pc.AttrOr("title", ""))
	}
	// Emergency windows only when asked for.
	if n := doc.Find(`.cal-entry[data-kind="emergency"]`).Length(); n != 0 {
		t.Errorf("emergency entries shown by default: %d", n)
	}
	// Every window once, with how often it opens.
	rows := map[string]string{}
	doc.Find("#recurring tbody tr").Each(func(_ int, s *goquery.Selection) {
		rows[s.AttrOr("data-name", "")+" "+s.AttrOr("data-zone", "")] = text(s.Find("td").Eq(1))
	})
	for k, want := range map[string]string{
		"sun-0200-0500 America/Chicago":    "Sun 02:00–05:00 America/Chicago, every week: 14 occurrences in range; 03:00–05:00 on Sun 8 Mar (a clock change)",
		"monthly-baseline America/Denver":  "Thu 22:00–04:00 America/Denver, every month: 3 occurrences in range (Thu 12 Mar, Thu 16 Apr, Thu 14 May)",
		"emergency America/Chicago":        "21:00–01:00 America/Chicago, every day: 92 occurrences in range",
		"servers-weekly America/Chicago":   "Sun 02:00–06:00 America/Chicago, every week: 14 occurrences in range; 03:00–07:00 on Sun 8 Mar (a clock change)",
		"monthly-baseline America/Chicago": "Thu 22:00–04:00 America/Chicago, every month: 3 occurrences in range (Thu 12 Mar, Thu 16 Apr, Thu 14 May)",
	} {
		if rows[k] != want {
			t.Errorf("summary of %s = %q; want %q", k, rows[k], want)
		}
	}
	if got := text(doc.Find("#window-problems")); !strings.Contains(got, `Old kiosk: maintenance window "whenever"`) {
		t.Errorf("window problems = %q", got)
	}
	fz := doc.Find(`#freezes tr[data-kind="freeze"]`)
	if fz.Length() != 1 || !strings.Contains(text(fz), "Mon 4 May 2026 – Fri 15 May 2026") {
		t.Errorf("freezes = %q", text(fz))
	}
	if got := text(doc.Find("#change-count")); got != "No scheduled or running change in this range." {
		t.Errorf("change count = %q", got)
	}
	if got := text(doc.Find("#feed-url")); !strings.Contains(got, "/api/v1/calendar.ics?token=") {
		t.Errorf("feed url = %q", got)
	}

	doc = parse(t, e.get("/calendar?months=6&emergency=show", auth.RoleAuditor))
	if n := doc.Find("section.month").Length(); n != 6 {
		t.Errorf("months shown = %d; want 6", n)
	}
	if n := doc.Find(`td[data-date="2026-04-01"] .cal-entry[data-kind="emergency"]`).Length(); n == 0 {
		t.Error("emergency window not shown when asked")
	}
	w = e.get("/calendar?months=9", auth.RoleViewer)
	wantStatus(t, w, http.StatusBadRequest)

	// A personal feed link, made by the page's form and shown once.
	doc = parse(t, e.get("/calendar", auth.RoleViewer))
	vals := formValues(doc.Find("#feed-form"))
	vals.Set("name", "Ward phone")
	w = e.post("/calendar/feed", auth.RoleViewer, vals)
	wantStatus(t, w, http.StatusOK)
	if got := text(parse(t, w).Find("#new-feed")); got != "http://example.com/api/v1/calendar.ics?token=pwc_secret-1" {
		t.Errorf("new feed link = %q", got)
	}
	if diff := cmp.Diff([]string{"u-viewer Ward phone"}, e.feeds.made); diff != "" {
		t.Errorf("feed tokens made (-want +got):\n%s", diff)
	}
}

// calendarChanges lists a fixed set of changes; the rest of the change
// service is the real one.
type calendarChanges struct {
	ChangeService
	list []change.Change
}

func (c calendarChanges) List(_ context.Context, f change.Filter) ([]change.Change, error) {
	var out []change.Change
	for _, ch := range c.list {
		if ch.State == f.State && f.Offset == 0 {
			out = append(out, ch)
		}
	}
	return out, nil
}

// calendarRollouts finds rollouts in a map filled once the assets exist.
type calendarRollouts struct {
	RolloutService
	by map[string]deploy.Rollout
}

func (c calendarRollouts) ByChange(_ context.Context, id string) (deploy.Rollout, error) {
	if r, ok := c.by[id]; ok {
		return r, nil
	}
	return deploy.Rollout{}, errs.E(errs.NotFound, "no rollout")
}

func wall(t *testing.T, tz, s string) *time.Time {
	t.Helper()
	l, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, l)
	if err != nil {
		t.Fatal(err)
	}
	return &v
}

// TestCalendarPageChanges shows booked and running changes on the grid,
// on the day of their own zone, linked to their pages, the emergency
// marked, with a detail for each day they run; unbooked changes stay off.
func TestCalendarPageChanges(t *testing.T) {
	const den, chi = "America/Denver", "America/Chicago"
	rollouts := map[string]deploy.Rollout{}
	list := []change.Change{
		// Saturday 23:30 in Denver is already Sunday in Chicago: the lab's
		// change belongs on Saturday the 4th.
		{ID: "c-lab", Title: "OpenSSL on the analyzer", Type: change.Normal, State: change.Scheduled, Revision: 2,
			PlannedWindows: []change.PlannedWindow{{Start: wall(t, den, "2026-04-04 23:30"), End: wall(t, den, "2026-04-05 01:00"), TimeZone: den}}},
		{ID: "c-kev", Title: "curl KEV fix", Type: change.Emergency, State: change.InProgress, UpdatedAt: *wall(t, chi, "2026-03-20 09:00"),
			PlannedWindows: []change.PlannedWindow{{Window: policy.WindowImmediate}}},
		{ID: "c-draft", Title: "Not booked yet", Type: change.Normal, State: change.Draft,
			PlannedWindows: []change.PlannedWindow{{Window: "monthly-baseline"}}},
	}
	e := newChangeEnvWith(t, func(_ *store.DB, cfg *Config) {
		cfg.Changes = calendarChanges{ChangeService: cfg.Changes, list: list}
		cfg.Rollouts = calendarRollouts{by: rollouts}
	})
	// The emergency's rollout: the analyzer late on Saturday 21 March in
	// Denver (Sunday in Chicago), the PC early on Sunday 22 March.
	slotA, slotB := wall(t, den, "2026-03-22 01:00"), wall(t, chi, "2026-03-22 04:00")
	rollouts["c-kev"] = deploy.Rollout{ID: "r-kev", ChangeID: "c-kev", CreatedAt: *wall(t, chi, "2026-03-20 09:00"), Waves: []deploy.Wave{
		{Index: 0, Ring: "pilot", State: deploy.WaveRunning, Items: []deploy.Item{
			{AssetID: e.ids["Chemistry analyzer"], PlannedStart: wall(t, den, "2026-03-21 23:30"), PlannedEnd: wall(t, den, "2026-03-22 00:30"), SlotEnd: slotA},
			{AssetID: e.ids["Front desk PC"], PlannedStart: wall(t, chi, "2026-03-22 02:00"), PlannedEnd: wall(t, chi, "2026-03-22 03:00"), SlotEnd: slotB},
		}},
	}}
	doc := parse(t, e.get("/calendar", auth.RoleViewer))

	onDay := func(d string) []string {
		var out []string
		doc.Find(`td[data-date="` + d + `"] a.cal-change`).Each(func(_ int, s *goquery.Selection) {
			cls := ""
			if s.HasClass("emergency") {
				cls = " (emergency)"
			}
			out = append(out, s.AttrOr("href", "")+" "+text(s)+cls)
		})
		return out
	}
	for day, want := range map[string][]string{
		"2026-04-04": {"/changes/c-lab OpenSSL on the analyzer"},
		"2026-04-05": nil,
		"2026-03-20": {"/changes/c-kev curl KEV fix (emergency)"},
		"2026-03-21": {"/changes/c-kev curl KEV fix (emergency)"},
		"2026-03-22": {"/changes/c-kev curl KEV fix (emergency)"},
		"2026-04-16": nil, // the draft's monthly baseline
	} {
		if diff := cmp.Diff(want, onDay(day)); diff != "" {
			t.Errorf("changes on %s (-want +got):\n%s", day, diff)
		}
	}
	if tip := doc.Find(`td[data-date="2026-04-04"] a.cal-change`).AttrOr("title", ""); tip != "Change, scheduled: 23:30–01:00 MDT" {
		t.Errorf("c-lab marker title = %q", tip)
	}
	if got := doc.Find(`td[data-date="2026-04-04"] a.day`).AttrOr("href", ""); got != "#day-2026-04-04" {
		t.Errorf("4 April's day links to %q; want its detail", got)
	}
	detail := doc.Find("#day-2026-04-04")
	lines := detail.Find("li[data-change]").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"23:30–01:00 MDT OpenSSL on the analyzer normal scheduled planned window 1"}, lines); diff != "" {
		t.Errorf("4 April's detail (-want +got):\n%s", diff)
	}
	lines = doc.Find("#day-2026-03-21 li[data-change]").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"23:30–00:30 MDT curl KEV fix emergency in progress wave 1, ring pilot (running): 1 asset"}, lines); diff != "" {
		t.Errorf("21 March's detail (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#change-count")); !strings.HasPrefix(got, "2 changes planned or under way") {
		t.Errorf("change count = %q", got)
	}
	if n := doc.Find(`a[href="/changes/c-draft"]`).Length(); n != 0 {
		t.Errorf("the draft is on the calendar %d times", n)
	}
}

// TestCalendarPageBounded keeps the six-month page compact under a policy
// with a daily routine window: one marker per day cell and one summary
// line, not a row per occurrence.
func TestCalendarPageBounded(t *testing.T) {
	src := strings.Replace(string(policy.DefaultSource()), "schedule: FREQ=WEEKLY;BYDAY=SU", "schedule: FREQ=DAILY", 1)
	e := newChangeEnvWith(t, func(_ *store.DB, cfg *Config) {
		svc := cfg.Policy.(*policy.Service)
		if _, err := svc.Apply(context.Background(), audit.System, []byte(src), "daily servers window"); err != nil {
			t.Fatal(err)
		}
	})
	w := e.get("/calendar?months=6&emergency=show", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	// 1 March to 31 August 2026.
	const days = 184
	row := doc.Find(`#recurring tr[data-name="servers-weekly"]`)
	if row.Length() != 1 || row.AttrOr("data-count", "") != strconv.Itoa(days) || !strings.Contains(text(row), fmt.Sprintf("every day: %d occurrences in range", days)) {
		t.Errorf("servers-weekly summary = %d rows, %q", row.Length(), text(row))
	}
	if n := doc.Find(`td[data-date] .cal-entry`).FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == "servers-weekly" }).Length(); n != days {
		t.Errorf("servers-weekly markers = %d; want one per day (%d)", n, days)
	}
	// Outside the grids, rows are per window and per detail, not per day.
	if n := doc.Find("tr").Not("table.calendar tr").Length(); n > 20 {
		t.Errorf("%d table rows outside the grids; want a summary, not a row per occurrence", n)
	}
	if n := doc.Find(".day-detail").Length(); n > 3 {
		t.Errorf("%d day details; want the two freezes only", n)
	}
	if n := strings.Count(w.Body.String(), "servers-weekly"); n > days+10 {
		t.Errorf("servers-weekly appears %d times; want about one per day", n)
	}
	if n := w.Body.Len(); n > 100_000 {
		t.Errorf("six-month page is %d bytes; want it under 100 kB", n)
	}
}

// TestCalendarLayout places entries on the grid: each change on the day
// of its start in its own zone, once per day however many slots, the
// emergency marked, a day's overflow counted; frozen days share one
// detail unless a change splits the run.
func TestCalendarLayout(t *testing.T) {
	chi, _ := time.LoadLocation("America/Chicago")
	from := time.Date(2026, 4, 1, 0, 0, 0, 0, chi)
	ce := func(id string, typ change.Type, tz, start string, part deploy.ChangePart, idx int) deploy.ChangeEntry {
		s := wall(t, tz, start)
		return deploy.ChangeEntry{ChangeID: id, Title: "Change " + id, Type: typ, State: change.Scheduled, Part: part, Index: idx,
			Zone: tz, Start: *s, End: s.Add(time.Hour)}
	}
	freeze := deploy.Occurrence{Kind: deploy.KindFreeze, Name: "audit", Zone: "America/Chicago",
		Start: time.Date(2026, 4, 20, 0, 0, 0, 0, chi), End: time.Date(2026, 4, 25, 0, 0, 0, 0, chi), AllDay: true}
	tests := []struct {
		name    string
		occ     []deploy.Occurrence
		changes []deploy.ChangeEntry
		// cells maps a day to its change markers ("id!" for an
		// emergency, "+n" for n more).
		cells   map[string][]string
		details []string
	}{
		{
			name: "site zones decide the day",
			changes: []deploy.ChangeEntry{
				ce("berlin", change.Normal, "Europe/Berlin", "2026-04-08 00:30", deploy.PartPlanned, 0),  // 7 April 17:30 in Chicago
				ce("denver", change.Normal, "America/Denver", "2026-04-08 23:30", deploy.PartPlanned, 0), // 9 April 00:30 in Chicago
			},
			cells:   map[string][]string{"2026-04-07": nil, "2026-04-08": {"berlin", "denver"}, "2026-04-09": nil},
			details: []string{"Wed 8 Apr 2026: berlin, denver"},
		},
		{
			name: "one marker per change and day, the rest counted",
			changes: []deploy.ChangeEntry{
				ce("kev", change.Emergency, "America/Chicago", "2026-04-10 01:00", deploy.PartWave, 0),
				ce("kev", change.Emergency, "America/Chicago", "2026-04-10 03:00", deploy.PartWave, 1),
				ce("b", change.Normal, "America/Chicago", "2026-04-10 04:00", deploy.PartPlanned, 0),
				ce("c", change.Normal, "America/Chicago", "2026-04-10 05:00", deploy.PartPlanned, 0),
				ce("d", change.Normal, "America/Chicago", "2026-04-10 06:00", deploy.PartPlanned, 0),
			},
			cells:   map[string][]string{"2026-04-10": {"kev!", "b", "c", "+1"}},
			details: []string{"Fri 10 Apr 2026: kev, kev, b, c, d"},
		},
		{
			name:    "a freeze is one detail",
			occ:     []deploy.Occurrence{freeze},
			cells:   map[string][]string{"2026-04-20": nil},
			details: []string{"Mon 20 Apr 2026 – Fri 24 Apr 2026 (frozen)"},
		},
		{
			name:    "a change splits the freeze",
			occ:     []deploy.Occurrence{freeze},
			changes: []deploy.ChangeEntry{ce("urgent", change.Emergency, "America/Chicago", "2026-04-22 21:00", deploy.PartPlanned, 0)},
			cells:   map[string][]string{"2026-04-22": {"urgent!"}},
			details: []string{"Mon 20 Apr 2026 – Tue 21 Apr 2026 (frozen)", "Wed 22 Apr 2026 (frozen): urgent", "Thu 23 Apr 2026 – Fri 24 Apr 2026 (frozen)"},
		},
		{
			name:    "begun before the range: on its first day",
			changes: []deploy.ChangeEntry{ce("long", change.Normal, "America/Chicago", "2026-03-31 23:30", deploy.PartPlanned, 0)},
			cells:   map[string][]string{"2026-04-01": {"long"}},
			details: []string{"Wed 1 Apr 2026: long"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v calendarView
			v.layout(tt.occ, tt.changes, chi, from, 1, "2026-04-02")
			cells := map[string][]string{}
			for _, wk := range v.Months[0].Weeks {
				for _, d := range wk {
					var got []string
					for _, c := range d.Changes {
						got = append(got, c.ID+map[bool]string{true: "!"}[c.Emergency])
					}
					if d.MoreChanges > 0 {
						got = append(got, "+"+strconv.Itoa(d.MoreChanges))
					}
					if _, ok := tt.cells[d.Date]; ok {
						cells[d.Date] = got
					}
				}
			}
			if diff := cmp.Diff(tt.cells, cells); diff != "" {
				t.Errorf("cells (-want +got):\n%s", diff)
			}
			var details []string
			for _, d := range v.Days {
				s := d.Title
				if len(d.Freezes) > 0 {
					s += " (frozen)"
				}
				var ids []string
				for _, c := range d.Changes {
					ids = append(ids, c.ID)
				}
				if len(ids) > 0 {
					s += ": " + strings.Join(ids, ", ")
				}
				details = append(details, s)
			}
			if diff := cmp.Diff(tt.details, details); diff != "" {
				t.Errorf("day details (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecurrence summarises windows from the real calendar, counting one
// occurrence per opening night across clock changes in both directions.
func TestRecurrence(t *testing.T) {
	cal, err := deploy.NewCalendar(policy.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	zone := func(name string) *time.Location {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name     string
		asset    deploy.Asset
		from, to *time.Time
		// key picks the summary line: "name zone".
		key   string
		count int
		text  string
	}{
		{
			name:  "weekly across spring forward",
			asset: deploy.Asset{ID: "a", Window: "sun-0200-0400", Location: zone("Europe/Berlin")},
			from:  wall(t, "Europe/Berlin", "2026-03-01 00:00"), to: wall(t, "Europe/Berlin", "2026-05-01 00:00"),
			key: "sun-0200-0400 Europe/Berlin", count: 9,
			text: "Sun 02:00–04:00 Europe/Berlin, every week: 9 occurrences in range; 03:00–04:00 on Sun 29 Mar (a clock change)",
		},
		{
			// On 1 November the repeated hour straddles the start: the
			// calendar opens the window twice that night (01:30 CDT to the
			// change, and again from 01:30 CST), which is one occurrence.
			name:  "daily across fall back, split by the repeated hour",
			asset: deploy.Asset{ID: "a", Window: "daily-0130-0300", Location: zone("America/Chicago")},
			from:  wall(t, "America/Chicago", "2026-10-15 00:00"), to: wall(t, "America/Chicago", "2026-11-15 00:00"),
			key: "daily-0130-0300 America/Chicago", count: 31,
			text: "01:30–03:00 America/Chicago, every day: 31 occurrences in range",
		},
		{
			name:  "weekdays",
			asset: deploy.Asset{ID: "a", Window: "weekdays-2200-2330", Location: zone("America/Chicago")},
			from:  wall(t, "America/Chicago", "2026-06-01 00:00"), to: wall(t, "America/Chicago", "2026-07-01 00:00"),
			key: "weekdays-2200-2330 America/Chicago", count: 22,
			text: "Mon–Fri 22:00–23:30 America/Chicago, every week: 22 occurrences in range",
		},
		{
			name:  "weekends across midnight",
			asset: deploy.Asset{ID: "a", Window: "sat-2200-sun-0200", Location: zone("America/Chicago")},
			from:  wall(t, "America/Chicago", "2026-06-01 00:00"), to: wall(t, "America/Chicago", "2026-07-01 00:00"),
			key: "sat-2200-sun-0200 America/Chicago", count: 4,
			text: "Sat 22:00–02:00 America/Chicago, every week: 4 occurrences in range",
		},
		{
			name: "monthly",
			from: wall(t, "America/Chicago", "2026-03-01 00:00"), to: wall(t, "America/Chicago", "2026-06-01 00:00"),
			key: "monthly-baseline America/Chicago", count: 3,
			text: "Thu 22:00–04:00 America/Chicago, every month: 3 occurrences in range (Thu 12 Mar, Thu 16 Apr, Thu 14 May)",
		},
		{
			name: "once",
			from: wall(t, "America/Chicago", "2026-03-01 00:00"), to: wall(t, "America/Chicago", "2026-06-01 00:00"),
			key: "lab-quarterly America/Chicago", count: 1,
			text: "Sun 06:00–12:00 America/Chicago: 1 occurrence in range (Sun 5 Apr)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var assets []deploy.Asset
			if tt.asset.ID != "" {
				assets = append(assets, tt.asset)
			}
			occ, err := cal.Occurrences(*tt.from, *tt.to, assets...)
			if err != nil {
				t.Fatal(err)
			}
			var got *windowSummary
			for _, s := range summarize(occ, *tt.from) {
				if s.Name+" "+s.Zone == tt.key {
					got = &s
				}
			}
			if got == nil {
				t.Fatalf("no summary for %s", tt.key)
			}
			if got.Count != tt.count || got.Text != tt.text {
				t.Errorf("summary = %d, %q; want %d, %q", got.Count, got.Text, tt.count, tt.text)
			}
		})
	}
}

// fakeFeedTokens makes numbered feed token secrets.
type fakeFeedTokens struct {
	mu   sync.Mutex
	made []string // "userID name"
}

func (f *fakeFeedTokens) CreateFeedToken(_ context.Context, _ audit.Actor, userID, name string) (string, auth.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.made = append(f.made, userID+" "+name)
	return fmt.Sprintf("pwc_secret-%d", len(f.made)), auth.Token{ID: "t1", UserID: userID, Name: name}, nil
}
