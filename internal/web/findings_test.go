package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/match"
)

// rowCells returns the trimmed text of each cell of a table row.
func rowCells(row *goquery.Selection) []string {
	return row.Find("td").Map(func(_ int, s *goquery.Selection) string { return text(s) })
}

func TestFindingsWorklistDefaultsToOpen(t *testing.T) {
	e := newVulnEnv(t)
	w := e.get("/findings", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	want := match.FindingFilter{State: match.StateOpen, Limit: findingsPageSize}
	if diff := cmp.Diff(want, e.findings.filters[len(e.findings.filters)-1]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	if got, _ := doc.Find(`#finding-filters select[name="state"] option[selected]`).Attr("value"); got != "open" {
		t.Errorf("state selected = %q; want open", got)
	}
	if got := text(doc.Find("#finding-count")); got != "Showing 1–3 of 3 findings" {
		t.Errorf("count = %q", got)
	}
	// Every filter control has a label.
	doc.Find("#finding-filters input:not([type=hidden]), #finding-filters select").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if id == "" || doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("filter control %q has no label", id)
		}
	})

	xz := doc.Find(`#finding-table tr[data-finding-id="f-xz"]`)
	wantCells := []string{"CVE-2024-3094 DSA-5649-1", "Chemistry analyzer", "xz-utils 5.4.1-0.2 binaries: liblzma5, xz-utils",
		"5.4.1-1", "KEV", "86%", "Sun 1 Mar 2026, 01:00 MST", "Open", "Details"}
	if diff := cmp.Diff(wantCells, rowCells(xz)); diff != "" {
		t.Errorf("xz row (-want +got):\n%s", diff)
	}
	if xz.Find(".badge.kev").Length() != 1 {
		t.Error("KEV finding has no KEV badge")
	}
	for sel, want := range map[string]string{
		`a[href="/advisories/CVE-2024-3094"]`: "CVE-2024-3094",
		`a[href="/assets/a-chem"]`:            "Chemistry analyzer",
		`a[href="/findings/f-xz"]`:            "Details",
	} {
		if got := text(xz.Find(sel)); got != want {
			t.Errorf("xz row %s = %q; want %q", sel, got, want)
		}
	}

	ssl := doc.Find(`#finding-table tr[data-finding-id="f-ssl"]`)
	if got := text(ssl.Find("td.fixed-version")); got != "no fix yet" {
		t.Errorf("fixed version without a fix = %q; want no fix yet", got)
	}
	if ssl.Find(".badge.kev").Length() != 0 {
		t.Error("finding not in KEV has a KEV badge")
	}
	if got := text(ssl.Find("td.epss")); got != "0.42%" {
		t.Errorf("EPSS = %q; want 0.42%%", got)
	}
	// A deleted asset's finding still lists, under the asset's ID.
	if got := text(doc.Find(`tr[data-finding-id="f-gone"] td.asset`)); got != "a-deleted" {
		t.Errorf("deleted asset shown as %q; want its ID", got)
	}
	if doc.Find(`tr[data-state="not_affected"], tr[data-state="fixed"]`).Length() != 0 {
		t.Error("default worklist shows findings that are not open")
	}
	if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Findings" {
		t.Errorf("current nav = %q; want Findings", cur)
	}
}

