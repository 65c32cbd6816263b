package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		str  string // String() of the result
	}{
		{"72h", Duration{Exact: 72 * time.Hour}, "72h"},
		{"90m", Duration{Exact: 90 * time.Minute}, "1h30m"},
		{"1h30m", Duration{Exact: 90 * time.Minute}, "1h30m"},
		{"1.5h", Duration{Exact: 90 * time.Minute}, "1h30m"},
		{"45s", Duration{Exact: 45 * time.Second}, "45s"},
		{"250ms", Duration{Exact: 250 * time.Millisecond}, "250ms"},
		{"14d", Duration{Days: 14}, "14d"},
		{"2w", Duration{Days: 14}, "14d"},
		{"6y", Duration{Days: 6 * 365}, "6y"},
		{"1y", Duration{Days: 365}, "1y"},
		{"1d12h", Duration{Days: 1, Exact: 12 * time.Hour}, "1d12h"},
		{"1y2w3d4h", Duration{Days: 365 + 14 + 3, Exact: 4 * time.Hour}, "382d4h"},
		{"0", Duration{}, "0"},
		{"0d", Duration{}, "0"},
		{" 7d ", Duration{Days: 7}, "7d"},
		{"+7d", Duration{Days: 7}, "7d"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil {
			t.Errorf("ParseDuration(%q) error: %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %+v; want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseDuration(%q).String() = %q; want %q", tt.in, s, tt.str)
		}
		back, err := ParseDuration(got.String())
		if err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %+v, %v; want round trip to %+v", got.String(), back, err, got)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{"72", "missing unit"},
		{"-3d", "negative"},
		{"1.5d", "whole number of days"},
		{"2.5w", "whole number of weeks"},
		{"3x", `unknown unit "x"`},
		{"d", "expected a number"},
		{"1d-2h", "unknown unit"},
		{"200y", "longer than 100 years"},
		{"99999999999999999999d", "whole number of days"},
		{"1000000h", "longer than 100 years"},
		{"9999999999999999999h", "not a valid amount"},
		{"..h", "not a valid amount"},
	}
	for _, tt := range tests {
		_, err := ParseDuration(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseDuration(%q) error = %v; want one containing %q", tt.in, err, tt.msg)
		}
	}
}

