package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
)

// The rolling calendar shows three to six months, as the seeds ask
// clinics to publish.
const (
	calendarMonthsDefault = 3
	calendarMonthsMax     = 6
	// calendarAssetLimit bounds how many assets' own windows the page
	// reads; past it the page says so instead of slowing down.
	calendarAssetLimit = 20000
)

type calendarView struct {
	// Months are the month grids, the page's main view: each day shows
	// compact markers (freeze, changes, the windows' names).
	Months []monthGrid
	// Days are the details of the days that need them: days with changes,
	// and runs of frozen days, each run once.
	Days []dayDetail
	// Recurring summarises each window once instead of per day.
	Recurring []windowSummary
	Freezes   []calendarEntry
	// ShowsChanges says whether the calendar reads change records;
	// ChangeCount counts the changes in range.
	ShowsChanges bool
	ChangeCount  int
	MonthsShown  int
	MonthOpts    []option
	Emergency    bool
	Zone         string
	From, To     string
	// Problems are assets whose maintenance window the calendar cannot
	// read; their routine changes would be refused by the scheduler.
	Problems  []string
	Truncated bool
	// ChangesTruncated: more changes than the calendar reads at once.
	ChangesTruncated bool
	// FeedURL is the iCalendar feed, TokensURL where the JSON API makes
	// feed tokens; CanMakeFeed offers the form that makes one here, and
	// NewFeed is the link it just made (shown once).
	FeedURL, TokensURL string
	CanMakeFeed        bool
	NewFeed            string
}

type monthGrid struct {
	Title string
	ID    string
	Weeks [][]calendarDay
}

// calendarDay is one cell of a month grid: markers only, the detail is
// in Days.
type calendarDay struct {
	Day     int
	Date    string
	InMonth bool
	Today   bool
	Freezes []string
	// FreezeTip names the freezes for the marker's title.
	FreezeTip string
	Changes   []dayChange
	// MoreChanges and MoreWindows count what the cell leaves to the
	// detail or the summary.
	MoreChanges int
	Windows     []dayWindow
	MoreWindows int
	// Detail is the anchor of the day's detail ("" when it has none).
	Detail string
}

// dayWindow is one window's marker in a day cell: its name once, however
// many zones it opens in that day.
type dayWindow struct {
	Kind     deploy.OccurrenceKind
	Name     string
	Baseline bool
	// Tip says what and when: "Baseline window: 22:00–04:00 CDT, 22:00–04:00 MDT".
	Tip string
}

// dayChange is one change's marker in a day cell.
type dayChange struct {
	ID, Title string
	Emergency bool
	Tip       string
}

// dayDetail is the detail of one day, or of a run of frozen days without
// changes.
type dayDetail struct {
	ID    string // the anchor, "day-2026-03-12"
	Title string // "Thu 12 Mar 2026" or "Mon 4 May – Fri 15 May 2026"
	ISO   string
	// Freezes are the freezes over the day(s), with their reasons.
	Freezes []calendarEntry
	Changes []changeLine
	// Windows are the day's window occurrences with their times (days
	// with changes only).
	Windows []calendarEntry
	// Frozen counts the routine window occurrences a run of frozen days
	// holds, which take no routine change.
	Frozen int
	// first and last are the days the detail covers.
	first, last time.Time
}

// changeLine is one change entry in a day's detail.
type changeLine struct {
	ID, Title string
	Type      change.Type
	State     change.State
	// StateText is the state for people: "in progress".
	StateText string
	Emergency bool
	// Time is "22:00–23:00 CDT" in the entry's zone; Part says which part
	// of the change it is ("planned window 1: monthly-baseline", "wave 1,
	// ring pilot (running): 2 assets").
	Time, Part string
	ISO        string
}

