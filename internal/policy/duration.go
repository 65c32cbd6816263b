package policy

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxDurationDays caps calendar durations: nothing in a patch policy runs
// for more than a century, and the cap keeps day arithmetic far from
// overflow.
const maxDurationDays = 100 * 365

// ParseDuration reads a policy duration: Go syntax for exact time ("72h",
// "90m", "1h30m"), whole calendar days ("14d"), weeks ("2w", 7 days) and
// years ("6y", 6×365 days), or a sum of them ("1d12h", "1y2w"). Days are
// kept apart from hours because they mean different things across a DST
// change (see Duration.AddTo). Negative durations are refused: every policy
// duration is a length of time.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Duration{}, errors.New("empty duration")
	}
	if s == "0" {
		return Duration{}, nil
	}
	if s[0] == '-' {
		return Duration{}, fmt.Errorf("duration %q: must not be negative", in)
	}
	if s[0] == '+' {
		s = s[1:]
	}
	var d Duration
	for s != "" {
		// A number: digits with an optional fraction.
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return Duration{}, fmt.Errorf("duration %q: expected a number at %q", in, s)
		}
		num := s[:i]
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		switch unit {
		case "":
			return Duration{}, fmt.Errorf("duration %q: missing unit after %s (use h, m, d, w or y, e.g. \"72h\" or \"14d\")", in, num)
		case "d", "w", "y":
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 {
				return Duration{}, fmt.Errorf("duration %q: %s%s must be a whole number of %s", in, num, unit, unitName(unit))
			}
			mult := map[string]int{"d": 1, "w": 7, "y": 365}[unit]
			if n > maxDurationDays/mult || d.Days+n*mult > maxDurationDays {
				return Duration{}, fmt.Errorf("duration %q: longer than 100 years", in)
			}
			d.Days += n * mult
		case "h", "m", "s", "ms", "us", "µs", "μs", "ns":
			x, err := time.ParseDuration(num + unit)
			if err != nil {
				return Duration{}, fmt.Errorf("duration %q: %s%s is not a valid amount", in, num, unit)
			}
			if d.Exact > math.MaxInt64-x {
				return Duration{}, fmt.Errorf("duration %q: out of range", in)
			}
			d.Exact += x
		default:
			return Duration{}, fmt.Errorf("duration %q: unknown unit %q (use h, m, s, d, w or y)", in, unit)
		}
	}
	if d.Approx() > time.Duration(maxDurationDays)*24*time.Hour {
		return Duration{}, fmt.Errorf("duration %q: longer than 100 years", in)
	}
	return d, nil
}

func unitName(u string) string {
	switch u {
	case "w":
		return "weeks"
	case "y":
		return "years"
	}
	return "days"
}

