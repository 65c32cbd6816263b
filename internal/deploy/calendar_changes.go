package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// ChangeLister lists change records, newest first; *change.Service
// implements it.
type ChangeLister interface {
	List(ctx context.Context, f change.Filter) ([]change.Change, error)
}

// RolloutFinder finds a change's rollout, NotFound when it has none;
// *Rollouts implements it.
type RolloutFinder interface {
	ByChange(ctx context.Context, changeID string) (Rollout, error)
}

var (
	_ ChangeLister  = (*change.Service)(nil)
	_ RolloutFinder = (*Rollouts)(nil)
)

// ChangePart says which part of a change a calendar entry shows.
type ChangePart string

// The parts of a change on the calendar.
const (
	// PartPlanned is one of the change's planned windows, as booked when
	// it was scheduled.
	PartPlanned ChangePart = "planned"
	// PartWave is one slot of a rollout wave: the jobs of one ring that
	// run in one window occurrence at one site zone.
	PartWave ChangePart = "wave"
)

// ChangeEntry is a change on the calendar: one of its planned windows or,
// once its rollout is planned, one slot of a wave.
type ChangeEntry struct {
	ChangeID string
	Title    string
	Type     change.Type
	State    change.State
	// Revision is the change's revision, so a calendar client sees an
	// entry as updated when the change was.
	Revision int
	Part     ChangePart
	// Index is the planned window's position in the change, or the
	// wave's index; Slot numbers a wave's slots in time order (0 for a
	// planned window).
	Index, Slot int
	// Window is the policy window a planned window names ("" for an
	// explicit start and end); Ring and WaveState describe a wave.
	Window    string
	Ring      string
	WaveState WaveState
	// Zone is the IANA zone the entry's local times are read in: the
	// planned window's own, the policy window's, or the site's of the
	// wave slot's assets.
	Zone       string
	Start, End time.Time
	// Assets counts a wave slot's assets.
	Assets int
	// Immediate marks an emergency planned for "immediate": it runs as
	// soon as it is started, so Start is when it was (or now) and End is
	// nominal.
	Immediate bool
}

// UID names the entry by its change and its place in it (planned window
// index, or wave and slot), never by its time, so a subscribed calendar
// updates the event in place when the change is moved.
func (e ChangeEntry) UID() string {
	if e.Part == PartWave {
		return fmt.Sprintf("change-%s-wave-%d-slot-%d@patchward", e.ChangeID, e.Index, e.Slot)
	}
	return fmt.Sprintf("change-%s-window-%d@patchward", e.ChangeID, e.Index)
}

// Emergency reports whether the entry is an emergency change's.
func (e ChangeEntry) Emergency() bool { return e.Type == change.Emergency }

// Which changes the calendar shows: those booked or under way (halted
// ones too), and those that ended (completed, rolled back) within the
// range. An ended change created more than endedLookback before the range
// is not looked for; no more than maxCalendarChanges of one state are
// read.
var (
	upcomingStates = []change.State{change.Scheduled, change.InProgress, change.Halted}
	endedStates    = []change.State{change.Completed, change.RolledBack}
)

const (
	endedLookback      = 366 * 24 * time.Hour
	maxCalendarChanges = 5000
	changePage         = 500
	// immediateLength is how long an "immediate" emergency is drawn.
	immediateLength = time.Hour
)

// ChangeCalendar is the changes on the calendar over a range.
type ChangeCalendar struct {
	Entries []ChangeEntry
	// Truncated is set when more changes of one state exist than the
	// calendar reads.
	Truncated bool
}