func TestDurationHuman(t *testing.T) {
	tests := []struct{ in, want string }{
		{"72h", "72 hours"}, {"1h", "1 hour"}, {"90m", "1 hour 30 minutes"},
		{"14d", "14 days"}, {"1d", "1 day"}, {"6y", "6 years"}, {"1y", "1 year"},
		{"1d12h", "1 day 12 hours"}, {"0", "0"},
	}
	for _, tt := range tests {
		if got := MustDuration(tt.in).Human(); got != tt.want {
			t.Errorf("MustDuration(%q).Human() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestDurationAddToDST checks that calendar days keep the local time of day
// across a DST change while hours stay exact elapsed time.
func TestDurationAddToDST(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		start time.Time
		loc   *time.Location
		d     string
		want  time.Time
	}{
		// US DST starts 2026-03-08 02:00 CST → 03:00 CDT.
		{"chicago days across spring forward", time.Date(2026, 3, 6, 9, 0, 0, 0, chicago), chicago, "14d", time.Date(2026, 3, 20, 9, 0, 0, 0, chicago)},
		{"chicago hours across spring forward", time.Date(2026, 3, 7, 9, 0, 0, 0, chicago), chicago, "72h", time.Date(2026, 3, 10, 10, 0, 0, 0, chicago)},
		{"chicago 24h is not a day", time.Date(2026, 3, 7, 12, 0, 0, 0, chicago), chicago, "24h", time.Date(2026, 3, 8, 13, 0, 0, 0, chicago)},
		{"chicago 1d is a day", time.Date(2026, 3, 7, 12, 0, 0, 0, chicago), chicago, "1d", time.Date(2026, 3, 8, 12, 0, 0, 0, chicago)},
		// US DST ends 2026-11-01 02:00 CDT → 01:00 CST.
		{"chicago days across fall back", time.Date(2026, 10, 30, 22, 0, 0, 0, chicago), chicago, "7d", time.Date(2026, 11, 6, 22, 0, 0, 0, chicago)},
		{"chicago mixed", time.Date(2026, 10, 31, 8, 0, 0, 0, chicago), chicago, "1d12h", time.Date(2026, 11, 1, 20, 0, 0, 0, chicago)},
		// EU DST starts 2026-03-29 02:00 CET → 03:00 CEST; ends 2026-10-25.
		{"berlin days across spring forward", time.Date(2026, 3, 28, 23, 30, 0, 0, berlin), berlin, "30d", time.Date(2026, 4, 27, 23, 30, 0, 0, berlin)},
		{"berlin hours across spring forward", time.Date(2026, 3, 28, 23, 30, 0, 0, berlin), berlin, "48h", time.Date(2026, 3, 31, 0, 30, 0, 0, berlin)},
		{"berlin days across fall back", time.Date(2026, 10, 24, 9, 0, 0, 0, berlin), berlin, "2w", time.Date(2026, 11, 7, 9, 0, 0, 0, berlin)},
		// The zone decides the calendar: a UTC instant reckoned in Chicago.
		{"utc instant in chicago", time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC), chicago, "1d", time.Date(2026, 3, 8, 9, 0, 0, 0, chicago)},
		{"nil loc is UTC", time.Date(2026, 3, 7, 15, 0, 0, 0, chicago), nil, "1d", time.Date(2026, 3, 8, 21, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MustDuration(tt.d).AddTo(tt.start, tt.loc)
			if !got.Equal(tt.want) {
				t.Errorf("MustDuration(%q).AddTo(%v) = %v; want %v", tt.d, tt.start, got, tt.want)
			}
		})
	}
}

func TestDurationApprox(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"1d12h", 36 * time.Hour}, {"3d", 72 * time.Hour}, {"72h", 72 * time.Hour}, {"0", 0},
	}
	for _, tt := range tests {
		if got := MustDuration(tt.in).Approx(); got != tt.want {
			t.Errorf("MustDuration(%q).Approx() = %v; want %v", tt.in, got, tt.want)
		}
	}
	if !(Duration{}).IsZero() || MustDuration("1h").IsZero() || MustDuration("1d").IsZero() {
		t.Errorf("IsZero: want true only for the zero duration")
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		A Duration `yaml:"a"`
		B Duration `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("a: 14d\nb: 1d12h\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != Days(14) || v.B != (Duration{Days: 1, Exact: 12 * time.Hour}) {
		t.Errorf("Unmarshal = %+v", v)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "a: 14d\nb: 1d12h\n"; got != want {
		t.Errorf("Marshal = %q; want %q", got, want)
	}
	err = yaml.Unmarshal([]byte("a: 14d\n\nb: soon\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 3:") {
		t.Errorf("Unmarshal bad duration error = %v; want it to name line 3", err)
	}
	err = yaml.Unmarshal([]byte("a: [1]\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 1:") {
		t.Errorf("Unmarshal list as duration error = %v; want it to name line 1", err)
	}
}

func TestDurationJSON(t *testing.T) {
	in := map[string]Duration{"due": Hours(72), "keep": Days(6 * 365)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"due":"72h","keep":"6y"}`; got != want {
		t.Errorf("json.Marshal = %s; want %s", got, want)
	}
	var out map[string]Duration
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

// TestAddToGapsAndRepeats pins one rule on both sides of UTC: a day target
// ending in a skipped hour moves forward by the gap (RFC 5545), one ending
// in a repeated hour takes the first occurrence.
func TestAddToGapsAndRepeats(t *testing.T) {
	chicago, _ := time.LoadLocation("America/Chicago")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	tests := []struct {
		name string
		from time.Time
		loc  *time.Location
		want time.Time
	}{
		{"chicago gap", time.Date(2026, 3, 7, 2, 30, 0, 0, chicago), chicago, time.Date(2026, 3, 8, 8, 30, 0, 0, time.UTC)},
		{"berlin gap", time.Date(2026, 3, 28, 2, 30, 0, 0, berlin), berlin, time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		{"chicago repeat", time.Date(2026, 10, 31, 1, 30, 0, 0, chicago), chicago, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)},
		{"berlin repeat", time.Date(2026, 10, 24, 2, 30, 0, 0, berlin), berlin, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		if got := Days(1).AddTo(tc.from, tc.loc); !got.Equal(tc.want) {
			t.Errorf("%s: 1d.AddTo(%v) = %v; want %v", tc.name, tc.from, got.UTC(), tc.want)
		}
	}
}
