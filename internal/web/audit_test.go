package web

import (
	"context"
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
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
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
	// Without a policy service there is no site zone: times are in UTC.
	want := []string{"Wed 1 Apr 2026, 09:00 UTC", "operator user", "10.1.2.4", "asset.update", "asset a-chem", "vendor visit"}
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

// applyPolicy puts a new version of the shipped policy in force, with each
// old text replaced by the new one that follows it, as an admin's edit in
// the policy editor would.
func applyPolicy(t *testing.T, e *env, oldNew ...string) {
	t.Helper()
	src := string(policy.DefaultSource())
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(src, oldNew[i]) {
			t.Fatalf("the shipped policy has no %q to replace", oldNew[i])
		}
		src = strings.Replace(src, oldNew[i], oldNew[i+1], 1)
	}
	if _, err := e.policy.Apply(context.Background(), audit.Actor{Kind: audit.ActorUser, Name: "admin"}, []byte(src), "test"); err != nil {
		t.Fatalf("apply policy: %v", err)
	}
}

// shown is how a page shows one instant: the <time> element's text, its
// machine-readable datetime and its UTC tooltip.
type shown struct{ Text, ISO, UTC string }

func shownTime(s *goquery.Selection) shown {
	tm := s.Find("time")
	return shown{Text: text(tm), ISO: tm.AttrOr("datetime", ""), UTC: tm.AttrOr("title", "")}
}

// TestTimesInSiteZone: the audit log and a finding's lifecycle show times
// in the policy's zone (a site that names its own keeps it), with the
// instant in UTC alongside, and follow a newly applied policy at once.
func TestTimesInSiteZone(t *testing.T) {
	e := newRiskEnv(t)
	// The US moved to daylight time at 08:00 UTC on 8 March 2026.
	before, after := time.Date(2026, 3, 7, 8, 30, 0, 0, time.UTC), time.Date(2026, 3, 8, 8, 30, 0, 0, time.UTC)
	admin := audit.Actor{Kind: audit.ActorUser, ID: "u-admin", Name: "admin"}
	e.audit.entries = []audit.Entry{
		{Seq: 2, At: after, Actor: admin, Action: "site.update", ObjectType: "site", ObjectID: "s-clinic"},
		{Seq: 1, At: before, Actor: admin, Action: "site.create", ObjectType: "site", ObjectID: "s-clinic"},
	}
	// On the clinic, whose site names no zone of its own.
	e.findings.findings = append(e.findings.findings, match.Finding{ID: "f-dst", AssetID: "a-xp", Ecosystem: "generic",
		Package: "dicom-viewer", Version: "4.2", VulnID: "CVE-2025-0002", Source: match.SourceNVDCPE, State: match.StateFixed,
		FirstSeen: before, LastSeen: after, FixedAt: &after})
	beforeISO, afterISO := shown{ISO: "2026-03-07T08:30:00Z", UTC: "2026-03-07 08:30:00 UTC"}, shown{ISO: "2026-03-08T08:30:00Z", UTC: "2026-03-08 08:30:00 UTC"}
	at := func(iso shown, text string) shown { iso.Text = text; return iso }

	for _, tc := range []struct {
		name  string
		apply []string // policy edits applied first, none for the shipped policy
		zone  string
		// before and after are how the two instants show.
		before, after shown
	}{
		{name: "shipped policy, America/Chicago", zone: "America/Chicago",
			before: at(beforeISO, "Sat 7 Mar 2026, 02:30 CST"), after: at(afterISO, "Sun 8 Mar 2026, 03:30 CDT")},
		{name: "after applying Europe/Berlin", apply: []string{"time_zone: America/Chicago", "time_zone: Europe/Berlin"}, zone: "Europe/Berlin",
			before: at(beforeISO, "Sat 7 Mar 2026, 09:30 CET"), after: at(afterISO, "Sun 8 Mar 2026, 09:30 CET")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.apply != nil {
				applyPolicy(t, e, tc.apply...)
			}
			doc := parse(t, e.get("/audit", auth.RoleAuditor))
			for seq, want := range map[string]shown{"1": tc.before, "2": tc.after} {
				got := shownTime(doc.Find(`#audit-table tr[data-seq="` + seq + `"] td`).First())
				if got != want {
					t.Errorf("audit entry %s = %+v; want %+v", seq, got, want)
				}
			}
			if got, want := text(doc.Find("#audit-zone")), "Times are shown in "+tc.zone+"; hover over one for UTC."; got != want {
				t.Errorf("audit zone note = %q; want %q", got, want)
			}

			doc = parse(t, e.get("/findings/f-dst", auth.RoleViewer))
			dd := func(term string) *goquery.Selection {
				return doc.Find("#lifecycle dt").FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == term }).Next()
			}
			for term, want := range map[string]shown{"First seen": tc.before, "Last seen": tc.after, "Fixed at": tc.after} {
				if got := shownTime(dd(term)); got != want {
					t.Errorf("finding lifecycle %s = %+v; want %+v", term, got, want)
				}
			}
			if got := text(doc.Find("h1 + .tags .sub time")); got != tc.after.Text {
				t.Errorf("fixed badge date = %q; want %q", got, tc.after.Text)
			}
			if got, want := text(doc.Find("#lifecycle-zone")), "Times are shown in "+tc.zone+"; hover over one for UTC."; got != want {
				t.Errorf("lifecycle zone note = %q; want %q", got, want)
			}

			// The laboratory's site names America/Denver: the policy's
			// zone does not move it.
			doc = parse(t, e.get("/findings/f-heme", auth.RoleViewer))
			if got := text(doc.Find("#lifecycle dd time").First()); got != "Wed 4 Mar 2026, 01:00 MST" {
				t.Errorf("lab finding first seen = %q; want it in the site's zone", got)
			}
		})
	}
}

// TestAuditViewerRelatedObjects: several object_id values ask about related
// objects at once (a change and its rollout), and the filter form keeps
// each one so refining the filter does not drop any.
func TestAuditViewerRelatedObjects(t *testing.T) {
	e := newEnv(t)
	e.audit.entries = auditEntries(5)
	doc := parse(t, e.get("/audit?object_id=a-chem&object_id=s-3", auth.RoleAuditor))
	want := AuditQuery{ObjectIDs: []string{"a-chem", "s-3"}, Limit: auditPageSize}
	if diff := cmp.Diff(want, e.audit.queries[len(e.audit.queries)-1]); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if got := doc.Find("#audit-table tbody tr").Length(); got != 2 {
		t.Errorf("rows = %d; want the entries of both objects", got)
	}
	var kept []string
	doc.Find(`#audit-filters input[name="object_id"]`).Each(func(_ int, s *goquery.Selection) { kept = append(kept, s.AttrOr("value", "")) })
	if diff := cmp.Diff([]string{"a-chem", "s-3"}, kept); diff != "" {
		t.Errorf("filter form object ids (-want +got):\n%s", diff)
	}
}
