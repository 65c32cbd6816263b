package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	ics "github.com/arran4/golang-ical"
)

// ICS renders occurrences as an iCalendar feed (RFC 5545) that staff can
// subscribe to: one VEVENT per window occurrence or freeze. Timed events
// are written in UTC ("Z"), which every client converts to its viewer's
// zone without needing VTIMEZONE definitions; the local time and zone are
// spelled out in the description. Freezes are all-day events (DATE values,
// DTEND the day after the last frozen day, as RFC 5545 wants). Each UID is
// derived from the entry's kind, name, zone and start, so it is the same in
// every fetch and a client updates rather than duplicates; DTSTAMP is now,
// the time the feed was generated.
func ICS(occurrences []Occurrence, now time.Time) []byte {
	cal := ics.NewCalendarFor("Patchward")
	cal.SetProductId("-//Patchward//Maintenance calendar//EN")
	cal.SetMethod(ics.MethodPublish)
	cal.SetCalscale("GREGORIAN")
	cal.SetName("Patchward maintenance calendar")
	cal.SetXWRCalName("Patchward maintenance calendar")
	cal.SetXWRCalDesc("Maintenance windows, emergency windows and change freezes")
	for _, o := range occurrences {
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