// ChangeEntries lists the changes whose planned windows or rollout wave
// slots overlap [from, to): scheduled, in-progress and halted changes, and
// completed or rolled-back ones that ended (were last updated) at or after
// from. A change that ended or halted shows only up to when it did
// (stoppedAt): its later windows and slots are not booked any more. A planned window naming a policy window
// is its first occurrence not over when the rollout started (now for a
// scheduled change, the last update for one without a rollout), read in
// the window's zone (the calendar's for a "site" window). Wave slots are
// read from the rollout's items, grouped by the window occurrence they run
// in and by the zone of their assets' site as assets gives it (the
// calendar's zone for assets it lacks). rollouts may be nil: then only
// planned windows are shown. Sorted by start, then change and place.
func (c *Calendar) ChangeEntries(ctx context.Context, changes ChangeLister, rollouts RolloutFinder, assets []Asset, from, to, now time.Time) (ChangeCalendar, error) {
	var out ChangeCalendar
	zones := map[string]*time.Location{}
	for _, a := range assets {
		zones[a.ID] = c.loc(a)
	}
	for _, st := range slices.Concat(upcomingStates, endedStates) {
		ended := slices.Contains(endedStates, st)
		for offset := 0; ; offset += changePage {
			if offset >= maxCalendarChanges {
				out.Truncated = true
				break
			}
			page, err := changes.List(ctx, change.Filter{State: st, Limit: changePage, Offset: offset})
			if err != nil {
				return ChangeCalendar{}, err
			}
			old := false
			for _, ch := range page {
				if ended && ch.CreatedAt.Before(from.Add(-endedLookback)) {
					old = true // newest first: the rest are older still
					break
				}
				if ended && ch.UpdatedAt.Before(from) {
					continue // over before the range: its rollout need not be read
				}
				es, err := c.changeEntries(ctx, ch, rollouts, zones, now)
				if err != nil {
					return ChangeCalendar{}, err
				}
				for _, e := range es {
					if e.End.After(from) && e.Start.Before(to) {
						out.Entries = append(out.Entries, e)
					}
				}
			}
			if old || len(page) < changePage {
				break
			}
		}
	}
	slices.SortStableFunc(out.Entries, func(a, b ChangeEntry) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ChangeID, b.ChangeID), cmp.Compare(a.Part, b.Part),
			cmp.Compare(a.Index, b.Index), cmp.Compare(a.Slot, b.Slot))
	})
	return out, nil
}

// changeEntries places one change: its planned windows, then its
// rollout's wave slots.
func (c *Calendar) changeEntries(ctx context.Context, ch change.Change, rollouts RolloutFinder, zones map[string]*time.Location, now time.Time) ([]ChangeEntry, error) {
	var ro *Rollout
	if rollouts != nil && ch.State != change.Scheduled {
		r, err := rollouts.ByChange(ctx, ch.ID)
		switch {
		case err == nil:
			ro = &r
		case !errors.Is(err, errs.ErrNotFound):
			return nil, fmt.Errorf("rollout of change %s: %w", ch.ID, err)
		}
	}
	anchor := now
	switch {
	case ro != nil:
		anchor = ro.CreatedAt
	case ch.State != change.Scheduled:
		anchor = ch.UpdatedAt
	}
	base := ChangeEntry{ChangeID: ch.ID, Title: ch.Title, Type: ch.Type, State: ch.State, Revision: ch.Revision}
	var out []ChangeEntry
	for i, pw := range ch.PlannedWindows {
		e := base
		e.Part, e.Index, e.Window = PartPlanned, i, pw.Window
		switch {
		case pw.Window == policy.WindowImmediate:
			e.Zone, e.Start, e.End, e.Immediate = c.zone.String(), anchor, anchor.Add(immediateLength), true
		case pw.Window != "":
			s, zone, ok := c.NextOccurrence(pw.Window, anchor)
			if !ok {
				continue // the policy no longer names it, or it never opens
			}
			e.Zone, e.Start, e.End = zone, s.Start, s.End
		case pw.Start != nil && pw.End != nil:
			e.Zone, e.Start, e.End = pw.TimeZone, *pw.Start, *pw.End
			if e.Zone == "" {
				e.Zone = c.zone.String()
			}
		default:
			continue
		}
		out = append(out, e)
	}
	if ro != nil {
		out = append(out, c.waveEntries(base, *ro, zones)...)
	}
	if stop, ok := stoppedAt(ch, ro); ok {
		// Nothing more happens after a change ended or halted: what was
		// booked after that is no longer booked, and a slot it was in the
		// middle of ends there.
		kept := out[:0]
		for _, e := range out {
			if !e.Start.Before(stop) {
				continue
			}
			if e.End.After(stop) {
				e.End = stop
			}
			kept = append(kept, e)
		}
		out = kept
	}
	return out, nil
}