func TestFindingsFiltersRetained(t *testing.T) {
	e := newVulnEnv(t)
	w := e.get("/findings?state=all&kev=true&package=xz-utils&vuln=cve-2024-3094&asset=a-chem&limit=20", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	yes := true
	want := match.FindingFilter{AssetID: "a-chem", KEV: &yes, Package: "xz-utils", VulnID: "cve-2024-3094", Limit: 20}
	if diff := cmp.Diff(want, e.findings.filters[len(e.findings.filters)-1]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	form := doc.Find("#finding-filters")
	got := formValues(form)
	wantForm := map[string][]string{"state": {"all"}, "kev": {"true"}, "package": {"xz-utils"}, "vuln": {"cve-2024-3094"},
		"asset": {"a-chem"}, "limit": {"20"}}
	if diff := cmp.Diff(wantForm, map[string][]string(got)); diff != "" {
		t.Errorf("form would submit (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#asset-filter")); got != "On asset Chemistry analyzer only." {
		t.Errorf("asset filter note = %q", got)
	}
	if doc.Find("#finding-table tbody tr").Length() != 1 {
		t.Errorf("rows = %d; want 1", doc.Find("#finding-table tbody tr").Length())
	}
	if doc.Find(`#finding-filters a[href="/findings"]`).Length() != 1 {
		t.Error("no Clear filters link while filtering")
	}
}

func TestFindingsPagingKeepsFilters(t *testing.T) {
	e := newVulnEnv(t)
	doc := parse(t, e.get("/findings?state=all&package=openssl&limit=1", auth.RoleViewer))
	if got := text(doc.Find("#finding-count")); got != "Showing 1–1 of 2 findings" {
		t.Errorf("count = %q", got)
	}
	next, _ := doc.Find(`.pager a[rel="next"]`).Attr("href")
	if next != "?limit=1&offset=1&package=openssl&state=all" {
		t.Fatalf("next = %q; want every filter kept", next)
	}
	doc = parse(t, e.get("/findings"+next, auth.RoleViewer))
	if got := text(doc.Find("#finding-count")); got != "Showing 2–2 of 2 findings" {
		t.Errorf("page 2 count = %q", got)
	}
	if prev, _ := doc.Find(`.pager a[rel="prev"]`).Attr("href"); prev != "?limit=1&package=openssl&state=all" {
		t.Errorf("prev = %q", prev)
	}
}

func TestFindingsNotAffectedVisible(t *testing.T) {
	e := newVulnEnv(t)
	doc := parse(t, e.get("/findings?state=not_affected", auth.RoleViewer))
	row := doc.Find(`#finding-table tr[data-finding-id="f-vpn"]`)
	if row.Length() != 1 {
		t.Fatalf("not_affected finding is not listed")
	}
	if !row.HasClass("suppressed") {
		t.Error("suppressed finding is not marked as such")
	}
	if got, want := text(row.Find("td.state")), "Not affected per ACME-2024-007 (Acme Corp): vulnerable code not in execute path"; got != want {
		t.Errorf("state cell = %q; want %q", got, want)
	}
}

func TestFindingsBadFilter(t *testing.T) {
	e := newVulnEnv(t)
	for _, target := range []string{"/findings?state=closed", "/findings?offset=-1", "/findings?kev=maybe", "/findings?limit=5000"} {
		w := e.get(target, auth.RoleViewer)
		wantStatus(t, w, http.StatusBadRequest)
		doc := parse(t, w)
		if doc.Find(".alert").Length() != 1 || doc.Find("#finding-filters").Length() != 1 {
			t.Errorf("%s: want the form and an alert", target)
		}
	}
	if n := e.findings.calls(); n != 0 {
		t.Errorf("findings read %d times for bad filters", n)
	}
}

func TestFindingDetail(t *testing.T) {
	e := newVulnEnv(t)
	w := e.get("/findings/f-heme", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := text(doc.Find("h1")); got != "CVE-2022-1111 on Hematology analyzer" {
		t.Errorf("h1 = %q", got)
	}
	dd := func(dl, term string) string {
		return text(doc.Find(dl + " dt").FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == term }).Next())
	}
	for term, want := range map[string]string{
		// In the zone of the asset's site, across the US switch to daylight time.
		"State": "Fixed", "First seen": "Wed 4 Mar 2026, 01:00 MST", "Last seen": "Mon 9 Mar 2026, 02:00 MDT",
		"Fixed at": "Tue 10 Mar 2026, 02:00 MDT", "Reopened at": "Thu 12 Mar 2026, 02:00 MDT", "Times reopened": "1",
	} {
		if got := dd("#lifecycle", term); got != want {
			t.Errorf("lifecycle %s = %q; want %q", term, got, want)
		}
	}
	if href, _ := doc.Find(`a[href^="/findings?"]`).Attr("href"); href != "/findings?asset=a-heme&state=all" {
		t.Errorf("asset findings link = %q", href)
	}

	doc = parse(t, e.get("/findings/f-xz", auth.RoleViewer))
	if got := text(doc.Find("#aliases")); got != "DSA-5649-1" {
		t.Errorf("aliases = %q", got)
	}
	if doc.Find(`#aliases a[href="/advisories/DSA-5649-1"]`).Length() != 1 {
		t.Error("alias does not link to its advisory")
	}
	if got := text(doc.Find("#advisory-summary")); got != "Malicious code in xz-utils release tarballs" {
		t.Errorf("advisory summary = %q", got)
	}
	if got := dd("#finding-facts", "Installed binaries"); got != "liblzma5, xz-utils" {
		t.Errorf("binaries = %q", got)
	}

	doc = parse(t, e.get("/findings/f-vpn", auth.RoleViewer))
	for term, want := range map[string]string{
		"Status": "Known not affected", "Said by": "ACME-2024-007 (Acme Corp)",
		"Justification": "vulnerable code not in execute path", "Impact statement": "The affected module is not loaded on the gateway.",
	} {
		if got := dd("#vex", term); got != want {
			t.Errorf("VEX %s = %q; want %q", term, got, want)
		}
	}

	wantStatus(t, e.get("/findings/nope", auth.RoleViewer), http.StatusNotFound)
}

func TestAssetPageVulnerabilities(t *testing.T) {
	e := newVulnEnv(t)
	doc := parse(t, e.get("/assets/a-chem", auth.RoleViewer))
	sec := doc.Find("section#vulnerabilities")
	if sec.Length() != 1 {
		t.Fatal("asset page has no Vulnerabilities section")
	}
	if got := text(sec.Find("#asset-finding-count")); got != "2 open findings." {
		t.Errorf("count = %q", got)
	}
	rows := sec.Find("#asset-findings tbody tr")
	if rows.Length() != 2 || sec.Find(`tr[data-finding-id="f-xz"] .badge.kev`).Length() != 1 {
		t.Errorf("rows = %d, want 2 with the xz finding's KEV badge", rows.Length())
	}
	// On the asset's own page there is no asset column.
	if th, td := sec.Find("thead th").Length(), rows.First().Find("td").Length(); th != td || th != 8 {
		t.Errorf("columns: %d headers, %d cells; want 8 and 8", th, td)
	}
	if href, _ := sec.Find("#all-findings-link").Attr("href"); href != "/findings?asset=a-chem&state=all" {
		t.Errorf("all findings link = %q", href)
	}
	want := match.FindingFilter{AssetID: "a-chem", State: match.StateOpen, Limit: assetFindingsLimit}
	if diff := cmp.Diff(want, e.findings.filters[0]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}

	// A finding suppressed by VEX is counted and one click away.
	doc = parse(t, e.get("/assets/a-vpn", auth.RoleViewer))
	sec = doc.Find("section#vulnerabilities")
	if got := text(sec.Find("#asset-finding-count")); got != "No open findings. 1 not affected per vendor VEX." {
		t.Errorf("count = %q", got)
	}
	if href, _ := sec.Find("#suppressed-link").Attr("href"); href != "/findings?asset=a-vpn&state=not_affected" {
		t.Errorf("suppressed link = %q", href)
	}
}

func TestVulnPagesOnlyWhenConfigured(t *testing.T) {
	e := newEnv(t)
	for _, target := range []string{"/findings", "/findings/f-xz", "/advisories", "/advisories/CVE-2024-3094", "/feeds"} {
		wantStatus(t, e.get(target, auth.RoleAdmin), http.StatusNotFound)
	}
	doc := parse(t, e.get("/assets/a-chem", auth.RoleAdmin))
	if doc.Find("#vulnerabilities").Length() != 0 {
		t.Error("asset page has a Vulnerabilities section without a findings service")
	}
	got := doc.Find("nav[aria-label=Main] a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	if diff := cmp.Diff([]string{"Assets", "Import", "Audit log"}, got); diff != "" {
		t.Errorf("nav (-want +got):\n%s", diff)
	}
}

func TestVulnNav(t *testing.T) {
	e := newVulnEnv(t)
	for role, want := range map[auth.Role][]string{
		auth.RoleViewer: {"Assets", "Findings", "Advisories", "Feeds"},
		auth.RoleAdmin:  {"Assets", "Findings", "Advisories", "Feeds", "Import", "Audit log"},
	} {
		doc := parse(t, e.get("/findings/f-xz", role))
		got := doc.Find("nav[aria-label=Main] a").Map(func(_ int, s *goquery.Selection) string { return text(s) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s nav (-want +got):\n%s", role, diff)
		}
		if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Findings" {
			t.Errorf("%s: current nav = %q; want Findings", role, cur)
		}
	}
}

// TestVulnPagesViewerAndSignIn: every role can read the vulnerability
// pages (a viewer included), and nobody signed in is sent to sign in,
// with the way back, before any service is asked.
func TestVulnPagesViewerAndSignIn(t *testing.T) {
	targets := []string{"/findings?state=all", "/findings/f-xz", "/advisories?q=CVE", "/advisories/CVE-2024-3094", "/feeds"}
	e := newVulnEnv(t)
	for _, target := range targets {
		w := e.get(target, "")
		wantStatus(t, w, http.StatusSeeOther)
		loc := w.Header().Get("Location")
		if want := "/login?next=" + strings.NewReplacer("/", "%2F", "?", "%3F", "=", "%3D").Replace(target); loc != want {
			t.Errorf("%s: redirect to %q; want %q", target, loc, want)
		}
	}
	if n := e.findings.calls() + e.advisories.calls(); n != 0 {
		t.Errorf("services called %d times for an anonymous visitor", n)
	}
	for _, role := range auth.Roles {
		for _, target := range targets {
			wantStatus(t, e.get(target, role), http.StatusOK)
		}
	}
}
