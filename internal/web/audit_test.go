package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
)

func auditEntries(n int) []audit.Entry {
	at := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	var out []audit.Entry
	for i := range n {
		out = append(out, audit.Entry{Seq: int64(n - i), At: at.Add(-time.Duration(i) * time.Minute),
			Actor:  audit.Actor{Kind: audit.ActorUser, ID: "u-admin", Name: "admin", Addr: "10.1.2.3"},
			Action: "site.update", ObjectType: "site", ObjectID: fmt.Sprintf("s-%d", i)})
	}
	out[0] = audit.Entry{Seq: int64(n), At: at, Actor: audit.Actor{Kind: audit.ActorUser, ID: "u-op", Name: "operator", Addr: "10.1.2.4"},
		Action: "asset.update", ObjectType: "asset", ObjectID: "a-chem", Reason: "vendor visit",
		Before: json.RawMessage(`{"name":"Chem","criticality":"medium","revision":2}`),
		After:  json.RawMessage(`{"name":"Chem","criticality":"critical","revision":3}`)}
	return out
}

func TestAuditViewer(t *testing.T) {
	e := newEnv(t)
	e.audit.entries = auditEntries(60)
	w := e.get("/audit", auth.RoleAuditor)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := doc.Find("#audit-table tbody tr").Length(); got != auditPageSize {
		t.Errorf("rows = %d; want %d", got, auditPageSize)
	}
	if got := text(doc.Find("#audit-count")); got != "Showing 1–50 of 60 entries, newest first" {
		t.Errorf("count = %q", got)
	}
	row := doc.Find(`#audit-table tbody tr[data-seq="60"]`)
	cells := row.Find("td").Slice(0, 6).Map(func(_ int, s *goquery.Selection) string { return text(s) })
	want := []string{"2026-04-01 09:00:00 UTC", "operator user", "10.1.2.4", "asset.update", "asset a-chem", "vendor visit"}
	if diff := cmp.Diff(want, cells); diff != "" {
		t.Errorf("first row (-want +got):\n%s", diff)
	}
	if href, _ := row.Find(`a[href^="/assets/"]`).Attr("href"); href != "/assets/a-chem" {
		t.Errorf("object link = %q", href)
	}
	details := row.Find("details")
	if got := text(details.Find("summary")); got != "Changed: criticality, revision" {
		t.Errorf("summary = %q", got)
	}
	pres := details.Find("pre")
	if pres.Length() != 2 || !strings.Contains(pres.Eq(1).Text(), `"criticality": "critical"`) {
		t.Errorf("before/after = %q; want indented JSON", pres.Text())
	}
	if next, _ := doc.Find(`.pager a[rel="next"]`).Attr("href"); next != "?offset=50" {
		t.Errorf("next = %q", next)
	}
	if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Audit log" {
		t.Errorf("current nav = %q", cur)
	}
}

func TestAuditViewerFilters(t *testing.T) {
	e := newEnv(t)
	e.audit.entries = auditEntries(5)
	doc := parse(t, e.get("/audit?object_type=asset&actor=operator&action=asset.update&offset=0", auth.RoleApprover))
	want := AuditQuery{ObjectType: "asset", Actor: "operator", Action: "asset.update", Limit: auditPageSize}
	if diff := cmp.Diff(want, e.audit.queries[len(e.audit.queries)-1]); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	for name, want := range map[string]string{"object_type": "asset", "actor": "operator", "action": "asset.update"} {
		if got, _ := doc.Find(`#audit-filters input[name="` + name + `"]`).Attr("value"); got != want {
			t.Errorf("filter %s = %q; want %q", name, got, want)
		}
	}
	if got := doc.Find("#audit-table tbody tr").Length(); got != 1 {
		t.Errorf("rows = %d; want 1", got)
	}
	wantStatus(t, e.get("/audit?offset=-1", auth.RoleAuditor), http.StatusBadRequest)
}

func TestAuditViewerForbidden(t *testing.T) {
	e := newEnv(t)
	for _, r := range []auth.Role{auth.RoleViewer, auth.RoleOperator} {
		wantStatus(t, e.get("/audit", r), http.StatusForbidden)
	}
	if len(e.audit.queries) != 0 {
		t.Errorf("audit log read %d times by roles without %s", len(e.audit.queries), auth.PermAuditRead)
	}
}

func TestChangedFields(t *testing.T) {
	for _, tc := range []struct {
		before, after string
		want          []string
	}{
		{`{"a":1,"b":[1, 2]}`, `{"a":1,"b":[1,2]}`, nil},
		{`{"a":1}`, `{"a":2,"c":true}`, []string{"a", "c"}},
		{`{"a":1,"gone":"x"}`, `{"a":1}`, []string{"gone"}},
		{``, `{"a":1}`, nil},
		{`[1]`, `{"a":1}`, nil},
	} {
		if got := changedFields(json.RawMessage(tc.before), json.RawMessage(tc.after)); !cmp.Equal(got, tc.want) {
			t.Errorf("changedFields(%s, %s) = %v; want %v", tc.before, tc.after, got, tc.want)
		}
	}
}