// MustDuration is ParseDuration for constants in code and tests; it panics
// on a malformed string.
func MustDuration(s string) Duration {
	d, err := ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// Days returns a duration of n calendar days.
func Days(n int) Duration { return Duration{Days: n} }

// Hours returns a duration of n exact hours.
func Hours(n int) Duration { return Duration{Exact: time.Duration(n) * time.Hour} }

// String gives the canonical spelling, which ParseDuration reads back to the
// same value: years when the days are whole years, else days, then the
// exact part in hours, minutes and seconds ("6y", "30d", "72h", "1d12h").
func (d Duration) String() string {
	if d.IsZero() {
		return "0"
	}
	var b strings.Builder
	if d.Days != 0 {
		if d.Days%365 == 0 {
			fmt.Fprintf(&b, "%dy", d.Days/365)
		} else {
			fmt.Fprintf(&b, "%dd", d.Days)
		}
	}
	if e := d.Exact; e != 0 {
		if e%time.Second != 0 || e < 0 {
			b.WriteString(e.String())
		} else {
			h, m, s := e/time.Hour, e%time.Hour/time.Minute, e%time.Minute/time.Second
			if h != 0 {
				fmt.Fprintf(&b, "%dh", h)
			}
			if m != 0 {
				fmt.Fprintf(&b, "%dm", m)
			}
			if s != 0 {
				fmt.Fprintf(&b, "%ds", s)
			}
		}
	}
	return b.String()
}

// Human spells the duration for people ("72 hours", "14 days", "6 years",
// "1 day 12 hours"), as the rendered policy document shows it.
func (d Duration) Human() string {
	if d.IsZero() {
		return "0"
	}
	var parts []string
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	if d.Days != 0 {
		if d.Days%365 == 0 {
			parts = append(parts, plural(int64(d.Days/365), "year"))
		} else {
			parts = append(parts, plural(int64(d.Days), "day"))
		}
	}
	if e := d.Exact; e != 0 {
		if e%time.Second != 0 {
			parts = append(parts, e.String())
		} else {
			h, m, s := e/time.Hour, e%time.Hour/time.Minute, e%time.Minute/time.Second
			if h != 0 {
				parts = append(parts, plural(int64(h), "hour"))
			}
			if m != 0 {
				parts = append(parts, plural(int64(m), "minute"))
			}
			if s != 0 {
				parts = append(parts, plural(int64(s), "second"))
			}
		}
	}
	return strings.Join(parts, " ")
}

// IsZero reports whether the duration is empty (unset in the file).
func (d Duration) IsZero() bool { return d.Days == 0 && d.Exact == 0 }

// Approx is the duration as elapsed time, counting a day as 24 hours. It
// is for comparing and ordering durations ("is this class's target
// stricter than the tier's?"), never for computing a due date: use AddTo.
func (d Duration) Approx() time.Duration {
	days := time.Duration(d.Days) * 24 * time.Hour
	if d.Exact > 0 && days > math.MaxInt64-d.Exact {
		return math.MaxInt64
	}
	return days + d.Exact
}

// AddTo returns t plus d, reckoned in loc: calendar days first, keeping the
// local wall-clock time across a DST change (a 14-day target set at 09:00
// ends at 09:00), then the exact part as elapsed time (a 72h target is
// exactly 72 hours). A nil loc means UTC.
//
// time.Date leaves a wall-clock time that does not exist, or exists twice,
// to the zone data (in practice a skipped hour resolves backwards west of
// UTC and forwards east of it). Due dates and windows must agree
// everywhere, so AddTo fixes the rule: a time in a DST gap is read with the
// offset before the gap, as RFC 5545 §3.3.5 does (02:30 on the day clocks
// go forward becomes 03:30), and a repeated time is its first occurrence
// (the earlier, stricter deadline).
func (d Duration) AddTo(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if d.Days != 0 {
		y, m, day := t.Date()
		wall := time.Date(y, m, day+d.Days, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		t = FromWall(wall, loc)
	}
	return t.Add(d.Exact)
}

// Neg returns -d, for reckoning backwards (a due-soon time before a due
// date).
func (d Duration) Neg() Duration { return Duration{Days: -d.Days, Exact: -d.Exact} }

// FromWall turns a local wall-clock time, carried in a UTC time value, into
// the instant it names in loc, resolving DST gaps and repeats as AddTo
// documents. Zone offsets change at most once within a day and a half of
// any time in real zones, so the offsets 26 hours either side are the only
// candidates.
func FromWall(wall time.Time, loc *time.Location) time.Time {
	_, before := wall.Add(-26 * time.Hour).In(loc).Zone()
	_, after := wall.Add(26 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		inst := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if _, o := inst.Zone(); o != off {
			continue // this offset is not in force at that instant
		}
		if best.IsZero() || inst.Before(best) {
			best = inst
		}
	}
	if best.IsZero() { // in the gap
		best = wall.Add(-time.Duration(before) * time.Second).In(loc)
	}
	return best
}

// UnmarshalYAML reads a duration scalar, naming the node's line in errors
// so a bad value in the policy file points at itself.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a single value such as \"72h\" or \"14d\"", n.Line)}}
	}
	if n.Tag == "!!null" {
		*d = Duration{}
		return nil
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML writes the canonical spelling (String).
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes the canonical spelling, so JSON carries "14d" too.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what ParseDuration reads.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
