package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// anon sends a request with no Authorization header.
func (e *changeEnv) anon(method, path string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, api.Prefix+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func parseICS(t *testing.T, what string, body []byte) *ics.Calendar {
	t.Helper()
	cal, err := ics.ParseCalendar(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: parse iCalendar: %v\n%s", what, err, body)
	}
	for _, ev := range cal.Events() {
		if ev.GetProperty(ics.ComponentPropertyDtstamp) == nil || ev.GetProperty(ics.ComponentPropertyUniqueId) == nil {
			t.Errorf("%s: event %s without DTSTAMP or UID", what, ev.Id())
		}
	}
	return cal
}

// TestCalendarAPI reads the rolling calendar as JSON and as iCalendar on
// each engine: policy windows, emergency windows, freezes, assets' own
// windows aggregated, an asset whose window cannot be read named rather
// than moved, and the range rules.
func TestCalendarAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		ctx := context.Background()
		for _, a := range []inventory.Asset{
			{Name: "APP-01", Type: inventory.TypeServer, MaintenanceWindow: "sun-0200-0500"},
			{Name: "APP-02", Type: inventory.TypeServer, MaintenanceWindow: "sun-0200-0500"},
			{Name: "ODD-01", Type: inventory.TypeServer, MaintenanceWindow: "whenever"},
			{Name: "ODD-02", Type: inventory.TypeServer, MaintenanceWindow: "whenever"},
		} {
			if _, err := e.a.Inventory.CreateAsset(ctx, audit.System, a); err != nil {
				t.Fatal(err)
			}
		}
		var cal api.CalendarResponse
		e.do("vic", "GET", "/calendar", nil, http.StatusOK, &cal)
		if !cal.From.Equal(e.clock.Now()) || !cal.To.Equal(e.clock.Now().AddDate(0, 6, 0)) || cal.Zone != "America/Chicago" {
			t.Errorf("default range = %s to %s in %s; want now to six months on, in the policy's zone", cal.From, cal.To, cal.Zone)
		}
		kinds := map[string]int{}
		for _, en := range cal.Entries {
			kinds[en.Kind]++
			switch {
			case en.Kind == "asset-window" && (en.Name != "sun-0200-0500" || en.Assets != 2):
				t.Errorf("asset window entry %+v; want sun-0200-0500 shared by 2 assets", en)
			case en.Name == "monthly-baseline" && !en.Baseline:
				t.Errorf("monthly-baseline entry not marked baseline: %+v", en)
			}
		}
		if kinds["window"] == 0 || kinds["emergency"] == 0 || kinds["asset-window"] < 20 {
			t.Errorf("entry kinds = %v; want policy, emergency and ~26 weekly asset windows", kinds)
		}
		if len(cal.Skipped) != 2 {
			t.Errorf("skipped assets = %+v; want ODD-01 and ODD-02", cal.Skipped)
		}
		for _, sk := range cal.Skipped {
			if !strings.HasPrefix(sk.Name, "ODD-") || !strings.Contains(sk.Problem, sk.ID) || !strings.Contains(sk.Problem, "whenever") {
				t.Errorf("skipped asset %+v; want its own ID and its unreadable window named", sk)
			}
		}

		// The feed reaches a month back, so subscribers keep the recent
		// past, and six months ahead.
		rec := e.call("vic", "GET", "/calendar.ics", "", nil)
		var past, far int
		for _, ev := range parseICS(t, "default feed", rec.Body.Bytes()).Events() {
			start, err := ev.GetStartAt()
			if err != nil {
				continue
			}
			if start.Before(e.clock.Now().AddDate(0, 0, -20)) {
				past++
			}
			if start.After(e.clock.Now().AddDate(0, 5, 20)) {
				far++
			}
		}
		if past == 0 || far == 0 {
			t.Errorf("default feed: %d events 20+ days back, %d 5⅔+ months ahead; want both", past, far)
		}

		// Freezes, as all-day entries, in a range that holds them.
		const rng = "from=2026-04-01&to=2026-10-01"
		e.do("aud", "GET", "/calendar?"+rng, nil, http.StatusOK, &cal)
		freezes := map[string]bool{}
		for _, en := range cal.Entries {
			if en.Kind == "freeze" {
				freezes[en.Name] = en.AllDay
			}
		}
		if !freezes["proficiency-testing-q2"] || !freezes["cap-inspection"] {
			t.Errorf("freezes = %v; want both policy freezes, all day", freezes)
		}

		// The same range as iCalendar: one event per entry.
		rec = e.call("vic", "GET", "/calendar.ics?"+rng, "", nil)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/calendar") {
			t.Fatalf("GET /calendar.ics = %d %s", rec.Code, rec.Header().Get("Content-Type"))
		}
		feed := parseICS(t, "calendar.ics", rec.Body.Bytes())
		if got := len(feed.Events()); got != len(cal.Entries) {
			t.Errorf("iCalendar events = %d; want %d, one per calendar entry", got, len(cal.Entries))
		}
		summaries := rec.Body.String()
		for _, want := range []string{"Change freeze: cap-inspection", "Baseline window: monthly-baseline", "Emergency window: emergency", "Asset window sun-0200-0500 (2 assets)"} {
			if !strings.Contains(summaries, want) {
				t.Errorf("iCalendar feed lacks %q", want)
			}
		}

		for _, q := range []string{"from=2026-01-01&to=2027-06-01", "from=2026-05-01&to=2026-04-01", "from=yesterday", "to=2026-13-01"} {
			e.do("vic", "GET", "/calendar?"+q, nil, http.StatusBadRequest, nil)
			if rec := e.call("vic", "GET", "/calendar.ics?"+q, "", nil); rec.Code != http.StatusBadRequest {
				t.Errorf("GET /calendar.ics?%s = %d; want 400", q, rec.Code)
			}
		}
		if rec := e.anon("GET", "/calendar.ics"); rec.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET /calendar.ics = %d; want 401", rec.Code)
		}
	})
}