// windowSummary is one window (policy window, emergency window, or
// assets' weekly window, per zone) summarised over the range.
type windowSummary struct {
	Kind        deploy.OccurrenceKind
	Label, Name string
	Zone        string
	Baseline    bool
	// Text says when and how often: "Sun 02:00–05:00 America/Chicago,
	// every week: 13 occurrences in range".
	Text        string
	Count       int
	Assets      int
	Description string
}

type calendarEntry struct {
	Kind        deploy.OccurrenceKind
	Name        string
	Label       string
	Time        string // "22:00–04:00 CDT" in the entry's zone; "all day" for a freeze
	When        string // the long form
	Zone        string
	Description string
	Assets      int
	Baseline    bool
	ISO         string
}

func (ui *UI) calendarPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	months := calendarMonthsDefault
	if s := q.Get("months"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > calendarMonthsMax {
			return errs.E(errs.Invalid, "months must be a whole number from 1 to %d", calendarMonthsMax)
		}
		months = n
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return err
	}
	cal, err := deploy.NewCalendar(pol, nil)
	if err != nil {
		return err
	}
	zone := cal.Zone()
	now := ui.cfg.Now().In(zone)
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, zone)
	to := from.AddDate(0, months, 0)
	v := calendarView{MonthsShown: months, Emergency: q.Get("emergency") == "show", Zone: zone.String(),
		From: from.Format("2 January 2006"), To: to.AddDate(0, 0, -1).Format("2 January 2006"),
		FeedURL: feedPath, TokensURL: feedTokensPath, CanMakeFeed: ui.cfg.FeedTokens != nil, ShowsChanges: ui.cfg.Changes != nil}
	if r.Method == http.MethodPost {
		link, err := ui.makeFeed(w, r, p)
		if err != nil {
			return err
		}
		v.NewFeed = link
	}
	for n := 3; n <= calendarMonthsMax; n++ {
		v.MonthOpts = append(v.MonthOpts, option{Value: strconv.Itoa(n), Label: fmt.Sprintf("%d months", n), Selected: n == months})
	}
	pa, err := deploy.ReadPlanningAssets(ctx, ui.cfg.Inventory, cal, calendarAssetLimit)
	if err != nil {
		return err
	}
	v.Truncated = pa.Truncated
	for _, u := range pa.Unreadable {
		v.Problems = append(v.Problems, fmt.Sprintf("%s: maintenance window %q is neither a weekly window (sun-0200-0500) nor a window the policy names", u.Name, u.Window))
	}
	occ, err := cal.Occurrences(from, to, pa.Assets...)
	if err != nil {
		return err
	}
	var changes []deploy.ChangeEntry
	if ui.cfg.Changes != nil {
		var ro deploy.RolloutFinder
		if ui.cfg.Rollouts != nil {
			ro = ui.cfg.Rollouts
		}
		cc, err := cal.ChangeEntries(ctx, ui.cfg.Changes, ro, pa.Assets, from, to, ui.cfg.Now())
		if err != nil {
			return err
		}
		changes, v.ChangesTruncated = cc.Entries, cc.Truncated
	}
	v.layout(occ, changes, zone, from, months, now.Format(dateLayout))
	ui.render(w, r, http.StatusOK, "calendar", "Maintenance calendar", v)
	return nil
}

// Day cells show at most this many changes and window names; the rest
// are counted, and found in the day's detail and the summary.
const (
	cellChanges = 3
	cellWindows = 3
)

