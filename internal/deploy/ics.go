package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	ics "github.com/arran4/golang-ical"
)

// ICS renders occurrences as an iCalendar feed (RFC 5545); it is
// Feed{Occurrences: occurrences}.ICS(now).
func ICS(occurrences []Occurrence, now time.Time) []byte {
	return Feed{Occurrences: occurrences}.ICS(now)
}

// Feed is what the iCalendar feed publishes: the calendar's windows and
// freezes, and the changes planned in them.
type Feed struct {
	Occurrences []Occurrence
	Changes     []ChangeEntry
	// BaseURL, when set ("https://patchward.example.org"), gives each
	// change event the address of its change page.
	BaseURL string
}

// ICS renders the feed as an iCalendar document (RFC 5545) that staff can
// subscribe to: one VEVENT per window occurrence, freeze and change entry.
// Timed events are written in UTC ("Z"), which every client converts to
// its viewer's zone without needing VTIMEZONE definitions; the local time
// and zone are spelled out in the description. Freezes are all-day events
// (DATE values, DTEND the day after the last frozen day, as RFC 5545
// wants). A window's or freeze's UID is derived from its kind, name, zone
// and start; a change entry's from the change and its place in it
// (ChangeEntry.UID), with the change's revision as SEQUENCE, so a client
// moves the event when the change is rescheduled. Every UID is the same in
// every fetch, so a client updates rather than duplicates; DTSTAMP is now,
// the time the feed was generated.
func (f Feed) ICS(now time.Time) []byte {
	cal := ics.NewCalendarFor("Patchward")
	cal.SetProductId("-//Patchward//Maintenance calendar//EN")
	cal.SetMethod(ics.MethodPublish)
	cal.SetCalscale("GREGORIAN")
	cal.SetName("Patchward maintenance calendar")
	cal.SetXWRCalName("Patchward maintenance calendar")
	cal.SetXWRCalDesc("Maintenance windows, emergency windows, change freezes and the changes planned in them")
	for _, o := range f.Occurrences {
		e := cal.AddEvent(occurrenceUID(o))
		e.SetDtStampTime(now)
		e.SetSummary(summary(o))
		e.AddCategory(strings.ToUpper(string(o.Kind)))
		e.SetTimeTransparency(ics.TransparencyTransparent)
		loc, err := time.LoadLocation(o.Zone)
		if err != nil {
			loc = time.UTC
		}
		if o.AllDay {
			s, en := o.Start.In(loc), o.End.In(loc)
			e.SetAllDayStartAt(time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC))
			e.SetAllDayEndAt(time.Date(en.Year(), en.Month(), en.Day(), 0, 0, 0, 0, time.UTC))
			e.SetDescription(fmt.Sprintf("%s\n\nNo routine change runs from %s to %s inclusive (%s); approved emergency changes may.",
				o.Description, s.Format("Mon 2 Jan 2006"), en.AddDate(0, 0, -1).Format("Mon 2 Jan 2006"), o.Zone))
			continue
		}
		e.SetStartAt(o.Start)
		e.SetEndAt(o.End)
		desc := fmt.Sprintf("%s\n\nLocal time: %s – %s (%s).", o.Description,
			o.Start.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), o.End.In(loc).Format("Mon 2 Jan 15:04 MST"), o.Zone)
		if o.Assets > 0 {
			desc += fmt.Sprintf("\nAssets whose routine changes run in this window: %d.", o.Assets)
		}
		e.SetDescription(strings.TrimSpace(desc))
	}
	for _, ce := range f.Changes {
		addChange(cal, ce, now, f.BaseURL)
	}
	// RFC 5545 §3.1 wants CRLF; the library's default is a bare LF.
	return []byte(cal.Serialize(ics.WithNewLine("\r\n")))
}

func summary(o Occurrence) string {
	switch o.Kind {
	case KindFreeze:
		return "Change freeze: " + o.Name
	case KindEmergency:
		return "Emergency window: " + o.Name
	case KindAssetWindow:
		return fmt.Sprintf("Asset window %s (%d assets)", o.Name, o.Assets)
	}
	if o.Baseline {
		return "Baseline window: " + o.Name
	}
	return "Maintenance window: " + o.Name
}

// occurrenceUID names an entry by what it is and when it starts, not by
// when the feed was made, so re-fetching the feed updates events in place.
func occurrenceUID(o Occurrence) string {
	h := sha256.Sum256([]byte(strings.Join([]string{string(o.Kind), o.Name, o.Zone, o.Start.UTC().Format(time.RFC3339)}, "\x00")))
	return hex.EncodeToString(h[:16]) + "@patchward"
}

// addChange writes one change entry as an event: the change's title, its
// type (emergency first, so it stands out) and state, where it runs and
// the link to its page.
func addChange(cal *ics.Calendar, ce ChangeEntry, now time.Time, baseURL string) {
	e := cal.AddEvent(ce.UID())
	e.SetDtStampTime(now)
	e.SetSequence(ce.Revision)
	e.SetSummary(changeSummary(ce))
	e.AddCategory("CHANGE")
	if ce.Emergency() {
		e.AddCategory("EMERGENCY")
		e.SetPriority(1)
	}
	e.SetTimeTransparency(ics.TransparencyTransparent)
	e.SetStartAt(ce.Start)
	e.SetEndAt(ce.End)
	loc, err := time.LoadLocation(ce.Zone)
	if err != nil {
		loc = time.UTC
	}
	page := "/changes/" + ce.ChangeID
	if baseURL != "" {
		page = strings.TrimSuffix(baseURL, "/") + page
		e.SetURL(page)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s change %s, %s.", ce.Type, ce.ChangeID, strings.ReplaceAll(string(ce.State), "_", " "))
	switch {
	case ce.Part == PartWave:
		fmt.Fprintf(&b, "\nRollout wave %d (ring %s, %s): %d asset(s).", ce.Index+1, ce.Ring, ce.WaveState, ce.Assets)
	case ce.Immediate:
		b.WriteString("\nPlanned to run as soon as it is started (emergency, immediate).")
	case ce.Window != "":
		fmt.Fprintf(&b, "\nPlanned window %d: the policy window %s.", ce.Index+1, ce.Window)
	default:
		fmt.Fprintf(&b, "\nPlanned window %d.", ce.Index+1)
	}
	fmt.Fprintf(&b, "\nLocal time: %s – %s (%s).\n%s", ce.Start.In(loc).Format("Mon 2 Jan 2006 15:04 MST"),
		ce.End.In(loc).Format("Mon 2 Jan 15:04 MST"), ce.Zone, page)
	e.SetDescription(b.String())
}

func changeSummary(ce ChangeEntry) string {
	what := "Change"
	if ce.Emergency() {
		what = "Emergency change"
	}
	if ce.Part == PartWave {
		return fmt.Sprintf("%s: %s (wave %d, %s)", what, ce.Title, ce.Index+1, ce.Ring)
	}
	return what + ": " + ce.Title
}
