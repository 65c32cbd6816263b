package agent

import (
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

func mustWindow(t *testing.T, tz string, slots ...agentapi.Slot) *Schedule {
	t.Helper()
	w, err := ParseWindow(agentapi.Window{Name: "test", TimeZone: tz, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestWindowAcrossDST checks a Sunday 01:00–04:00 window on the nights the
// clocks change in New York and Berlin, with the instants given in UTC so
// the expected answers do not depend on the code under test.
func TestWindowAcrossDST(t *testing.T) {
	sunday := agentapi.Slot{Day: 0, Start: "01:00", End: "04:00"}
	tests := []struct {
		tz   string
		at   string
		want bool
		note string
	}{
		// New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
		{"America/New_York", "2026-03-08T05:30:00Z", false, "00:30 EST"},
		{"America/New_York", "2026-03-08T06:30:00Z", true, "01:30 EST"},
		{"America/New_York", "2026-03-08T07:00:00Z", true, "03:00 EDT, just after the gap"},
		{"America/New_York", "2026-03-08T07:59:00Z", true, "03:59 EDT"},
		{"America/New_York", "2026-03-08T08:00:00Z", false, "04:00 EDT: closed, two real hours after opening"},
		// New York falls back 2026-11-01 02:00 EDT -> 01:00 EST.
		{"America/New_York", "2026-11-01T04:30:00Z", false, "00:30 EDT"},
		{"America/New_York", "2026-11-01T05:30:00Z", true, "first 01:30 (EDT)"},
		{"America/New_York", "2026-11-01T06:30:00Z", true, "second 01:30 (EST)"},
		{"America/New_York", "2026-11-01T08:59:00Z", true, "03:59 EST"},
		{"America/New_York", "2026-11-01T09:00:00Z", false, "04:00 EST: four real hours after opening"},
		// Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST.
		{"Europe/Berlin", "2026-03-28T23:30:00Z", false, "00:30 CET"},
		{"Europe/Berlin", "2026-03-29T00:30:00Z", true, "01:30 CET"},
		{"Europe/Berlin", "2026-03-29T01:30:00Z", true, "03:30 CEST"},
		{"Europe/Berlin", "2026-03-29T02:00:00Z", false, "04:00 CEST"},
		// Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET.
		{"Europe/Berlin", "2026-10-24T23:30:00Z", true, "01:30 CEST"},
		{"Europe/Berlin", "2026-10-25T00:30:00Z", true, "first 02:30 (CEST)"},
		{"Europe/Berlin", "2026-10-25T01:30:00Z", true, "second 02:30 (CET)"},
		{"Europe/Berlin", "2026-10-25T02:59:00Z", true, "03:59 CET"},
		{"Europe/Berlin", "2026-10-25T03:00:00Z", false, "04:00 CET"},
		// The same instant is a Saturday evening in New York.
		{"America/New_York", "2026-10-25T01:30:00Z", false, "Saturday 21:30 EDT"},
	}
	for _, tt := range tests {
		t.Run(tt.tz+" "+tt.note, func(t *testing.T) {
			w := mustWindow(t, tt.tz, sunday)
			if got := w.Contains(utc(tt.at)); got != tt.want {
				t.Errorf("Contains(%s) = %v; want %v (%s local)", tt.at, got, tt.want, utc(tt.at).In(w.Location()).Format("Mon 15:04 MST"))
			}
		})
	}
}

func TestWindowPastMidnight(t *testing.T) {
	// Saturday 22:00 to Sunday 02:00, Berlin.
	w := mustWindow(t, "Europe/Berlin", agentapi.Slot{Day: 6, Start: "22:00", End: "02:00"})
	for at, want := range map[string]bool{
		"2026-06-06T19:59:00Z": false, // Sat 21:59 CEST
		"2026-06-06T20:00:00Z": true,  // Sat 22:00
		"2026-06-06T23:30:00Z": true,  // Sun 01:30
		"2026-06-07T00:00:00Z": false, // Sun 02:00
		"2026-06-07T20:30:00Z": false, // Sun 22:30: the slot is Saturday's
	} {
		if got := w.Contains(utc(at)); got != want {
			t.Errorf("Contains(%s) = %v; want %v", at, got, want)
		}
	}
}

func TestWindowNext(t *testing.T) {
	// A start inside New York's spring-forward gap moves to the first
	// valid instant after it.
	w := mustWindow(t, "America/New_York", agentapi.Slot{Day: 0, Start: "02:30", End: "04:00"})
	from := utc("2026-03-07T17:00:00Z") // Saturday noon EST
	next := w.Next(from)
	if !next.After(from) || !w.Contains(next) || next.Sub(from) > 24*time.Hour {
		t.Errorf("Next(%s) = %s; want the opening on Sunday 2026-03-08", from, next)
	}
	if in := utc("2026-03-08T07:45:00Z"); !w.Next(in).Equal(in) {
		t.Errorf("Next inside the window = %s; want now", w.Next(in))
	}
}

func TestParseWindowErrors(t *testing.T) {
	for name, w := range map[string]agentapi.Window{
		"zone":              {TimeZone: "Mars/Olympus", Slots: []agentapi.Slot{{Day: 0, Start: "01:00", End: "02:00"}}},
		"backwards opening": {Openings: []agentapi.Opening{{Start: utc("2026-03-12T03:00:00Z"), End: utc("2026-03-12T02:00:00Z")}}},
		"week-long opening": {Openings: []agentapi.Opening{{Start: utc("2026-03-01T00:00:00Z"), End: utc("2026-03-10T00:00:00Z")}}},
		"zero opening":      {Openings: []agentapi.Opening{{End: utc("2026-03-10T00:00:00Z")}}},
		"too many openings": {Openings: make([]agentapi.Opening, agentapi.MaxOpenings+1)},
		"day":               {Slots: []agentapi.Slot{{Day: 7, Start: "01:00", End: "02:00"}}},
		"start":             {Slots: []agentapi.Slot{{Day: 1, Start: "1:00", End: "02:00"}}},
		"end":               {Slots: []agentapi.Slot{{Day: 1, Start: "01:00", End: "25:00"}}},
	} {
		if _, err := ParseWindow(w); err == nil {
			t.Errorf("ParseWindow(%s) = nil error; want one", name)
		}
	}
}

// TestWindowOpenings checks dated openings (a monthly window after Patch
// Tuesday): inside one the job may start, between them it may not, Next
// names the coming one, and after the last one nothing is open.
func TestWindowOpenings(t *testing.T) {
	w, err := ParseWindow(agentapi.Window{Name: "monthly-baseline", TimeZone: "America/Chicago", Openings: []agentapi.Opening{
		{Start: utc("2026-03-13T03:00:00Z"), End: utc("2026-03-13T07:00:00Z")},
		{Start: utc("2026-04-17T03:00:00Z"), End: utc("2026-04-17T07:00:00Z")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at       string
		open     bool
		wantNext string
	}{
		{"2026-03-13T02:59:59Z", false, "2026-03-13T03:00:00Z"},
		{"2026-03-13T03:00:00Z", true, "2026-03-13T03:00:00Z"},
		{"2026-03-13T06:59:59Z", true, "2026-03-13T06:59:59Z"},
		{"2026-03-13T07:00:00Z", false, "2026-04-17T03:00:00Z"},
		{"2026-04-17T07:00:00Z", false, ""},
	} {
		at := utc(tc.at)
		if got := w.Contains(at); got != tc.open {
			t.Errorf("Contains(%s) = %v; want %v", tc.at, got, tc.open)
		}
		next := w.Next(at)
		if tc.wantNext == "" {
			if !next.IsZero() {
				t.Errorf("Next(%s) = %v; want none after the last opening", tc.at, next)
			}
		} else if !next.Equal(utc(tc.wantNext)) {
			t.Errorf("Next(%s) = %v; want %s", tc.at, next, tc.wantNext)
		}
	}
}

// TestWindowNeverOpen: a named window with no opening in the server's
// horizon arrives empty and admits no non-emergency job.
func TestWindowNeverOpen(t *testing.T) {
	w, err := ParseWindow(agentapi.Window{Name: "lab-quarterly", TimeZone: "UTC"})
	if err != nil {
		t.Fatalf("ParseWindow(empty) = %v; want a window that never opens", err)
	}
	if at := utc("2026-03-13T04:00:00Z"); w.Contains(at) || !w.Next(at).IsZero() {
		t.Errorf("empty window: Contains = %v, Next = %v; want closed with no next opening", w.Contains(at), w.Next(at))
	}
}