// TestCalendarAPIChanges puts a scheduled change on the calendar, in
// JSON and in the iCalendar feed, with the same UID in every fetch and a
// link to its page; a draft stays off.
func TestCalendarAPIChanges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 12, 5, 23, 30, 0, 0, berlin)
		end := start.Add(90 * time.Minute)
		var c change.Change
		e.do("olga", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &c)
		r, _ := e.act("olga", c, "submit", nil, http.StatusOK)
		r, _ = e.act("bob", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("root", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("olga", r.Change, "schedule", map[string]any{"planned_windows": []map[string]any{
			{"start": start.Format(time.RFC3339), "end": end.Format(time.RFC3339), "time_zone": "Europe/Berlin"}}}, http.StatusOK)
		if r.Change.State != change.Scheduled {
			t.Fatalf("change state = %s; want scheduled", r.Change.State)
		}
		c = r.Change
		var draft change.Change
		e.do("ann", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &draft)

		const rng = "from=2026-12-01&to=2027-01-01"
		var cal api.CalendarResponse
		e.do("vic", "GET", "/calendar?"+rng, nil, http.StatusOK, &cal)
		uid := "change-" + c.ID + "-window-0@patchward"
		want := []api.CalendarChange{{UID: uid, ChangeID: c.ID, Title: c.Title, Type: "normal", State: "scheduled", Part: "planned",
			Zone: "Europe/Berlin", Start: start.UTC(), End: end.UTC(), Page: "/changes/" + c.ID}}
		for i := range cal.Changes {
			cal.Changes[i].Start, cal.Changes[i].End = cal.Changes[i].Start.UTC(), cal.Changes[i].End.UTC()
		}
		if diff := cmp.Diff(want, cal.Changes); diff != "" {
			t.Errorf("calendar changes (-want +got):\n%s", diff)
		}
		// Outside the range, none.
		e.do("vic", "GET", "/calendar?from=2027-01-01&to=2027-02-01", nil, http.StatusOK, &cal)
		if len(cal.Changes) != 0 {
			t.Errorf("changes in January = %+v; want none", cal.Changes)
		}

		// The feed: the change's window as an event, the same UID however
		// often and whenever it is fetched.
		event := func() *ics.VEvent {
			t.Helper()
			rec := e.call("vic", "GET", "/calendar.ics?"+rng, "", nil)
			var found *ics.VEvent
			for _, ev := range parseICS(t, "feed with a change", rec.Body.Bytes()).Events() {
				if strings.HasPrefix(ev.Id(), "change-") {
					if found != nil || ev.Id() != uid {
						t.Errorf("change event %s; want only %s", ev.Id(), uid)
					}
					found = ev
				}
			}
			if found == nil {
				t.Fatalf("no change event in the feed")
			}
			return found
		}
		ev := event()
		if got, err := ev.GetStartAt(); err != nil || !got.Equal(start) {
			t.Errorf("change event starts %v (%v); want %v", got, err, start)
		}
		for prop, want := range map[ics.ComponentProperty]string{
			ics.ComponentPropertySummary: "Change: " + c.Title,
			ics.ComponentPropertyUrl:     "http://example.com/changes/" + c.ID,
		} {
			if p := ev.GetProperty(prop); p == nil || p.Value != want {
				t.Errorf("change event %s = %+v; want %q", prop, p, want)
			}
		}
		e.clock.Advance(time.Hour)
		if again := event(); again.Id() != ev.Id() {
			t.Errorf("UID %s, an hour later %s", ev.Id(), again.Id())
		}
	})
}

