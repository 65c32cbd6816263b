package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	ics "github.com/arran4/golang-ical"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestCalendarFeedEndToEnd subscribes to the maintenance calendar the way a
// calendar app does, through the real server: a user makes a feed token
// with their API token, then the feed URL alone — no headers — returns an
// iCalendar document a real parser reads, while the same secret opens no
// other route and revoking it closes the feed.
func TestCalendarFeedEndToEnd(t *testing.T) {
	dsn := storetest.DSN(t, "sqlite")
	key := filepath.Join(t.TempDir(), "audit.key")
	mustCLI(t, dsn, key, "migrate")
	mustCLI(t, dsn, key, "user", "create", "--username", "vic", "--role", "viewer")
	m := tokenLine.FindStringSubmatch(mustCLI(t, dsn, key, "user", "token", "create", "--username", "vic", "--name", "script"))
	if m == nil {
		t.Fatal("user token create printed no token")
	}
	base, _ := startServer(t, dsn, key)
	c := &client{t: t, base: base, http: &http.Client{}, bearer: m[1]}

	var created api.FeedTokenCreated
	c.json("POST", "/api/v1/calendar/tokens", api.FeedTokenRequest{Name: "phone"}, &created, http.StatusCreated)
	anon := &client{t: t, base: base, http: &http.Client{}}
	status, body := anon.do("GET", created.FeedPath, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", created.FeedPath, status, body)
	}
	cal, err := ics.ParseCalendar(bytes.NewReader(body))
	if err != nil || len(cal.Events()) == 0 {
		t.Fatalf("feed: %d events, %v", len(cal.Events()), err)
	}
	if !bytes.Contains(body, []byte("\r\n")) {
		t.Errorf("feed lines do not end in CRLF")
	}
	for _, path := range []string{"/api/v1/changes", "/api/v1/calendar", "/api/v1/me", "/api/v1/assets"} {
		if status, _ := anon.do("GET", path+"?token="+created.Token, "", nil); status != http.StatusUnauthorized {
			t.Errorf("GET %s?token=pwc_… = %d; want 401", path, status)
		}
	}
	feedAsBearer := &client{t: t, base: base, http: &http.Client{}, bearer: created.Token}
	if status, _ := feedAsBearer.do("GET", "/api/v1/calendar.ics", "", nil); status != http.StatusUnauthorized {
		t.Errorf("feed token as bearer on the feed = %d; want 401", status)
	}
	status, _ = c.do("DELETE", "/api/v1/calendar/tokens/"+created.Detail.ID, "", nil)
	if status != http.StatusNoContent {
		t.Fatalf("revoke = %d", status)
	}
	status, body = anon.do("GET", created.FeedPath, "", nil)
	var eb api.ErrorBody
	_ = json.Unmarshal(body, &eb)
	if status != http.StatusUnauthorized || !strings.Contains(eb.Error, "revoked") {
		t.Errorf("feed after revoke = %d %q; want 401", status, eb.Error)
	}
}
