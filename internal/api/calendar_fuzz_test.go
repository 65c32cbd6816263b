package api

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// FuzzCalendarRange holds the calendar's range rules for any query a
// subscriber's app or a script may send: either a field error, or a range
// that runs forward and spans at most twelve months.
func FuzzCalendarRange(f *testing.F) {
	for _, seed := range [][2]string{{"", ""}, {"2026-04-01", "2026-10-01"}, {"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2026-05-01", "2026-04-01"}, {"yesterday", ""}, {"", "2027-13-01"}, {"0001-01-01", "9999-12-31"}} {
		f.Add(seed[0], seed[1])
	}
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, to string) {
		q := url.Values{}
		if from != "" {
			q.Set("from", from)
		}
		if to != "" {
			q.Set("to", to)
		}
		r := httptest.NewRequest("GET", "/api/v1/calendar?"+q.Encode(), nil)
		start, end, err := calendarRange(r, now, feedHistory)
		if err != nil {
			return
		}
		if !end.After(start) || end.After(start.AddDate(0, calendarMaxMonths, 0)) {
			t.Fatalf("calendarRange(%q, %q) = %s to %s; want forward and at most %d months", from, to, start, end, calendarMaxMonths)
		}
	})
}

// FuzzParseETag: any If-Match value either names a positive revision or
// is refused.
func FuzzParseETag(f *testing.F) {
	for _, s := range []string{`"3"`, `W/"3"`, `*`, `3`, `""`, `"-1"`, `"0"`, `"99999999999999999999"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := parseETag(s); ok && n <= 0 {
			t.Fatalf("parseETag(%q) = %d, true; want a positive revision", s, n)
		}
	})
}
