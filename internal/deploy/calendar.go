package deploy

import (
	"fmt"
	"sort"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// searchHorizon bounds how far ahead NextSlot looks: past a yearly window
// and a long freeze on top of it. A change that finds no window in three
// years has a policy problem, not a scheduling one.
const searchHorizon = 3 * 366 * 24 * time.Hour

// searchStep is how much calendar one search round computes.
const searchStep = 35 * 24 * time.Hour

// spanMargin is added past a search round's end so an opening that starts
// inside the round is seen whole: no window is longer than a week (policy
// validation) and weekly openings are shorter than a day.
const spanMargin = 8 * 24 * time.Hour

// Asset is what the calendar needs to know about one target asset.
type Asset struct {
	ID string
	// Site groups assets for throttling (max_concurrent is per site).
	Site string
	// Location is the site's time zone; nil means the calendar's zone.
	Location *time.Location
	// Window is the inventory's maintenance_window: a compact weekly spec
	// ("sun-0200-0500"), the name of a policy window ("monthly-baseline"),
	// or empty for the policy's baseline window.
	Window string
}

// Slot is a stretch of time in which a job may run: a window occurrence
// (several, when overlapping windows merged) with any freeze cut out.
type Slot struct {
	Start time.Time
	// End is zero when the slot is open-ended: an approved emergency under
	// emergency.window "immediate" may run at any time.
	End time.Time
}

// Calendar answers "when may this change run on this asset?" from the
// policy in force: its windows, emergency settings and freezes. It holds
// no clock: every question carries its own "after" time, so tests and the
// scheduler share one behaviour. A Calendar is immutable and safe for
// concurrent use.
//
// Window resolution for a non-emergency change (standard or normal):
//  1. an asset whose maintenance_window is a compact weekly spec runs only
//     in that weekly window, read in the asset's site zone;
//  2. an asset whose maintenance_window names a policy window runs only in
//     that window (TimeZone "site" is the asset's site zone);
//  3. an asset with no maintenance_window runs in the policy's baseline
//     window: the first non-emergency window in the policy file (the
//     shipped policy's "monthly-baseline");
//  4. any other value is an error (errs.Invalid) naming the asset, never
//     a silent fall-back to another window.
//
// Freezes cut every non-emergency window. An emergency change (the caller
// passes policy.ChangeEmergency only once the emergency is approved) may
// run in the asset's own window, in the window emergency.window names and
// in every window marked emergency, or at any time when emergency.window
// is "immediate"; freezes do not hold it back.
type Calendar struct {
	pol       *policy.Compiled
	zone      *time.Location
	windows   []policy.Window
	freezes   []policy.Freeze
	baseline  string
	emergency []string // window names an emergency may also use
	immediate bool
}

// NewCalendar builds the calendar of pol. zone is the zone for assets that
// name none; nil means the policy's organization.time_zone (UTC when that
// is unset).
func NewCalendar(pol *policy.Compiled, zone *time.Location) (*Calendar, error) {
	if pol == nil {
		return nil, errs.E(errs.Invalid, "calendar: no policy")
	}
	p := pol.Policy()
	if zone == nil {
		zone = time.UTC
		if p.Organization.TimeZone != "" {
			l, err := time.LoadLocation(p.Organization.TimeZone)
			if err != nil {
				return nil, errs.Wrap(errs.Invalid, err, "calendar: organization time zone %q", p.Organization.TimeZone)
			}
			zone = l
		}
	}
	c := &Calendar{pol: pol, zone: zone, windows: p.Windows, freezes: p.Freezes,
		immediate: p.Emergency.Window == policy.WindowImmediate}
	for _, w := range p.Windows {
		if w.Emergency || w.Name == p.Emergency.Window {
			c.emergency = append(c.emergency, w.Name)
		} else if c.baseline == "" {
			c.baseline = w.Name
		}
	}
	return c, nil
}

// Zone is the calendar's default zone, for assets that name none.
func (c *Calendar) Zone() *time.Location { return c.zone }

// Baseline names the window assets without a maintenance_window use ("" if
// the policy has only emergency windows).
func (c *Calendar) Baseline() string { return c.baseline }

func (c *Calendar) loc(a Asset) *time.Location {
	if a.Location != nil {
		return a.Location
	}
	return c.zone
}

// source is one window an asset may use: a weekly spec or a policy window.
type source struct {
	weekly *WeeklyWindow
	policy *policy.Window
}

func (s source) name() string {
	if s.weekly != nil {
		return s.weekly.Spec
	}
	return s.policy.Name
}

func (s source) spans(loc *time.Location, from, to time.Time) ([]span, error) {
	if s.weekly != nil {
		return slotsToSpans(s.weekly.Slots(loc, from, to)), nil
	}
	slots, err := s.policy.Slots(loc, from, to)
	if err != nil {
		return nil, err
	}
	return slotsToSpans(slots), nil
}

func slotsToSpans(in []policy.Slot) []span {
	out := make([]span, len(in))
	for i, s := range in {
		out[i] = span{s.Start, s.End}
	}
	return out
}

// CheckWindow says whether the calendar can read the asset's routine
// window (its own weekly window, a policy window it names, or the
// baseline), with an error naming the asset when it cannot.
func (c *Calendar) CheckWindow(a Asset) error {
	_, err := c.own(a)
	return err
}

// own resolves the asset's routine window (the rule on Calendar).
func (c *Calendar) own(a Asset) (source, error) {
	name := a.Window
	if name == "" {
		if c.baseline == "" {
			return source{}, errs.E(errs.Invalid, "asset %s has no maintenance window and the policy has no baseline window", a.ID)
		}
		name = c.baseline
	}
	if w, ok := c.pol.Window(name); ok {
		return source{policy: &w}, nil
	}
	ww, err := ParseWeeklyWindow(name)
	if err != nil {
		return source{}, errs.E(errs.Invalid, "asset %s: maintenance window %q is neither day-HHMM-HHMM, day-HHMM-nextday-HHMM nor a window the policy names", a.ID, a.Window)
	}
	return source{weekly: &ww}, nil
}

// allowed returns the spans in which a job of changeType may run on a,
// overlapping [from, to), sorted and merged, freezes cut out. immediate
// is true for an approved emergency under emergency.window "immediate",
// which may run at any time.
func (c *Calendar) allowed(a Asset, changeType string, from, to time.Time) (spans []span, immediate bool, err error) {
	emergency := changeType == policy.ChangeEmergency
	switch changeType {
	case policy.ChangeStandard, policy.ChangeNormal, policy.ChangeEmergency:
	default:
		return nil, false, errs.E(errs.Invalid, "unknown change type %q (standard, normal or emergency)", changeType)
	}
	if emergency && c.immediate {
		return nil, true, nil
	}
	own, err := c.own(a)
	if err != nil {
		return nil, false, err
	}
	srcs := []source{own}
	if emergency {
		for _, n := range c.emergency {
			if w, ok := c.pol.Window(n); ok && n != own.name() {
				srcs = append(srcs, source{policy: &w})
			}
		}
	}
	loc := c.loc(a)
	for _, s := range srcs {
		sp, err := s.spans(loc, from, to)
		if err != nil {
			return nil, false, fmt.Errorf("asset %s: %w", a.ID, err)
		}
		spans = append(spans, sp...)
	}
	spans = merge(spans)
	if !emergency {
		spans = subtract(spans, c.freezeSpans(loc))
	}
	return spans, false, nil
}

// freezeSpans are the freezes as instants: whole local days in loc, from
// the first day's midnight to the midnight after the last (inclusive
// dates), each midnight read by policy.FromWall.
func (c *Calendar) freezeSpans(loc *time.Location) []span {
	var out []span
	for _, f := range c.freezes {
		from, err1 := time.Parse(time.DateOnly, f.From)
		to, err2 := time.Parse(time.DateOnly, f.To)
		if err1 != nil || err2 != nil {
			continue // validation refuses such a policy
		}
		out = append(out, span{policy.FromWall(from, loc), policy.FromWall(to.AddDate(0, 0, 1), loc)})
	}
	return merge(out)
}

// ErrNoSlot is returned (wrapped, kind Conflict) when no window within the
// search horizon can hold the job: the asset's window is shorter than the
// job, or freezes cover every occurrence.
var ErrNoSlot = errs.E(errs.Conflict, "no maintenance window can hold the job")

// NextSlot returns the first slot where a job of changeType lasting
// minDuration may start on a at or after after: Start is the earliest such
// instant, End the end of the (merged, freeze-cut) window, and Start +
// minDuration never passes End. A window whose remaining time is too short
// is skipped for its next occurrence.
func (c *Calendar) NextSlot(a Asset, changeType string, after time.Time, minDuration time.Duration) (Slot, error) {
	if minDuration < 0 {
		return Slot{}, errs.E(errs.Invalid, "job duration %s is negative", minDuration)
	}
	for lo := after; lo.Before(after.Add(searchHorizon)); lo = lo.Add(searchStep) {
		hi := lo.Add(searchStep)
		spans, immediate, err := c.allowed(a, changeType, lo, hi.Add(spanMargin).Add(minDuration))
		if err != nil {
			return Slot{}, err
		}
		if immediate {
			return Slot{Start: after}, nil
		}
		if s, ok := firstFit(spans, lo, minDuration); ok && s.Start.Before(hi) {
			return s, nil
		}
	}
	return Slot{}, fmt.Errorf("asset %s, %s change of %s after %s: %w", a.ID, changeType, minDuration,
		after.In(c.loc(a)).Format(time.RFC3339), ErrNoSlot)
}

// firstFit finds the first instant at or after t in spans (sorted and
// disjoint, as merge leaves them) where d fits.
func firstFit(spans []span, t time.Time, d time.Duration) (Slot, bool) {
	i := sort.Search(len(spans), func(i int) bool { return spans[i].end.After(t) })
	for _, s := range spans[i:] {
		if !s.end.After(t) {
			continue
		}
		start := s.start
		if start.Before(t) {
			start = t
		}
		if end := start.Add(d); end.Before(s.end) || (d > 0 && end.Equal(s.end)) {
			return Slot{Start: start, End: s.end}, true
		}
	}
	return Slot{}, false
}

// PlanOptions say what kind of change a wave belongs to and how hard it
// may hit one site.
type PlanOptions struct {
	// ChangeType is policy.ChangeStandard, ChangeNormal or ChangeEmergency
	// (an approved emergency).
	ChangeType string
	// MaxConcurrent caps jobs running at once per site (the ring's
	// max_concurrent); 0 means no cap.
	MaxConcurrent int
}

// PlannedStart is when one asset's job of a wave starts.
type PlannedStart struct {
	AssetID string
	// Start and End bound the job: End is Start plus the job duration.
	Start, End time.Time
	// Slot is the window occurrence the job runs in.
	Slot Slot
}

// Plan gives every asset of a wave a start time at or after from, inside
// its windows and clear of freezes, with the job (jobDuration) finishing
// inside the same window; at most opts.MaxConcurrent jobs run at once per
// site. Assets are placed in wave order, each at its earliest possible
// start: when a window's remaining time (or the site's capacity) cannot
// hold a job it carries over to the window's next occurrence. The result is
// in wave order. It fails whole, naming the asset, when one asset's window
// cannot be resolved or holds no job within the search horizon.
func (c *Calendar) Plan(wave []Asset, jobDuration time.Duration, from time.Time, opts PlanOptions) ([]PlannedStart, error) {
	if jobDuration <= 0 {
		return nil, errs.E(errs.Invalid, "job duration must be positive, got %s", jobDuration)
	}
	if opts.MaxConcurrent < 0 {
		return nil, errs.E(errs.Invalid, "max concurrent must not be negative, got %d", opts.MaxConcurrent)
	}
	type cached struct {
		spans     []span
		until     time.Time
		immediate bool
	}
	cache := map[string]*cached{}
	// next is NextSlot over spans computed once per (window, zone) and
	// extended as the plan reaches further.
	next := func(a Asset, t time.Time) (Slot, error) {
		key := a.Window + "\x00" + c.loc(a).String()
		e := cache[key]
		if e == nil {
			e = &cached{until: from}
			cache[key] = e
		}
		for {
			if e.immediate {
				return Slot{Start: t}, nil
			}
			if s, ok := firstFit(e.spans, t, jobDuration); ok && s.End.Before(e.until) {
				return s, nil
			}
			if e.until.Sub(t) > searchHorizon {
				return Slot{}, fmt.Errorf("asset %s, %s change of %s after %s: %w", a.ID, opts.ChangeType, jobDuration,
					t.In(c.loc(a)).Format(time.RFC3339), ErrNoSlot)
			}
			lo, hi := e.until, e.until.Add(4*searchStep)
			sp, imm, err := c.allowed(a, opts.ChangeType, lo, hi)
			if err != nil {
				return Slot{}, err
			}
			e.immediate = imm
			e.spans = merge(append(e.spans, sp...))
			// A span reaching past hi may be cut short by the query: only
			// trust fits that end before it.
			e.until = hi
		}
	}
	// floor is where the search for the next asset of the same site and
	// windows starts: the site only gets busier, so such an asset can start
	// no earlier than the last one did. It keeps a big wave linear instead
	// of re-walking every earlier job from the wave's start.
	floor := map[string]time.Time{}
	busy := map[string]*siteLoad{}
	out := make([]PlannedStart, 0, len(wave))
	for _, a := range wave {
		key := a.Site + "\x00" + a.Window + "\x00" + c.loc(a).String()
		t := from
		if f, ok := floor[key]; ok && f.After(t) {
			t = f
		}
		load := busy[a.Site]
		if load == nil {
			load = &siteLoad{d: jobDuration}
			busy[a.Site] = load
		}
		for {
			s, err := next(a, t)
			if err != nil {
				return nil, err
			}
			if opts.MaxConcurrent > 0 {
				if n, free := load.overlapping(s.Start); n >= opts.MaxConcurrent {
					t = free
					continue
				}
			}
			load.add(s.Start)
			floor[key] = s.Start
			out = append(out, PlannedStart{AssetID: a.ID, Start: s.Start, End: s.Start.Add(jobDuration), Slot: s})
			break
		}
	}
	return out, nil
}

// siteLoad is one site's planned jobs, kept sorted by start. Every job of a
// plan lasts d, so the jobs overlapping [t, t+d) are exactly those starting
// in (t-d, t+d): two binary searches instead of a walk over the site.
type siteLoad struct {
	d      time.Duration
	starts []time.Time
}

// overlapping counts the jobs running at some point of [t, t+d) and says
// when the first of them ends, which is the earliest a new job could be
// let in.
func (l *siteLoad) overlapping(t time.Time) (int, time.Time) {
	lo := sort.Search(len(l.starts), func(i int) bool { return l.starts[i].After(t.Add(-l.d)) })
	hi := sort.Search(len(l.starts), func(i int) bool { return !l.starts[i].Before(t.Add(l.d)) })
	if lo == hi {
		return 0, t
	}
	return hi - lo, l.starts[lo].Add(l.d)
}

func (l *siteLoad) add(t time.Time) {
	i := sort.Search(len(l.starts), func(i int) bool { return l.starts[i].After(t) })
	l.starts = append(l.starts, time.Time{})
	copy(l.starts[i+1:], l.starts[i:])
	l.starts[i] = t
}
