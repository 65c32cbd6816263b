package deploy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

// changeList is a ChangeLister over a fixed set of changes: filtered by
// state, newest first, paged as the store pages.
type changeList []change.Change

func (l changeList) List(_ context.Context, f change.Filter) ([]change.Change, error) {
	var out []change.Change
	for _, c := range l {
		if f.State == "" || c.State == f.State {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b change.Change) int { return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID)) })
	if f.Offset >= len(out) {
		return nil, nil
	}
	out = out[f.Offset:]
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// rolloutsByChange is a RolloutFinder over a map.
type rolloutsByChange map[string]Rollout

func (m rolloutsByChange) ByChange(_ context.Context, id string) (Rollout, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return Rollout{}, errs.E(errs.NotFound, "change %s has no rollout", id)
}

func ptr(t time.Time) *time.Time { return &t }

// TestChangeEntries places changes on the calendar: a named policy window
// as its next occurrence, an explicit window in its own zone, an
// "immediate" emergency at its start, a rollout's waves as one slot per
// window occurrence and site zone, ended changes only within the range,
// and unbooked or cancelled changes not at all.
func TestChangeEntries(t *testing.T) {
	const chi, den, ber = "America/Chicago", "America/Denver", "Europe/Berlin"
	c := newCalendar(t, policy.Default(), chi)
	now := local(t, chi, "2026-03-20 10:00")
	from, to := local(t, chi, "2026-03-01 00:00"), local(t, chi, "2026-06-01 00:00")
	created := now.Add(-48 * time.Hour)
	assets := []Asset{
		{ID: "lab-1", Location: zone(t, den)},
		{ID: "lab-2", Location: zone(t, den)},
		{ID: "pc-1"}, // the calendar's zone
	}
	changes := changeList{
		{ID: "c-named", Title: "OpenSSL on the lab", Type: change.Normal, State: change.Scheduled, CreatedAt: created, Revision: 4,
			PlannedWindows: []change.PlannedWindow{{Window: "monthly-baseline"}}},
		{ID: "c-explicit", Title: "Berlin PACS", Type: change.Standard, State: change.Scheduled, CreatedAt: created,
			PlannedWindows: []change.PlannedWindow{
				{Start: ptr(local(t, ber, "2026-04-04 23:30")), End: ptr(local(t, ber, "2026-04-05 01:30")), TimeZone: ber},
				{Start: ptr(local(t, ber, "2026-09-04 23:30")), End: ptr(local(t, ber, "2026-09-05 01:30")), TimeZone: ber}, // past the range
			}},
		{ID: "c-urgent", Title: "KEV fix", Type: change.Emergency, State: change.InProgress, CreatedAt: created, UpdatedAt: now.Add(-time.Hour),
			PlannedWindows: []change.PlannedWindow{{Window: policy.WindowImmediate}}},
		{ID: "c-rolling", Title: "Chrome", Type: change.Normal, State: change.InProgress, CreatedAt: created,
			PlannedWindows: []change.PlannedWindow{{Window: "servers-weekly"}}},
		{ID: "c-done", Title: "Last month's baseline", Type: change.Normal, State: change.Completed, CreatedAt: local(t, chi, "2026-02-01 09:00"),
			UpdatedAt:      local(t, chi, "2026-03-03 05:00"),
			PlannedWindows: []change.PlannedWindow{{Start: ptr(local(t, chi, "2026-03-02 22:00")), End: ptr(local(t, chi, "2026-03-03 02:00")), TimeZone: chi}}},
		{ID: "c-long-ago", Title: "Ended before the range", Type: change.Normal, State: change.Completed, CreatedAt: local(t, chi, "2026-01-01 09:00"),
			UpdatedAt:      local(t, chi, "2026-01-11 05:00"),
			PlannedWindows: []change.PlannedWindow{{Start: ptr(local(t, chi, "2026-01-10 22:00")), End: ptr(local(t, chi, "2026-01-11 02:00")), TimeZone: chi}}},
		// Rolled back before the range although its planned window (never
		// used) lies in it: not shown, and its rollout not read.
		{ID: "c-rolled-back", Title: "Backed out", Type: change.Normal, State: change.RolledBack, CreatedAt: local(t, chi, "2026-02-01 09:00"),
			UpdatedAt:      local(t, chi, "2026-02-20 05:00"),
			PlannedWindows: []change.PlannedWindow{{Start: ptr(local(t, chi, "2026-03-10 22:00")), End: ptr(local(t, chi, "2026-03-11 02:00")), TimeZone: chi}}},
		{ID: "c-draft", Title: "Not booked", Type: change.Normal, State: change.Draft, CreatedAt: created,
			PlannedWindows: []change.PlannedWindow{{Window: "monthly-baseline"}}},
		{ID: "c-approved", Title: "Approved, not scheduled", Type: change.Normal, State: change.Approved, CreatedAt: created,
			PlannedWindows: []change.PlannedWindow{{Window: "monthly-baseline"}}},
		{ID: "c-cancelled", Title: "Called off", Type: change.Normal, State: change.Cancelled, CreatedAt: created,
			PlannedWindows: []change.PlannedWindow{{Window: "monthly-baseline"}}},
	}
	// c-rolling's pilot wave runs two Denver assets in one window
	// occurrence and the PC in another (a Chicago evening); its second
	// wave is skipped.
	slotA, slotB := local(t, den, "2026-03-22 06:00"), local(t, chi, "2026-03-29 06:00")
	rollouts := rolloutsByChange{"c-rolling": {ID: "r1", ChangeID: "c-rolling", CreatedAt: now.Add(-2 * time.Hour), Waves: []Wave{
		{Index: 0, Ring: "pilot", State: WaveRunning, Items: []Item{
			{AssetID: "lab-1", PlannedStart: ptr(local(t, den, "2026-03-22 02:00")), PlannedEnd: ptr(local(t, den, "2026-03-22 03:00")), SlotEnd: &slotA},
			{AssetID: "lab-2", PlannedStart: ptr(local(t, den, "2026-03-22 02:00")), PlannedEnd: ptr(local(t, den, "2026-03-22 03:00")), SlotEnd: &slotA},
			{AssetID: "lab-2", Kind: ItemManual, PlannedStart: ptr(local(t, den, "2026-03-22 03:00")), PlannedEnd: ptr(local(t, den, "2026-03-22 04:00")), SlotEnd: &slotA},
			{AssetID: "pc-1", PlannedStart: ptr(local(t, chi, "2026-03-29 02:00")), PlannedEnd: ptr(local(t, chi, "2026-03-29 03:00")), SlotEnd: &slotB},
		}},
		{Index: 1, Ring: "low-risk", State: WaveSkipped},
	}}}

	got, err := c.ChangeEntries(context.Background(), changes, rollouts, assets, from, to, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Truncated {
		t.Errorf("Truncated with %d changes", len(changes))
	}
	type row struct {
		UID, Zone, Start, End string
		Assets                int
	}
	var rows []row
	for _, e := range got.Entries {
		loc := zone(t, e.Zone)
		rows = append(rows, row{e.UID(), e.Zone, e.Start.In(loc).Format("2006-01-02 15:04"), e.End.In(loc).Format("2006-01-02 15:04"), e.Assets})
	}
	want := []row{
		{"change-c-done-window-0@patchward", chi, "2026-03-02 22:00", "2026-03-03 02:00", 0},
		// Immediate: from when the emergency started.
		{"change-c-urgent-window-0@patchward", chi, "2026-03-20 09:00", "2026-03-20 10:00", 0},
		// servers-weekly's next opening after the rollout started (Sunday
		// 22 March), an hour before the Denver slot of the same night.
		{"change-c-rolling-window-0@patchward", chi, "2026-03-22 02:00", "2026-03-22 06:00", 0},
		// One slot per window occurrence and zone: two Denver assets (one
		// with a manual task after its job), then the PC.
		{"change-c-rolling-wave-0-slot-0@patchward", den, "2026-03-22 02:00", "2026-03-22 04:00", 2},
		{"change-c-rolling-wave-0-slot-1@patchward", chi, "2026-03-29 02:00", "2026-03-29 03:00", 1},
		// In Berlin's zone: Saturday night there is Saturday afternoon in Chicago.
		{"change-c-explicit-window-0@patchward", ber, "2026-04-04 23:30", "2026-04-05 01:30", 0},
		// The first monthly baseline not over now: Patch Tuesday 14 April + 2 days.
		{"change-c-named-window-0@patchward", chi, "2026-04-16 22:00", "2026-04-17 04:00", 0},
	}
	if diff := gocmp.Diff(want, rows); diff != "" {
		t.Errorf("ChangeEntries (-want +got):\n%s", diff)
	}
	for _, e := range got.Entries {
		switch e.ChangeID {
		case "c-urgent":
			if !e.Immediate || !e.Emergency() {
				t.Errorf("c-urgent entry: Immediate %v, Emergency %v; want both", e.Immediate, e.Emergency())
			}
		case "c-named":
			if e.Title != "OpenSSL on the lab" || e.State != change.Scheduled || e.Revision != 4 || e.Window != "monthly-baseline" {
				t.Errorf("c-named entry = %+v", e)
			}
		case "c-rolling":
			if e.Part == PartWave && (e.Ring != "pilot" || e.WaveState != WaveRunning) {
				t.Errorf("c-rolling wave entry = %+v; want the running pilot wave", e)
			}
		}
	}

	// A rollout store that fails is an error, not a change left out.
	broken := errors.New("disk on fire")
	_, err = c.ChangeEntries(context.Background(), changes, failingRollouts{broken}, assets, from, to, now)
	if !errors.Is(err, broken) {
		t.Errorf("ChangeEntries with a failing rollout store: %v; want it wrapped", err)
	}
	// Without a rollout store, planned windows only.
	got, err = c.ChangeEntries(context.Background(), changes, nil, assets, from, to, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got.Entries {
		if e.Part == PartWave {
			t.Errorf("wave entry without a rollout store: %+v", e)
		}
	}
}

// TestChangeEntriesEnded: a change that was rolled back or halted shows
// up to when it stopped; the windows and wave slots booked after that are
// gone from the calendar (and so from its feed), and a slot it stopped in
// ends there.
func TestChangeEntriesEnded(t *testing.T) {
	const chi = "America/Chicago"
	c := newCalendar(t, policy.Default(), chi)
	now := local(t, chi, "2026-03-24 10:00")
	from, to := local(t, chi, "2026-03-01 00:00"), local(t, chi, "2026-06-01 00:00")
	created := local(t, chi, "2026-03-18 09:00")
	stopped := local(t, chi, "2026-03-22 02:30")
	slot := func(day string) []Item {
		s := local(t, chi, day+" 06:00")
		return []Item{{AssetID: "pc-1", PlannedStart: ptr(local(t, chi, day+" 02:00")), PlannedEnd: ptr(local(t, chi, day+" 03:00")), SlotEnd: &s}}
	}
	changes := changeList{
		{ID: "c-rb", Title: "Backed out", Type: change.Normal, State: change.RolledBack, CreatedAt: created, UpdatedAt: stopped.Add(time.Hour),
			PlannedWindows: []change.PlannedWindow{{Start: ptr(local(t, chi, "2026-04-10 22:00")), End: ptr(local(t, chi, "2026-04-11 02:00")), TimeZone: chi}}},
		{ID: "c-halted", Title: "On hold", Type: change.Normal, State: change.Halted, CreatedAt: created, UpdatedAt: stopped,
			PlannedWindows: []change.PlannedWindow{{Window: "servers-weekly"}}},
	}
	rollouts := rolloutsByChange{
		"c-rb": {ID: "r-rb", ChangeID: "c-rb", CreatedAt: created, FinishedAt: &stopped, Waves: []Wave{
			{Index: 0, Ring: "pilot", State: WaveRolledBack, Items: slot("2026-03-22")},
			{Index: 1, Ring: "low-risk", State: WaveRolledBack, Items: slot("2026-03-29")},
		}},
		"c-halted": {ID: "r-h", ChangeID: "c-halted", CreatedAt: created, Waves: []Wave{
			{Index: 0, Ring: "pilot", State: WaveHalted, Items: slot("2026-03-22")},
			{Index: 1, Ring: "low-risk", State: WavePending, Items: slot("2026-03-29")},
		}},
	}
	got, err := c.ChangeEntries(context.Background(), changes, rollouts, []Asset{{ID: "pc-1"}}, from, to, now)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, e := range got.Entries {
		loc := zone(t, e.Zone)
		rows = append(rows, e.UID()+" "+e.Start.In(loc).Format("2006-01-02 15:04")+" – "+e.End.In(loc).Format("2006-01-02 15:04"))
	}
	want := []string{
		// servers-weekly's Sunday night, cut when the change halted.
		"change-c-halted-window-0@patchward 2026-03-22 02:00 – 2026-03-22 02:30",
		"change-c-halted-wave-0-slot-0@patchward 2026-03-22 02:00 – 2026-03-22 02:30",
		"change-c-rb-wave-0-slot-0@patchward 2026-03-22 02:00 – 2026-03-22 02:30",
	}
	if diff := gocmp.Diff(want, rows); diff != "" {
		t.Errorf("ChangeEntries of stopped changes (-want +got):\n%s", diff)
	}
}

type failingRollouts struct{ err error }

func (f failingRollouts) ByChange(context.Context, string) (Rollout, error) { return Rollout{}, f.err }

// TestICSChanges reads change entries back from the feed with the
// golang-ical parser: one event per entry, the UID naming the change and
// the window's place in it, the same UID after the change moved (so a
// subscriber's event moves instead of doubling), SEQUENCE from the
// revision, and emergencies marked.
func TestICSChanges(t *testing.T) {
	const chi = "America/Chicago"
	c := newCalendar(t, policy.Default(), chi)
	now := local(t, chi, "2026-03-20 10:00")
	from, to := now, now.AddDate(0, 3, 0)
	booked := change.Change{ID: "c-1", Title: "OpenSSL 3.0.13 on the lab, \"urgent\"; phase 1", Type: change.Emergency, State: change.Scheduled,
		CreatedAt: now, Revision: 3, PlannedWindows: []change.PlannedWindow{
			{Start: ptr(local(t, chi, "2026-04-02 21:00")), End: ptr(local(t, chi, "2026-04-02 23:00")), TimeZone: chi},
			{Window: "monthly-baseline"},
		}}
	feed := func(ch change.Change) (*ics.Calendar, []ChangeEntry) {
		t.Helper()
		cc, err := c.ChangeEntries(context.Background(), changeList{ch}, nil, nil, from, to, now)
		if err != nil {
			t.Fatal(err)
		}
		occ, err := c.Occurrences(from, to)
		if err != nil {
			t.Fatal(err)
		}
		body := Feed{Occurrences: occ, Changes: cc.Entries, BaseURL: "https://pw.example.org/"}.ICS(now)
		cal, err := ics.ParseCalendar(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("ParseCalendar: %v", err)
		}
		if n := len(cal.Events()); n != len(occ)+len(cc.Entries) {
			t.Fatalf("parsed %d events; want %d windows and freezes and %d change entries", n, len(occ), len(cc.Entries))
		}
		return cal, cc.Entries
	}
	changeEvents := func(cal *ics.Calendar) map[string]*ics.VEvent {
		out := map[string]*ics.VEvent{}
		for _, e := range cal.Events() {
			if strings.HasPrefix(e.Id(), "change-") {
				out[e.Id()] = e
			}
		}
		return out
	}

	cal, entries := feed(booked)
	evs := changeEvents(cal)
	if len(evs) != 2 || len(entries) != 2 {
		t.Fatalf("change events = %v; want the two planned windows", slices.Collect(mapKeys(evs)))
	}
	first := evs["change-c-1-window-0@patchward"]
	if first == nil {
		t.Fatalf("no event change-c-1-window-0@patchward among %v", slices.Collect(mapKeys(evs)))
	}
	start, err1 := first.GetStartAt()
	end, err2 := first.GetEndAt()
	if err1 != nil || err2 != nil || !start.Equal(local(t, chi, "2026-04-02 21:00")) || !end.Equal(local(t, chi, "2026-04-02 23:00")) {
		t.Errorf("first window parsed as %v – %v (%v, %v)", start, end, err1, err2)
	}
	checks := []struct {
		prop ics.ComponentProperty
		want string
	}{
		{ics.ComponentPropertySummary, `Emergency change: OpenSSL 3.0.13 on the lab, "urgent"; phase 1`},
		{ics.ComponentPropertySequence, "3"},
		{ics.ComponentPropertyUrl, "https://pw.example.org/changes/c-1"},
		{ics.ComponentPropertyPriority, "1"},
	}
	for _, ck := range checks {
		if p := first.GetProperty(ck.prop); p == nil || p.Value != ck.want {
			t.Errorf("%s = %+v; want %q", ck.prop, p, ck.want)
		}
	}
	var cats []string
	for _, p := range first.GetProperties(ics.ComponentPropertyCategories) {
		cats = append(cats, p.Value)
	}
	if !slices.Contains(cats, "CHANGE") || !slices.Contains(cats, "EMERGENCY") {
		t.Errorf("categories = %v; want CHANGE and EMERGENCY", cats)
	}
	if d := first.GetProperty(ics.ComponentPropertyDescription); d == nil || !strings.Contains(d.Value, "scheduled") || !strings.Contains(d.Value, "Thu 2 Apr 2026 21:00 CDT") {
		t.Errorf("description = %+v; want the state and the local time", d)
	}
	if second := evs["change-c-1-window-1@patchward"]; second == nil {
		t.Errorf("no event for the named window")
	} else if s, _ := second.GetStartAt(); !s.Equal(local(t, chi, "2026-04-16 22:00")) {
		t.Errorf("named window starts %v; want the April baseline", s)
	}

	// Rescheduled a week later: the same UIDs, the new time, a higher
	// SEQUENCE.
	moved := booked
	moved.Revision = 4
	moved.PlannedWindows = slices.Clone(booked.PlannedWindows)
	moved.PlannedWindows[0].Start = ptr(local(t, chi, "2026-04-09 21:00"))
	moved.PlannedWindows[0].End = ptr(local(t, chi, "2026-04-09 23:00"))
	cal, _ = feed(moved)
	again := changeEvents(cal)
	if diff := gocmp.Diff(slices.Sorted(mapKeys(evs)), slices.Sorted(mapKeys(again))); diff != "" {
		t.Errorf("UIDs after rescheduling (-before +after):\n%s", diff)
	}
	if e := again["change-c-1-window-0@patchward"]; e != nil {
		if s, _ := e.GetStartAt(); !s.Equal(local(t, chi, "2026-04-09 21:00")) {
			t.Errorf("moved window starts %v; want 9 April", s)
		}
		if p := e.GetProperty(ics.ComponentPropertySequence); p == nil || p.Value != "4" {
			t.Errorf("SEQUENCE after the move = %+v; want 4", p)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pagedInventory serves assets in pages of two, as the inventory pages.
type pagedInventory struct {
	sites  []inventory.Site
	assets []inventory.Asset
}

func (p pagedInventory) Sites(context.Context) ([]inventory.Site, error) { return p.sites, nil }

func (p pagedInventory) Assets(_ context.Context, f inventory.Filter) (inventory.Page, error) {
	end := min(f.Offset+2, len(p.assets))
	if f.Offset >= end {
		return inventory.Page{Total: len(p.assets)}, nil
	}
	return inventory.Page{Assets: p.assets[f.Offset:end], Total: len(p.assets)}, nil
}

// TestReadPlanningAssets reads the inventory page by page: each asset in
// its site's zone (none for a site without one), unreadable windows named
// per asset, and the limit.
func TestReadPlanningAssets(t *testing.T) {
	c := newCalendar(t, policy.Default(), "America/Chicago")
	inv := pagedInventory{
		sites: []inventory.Site{{ID: "s-lab", TimeZone: "America/Denver"}, {ID: "s-hq"}, {ID: "s-odd", TimeZone: "Mars/Olympus"}},
		assets: []inventory.Asset{
			{ID: "a1", Name: "Analyzer", SiteID: "s-lab"},
			{ID: "a2", Name: "PC", SiteID: "s-hq", MaintenanceWindow: "sun-0200-0500"},
			{ID: "a3", Name: "Kiosk 1", SiteID: "s-hq", MaintenanceWindow: "whenever"},
			{ID: "a4", Name: "Kiosk 2", SiteID: "s-odd", MaintenanceWindow: "whenever"},
			{ID: "a5", Name: "Server", SiteID: "s-odd", MaintenanceWindow: "servers-weekly"},
		},
	}
	got, err := ReadPlanningAssets(context.Background(), inv, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ ID, Zone, Window string }
	var rows []row
	for _, a := range got.Assets {
		z := ""
		if a.Location != nil {
			z = a.Location.String()
		}
		rows = append(rows, row{a.ID, z, a.Window})
	}
	want := []row{{"a1", "America/Denver", ""}, {"a2", "", "sun-0200-0500"}, {"a5", "", "servers-weekly"}}
	if diff := gocmp.Diff(want, rows); diff != "" {
		t.Errorf("assets (-want +got):\n%s", diff)
	}
	if len(got.Unreadable) != 2 || got.Truncated {
		t.Fatalf("unreadable = %+v, truncated %v; want the two kiosks", got.Unreadable, got.Truncated)
	}
	for i, id := range []string{"a3", "a4"} {
		u := got.Unreadable[i]
		if u.ID != id || u.Window != "whenever" || !errors.Is(u.Err, errs.ErrInvalid) || !strings.Contains(u.Err.Error(), id) {
			t.Errorf("unreadable[%d] = %+v; want %s with an Invalid error naming it", i, u, id)
		}
	}
	got, err = ReadPlanningAssets(context.Background(), inv, c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(got.Assets) != 2 {
		t.Errorf("with limit 2: %d assets, truncated %v; want 2, true", len(got.Assets), got.Truncated)
	}
}
