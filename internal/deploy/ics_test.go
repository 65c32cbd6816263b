package deploy

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ics "github.com/arran4/golang-ical"

	"github.com/patchward/patchward/internal/policy"
)

func TestOccurrences(t *testing.T) {
	const chi = "America/Chicago"
	c := newCalendar(t, policy.Default(), chi)
	from, to := local(t, chi, "2026-05-01 00:00"), local(t, chi, "2026-06-01 00:00")
	assets := []Asset{
		{ID: "a", Window: "sun-0200-0500"},
		{ID: "b", Window: "SUN-0200-0500"},                                     // same spec, other spelling
		{ID: "c", Window: "sun-0200-0500", Location: zone(t, "Europe/Berlin")}, // same spec, other zone
		{ID: "d"}, // baseline
		{ID: "e", Window: "servers-weekly", Location: zone(t, "Asia/Kolkata")},
	}
	occ, err := c.Occurrences(from, to, assets...)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		kind       OccurrenceKind
		name, zone string
	}
	count := map[row]int{}
	assetsOf := map[row]int{}
	for i, o := range occ {
		r := row{o.Kind, o.Name, o.Zone}
		count[r]++
		assetsOf[r] = o.Assets
		if i > 0 && o.Start.Before(occ[i-1].Start) {
			t.Errorf("occurrence %d (%s) starts before the one before it", i, o.Name)
		}
		if !o.End.After(o.Start) {
			t.Errorf("occurrence %s %s: end %s not after start %s", o.Kind, o.Name, o.End, o.Start)
		}
	}
	want := map[row]int{
		{KindWindow, "monthly-baseline", chi}:               1, // 14 May 22:00
		{KindWindow, "servers-weekly", chi}:                 5, // May 3..31
		{KindWindow, "servers-weekly", "Asia/Kolkata"}:      5,
		{KindEmergency, "emergency", chi}:                   32, // 30 April's night reaches into May
		{KindAssetWindow, "sun-0200-0500", chi}:             5,
		{KindAssetWindow, "sun-0200-0500", "Europe/Berlin"}: 5,
		{KindFreeze, "proficiency-testing-q2", chi}:         1,
		{KindWindow, "lab-quarterly", chi}:                  0,
	}
	for r, n := range want {
		if count[r] != n {
			t.Errorf("occurrences of %v = %d; want %d", r, count[r], n)
		}
	}
	for r, n := range map[row]int{
		{KindAssetWindow, "sun-0200-0500", chi}:             2,
		{KindAssetWindow, "sun-0200-0500", "Europe/Berlin"}: 1,
		{KindWindow, "monthly-baseline", chi}:               1,
		{KindWindow, "servers-weekly", "Asia/Kolkata"}:      1,
	} {
		if assetsOf[r] != n {
			t.Errorf("assets of %v = %d; want %d", r, assetsOf[r], n)
		}
	}
	for _, o := range occ {
		if o.Kind == KindFreeze {
			if !o.AllDay || !o.Start.Equal(local(t, chi, "2026-05-04 00:00")) || !o.End.Equal(local(t, chi, "2026-05-16 00:00")) {
				t.Errorf("freeze = %+v; want all-day 2026-05-04 00:00 to 2026-05-16 00:00 local", o)
			}
		}
		if o.Name == "monthly-baseline" && !o.Baseline {
			t.Errorf("monthly-baseline not marked as the baseline")
		}
	}
	if _, err := c.Occurrences(from, from.AddDate(2, 0, 0)); err == nil {
		t.Errorf("Occurrences over two years: no error")
	}
	if _, err := c.Occurrences(from, to, Asset{ID: "x", Window: "nowhere"}); err == nil {
		t.Errorf("Occurrences with an unknown window: no error")
	}
}

