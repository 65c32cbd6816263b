package agent

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Schedule is a parsed maintenance window. Slots are wall-clock times in
// the window's zone, so "Sunday 01:00–05:00" means what the clinic's staff
// read on their clocks on both sides of a DST change (the window is an hour
// shorter in real time on the spring-forward night, longer in autumn).
type Schedule struct {
	Name     string
	loc      *time.Location
	slots    []slot
	openings []agentapi.Opening
}

type slot struct {
	day        time.Weekday
	start, end int // minutes after local midnight; end <= start wraps past midnight
}

// ParseWindow validates a window and loads its time zone (empty means the
// host's local zone).
func ParseWindow(w agentapi.Window) (*Schedule, error) {
	loc := time.Local
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "window %q: unknown time zone %q", w.Name, w.TimeZone)
		}
		loc = l
	}
	// A window with neither slots nor openings never opens: the server
	// knows of no opening of a named window in its horizon, and only
	// emergency jobs may run.
	if len(w.Openings) > agentapi.MaxOpenings {
		return nil, errs.E(errs.Invalid, "window %q has %d openings; at most %d", w.Name, len(w.Openings), agentapi.MaxOpenings)
	}
	s := &Schedule{Name: w.Name, loc: loc}
	for i, o := range w.Openings {
		if o.Start.IsZero() || !o.End.After(o.Start) || o.End.Sub(o.Start) > 8*24*time.Hour {
			return nil, errs.E(errs.Invalid, "window %q opening %d: end must be after start and within 8 days of it", w.Name, i)
		}
		s.openings = append(s.openings, o)
	}
	for i, sl := range w.Slots {
		if sl.Day < 0 || sl.Day > 6 {
			return nil, errs.E(errs.Invalid, "window %q slot %d: day %d is not 0 (Sunday) to 6", w.Name, i, sl.Day)
		}
		start, err := parseHHMM(sl.Start)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "window %q slot %d start", w.Name, i)
		}
		end, err := parseHHMM(sl.End)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "window %q slot %d end", w.Name, i)
		}
		s.slots = append(s.slots, slot{day: time.Weekday(sl.Day), start: start, end: end})
	}
	return s, nil
}

func parseHHMM(v string) (int, error) {
	h, m, ok := strings.Cut(v, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	return hh*60 + mm, nil
}

// Location is the zone the window's times are read in.
func (s *Schedule) Location() *time.Location { return s.loc }

// Contains reports whether t falls inside an opening of the window.
func (s *Schedule) Contains(t time.Time) bool {
	for _, o := range s.openings {
		if !t.Before(o.Start) && t.Before(o.End) {
			return true
		}
	}
	lt := t.In(s.loc)
	mins := lt.Hour()*60 + lt.Minute()
	wd := lt.Weekday()
	for _, sl := range s.slots {
		if sl.start < sl.end {
			if wd == sl.day && mins >= sl.start && mins < sl.end {
				return true
			}
			continue
		}
		// Wraps past midnight (or, when end == start, spans a whole day).
		if wd == sl.day && mins >= sl.start {
			return true
		}
		if wd == (sl.day+1)%7 && mins < sl.end {
			return true
		}
	}
	return false
}

// Next returns the start of the next opening after t (t itself when inside
// one), for messages that tell an operator when the job can run.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.Contains(t) {
		return t
	}
	lt := t.In(s.loc)
	var best time.Time
	for _, o := range s.openings {
		if o.Start.After(t) && (best.IsZero() || o.Start.Before(best)) {
			best = o.Start
		}
	}
	for d := 0; d <= 7; d++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+d, 0, 0, 0, 0, s.loc)
		for _, sl := range s.slots {
			if day.Weekday() != sl.day {
				continue
			}
			start := time.Date(day.Year(), day.Month(), day.Day(), sl.start/60, sl.start%60, 0, 0, s.loc)
			// A start inside a spring-forward gap comes back from time.Date
			// with the old offset (02:30 -> 01:30 EST); move it forward by
			// the gap, to the wall-clock time staff will see (03:30 EDT).
			if got := start.Hour()*60 + start.Minute(); got < sl.start {
				start = start.Add(time.Duration(sl.start-got) * time.Minute)
			}
			if start.After(t) && (best.IsZero() || start.Before(best)) {
				best = start
			}
		}
	}
	return best
}