// layout places occurrences and change entries on the month grids from
// from (the first of a month in zone) for months months, writes the
// detail of each day that has changes and of each run of frozen days, and
// summarises every window once. Each entry falls on the local day of its
// start in its own zone (a Denver window on Denver's date), a freeze on
// every day it covers; emergency windows show in the cells only when
// v.Emergency is set.
func (v *calendarView) layout(occ []deploy.Occurrence, changes []deploy.ChangeEntry, zone *time.Location, from time.Time, months int, today string) {
	to := from.AddDate(0, months, 0)
	var (
		windows = map[string][]calendarEntry{} // by local day
		frozen  = map[string][]calendarEntry{}
		onDay   = map[string][]deploy.ChangeEntry{}
		routine = map[string]int{} // routine window occurrences per day
	)
	for _, o := range occ {
		e := entryOf(o)
		loc := locOr(o.Zone, zone)
		if o.Kind == deploy.KindFreeze {
			v.Freezes = append(v.Freezes, e)
			for d := o.Start.In(loc); d.Before(o.End); d = d.AddDate(0, 0, 1) {
				frozen[d.Format(dateLayout)] = append(frozen[d.Format(dateLayout)], e)
			}
			continue
		}
		day := o.Start.In(loc).Format(dateLayout)
		windows[day] = append(windows[day], e)
		if o.Kind != deploy.KindEmergency {
			routine[day]++
		}
	}
	v.Recurring = summarize(occ, from)
	ids := map[string]bool{}
	for _, c := range changes {
		start := c.Start
		if start.Before(from) {
			start = from // began before the range: show it on its first day
		}
		day := start.In(locOr(c.Zone, zone)).Format(dateLayout)
		onDay[day] = append(onDay[day], c)
		ids[c.ChangeID] = true
	}
	v.ChangeCount = len(ids)

	// The details, in day order: a day with changes has its own; frozen
	// days without changes join the run before them when the same
	// freezes hold.
	anchor := map[string]string{}
	run := -1 // the index of the freeze run being extended
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		key := d.Format(dateLayout)
		fz, cs := frozen[key], onDay[key]
		switch {
		case len(cs) > 0:
			run = -1
			dd := dayDetail{ID: "day-" + key, ISO: key, Freezes: fz, first: d, last: d}
			emergency := false
			for _, c := range cs {
				dd.Changes = append(dd.Changes, lineOf(c, zone))
				emergency = emergency || c.Emergency()
			}
			for _, e := range windows[key] {
				if e.Kind != deploy.KindEmergency || v.Emergency || emergency {
					dd.Windows = append(dd.Windows, e)
				}
			}
			v.Days = append(v.Days, dd)
			anchor[key] = dd.ID
		case len(fz) > 0:
			if run >= 0 && sameFreezes(v.Days[run].Freezes, fz) {
				v.Days[run].last = d
				v.Days[run].Frozen += routine[key]
				anchor[key] = v.Days[run].ID
				continue
			}
			v.Days = append(v.Days, dayDetail{ID: "day-" + key, ISO: key, Freezes: fz, Frozen: routine[key], first: d, last: d})
			run = len(v.Days) - 1
			anchor[key] = v.Days[run].ID
		default:
			run = -1
		}
	}
	for i := range v.Days {
		dd := &v.Days[i]
		dd.Title = dd.first.Format("Mon 2 Jan 2006")
		if !dd.last.Equal(dd.first) {
			dd.Title += " – " + dd.last.Format("Mon 2 Jan 2006")
		}
	}

	for m := range months {
		first := from.AddDate(0, m, 0)
		g := monthGrid{Title: first.Format("January 2006"), ID: "month-" + first.Format("2006-01")}
		// Weeks start on Monday, as clinic rotas do.
		start := first.AddDate(0, 0, -((int(first.Weekday()) + 6) % 7))
		for d := start; ; {
			week := make([]calendarDay, 7)
			for i := range week {
				key := d.Format(dateLayout)
				week[i] = calendarDay{Day: d.Day(), Date: key, InMonth: d.Month() == first.Month(), Today: key == today}
				if week[i].InMonth {
					v.fillCell(&week[i], zone, frozen[key], onDay[key], windows[key], anchor[key])
				}
				d = d.AddDate(0, 0, 1)
			}
			g.Weeks = append(g.Weeks, week)
			if d.Month() != first.Month() {
				break
			}
		}
		v.Months = append(v.Months, g)
	}
}

