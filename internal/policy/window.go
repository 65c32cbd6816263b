package policy

import (
	"fmt"
	"time"
)

// Slot is one occurrence of a maintenance window.
type Slot struct {
	Start, End time.Time
}

// maxSlots bounds one Slots call: a daily window over thirty years.
const maxSlots = 11_000

// scheduleAnchor is the DTSTART for rules whose INTERVAL counts from a
// fixed point ("every 2 weeks"): a Monday, so fortnightly windows fall in
// the same weeks on every server and in every year.
var scheduleAnchor = [3]int{2000, 1, 3}

// Slots returns the occurrences of w that overlap [from, to), each from its
// local start time in the window's zone for Duration. site is the asset's
// site zone, used when w.TimeZone is "site" (nil means UTC). Start times
// keep their local wall-clock time across DST changes; a start that falls
// in a spring-forward gap moves to the first valid instant after it.
func (w Window) Slots(site *time.Location, from, to time.Time) ([]Slot, error) {
	loc := site
	if w.TimeZone != TimeZoneSite && w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("window %q: time zone: %w", w.Name, err)
		}
		loc = l
	}
	if loc == nil {
		loc = time.UTC
	}
	var hh, mm int
	if _, err := fmt.Sscanf(w.Start, "%d:%d", &hh, &mm); err != nil || !hhmmRE.MatchString(w.Start) {
		return nil, fmt.Errorf("window %q: start %q is not HH:MM", w.Name, w.Start)
	}
	if !to.After(from) {
		return nil, nil
	}
	// Occurrence days that can yield a slot overlapping [from, to): shift
	// back by the offset and the window's length, with a day's margin
	// either side for zone arithmetic.
	length := w.Duration.Approx()
	lo := from.In(loc).AddDate(0, 0, -w.OffsetDays-1).Add(-length)
	hi := to.In(loc).AddDate(0, 0, -w.OffsetDays+1)
	dtstart := time.Date(scheduleAnchor[0], time.Month(scheduleAnchor[1]), scheduleAnchor[2], 0, 0, 0, 0, loc)
	r, err := parseSchedule(w.Schedule, dtstart)
	if err != nil {
		return nil, fmt.Errorf("window %q: schedule: %w", w.Name, err)
	}
	var out []Slot
	for _, day := range r.Between(lo, hi, true) {
		y, m, d := day.In(loc).Date()
		start := FromWall(time.Date(y, m, d+w.OffsetDays, hh, mm, 0, 0, time.UTC), loc)
		end := w.Duration.AddTo(start, loc)
		if end.After(from) && start.Before(to) {
			out = append(out, Slot{Start: start, End: end})
			if len(out) == maxSlots {
				break
			}
		}
	}
	return out, nil
}