func TestICS(t *testing.T) {
	const chi = "America/Chicago"
	c := newCalendar(t, policy.Default(), chi)
	from := local(t, chi, "2026-05-01 00:00")
	occ, err := c.Occurrences(from, from.AddDate(0, 4, 0), Asset{ID: "a", Window: "sat-2200-sun-0200"})
	if err != nil {
		t.Fatal(err)
	}
	now := utc("2026-04-30T08:15:00Z")
	feed := ICS(occ, now)

	// RFC 5545 §3.1: CRLF line ends; lines folded at 75 octets, a fold is
	// CRLF followed by one space or tab.
	if !bytes.HasSuffix(feed, []byte("\r\n")) {
		t.Errorf("feed does not end with CRLF")
	}
	lines := strings.Split(strings.TrimSuffix(string(feed), "\r\n"), "\r\n")
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %.200q", i+1, l)
		}
		if len(l) > 75 {
			t.Errorf("line %d is %d octets (> 75): %q", i+1, len(l), l)
		}
		if !utf8.ValidString(l) {
			t.Errorf("line %d folds inside a UTF-8 sequence: %q", i+1, l)
		}
	}
	if lines[0] != "BEGIN:VCALENDAR" || lines[len(lines)-1] != "END:VCALENDAR" {
		t.Errorf("feed starts %q and ends %q", lines[0], lines[len(lines)-1])
	}

	cal, err := ics.ParseCalendar(bytes.NewReader(feed))
	if err != nil {
		t.Fatalf("ParseCalendar: %v", err)
	}
	events := cal.Events()
	if len(events) != len(occ) {
		t.Fatalf("parsed %d events; want %d", len(events), len(occ))
	}
	uids := map[string]bool{}
	for i, e := range events {
		o := occ[i]
		uid := e.Id()
		if uids[uid] {
			t.Errorf("duplicate UID %s", uid)
		}
		uids[uid] = true
		stamp, err := e.GetDtStampTime()
		if err != nil || !stamp.Equal(now) {
			t.Errorf("%s: DTSTAMP = %v, %v; want %v", uid, stamp, err, now)
		}
		if o.AllDay {
			p := e.GetProperty(ics.ComponentPropertyDtStart)
			if p == nil || p.Value != o.Start.Format("20060102") || p.ICalParameters["VALUE"][0] != "DATE" {
				t.Errorf("%s: all-day DTSTART = %+v; want VALUE=DATE %s", o.Name, p, o.Start.Format("20060102"))
			}
			end, err := e.GetAllDayEndAt()
			if err != nil || end.Format(time.DateOnly) != o.End.Format(time.DateOnly) {
				t.Errorf("%s: DTEND = %v, %v; want %s (the day after the last frozen day)", o.Name, end, err, o.End.Format(time.DateOnly))
			}
			continue
		}
		start, err1 := e.GetStartAt()
		end, err2 := e.GetEndAt()
		if err1 != nil || err2 != nil || !start.Equal(o.Start) || !end.Equal(o.End) {
			t.Errorf("%s: parsed %v – %v (%v, %v); want %v – %v", o.Name, start, end, err1, err2, o.Start, o.End)
		}
		if p := e.GetProperty(ics.ComponentPropertyDtStart); !strings.HasSuffix(p.Value, "Z") {
			t.Errorf("%s: DTSTART %q is not UTC", o.Name, p.Value)
		}
	}
	// The UIDs do not depend on when the feed was made.
	again, err := ics.ParseCalendar(bytes.NewReader(ICS(occ, now.Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range again.Events() {
		if e.Id() != events[i].Id() {
			t.Errorf("event %d: UID %s then %s", i, events[i].Id(), e.Id())
		}
	}
	// A window across midnight and the DST change: Saturday 7 March is not in
	// range, but the asset window must carry its real instants.
	for _, o := range occ {
		if o.Kind == KindAssetWindow && o.End.Sub(o.Start) != 4*time.Hour {
			t.Errorf("asset window %s–%s is not 4h", o.Start, o.End)
		}
	}
}