// fillCell puts a day's markers in its cell: the freezes, each change
// once, and each window's name once however many zones it opens in.
func (v *calendarView) fillCell(c *calendarDay, zone *time.Location, freezes []calendarEntry, changes []deploy.ChangeEntry, windows []calendarEntry, detail string) {
	c.Detail = detail
	var tips []string
	for _, f := range freezes {
		c.Freezes = append(c.Freezes, f.Name)
		tips = append(tips, f.Name+": "+f.When)
	}
	c.FreezeTip = strings.Join(tips, "; ")
	seen := map[string]int{}
	for _, e := range changes {
		if i, ok := seen[e.ChangeID]; ok {
			if i >= 0 {
				c.Changes[i].Tip += "; " + lineOf(e, zone).Time
			}
			continue
		}
		if len(c.Changes) == cellChanges {
			seen[e.ChangeID] = -1
			c.MoreChanges++
			continue
		}
		l := lineOf(e, zone)
		seen[e.ChangeID] = len(c.Changes)
		what := "Change"
		if l.Emergency {
			what = "Emergency change"
		}
		c.Changes = append(c.Changes, dayChange{ID: e.ChangeID, Title: e.Title, Emergency: l.Emergency,
			Tip: fmt.Sprintf("%s, %s: %s", what, stateText(e.State), l.Time)})
	}
	byName := map[string]int{}
	for _, e := range windows {
		if e.Kind == deploy.KindEmergency && !v.Emergency {
			continue
		}
		if i, ok := byName[e.Name]; ok {
			if i >= 0 {
				c.Windows[i].Tip += ", " + e.Time
			}
			continue
		}
		if len(c.Windows) == cellWindows {
			byName[e.Name] = -1
			c.MoreWindows++
			continue
		}
		byName[e.Name] = len(c.Windows)
		c.Windows = append(c.Windows, dayWindow{Kind: e.Kind, Name: e.Name, Baseline: e.Baseline, Tip: e.Label + ": " + e.Time})
	}
}

