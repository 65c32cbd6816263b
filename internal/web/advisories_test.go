package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/feeds"
)

func TestAdvisorySearch(t *testing.T) {
	e := newVulnEnv(t)
	doc := parse(t, e.get("/advisories", auth.RoleViewer))
	if doc.Find("#advisory-prompt").Length() != 1 || doc.Find("#advisory-table").Length() != 0 {
		t.Error("an empty search should prompt, not list")
	}
	if len(e.advisories.queries) != 0 {
		t.Errorf("empty search queried the store: %+v", e.advisories.queries)
	}

	w := e.get("/advisories?q=cve-2024&package=xz-utils&ecosystem=Debian", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc = parse(t, w)
	if diff := cmp.Diff([]feeds.Query{{ID: "cve-2024", Package: "xz-utils", Ecosystem: "Debian"}}, e.advisories.queries); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
	got := formValues(doc.Find("#advisory-search"))
	want := map[string][]string{"q": {"cve-2024"}, "package": {"xz-utils"}, "ecosystem": {"Debian"}}
	if diff := cmp.Diff(want, map[string][]string(got)); diff != "" {
		t.Errorf("search form (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#advisory-count")); got != "Showing 1–1 of 1 advisory" {
		t.Errorf("count = %q", got)
	}
	row := doc.Find(`#advisory-table tr[data-advisory-id="CVE-2024-3094"]`)
	wantCells := []string{"CVE-2024-3094 DSA-5649-1", "Malicious code in xz-utils release tarballs", "10.0 Critical CVSS v3",
		"osv-debian OSV", "2024-03-29", "2025-01-09"}
	if diff := cmp.Diff(wantCells, rowCells(row)); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
	if row.Find(`a[href="/advisories/CVE-2024-3094"]`).Length() != 1 {
		t.Error("result does not link to the advisory")
	}

	// An NVD record has no summary: its details stand in.
	doc = parse(t, e.get("/advisories?q=CVE-2023", auth.RoleViewer))
	if got := text(doc.Find(`tr[data-advisory-id="CVE-2023-0286"] td`).Eq(1)); !strings.HasPrefix(got, "There is a type confusion") {
		t.Errorf("NVD summary = %q", got)
	}
	wantStatus(t, e.get("/advisories?q=x&offset=-5", auth.RoleViewer), http.StatusBadRequest)
}

func TestAdvisoryDetail(t *testing.T) {
	e := newVulnEnv(t)
	// Found by alias, as a DSA link from a finding would ask.
	w := e.get("/advisories/DSA-5649-1", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := text(doc.Find("h1")); got != "CVE-2024-3094" {
		t.Errorf("h1 = %q", got)
	}
	sev := rowCells(doc.Find("#severity tbody tr").First())
	wantSev := []string{"CVSS v3", "10.0", "10.0 Critical", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "nvd@nist.gov"}
	if diff := cmp.Diff(wantSev, sev); diff != "" {
		t.Errorf("severity (-want +got):\n%s", diff)
	}
	for sel, want := range map[string]string{"#cwes": "CWE-506", "#published": "2024-03-29", "#modified": "2025-01-09",
		"#aliases": "DSA-5649-1", "#summary": "Malicious code in xz-utils release tarballs"} {
		if got := text(doc.Find(sel)); got != want {
			t.Errorf("%s = %q; want %q", sel, got, want)
		}
	}
	aff := rowCells(doc.Find("#affected tbody tr").First())
	if diff := cmp.Diff([]string{"xz-utils", "Debian:12", "all versions, < 5.4.1-1", "5.4.1-1"}, aff); diff != "" {
		t.Errorf("affected (-want +got):\n%s", diff)
	}
	if doc.Find("#affected th").Length() != 4 {
		t.Error("an OSV advisory shows VEX columns")
	}

	// References: http(s) become links that leak nothing to the target;
	// everything else is shown as text, never as a link.
	links := doc.Find("#references a")
	if links.Length() != 1 {
		t.Errorf("reference links = %d; want 1 (only the https one)", links.Length())
	}
	if href, _ := links.Attr("href"); href != "https://www.openwall.com/lists/oss-security/2024/03/29/4" {
		t.Errorf("reference href = %q", href)
	}
	if rel, _ := links.Attr("rel"); rel != "noopener noreferrer" {
		t.Errorf("reference rel = %q", rel)
	}
	unlinked := doc.Find("#references .unlinked").Map(func(_ int, s *goquery.Selection) string { return text(s) })
	wantUnlinked := []string{"javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example/relative"}
	if diff := cmp.Diff(wantUnlinked, unlinked); diff != "" {
		t.Errorf("unlinked references (-want +got):\n%s", diff)
	}
	if body := w.Body.String(); strings.Contains(strings.ToLower(body), `href="javascript:`) || strings.Contains(body, "<script>") {
		t.Error("page carries a javascript: link or an unescaped script")
	}

	wantStatus(t, e.get("/advisories/CVE-1999-0001", auth.RoleViewer), http.StatusNotFound)
}

func TestAdvisoryDetailCSAF(t *testing.T) {
	e := newVulnEnv(t)
	doc := parse(t, e.get("/advisories/CVE-2024-1111", auth.RoleViewer))
	if got := text(doc.Find("#document")); got != "Acme VPN Gateway advisory Acme Corp · ACME-2024-007 · version 2" {
		t.Errorf("document = %q", got)
	}
	rows := doc.Find("#affected tbody tr")
	if rows.Length() != 3 {
		t.Fatalf("affected rows = %d; want 3", rows.Length())
	}
	affected := rows.Eq(0)
	wantCells := []string{"Acme VPN Gateway 3.1", "CSAF", "≥ 3.0, ≤ 3.1.4 (CSAF)", "no fix yet", "Known affected",
		"Vendor fix: Update to firmware 3.1.5 https://acme.example/fw/3.1.5 Mitigation: Disable the web interface javascript:alert(2)"}
	if diff := cmp.Diff(wantCells, rowCells(affected)); diff != "" {
		t.Errorf("known_affected row (-want +got):\n%s", diff)
	}
	rem := affected.Find("ul.plain a")
	if rem.Length() != 1 {
		t.Errorf("remediation links = %d; want 1", rem.Length())
	}
	if rel, _ := rem.Attr("rel"); rel != "noopener noreferrer" {
		t.Errorf("remediation rel = %q", rel)
	}
	if got := text(rows.Eq(1).Find("td.fixed")); got != "3.1.5" {
		t.Errorf("fixed product's fixed version = %q", got)
	}
	na := rows.Eq(2)
	if got := text(na.Find("td.fixed")); got != "" {
		t.Errorf("not-affected product's fixed version = %q; want none (it needs no fix)", got)
	}
	if !na.HasClass("suppressed") || text(na.Find("td.vex")) != "Known not affected vulnerable code not in execute path The affected module is not loaded." {
		t.Errorf("known_not_affected row: class %q, VEX %q", na.AttrOr("class", ""), text(na.Find("td.vex")))
	}
}

func TestFeedsPage(t *testing.T) {
	e := newVulnEnv(t)
	w := e.get("/feeds", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := doc.Find("#feed-table tbody tr").Length(); got != 3 {
		t.Fatalf("rows = %d; want 3", got)
	}
	epss := rowCells(doc.Find(`tr[data-feed="epss"]`))
	wantEPSS := []string{"epss https://epss.example/epss_scores-current.csv.gz", "FIRST EPSS", "12 fetched Thu 2 Apr 2026, 03:00 UTC",
		"281,234 EPSS scores model v2025.03.14 scores of 2026-04-02", "Thu 2 Apr 2026, 03:00 UTC", "Thu 2 Apr 2026, 03:00 UTC", ""}
	if diff := cmp.Diff(wantEPSS, epss); diff != "" {
		t.Errorf("epss row (-want +got):\n%s", diff)
	}
	kev := doc.Find(`tr[data-feed="kev"]`)
	if !kev.HasClass("row-error") {
		t.Error("failing feed's row is not marked")
	}
	if got := text(kev.Find("td.last-error .error-text")); got != "fetch kev: server answered 503 Service Unavailable" {
		t.Errorf("last error = %q", got)
	}
	if got := text(kev.Find("td.last-success")); got != "Wed 1 Apr 2026, 03:00 UTC" {
		t.Errorf("last success = %q", got)
	}
	nvd := doc.Find(`tr[data-feed="nvd"]`)
	if got := text(nvd.Find("td.last-success")); got != "never" {
		t.Errorf("never-synced feed's last success = %q", got)
	}
	body := w.Body.String()
	for _, secret := range []string{"hunter2", "s3cret", "apiKey"} {
		if strings.Contains(body, secret) {
			t.Errorf("feeds page shows %q from a source URL", secret)
		}
	}

	e.advisories.status = nil
	if doc := parse(t, e.get("/feeds", auth.RoleViewer)); doc.Find("#no-feeds").Length() != 1 {
		t.Error("no message when no feed was ever synced")
	}
}

func TestDescribeRange(t *testing.T) {
	for _, tc := range []struct {
		r    advisory.Range
		want string
	}{
		{advisory.Range{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2-3"}, "all versions, < 1.2-3"},
		{advisory.Range{Type: "ECOSYSTEM", Introduced: "2.0"}, "≥ 2.0, no fix yet"},
		{advisory.Range{Type: "SEMVER", Introduced: "1.0.0", LastAffected: "1.4.2"}, "≥ 1.0.0, ≤ 1.4.2 (SEMVER)"},
		{advisory.Range{Type: "CPE", Introduced: "5.0", IntroducedExclusive: true, Fixed: "5.4"}, "> 5.0, < 5.4 (CPE)"},
		{advisory.Range{Type: "GIT", Introduced: "abc", Limit: "def"}, "≥ abc, < def (limit) (GIT)"},
	} {
		if got := describeRange(tc.r); got != tc.want {
			t.Errorf("describeRange(%+v) = %q; want %q", tc.r, got, tc.want)
		}
	}
}

func TestSafeLink(t *testing.T) {
	for _, tc := range []struct{ in, href string }{
		{"https://nvd.nist.gov/vuln/detail/CVE-2024-3094", "https://nvd.nist.gov/vuln/detail/CVE-2024-3094"},
		{"http://example.org/a b", "http://example.org/a%20b"},
		{" https://example.org/x ", "https://example.org/x"},
		{"javascript:alert(1)", ""},
		{"JAVASCRIPT:alert(1)", ""},
		{"vbscript:msgbox", ""},
		{"data:text/html,hi", ""},
		{"ftp://example.org/x", ""},
		{"//example.org/x", ""},
		{"/relative", ""},
		{"https:///nohost", ""},
		{"", ""},
	} {
		if got := safeLink(tc.in).Href; got != tc.href {
			t.Errorf("safeLink(%q).Href = %q; want %q", tc.in, got, tc.href)
		}
	}
}

func TestFormatHelpers(t *testing.T) {
	for p, want := range map[float64]string{0: "–", 0.86: "86%", 0.042: "4.2%", 0.0042: "0.42%", 0.00004: "<0.01%"} {
		if got := percent(p); got != want {
			t.Errorf("percent(%v) = %q; want %q", p, got, want)
		}
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 281234: "281,234", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
	for in, want := range map[string]string{
		"https://u:p@nvd.example/rest/json?apiKey=k": "https://nvd.example/rest/json",
		"/var/lib/patchward/feeds/kev.json":          "/var/lib/patchward/feeds/kev.json",
		`C:\feeds\kev.json`:                          `C:\feeds\kev.json`,
	} {
		if got := redactSource(in); got != want {
			t.Errorf("redactSource(%q) = %q; want %q", in, got, want)
		}
	}
}
