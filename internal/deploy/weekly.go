package deploy

import (
	"sort"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/policy"
)

// WeeklyWindow is an asset's own maintenance window in the inventory's
// compact form ("sun-0200-0500", "daily-1900-2100", "weekdays-2200-2330",
// "sat-2200-sun-0200"). It is the same weekly window the agent enforces on
// its side, so the server plans only starts the agent will accept.
type WeeklyWindow struct {
	// Spec is the reference as read: trimmed and lower-cased.
	Spec string
	// Openings are the weekly openings, one per day the spec names.
	Openings []Opening
}

// Opening is one weekly opening of a WeeklyWindow, in local wall-clock
// minutes, so "Sunday 02:00–05:00" means what staff read on their clocks on
// both sides of a DST change.
type Opening struct {
	Day time.Weekday
	// Start and End are minutes after local midnight; End <= Start runs
	// past midnight into the next day.
	Start, End int
}

// ParseWeeklyWindow reads an asset's maintenance window reference in the
// compact form — day-HHMM-HHMM, where day is a weekday ("sun".."sat"),
// "daily", "weekdays" or "weekends" and an end before the start runs past
// midnight, or day-HHMM-nextday-HHMM across midnight. The grammar is
// fleet.ParseWindowRef's, the one whose result agents enforce, so the
// server plans only starts the agent will accept. Anything else is
// Unsupported: it may be the name of a policy window, which the Calendar
// resolves instead.
func ParseWeeklyWindow(spec string) (WeeklyWindow, error) {
	aw, err := fleet.ParseWindowRef(spec, "")
	if err != nil {
		return WeeklyWindow{}, err
	}
	w := WeeklyWindow{Spec: strings.ToLower(strings.TrimSpace(spec))}
	for _, s := range aw.Slots {
		w.Openings = append(w.Openings, Opening{Day: time.Weekday(s.Day), Start: hhmmMinutes(s.Start), End: hhmmMinutes(s.End)})
	}
	return w, nil
}

// hhmmMinutes reads the "HH:MM" fleet.ParseWindowRef writes.
func hhmmMinutes(s string) int {
	return int(s[0]-'0')*600 + int(s[1]-'0')*60 + int(s[3]-'0')*10 + int(s[4]-'0')
}

// Slots returns the openings of w that overlap [from, to), read in loc
// (nil means UTC), sorted and with overlapping openings merged.
//
// An instant is inside an opening when the local wall clock reads between
// its start and end on that night, which is how the agent's
// Schedule.Contains decides. So a 02:00–04:00 window is an hour shorter on
// the spring-forward night and an hour longer on a fall-back night whose
// repeated hour lies inside it. One refinement keeps policy.FromWall's
// rule for a start in a DST gap: the opening begins at FromWall(start)
// (02:30 in a 02:00→03:00 gap opens at 03:30), never earlier. On a
// fall-back night whose repeated hour straddles the start, the opening has
// two parts (01:30–02:00 first pass, 01:30 second pass onwards), as it
// does on the agent.
func (w WeeklyWindow) Slots(loc *time.Location, from, to time.Time) []policy.Slot {
	if loc == nil {
		loc = time.UTC
	}
	if !to.After(from) {
		return nil
	}
	// Local dates from two days before from (a wrapped opening that began
	// then may still be open, the zone offset adds a day) to a day after to.
	fy, fm, fd := from.In(loc).Date()
	ty, tm, td := to.In(loc).Date()
	first := time.Date(fy, fm, fd-2, 0, 0, 0, 0, time.UTC)
	last := time.Date(ty, tm, td+1, 0, 0, 0, 0, time.UTC)
	var out []span
	for day := first; !day.After(last); day = day.AddDate(0, 0, 1) {
		for _, o := range w.Openings {
			if day.Weekday() != o.Day {
				continue
			}
			startWall := day.Add(time.Duration(o.Start) * time.Minute)
			endWall := day.Add(time.Duration(o.End) * time.Minute)
			if o.End <= o.Start {
				endWall = endWall.AddDate(0, 0, 1)
			}
			notBefore := policy.FromWall(startWall, loc)
			for _, s := range wallSpans(startWall, endWall, loc) {
				if s.start.Before(notBefore) {
					s.start = notBefore
				}
				if s.end.After(s.start) && s.end.After(from) && s.start.Before(to) {
					out = append(out, s)
				}
			}
		}
	}
	out = merge(out)
	slots := make([]policy.Slot, len(out))
	for i, s := range out {
		slots[i] = policy.Slot{Start: s.start.In(loc), End: s.end.In(loc)}
	}
	return slots
}

// wallSpans returns the instants whose wall-clock reading in loc lies in
// [startWall, endWall) (wall times carried in UTC values). Within one zone
// period the offset is constant and the mapping is a plain shift, so the
// answer is the union over the periods the range can touch.
func wallSpans(startWall, endWall time.Time, loc *time.Location) []span {
	lo := startWall.Add(-26 * time.Hour)
	hi := endWall.Add(26 * time.Hour)
	var out []span
	for t := lo; t.Before(hi); {
		lt := t.In(loc)
		_, off := lt.Zone()
		pStart, pEnd := lt.ZoneBounds()
		shift := time.Duration(off) * time.Second
		s := span{start: startWall.Add(-shift), end: endWall.Add(-shift)}
		if !pStart.IsZero() && s.start.Before(pStart) {
			s.start = pStart
		}
		if !pEnd.IsZero() && s.end.After(pEnd) {
			s.end = pEnd
		}
		if s.end.After(s.start) {
			out = append(out, s)
		}
		if pEnd.IsZero() {
			break
		}
		t = pEnd
	}
	return merge(out)
}

// span is a half-open interval of instants [start, end).
type span struct{ start, end time.Time }

// merge sorts spans and joins those that overlap or touch.
func merge(in []span) []span {
	if len(in) < 2 {
		return in
	}
	sort.Slice(in, func(i, j int) bool { return in[i].start.Before(in[j].start) })
	out := in[:1]
	for _, s := range in[1:] {
		last := &out[len(out)-1]
		if !s.start.After(last.end) {
			if s.end.After(last.end) {
				last.end = s.end
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// subtract removes the cut spans (sorted, merged) from in (sorted, merged).
func subtract(in, cut []span) []span {
	if len(cut) == 0 {
		return in
	}
	var out []span
	for _, s := range in {
		cur := s
		keep := true
		for _, c := range cut {
			if !c.end.After(cur.start) || !c.start.Before(cur.end) {
				continue
			}
			if c.start.After(cur.start) {
				out = append(out, span{cur.start, c.start})
			}
			if c.end.Before(cur.end) {
				cur.start = c.end
				continue
			}
			keep = false
			break
		}
		if keep && cur.end.After(cur.start) {
			out = append(out, cur)
		}
	}
	return out
}