func sameFreezes(a, b []calendarEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

func stateText(s change.State) string { return strings.ReplaceAll(string(s), "_", " ") }

// lineOf is a change entry as its day's detail shows it, its times in
// its own zone (def when it names none the host knows).
func lineOf(c deploy.ChangeEntry, def *time.Location) changeLine {
	loc := locOr(c.Zone, def)
	s, e := c.Start.In(loc), c.End.In(loc)
	l := changeLine{ID: c.ChangeID, Title: c.Title, Type: c.Type, State: c.State, StateText: stateText(c.State), Emergency: c.Emergency(),
		Time: s.Format("15:04") + "–" + e.Format("15:04 MST"), ISO: c.Start.UTC().Format(time.RFC3339)}
	if s.Format(dateLayout) != e.Format(dateLayout) && e.Sub(s) >= 24*time.Hour {
		l.Time = s.Format("15:04") + " – " + e.Format("Mon 2 Jan 15:04 MST")
	}
	switch {
	case c.Part == deploy.PartWave:
		l.Part = fmt.Sprintf("wave %d, ring %s (%s): %s", c.Index+1, c.Ring, strings.ReplaceAll(string(c.WaveState), "_", " "), plural(c.Assets, "asset"))
	case c.Immediate:
		l.Part = fmt.Sprintf("planned window %d: immediate, from when it started", c.Index+1)
		l.Time = "from " + s.Format("15:04 MST")
	case c.Window != "":
		l.Part = fmt.Sprintf("planned window %d: %s", c.Index+1, c.Window)
	default:
		l.Part = fmt.Sprintf("planned window %d", c.Index+1)
	}
	return l
}

// The iCalendar feed's addresses in the JSON API: a signed-in user creates
// a feed token, and a calendar client fetches the feed with it.
const (
	feedPath       = "/api/v1/calendar.ics"
	feedTokensPath = "/api/v1/calendar/tokens"
)

// makeFeed creates a feed token for the signed-in user and returns the
// subscription link, absolute so it can be pasted into a calendar app.
func (ui *UI) makeFeed(w http.ResponseWriter, r *http.Request, p auth.Principal) (string, error) {
	if ui.cfg.FeedTokens == nil {
		return "", notFound()
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return "", errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	name := orDefault(strings.TrimSpace(r.PostForm.Get("name")), "Calendar feed")
	secret, _, err := ui.cfg.FeedTokens.CreateFeedToken(r.Context(), p.Actor(authn.ClientAddr(r)), p.UserID, name)
	if err != nil {
		return "", err
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + feedPath + "?" + url.Values{"token": {secret}}.Encode(), nil
}

func locOr(name string, def *time.Location) *time.Location {
	if l, err := time.LoadLocation(name); err == nil && name != "" {
		return l
	}
	return def
}

func entryOf(o deploy.Occurrence) calendarEntry {
	loc := locOr(o.Zone, time.UTC)
	s, e := o.Start.In(loc), o.End.In(loc)
	ce := calendarEntry{Kind: o.Kind, Name: o.Name, Zone: o.Zone, Description: o.Description, Assets: o.Assets,
		Baseline: o.Baseline, ISO: o.Start.UTC().Format(time.RFC3339)}
	switch o.Kind {
	case deploy.KindFreeze:
		ce.Label, ce.Time = "Freeze", "all day"
		ce.When = s.Format("Mon 2 Jan 2006") + " – " + e.AddDate(0, 0, -1).Format("Mon 2 Jan 2006") + " (" + o.Zone + ")"
		return ce
	case deploy.KindEmergency:
		ce.Label = "Emergency window"
	case deploy.KindAssetWindow:
		ce.Label = "Asset window"
	default:
		ce.Label = "Maintenance window"
		if o.Baseline {
			ce.Label = "Baseline window"
		}
	}
	ce.Time = s.Format("15:04") + "–" + e.Format("15:04 MST")
	ce.When = s.Format("Mon 2 Jan 2006, 15:04") + " – " + e.Format("Mon 2 Jan 15:04 MST") + " (" + o.Zone + ")"
	return ce
}

// summarize gives each window (kind, name and zone) one line over the
// range from from instead of a row per occurrence. An occurrence that
// opened before from (last night's, still open) is left to the range
// before.
func summarize(occ []deploy.Occurrence, from time.Time) []windowSummary {
	type key struct {
		kind       deploy.OccurrenceKind
		name, zone string
	}
	groups := map[key][]deploy.Occurrence{}
	var order []key
	for _, o := range occ {
		if o.Kind == deploy.KindFreeze || o.Start.Before(from) {
			continue
		}
		k := key{o.Kind, o.Name, o.Zone}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], o)
	}
	rank := map[deploy.OccurrenceKind]int{deploy.KindWindow: 0, deploy.KindAssetWindow: 1, deploy.KindEmergency: 2}
	baseline := func(k key) int {
		if groups[k][0].Baseline {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(order, func(a, b key) int {
		return cmp.Or(cmp.Compare(rank[a.kind], rank[b.kind]), cmp.Compare(baseline(a), baseline(b)), cmp.Compare(a.name, b.name), cmp.Compare(a.zone, b.zone))
	})
	out := make([]windowSummary, 0, len(order))
	for _, k := range order {
		os := groups[k]
		e := entryOf(os[0])
		text, n := recurrence(os, locOr(k.zone, time.UTC))
		out = append(out, windowSummary{Kind: k.kind, Label: e.Label, Name: k.name, Zone: k.zone, Baseline: e.Baseline,
			Text: text, Count: n, Assets: os[0].Assets, Description: e.Description})
	}
	return out
}

// night is one occurrence of a window as people count them: the local
// date it opens, and its first start and last end that date (a window
// that a clock change splits in two is still one night).
type night struct {
	date       time.Time // the local date, as midnight UTC
	start, end time.Time // local
}

func (n night) hours() string { return n.start.Format("15:04") + "–" + n.end.Format("15:04") }

// recurrence says when and how often one window's occurrences open, in
// loc: "Sun 02:00–05:00 America/Chicago, every week: 13 occurrences in
// range", the dates when they are few and irregular, and the nights a
// clock change shifts. It returns the number of occurrences, counted by
// local opening date so a night split by a clock change counts once.
func recurrence(os []deploy.Occurrence, loc *time.Location) (string, int) {
	var nights []night
	for _, o := range os {
		s, e := o.Start.In(loc), o.End.In(loc)
		d := time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC)
		if n := len(nights); n > 0 && nights[n-1].date.Equal(d) {
			if e.After(nights[n-1].end) {
				nights[n-1].end = e
			}
			continue
		}
		nights = append(nights, night{date: d, start: s, end: e})
	}
	if len(nights) == 0 {
		return "", 0
	}
	// The usual hours, and the nights that differ from them.
	count := map[string]int{}
	usual := nights[0].hours()
	for _, n := range nights {
		count[n.hours()]++
		if count[n.hours()] > count[usual] {
			usual = n.hours()
		}
	}
	var odd []string
	for _, n := range nights {
		if n.hours() != usual {
			odd = append(odd, n.hours()+" on "+n.start.Format("Mon 2 Jan"))
		}
	}
	var days [7]bool
	for _, n := range nights {
		days[n.date.Weekday()] = true
	}
	cadence := cadenceOf(nights, days)
	var b strings.Builder
	if cadence != "every day" {
		b.WriteString(weekdays(days) + " ")
	}
	b.WriteString(usual + " " + loc.String())
	if cadence != "" {
		b.WriteString(", " + cadence)
	}
	fmt.Fprintf(&b, ": %s in range", plural(len(nights), "occurrence"))
	switch {
	case cadence == "every day" || cadence == "every week":
	case len(nights) <= 6:
		dates := make([]string, len(nights))
		for i, n := range nights {
			dates[i] = n.start.Format("Mon 2 Jan")
		}
		b.WriteString(" (" + strings.Join(dates, ", ") + ")")
	default:
		b.WriteString(" (" + nights[0].start.Format("Mon 2 Jan") + " to " + nights[len(nights)-1].start.Format("Mon 2 Jan") + ")")
	}
	if len(odd) > 0 {
		if len(odd) > 3 {
			odd = append(odd[:3], "…")
		}
		b.WriteString("; " + strings.Join(odd, ", ") + " (a clock change)")
	}
	return b.String(), len(nights)
}

// cadenceOf names the rhythm of nights: "every day" when every date from
// the first to the last opens, "every week" when every date on the
// weekdays it uses does, "every month" when they are four to five weeks
// apart, "" otherwise.
func cadenceOf(nights []night, days [7]bool) string {
	if len(nights) < 2 {
		return ""
	}
	first, last := nights[0].date, nights[len(nights)-1].date
	want := 0
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		if days[d.Weekday()] {
			want++
		}
	}
	all := !slices.Contains(days[:], false)
	switch {
	case want == len(nights) && all:
		return "every day"
	case want == len(nights) && last.Sub(first) >= 7*24*time.Hour:
		return "every week"
	}
	for i := 1; i < len(nights); i++ {
		if gap := nights[i].date.Sub(nights[i-1].date) / (24 * time.Hour); gap < 28 || gap > 35 {
			return ""
		}
	}
	return "every month"
}

// weekdays spells a set of weekdays from Monday: "Sun", "Sat, Sun",
// "Mon–Fri".
func weekdays(days [7]bool) string {
	var parts []string
	for i := 0; i < 7; {
		d := (i + 1) % 7 // Monday first
		if !days[d] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && days[(j+2)%7] {
			j++
		}
		name := func(k int) string { return time.Weekday((k + 1) % 7).String()[:3] }
		switch {
		case j-i >= 2:
			parts = append(parts, name(i)+"–"+name(j))
		case j > i:
			parts = append(parts, name(i), name(j))
		default:
			parts = append(parts, name(i))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