// stoppedAt is when a change stopped being carried out: when its rollout
// finished, else when the change last moved, for a change that ended
// (completed, rolled back, cancelled) or halted. A halted change that
// resumes is read again with its rollout's new plan.
func stoppedAt(ch change.Change, ro *Rollout) (time.Time, bool) {
	switch ch.State {
	case change.Completed, change.RolledBack, change.Cancelled, change.Halted:
	default:
		return time.Time{}, false
	}
	if ro != nil && ro.FinishedAt != nil && ch.State != change.Halted {
		return *ro.FinishedAt, true
	}
	if ch.UpdatedAt.IsZero() {
		return time.Time{}, false
	}
	return ch.UpdatedAt, true
}

// NextOccurrence is the first occurrence of the named policy window that
// is not over at t, searched up to a year ahead, with the zone it is read
// in.
func (c *Calendar) NextOccurrence(name string, t time.Time) (policy.Slot, string, bool) {
	w, ok := c.pol.Window(name)
	if !ok {
		return policy.Slot{}, "", false
	}
	loc := c.zone
	if w.TimeZone != "" && w.TimeZone != policy.TimeZoneSite {
		if l, err := time.LoadLocation(w.TimeZone); err == nil {
			loc = l
		}
	}
	for lo := t; lo.Before(t.Add(endedLookback)); lo = lo.Add(searchStep) {
		slots, err := w.Slots(loc, lo, lo.Add(searchStep))
		if err != nil {
			return policy.Slot{}, "", false
		}
		for _, s := range slots {
			if s.End.After(t) {
				return s, loc.String(), true
			}
		}
	}
	return policy.Slot{}, "", false
}

// waveEntries are a rollout's wave slots: each wave's planned items
// grouped by the window occurrence they run in (their slot's end, or the
// local day of an open-ended emergency) and their site's zone, each slot
// from its first planned start to its last planned end. A wave whose items
// carry no plan is drawn as the wave's own planned span.
func (c *Calendar) waveEntries(base ChangeEntry, ro Rollout, zones map[string]*time.Location) []ChangeEntry {
	var out []ChangeEntry
	for _, w := range ro.Waves {
		if w.State == WaveSkipped {
			continue
		}
		type key struct {
			zone string
			slot string
		}
		slots := map[key]*ChangeEntry{}
		assets := map[key]map[string]bool{}
		for _, it := range w.Items {
			if it.PlannedStart == nil {
				continue
			}
			loc := c.zone
			if l := zones[it.AssetID]; l != nil {
				loc = l
			}
			end := it.PlannedStart.Add(time.Minute)
			if it.PlannedEnd != nil {
				end = *it.PlannedEnd
			}
			k := key{zone: loc.String(), slot: it.PlannedStart.In(loc).Format(time.DateOnly)}
			if it.SlotEnd != nil && !it.SlotEnd.IsZero() {
				k.slot = it.SlotEnd.UTC().Format(time.RFC3339)
			}
			e := slots[k]
			if e == nil {
				e = &ChangeEntry{Start: *it.PlannedStart, End: end, Zone: k.zone}
				slots[k] = e
				assets[k] = map[string]bool{}
			}
			if it.PlannedStart.Before(e.Start) {
				e.Start = *it.PlannedStart
			}
			if end.After(e.End) {
				e.End = end
			}
			if it.AssetID != "" {
				assets[k][it.AssetID] = true
			}
		}
		var ws []ChangeEntry
		for k, s := range slots {
			e := base
			e.Part, e.Index, e.Ring, e.WaveState = PartWave, w.Index, w.Ring, w.State
			e.Zone, e.Start, e.End, e.Assets = s.Zone, s.Start, s.End, len(assets[k])
			ws = append(ws, e)
		}
		if len(ws) == 0 && w.PlannedStart != nil && w.PlannedEnd != nil {
			e := base
			e.Part, e.Index, e.Ring, e.WaveState = PartWave, w.Index, w.Ring, w.State
			e.Zone, e.Start, e.End = c.zone.String(), *w.PlannedStart, *w.PlannedEnd
			ws = append(ws, e)
		}
		slices.SortFunc(ws, func(a, b ChangeEntry) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Zone, b.Zone))
		})
		for i := range ws {
			ws[i].Slot = i
		}
		out = append(out, ws...)
	}
	return out
}
