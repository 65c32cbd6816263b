package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/risk"
)

func TestWorklistDefault(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/worklist", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	if diff := cmp.Diff(risk.WorklistFilter{Limit: worklistPageSize}, e.risk.filters[len(e.risk.filters)-1]); diff != "" {
		t.Errorf("list filter (-want +got):\n%s", diff)
	}
	ids := doc.Find("#worklist-table tbody tr").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-finding-id", "") })
	if diff := cmp.Diff([]string{"f-xz", "f-ssl", "f-gone", "f-awaiting"}, ids); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	for _, c := range []struct{ sel, want string }{
		{"#count-breached", "1 breached"},
		{"#count-due-soon", "1 due soon"},
		{"#worklist-count", "Showing 1–4 of 4 findings, highest score first"},
	} {
		if got := text(doc.Find(c.sel)); got != c.want {
			t.Errorf("%s = %q; want %q", c.sel, got, c.want)
		}
	}
	// A vendor fix without a version reads as a fix, with the vendor's words.
	ssl := doc.Find(`tr[data-finding-id="f-ssl"] td.package .fix-note`)
	if got := text(ssl); got != "vendor fix" || !strings.Contains(ssl.AttrOr("title", ""), "service portal") {
		t.Errorf("f-ssl fix = %q (title %q); want \"vendor fix\" with the vendor's note", got, ssl.AttrOr("title", ""))
	}
	if got := text(doc.Find(`tr[data-finding-id="f-awaiting"] td.package .muted`)); got != "no fix yet" {
		t.Errorf("f-awaiting fix = %q; want no fix yet", got)
	}
	if href := doc.Find("#count-breached").AttrOr("href", ""); href != "/worklist?sla=breached" {
		t.Errorf("breached link = %q", href)
	}

	// Every cell of the top row; the due date is in the lab's zone.
	xz := doc.Find(`tr[data-finding-id="f-xz"]`)
	want := []string{"1", "92.5", "Critical", "Wed 18 Mar 2026, 07:00 MDT 2 days overdue", "Breached", "Chemistry analyzer",
		"xz-utils 5.4.1-0.2 → 5.4.1-1", "CVE-2024-3094 KEV", "Why"}
	if diff := cmp.Diff(want, rowCells(xz)); diff != "" {
		t.Errorf("top row (-want +got):\n%s", diff)
	}
	for sel, want := range map[string]string{
		"td.due time":                       "2026-03-18T13:00:00Z",
		`a[href="/assets/a-chem"]`:          "",
		`a[href="/findings/f-xz#priority"]`: "",
		".badge.sla.sla-breached":           "",
		".badge.tier.t-critical":            "",
		".badge.kev":                        "",
	} {
		s := xz.Find(sel)
		if s.Length() != 1 {
			t.Errorf("top row has no %s", sel)
		} else if want != "" && s.AttrOr("datetime", "") != want {
			t.Errorf("%s datetime = %q; want %q", sel, s.AttrOr("datetime", ""), want)
		}
	}
	for id, want := range map[string]string{
		"f-ssl":      "Sat 21 Mar 2026, 15:00 MDT in 30 hours",
		"f-gone":     "Thu 9 Apr 2026, 10:00 CDT in 20 days", // no site: the organisation's zone
		"f-awaiting": "clock starts when a fix is available",
	} {
		if got := text(doc.Find(`tr[data-finding-id="` + id + `"] td.due`)); got != want {
			t.Errorf("%s due = %q; want %q", id, got, want)
		}
	}
	if got := text(doc.Find(`tr[data-finding-id="f-ssl"] td.package`)); got != "openssl 1.1.1k → vendor fix" {
		t.Errorf("vendor-fix package cell = %q", got)
	}
	if got := text(doc.Find(`tr[data-finding-id="f-gone"] td.asset`)); got != "a-deleted" {
		t.Errorf("deleted asset = %q; want its ID", got)
	}
	// Every filter control has a label; the nav starts with the worklist.
	doc.Find("#worklist-filters input:not([type=hidden]), #worklist-filters select").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if id == "" || doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("filter control %q has no label", id)
		}
	})
	nav := doc.Find("nav[aria-label=Main] a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"Worklist", "Assets", "Findings", "Advisories", "Feeds", "Exceptions", "Calendar", "Policy"}, nav); diff != "" {
		t.Errorf("viewer nav (-want +got):\n%s", diff)
	}
	if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Worklist" {
		t.Errorf("current nav = %q", cur)
	}
	// The tier options are the policy's.
	tiers := doc.Find(`#f-tier option`).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
	if diff := cmp.Diff([]string{"", "critical", "high", "medium", "low"}, tiers); diff != "" {
		t.Errorf("tier options (-want +got):\n%s", diff)
	}
}

