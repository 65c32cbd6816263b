package deploy

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// OccurrenceKind says what a calendar entry is, so a UI can colour it and
// the iCalendar feed can categorise it.
type OccurrenceKind string

// The kinds of calendar entry.
const (
	// KindWindow is an occurrence of a routine policy window.
	KindWindow OccurrenceKind = "window"
	// KindEmergency is an occurrence of an emergency window.
	KindEmergency OccurrenceKind = "emergency"
	// KindFreeze is a freeze: whole local days when no routine change runs.
	KindFreeze OccurrenceKind = "freeze"
	// KindAssetWindow is an occurrence of assets' own weekly window,
	// aggregated over every asset that shares the spec and zone.
	KindAssetWindow OccurrenceKind = "asset-window"
)

// Occurrence is one entry of the rolling deployment calendar the seeds ask
// clinics to publish: a window occurrence or a freeze.
type Occurrence struct {
	Kind OccurrenceKind
	// Name is the policy window's or freeze's name, or the assets' weekly
	// spec.
	Name        string
	Description string
	// Zone is the IANA zone the entry's local times are read in.
	Zone string
	// Start and End bound the entry; for a freeze they are the local
	// midnights that open its first day and close its last (AllDay).
	Start, End time.Time
	AllDay     bool
	// Baseline marks the window assets without their own use.
	Baseline bool
	// Assets counts the given assets whose routine changes run in this
	// window (for a "site" window: those in this zone).
	Assets int
}

// maxCalendarSpan bounds an Occurrences call: the seeds' rolling calendar
// is three to six months; a year leaves room.
const maxCalendarSpan = 400 * 24 * time.Hour

// Occurrences lists the calendar between from and to: every policy window's
// occurrences (in the calendar's zone, and again in each other zone whose
// assets use a "site" window), every freeze overlapping the range, and the
// assets' own weekly windows aggregated by (spec, zone) with how many
// assets use each. Sorted by start, then kind and name. It is data for the
// calendar page and the iCalendar feed; a range over about a year is
// refused.
func (c *Calendar) Occurrences(from, to time.Time, assets ...Asset) ([]Occurrence, error) {
	if !to.After(from) {
		return nil, nil
	}
	if to.Sub(from) > maxCalendarSpan {
		return nil, errs.E(errs.Invalid, "calendar range %s to %s is longer than a year", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	type key struct{ name, zone string }
	type group struct {
		src    source
		loc    *time.Location
		assets int
	}
	groups := map[key]*group{}
	var order []key
	add := func(src source, loc *time.Location, n int) {
		k := key{src.name(), loc.String()}
		if src.policy != nil && src.policy.TimeZone != policy.TimeZoneSite {
			k.zone = src.policy.TimeZone
			l, err := time.LoadLocation(k.zone)
			if err == nil {
				loc = l
			}
		}
		g := groups[k]
		if g == nil {
			g = &group{src: src, loc: loc}
			groups[k] = g
			order = append(order, k)
		}
		g.assets += n
	}
	for _, w := range c.windows {
		add(source{policy: &w}, c.zone, 0)
	}
	for _, a := range assets {
		src, err := c.own(a)
		if err != nil {
			return nil, err
		}
		add(src, c.loc(a), 1)
	}
	var out []Occurrence
	for _, k := range order {
		g := groups[k]
		var slots []policy.Slot
		kind := KindAssetWindow
		desc := fmt.Sprintf("Maintenance window %s of %d asset(s), times in %s.", g.src.name(), g.assets, k.zone)
		if g.src.policy != nil {
			var err error
			slots, err = g.src.policy.Slots(g.loc, from, to)
			if err != nil {
				return nil, err
			}
			kind = KindWindow
			if g.src.policy.Emergency || slices.Contains(c.emergency, g.src.policy.Name) {
				kind = KindEmergency
			}
			desc = g.src.policy.Description
		} else {
			slots = g.src.weekly.Slots(g.loc, from, to)
		}
		for _, s := range slots {
			out = append(out, Occurrence{Kind: kind, Name: k.name, Description: desc, Zone: k.zone,
				Start: s.Start.In(g.loc), End: s.End.In(g.loc), Baseline: k.name == c.baseline && g.src.policy != nil,
				Assets: g.assets})
		}
	}
	for _, f := range c.freezes {
		fd, err1 := time.Parse(time.DateOnly, f.From)
		td, err2 := time.Parse(time.DateOnly, f.To)
		if err1 != nil || err2 != nil {
			continue // validation refuses such a policy
		}
		s, e := policy.FromWall(fd, c.zone), policy.FromWall(td.AddDate(0, 0, 1), c.zone)
		if !e.After(from) || !s.Before(to) {
			continue
		}
		out = append(out, Occurrence{Kind: KindFreeze, Name: f.Name, Description: f.Reason, Zone: c.zone.String(),
			Start: s, End: e, AllDay: true})
	}
	slices.SortStableFunc(out, func(a, b Occurrence) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Zone, b.Zone))
	})
	return out, nil
}
