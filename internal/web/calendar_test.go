package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
)

// TestCalendarPage renders the rolling calendar of the built-in policy
// from the fixed clock (20 March 2026): three months, the baseline window
// two days after Patch Tuesday at 22:00 site time, the CAP proficiency
// testing freeze in May, the front desk PC's own weekly window, and the
// kiosk whose window cannot be read.
func TestCalendarPage(t *testing.T) {
	e := newChangeEnv(t)
	w := e.get("/calendar", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	months := doc.Find("section.month h2").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"March 2026", "April 2026", "May 2026"}, months); diff != "" {
		t.Errorf("months (-want +got):\n%s", diff)
	}
	// Weeks start on Monday: 1 March 2026 is a Sunday.
	first := doc.Find("#month-2026-03 tbody tr").First().Find("td")
	if got := first.First().AttrOr("data-date", ""); got != "2026-02-23" {
		t.Errorf("first cell = %q", got)
	}
	if !doc.Find(`#month-2026-03 td[data-date="2026-03-20"]`).HasClass("today") {
		t.Error("today not marked")
	}
	// Patch Tuesday is 10 March; the baseline window opens on the 12th, in
	// the calendar's zone and again in the lab's (Denver).
	base := doc.Find(`#month-2026-03 td[data-date="2026-03-12"] .cal-entry.baseline`).Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"22:00–04:00 CDT monthly-baseline", "22:00–04:00 MDT monthly-baseline"}, base); diff != "" {
		t.Errorf("baseline entries (-want +got):\n%s", diff)
	}
	for _, d := range []string{"2026-05-04", "2026-05-15"} {
		cell := doc.Find(`td[data-date="` + d + `"]`)
		if !cell.HasClass("frozen") || !strings.Contains(text(cell), "Freeze: proficiency-testing-q2") {
			t.Errorf("%s not frozen: %q", d, text(cell))
		}
	}
	if doc.Find(`td[data-date="2026-05-16"]`).HasClass("frozen") {
		t.Error("16 May frozen")
	}
	// The PC's own weekly window, Sundays 02:00–05:00 Chicago time.
	if got := text(doc.Find(`td[data-date="2026-03-22"] .cal-entry[data-kind="asset-window"]`)); got != "02:00–05:00 CDT sun-0200-0500" {
		t.Errorf("asset window = %q", got)
	}
	// Emergency windows only when asked for.
	if n := doc.Find(`.cal-entry[data-kind="emergency"]`).Length(); n != 0 {
		t.Errorf("emergency entries shown by default: %d", n)
	}
	if got := text(doc.Find("#window-problems")); !strings.Contains(got, `Old kiosk: maintenance window "whenever"`) {
		t.Errorf("window problems = %q", got)
	}
	agenda := doc.Find(`#agenda tr[data-kind="freeze"]`)
	if agenda.Length() != 1 || !strings.Contains(text(agenda), "Mon 4 May 2026 – Fri 15 May 2026") {
		t.Errorf("agenda freeze = %q", text(agenda))
	}
	if got := text(doc.Find("#feed-url")); !strings.Contains(got, "/api/v1/calendar.ics?token=") {
		t.Errorf("feed url = %q", got)
	}

	doc = parse(t, e.get("/calendar?months=6&emergency=show", auth.RoleAuditor))
	if n := doc.Find("section.month").Length(); n != 6 {
		t.Errorf("months shown = %d; want 6", n)
	}
	if n := doc.Find(`td[data-date="2026-04-01"] .cal-entry[data-kind="emergency"]`).Length(); n == 0 {
		t.Error("emergency window not shown when asked")
	}
	w = e.get("/calendar?months=9", auth.RoleViewer)
	wantStatus(t, w, http.StatusBadRequest)

	// A personal feed link, made by the page's form and shown once.
	doc = parse(t, e.get("/calendar", auth.RoleViewer))
	vals := formValues(doc.Find("#feed-form"))
	vals.Set("name", "Ward phone")
	w = e.post("/calendar/feed", auth.RoleViewer, vals)
	wantStatus(t, w, http.StatusOK)
	if got := text(parse(t, w).Find("#new-feed")); got != "http://example.com/api/v1/calendar.ics?token=pwc_secret-1" {
		t.Errorf("new feed link = %q", got)
	}
	if diff := cmp.Diff([]string{"u-viewer Ward phone"}, e.feeds.made); diff != "" {
		t.Errorf("feed tokens made (-want +got):\n%s", diff)
	}
}

// fakeFeedTokens makes numbered feed token secrets.
type fakeFeedTokens struct {
	mu   sync.Mutex
	made []string // "userID name"
}

func (f *fakeFeedTokens) CreateFeedToken(_ context.Context, _ audit.Actor, userID, name string) (string, auth.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.made = append(f.made, userID+" "+name)
	return fmt.Sprintf("pwc_secret-%d", len(f.made)), auth.Token{ID: "t1", UserID: userID, Name: name}, nil
}