func TestWorklistFiltersAndSort(t *testing.T) {
	e := newRiskEnv(t)
	target := "/worklist?sla=due_soon&tier=high&site=s-lab&asset=a-chem&vuln=CVE-2023-0286&sort=due&limit=10"
	doc := parse(t, e.get(target, auth.RoleOperator))
	want := risk.WorklistFilter{SLA: risk.SLADueSoon, Tier: "high", SiteID: "s-lab", AssetID: "a-chem", VulnID: "CVE-2023-0286", Sort: "due", Limit: 10}
	if diff := cmp.Diff(want, e.risk.filters[len(e.risk.filters)-1]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	// The counts cover the same scope, whatever the SLA filter.
	breached := e.risk.filters[0]
	if breached.SLA != risk.SLABreached || breached.Tier != "high" || breached.SiteID != "s-lab" || breached.Sort != "" {
		t.Errorf("breached count filter = %+v", breached)
	}
	got := formValues(doc.Find("#worklist-filters"))
	wantForm := url.Values{"sla": {"due_soon"}, "tier": {"high"}, "site": {"s-lab"}, "asset": {"a-chem"},
		"vuln": {"CVE-2023-0286"}, "sort": {"due"}, "limit": {"10"}}
	if diff := cmp.Diff(wantForm, got); diff != "" {
		t.Errorf("form would submit (-want +got):\n%s", diff)
	}
	if href := doc.Find("#count-breached").AttrOr("href", ""); href != "/worklist?asset=a-chem&limit=10&site=s-lab&sla=breached&sort=due&tier=high&vuln=CVE-2023-0286" {
		t.Errorf("breached link = %q; want the same scope", href)
	}
	if got := text(doc.Find("#asset-filter")); got != "On asset Chemistry analyzer only." {
		t.Errorf("asset note = %q", got)
	}
	if got := text(doc.Find("#worklist-count")); got != "Showing 1–1 of 1 finding, soonest due first" {
		t.Errorf("count = %q", got)
	}

	// Sorting by due date puts the overdue first and the clockless last.
	doc = parse(t, e.get("/worklist?sort=due", auth.RoleViewer))
	ids := doc.Find("#worklist-table tbody tr").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-finding-id", "") })
	if diff := cmp.Diff([]string{"f-xz", "f-ssl", "f-gone", "f-awaiting"}, ids); diff != "" {
		t.Errorf("due order (-want +got):\n%s", diff)
	}

	// Excepted findings are listed on request, with a stopped clock.
	doc = parse(t, e.get("/worklist?sla=excepted", auth.RoleViewer))
	row := doc.Find(`tr[data-finding-id="f-exc"]`)
	if row.Length() != 1 || text(row.Find("td.sla")) != "Excepted" {
		t.Fatalf("excepted row missing or mislabelled: %q", text(row))
	}
	if got := text(row.Find("td.due .sub")); got != "clock stopped by an exception" {
		t.Errorf("excepted due note = %q", got)
	}
}

func TestWorklistPaging(t *testing.T) {
	e := newRiskEnv(t)
	doc := parse(t, e.get("/worklist?limit=2", auth.RoleViewer))
	next := doc.Find(`.pager a[rel="next"]`).AttrOr("href", "")
	if next != "?limit=2&offset=2" {
		t.Fatalf("next = %q", next)
	}
	doc = parse(t, e.get("/worklist"+next, auth.RoleViewer))
	ranks := doc.Find("#worklist-table td.rank").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"3", "4"}, ranks); diff != "" {
		t.Errorf("page 2 ranks (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#worklist-count")); !strings.HasPrefix(got, "Showing 3–4 of 4") {
		t.Errorf("page 2 count = %q", got)
	}
}

func TestWorklistBadFilters(t *testing.T) {
	e := newRiskEnv(t)
	for _, target := range []string{"/worklist?sla=late", "/worklist?sort=cvss", "/worklist?limit=0", "/worklist?offset=-3"} {
		w := e.get(target, auth.RoleViewer)
		wantStatus(t, w, http.StatusBadRequest)
		doc := parse(t, w)
		if doc.Find(".alert").Length() != 1 || doc.Find("#worklist-filters").Length() != 1 {
			t.Errorf("%s: want the form and one alert", target)
		}
	}
	if n := e.risk.calls(); n != 0 {
		t.Errorf("worklist read %d times for bad filters", n)
	}
	// A tier the service refuses comes back on the form too, with its words.
	w := e.get("/worklist?tier=urgent", auth.RoleViewer)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find(".alert")); !strings.Contains(got, `tier "urgent" is not a tier`) {
		t.Errorf("alert = %q", got)
	}
}

func TestWorklistAccess(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/worklist?sla=breached", "")
	wantStatus(t, w, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != "/login?next=%2Fworklist%3Fsla%3Dbreached" {
		t.Errorf("anonymous redirect = %q", loc)
	}
	for _, role := range auth.Roles {
		wantStatus(t, e.get("/worklist", role), http.StatusOK)
	}
	// The worklist is where a signed-in user starts.
	if loc := e.get("/", auth.RoleViewer).Header().Get("Location"); loc != "/worklist" {
		t.Errorf("/ redirects to %q; want /worklist", loc)
	}
	w = e.post("/login", "", url.Values{"username": {"approver"}, "password": {"pw-approver"}})
	if loc := w.Header().Get("Location"); loc != "/worklist" {
		t.Errorf("after sign-in: %q; want /worklist", loc)
	}
	// Without the risk engine there is no worklist, and no link to one.
	plain := newVulnEnv(t)
	wantStatus(t, plain.get("/worklist", auth.RoleAdmin), http.StatusNotFound)
	if loc := plain.get("/", auth.RoleViewer).Header().Get("Location"); loc != "/assets" {
		t.Errorf("/ without risk redirects to %q; want /assets", loc)
	}
}