// TestCalendarFeedToken proves the feed token's narrow reach: it opens the
// iCalendar feed and nothing else, in the query string or as a bearer
// token; an API token does not pass as one; revoking it ends the feed; and
// creating and revoking are audited.
func TestCalendarFeedToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		var created api.FeedTokenCreated
		e.do("vic", "POST", "/calendar/tokens", api.FeedTokenRequest{Name: "Outlook on the lab PC"}, http.StatusCreated, &created)
		tok := created.Token
		if !strings.HasPrefix(tok, "pwc_") || created.FeedPath != api.Prefix+"/calendar.ics?token="+tok || created.Detail.ID == "" {
			t.Fatalf("created feed token = %+v", created)
		}
		e.do("vic", "POST", "/calendar/tokens", api.FeedTokenRequest{}, http.StatusBadRequest, nil)

		rec := e.anon("GET", "/calendar.ics?token="+tok)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /calendar.ics?token=pwc_… = %d %s; want 200", rec.Code, rec.Body)
		}
		feed := parseICS(t, "feed by token", rec.Body.Bytes())
		if len(feed.Events()) == 0 {
			t.Errorf("feed by token has no events")
		}

		// Nowhere else, neither in the query nor as a bearer token.
		for _, path := range []string{"/calendar", "/calendar/tokens", "/changes", "/assets", "/me", "/worklist", "/policy"} {
			if rec := e.anon("GET", path+"?token="+tok); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s?token=pwc_… = %d; want 401", path, rec.Code)
			}
			if rec := e.anon("GET", path, "Authorization", "Bearer "+tok); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s with the feed token as bearer = %d; want 401", path, rec.Code)
			}
		}
		if rec := e.anon("GET", "/calendar.ics", "Authorization", "Bearer "+tok); rec.Code != http.StatusUnauthorized {
			t.Errorf("GET /calendar.ics with the feed token as bearer = %d; want 401", rec.Code)
		}
		if rec := e.anon("POST", "/calendar/tokens?token="+tok); rec.Code != http.StatusUnauthorized {
			t.Errorf("POST /calendar/tokens?token=pwc_… = %d; want 401", rec.Code)
		}
		// An API token is not a feed token, nor is junk.
		for _, bad := range []string{e.tokens["vic"], "pwc_junk", "pwc_" + strings.Repeat("A", 43)} {
			if rec := e.anon("GET", "/calendar.ics?token="+bad); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET /calendar.ics?token=%.8s… = %d; want 401", bad, rec.Code)
			}
		}
		// The feed token's name marker is reserved.
		e.do("vic", "POST", "/me/tokens", map[string]any{"name": "calendar feed: sneaky"}, http.StatusBadRequest, nil)

		var list []map[string]any
		e.do("vic", "GET", "/calendar/tokens", nil, http.StatusOK, &list)
		if len(list) != 1 || list[0]["id"] != created.Detail.ID {
			t.Errorf("vic's feed tokens = %v; want the one created", list)
		}
		e.do("bob", "GET", "/calendar/tokens", nil, http.StatusOK, &list)
		if len(list) != 0 {
			t.Errorf("bob's feed tokens = %v; want none", list)
		}
		e.do("bob", "DELETE", "/calendar/tokens/"+created.Detail.ID, nil, http.StatusNotFound, nil)
		// An API token is not revoked through the feed token route.
		var mine []map[string]any
		e.do("vic", "GET", "/me/tokens", nil, http.StatusOK, &mine)
		for _, m := range mine {
			if m["id"] != created.Detail.ID {
				e.do("vic", "DELETE", "/calendar/tokens/"+m["id"].(string), nil, http.StatusNotFound, nil)
			}
		}

		e.do("vic", "DELETE", "/calendar/tokens/"+created.Detail.ID, nil, http.StatusNoContent, nil)
		if rec := e.anon("GET", "/calendar.ics?token="+tok); rec.Code != http.StatusUnauthorized {
			t.Errorf("feed with a revoked token = %d; want 401", rec.Code)
		}
		e.do("vic", "DELETE", "/calendar/tokens/"+created.Detail.ID, nil, http.StatusConflict, nil)

		page, err := audit.NewService(db.Audit(), nil, nil).List(context.Background(), audit.Query{ObjectID: created.Detail.ID, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, en := range page.Entries {
			actions = append(actions, en.Action)
			if strings.Contains(string(en.After), tok[4:]) {
				t.Errorf("audit entry %s carries the token's secret", en.Action)
			}
		}
		if got := strings.Join(actions, ","); !strings.Contains(got, "calendar_token.create") || !strings.Contains(got, "calendar_token.revoke") {
			t.Errorf("audit actions on the feed token = %s; want create and revoke", got)
		}
	})
}
