package web

import (
	"github.com/patchward/patchward/internal/risk"
	"net/http"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
)

// tableRows returns each body row's header and data cells as text.
func tableRows(s *goquery.Selection) [][]string {
	var out [][]string
	s.Find("tbody tr").Each(func(_ int, tr *goquery.Selection) {
		out = append(out, tr.Find("th, td").Map(func(_ int, c *goquery.Selection) string { return text(c) }))
	})
	return out
}

// ddOf returns the definition of term in the dl matched by sel.
func ddOf(doc *goquery.Document, sel, term string) string {
	return text(doc.Find(sel + " dt").FilterFunction(func(_ int, s *goquery.Selection) bool { return text(s) == term }).Next())
}

func TestFindingPriorityExplained(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/findings/f-xz", auth.RoleOperator)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	if got := text(doc.Find("#priority-headline")); got != "92.5 Critical Breached score out of 100 under policy version 1" {
		t.Errorf("headline = %q", got)
	}
	wantFactors := [][]string{
		{"CVSS base severity", "10 (CVSS v3.1)", "+30", ""},
		{"Known exploited (CISA KEV)", "listed 2024-04-01", "+25", ""},
		{"Exploit probability (EPSS)", "86%", "+8.6", ""},
		{"Protected health information", "handled", "+10", ""},
		{"Rule: lab systems", `asset.type == "analyzer"`, "+20", "Analyzers feed patient results"},
		{"Compensating controls", "none", "0", ""},
		{"Score cap", "93.60", "−1.1", "scores are capped at 100"},
	}
	if diff := cmp.Diff(wantFactors, tableRows(doc.Find("#explanation"))); diff != "" {
		t.Errorf("explanation (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#explanation tfoot")); got != "Score 92.5 Tier Critical" {
		t.Errorf("explanation total = %q", got)
	}
	if doc.Find("#ssvc").Length() != 0 {
		t.Error("score-mode finding shows an SSVC table")
	}
	// The clock, in the lab's zone, with its reasons.
	for term, want := range map[string]string{
		"First seen":    "Sun 1 Mar 2026, 01:00 MST",
		"Fix available": "Sun 1 Mar 2026, 01:00 MST",
		"Clock started": "Sun 15 Mar 2026, 07:00 MDT Re-prioritised",
		"Target":        "72h tier critical",
		"Due":           "Wed 18 Mar 2026, 07:00 MDT 2 days overdue",
		"Why this date": "re-prioritised (newly listed in CISA KEV): 72h from 2026-03-15 09:00 MDT",
		"SLA state":     "Breached",
		"Exception":     "none",
	} {
		if got := ddOf(doc, "#clock", term); got != want {
			t.Errorf("clock %s = %q; want %q", term, got, want)
		}
	}
	// History, newest first.
	hist := tableRows(doc.Find("#priority-history"))
	if len(hist) != 2 || hist[0][1] != "Critical" || hist[1][1] != "High" {
		t.Errorf("history = %q; want critical (newest) then high", hist)
	}
	if want := "re-prioritised: newly listed in CISA KEV policy version 1"; hist[0][5] != want {
		t.Errorf("history reason = %q; want %q", hist[0][5], want)
	}
	if href := doc.Find("#request-exception").AttrOr("href", ""); href != "/exceptions/new?scope=finding&target=f-xz&vuln=CVE-2024-3094" {
		t.Errorf("request exception link = %q", href)
	}
}

func TestFindingPrioritySSVCAndException(t *testing.T) {
	e := newRiskEnv(t)
	doc := parse(t, e.get("/findings/f-ssl", auth.RoleViewer))
	want := [][]string{
		{"Exploitation", "Proof of concept", "EPSS percentile 0.97 ≥ 0.95"},
		{"Automatable", "No", "the CVSS vector needs user interaction"},
		{"Technical impact", "Total", "CVSS C:H/I:H/A:H"},
		{"Mission & well-being", "High", "mission_high matched"},
	}
	if diff := cmp.Diff(want, tableRows(doc.Find("#ssvc"))); diff != "" {
		t.Errorf("SSVC inputs (-want +got):\n%s", diff)
	}
	if got := text(doc.Find("#h-ssvc")); got != "SSVC decision: Attend" {
		t.Errorf("SSVC heading = %q", got)
	}
	// A viewer may read the priority but not ask for an exception.
	if doc.Find("#request-exception").Length() != 0 {
		t.Error("viewer is offered to request an exception")
	}

	// A finding fixed while excepted links to its exception.
	doc = parse(t, e.get("/findings/f-heme", auth.RoleViewer))
	if href := doc.Find("#covering-exception a").AttrOr("href", ""); href != "/exceptions/exc_0000000000000001" {
		t.Errorf("exception link = %q", href)
	}
	if got := ddOf(doc, "#clock", "Resolved"); got != "Tue 10 Mar 2026, 02:00 MDT within the SLA" {
		t.Errorf("resolved = %q", got)
	}
	if doc.Find("#request-exception").Length() != 0 {
		t.Error("a fixed finding offers an exception")
	}

	// Not assessed yet: said so, not an error.
	w := e.get("/findings/f-vpn", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	if parse(t, w).Find("#unscored").Length() != 1 {
		t.Error("unscored finding does not say so")
	}

	// Without the risk engine the page has no Priority section.
	doc = parse(t, newVulnEnv(t).get("/findings/f-xz", auth.RoleAdmin))
	if doc.Find("#priority").Length() != 0 || doc.Find("#request-exception").Length() != 0 {
		t.Error("priority or exception link shown without the risk services")
	}
}

func TestAssetPageRiskLinks(t *testing.T) {
	e := newRiskEnv(t)
	doc := parse(t, e.get("/assets/a-chem", auth.RoleOperator))
	if href := doc.Find("#request-exception").AttrOr("href", ""); href != "/exceptions/new?scope=asset&target=a-chem" {
		t.Errorf("request exception link = %q", href)
	}
	if href := doc.Find("#asset-worklist").AttrOr("href", ""); href != "/worklist?asset=a-chem" {
		t.Errorf("worklist link = %q", href)
	}
	doc = parse(t, e.get("/assets/a-chem", auth.RoleAuditor))
	if doc.Find("#request-exception").Length() != 0 {
		t.Error("auditor is offered to request an exception")
	}
}

// TestExceptedFindingOffersNoSecondException: an operator may ask for an
// exception on an open finding, but not on one an exception already covers.
func TestExceptedFindingOffersNoSecondException(t *testing.T) {
	e := newRiskEnv(t)
	e.risk.mu.Lock()
	e.risk.explain["f-vpn"] = risk.Explanation{SLA: risk.SLAExcepted, Record: risk.Record{FindingID: "f-vpn", AssetID: "a-vpn",
		VulnID: "CVE-2024-1111", Status: risk.StatusExcepted, ExceptionID: "exc_0000000000000001",
		Assessment: risk.Assessment{Mode: "score", Score: 70, Tier: "critical"}}}
	e.risk.mu.Unlock()
	if n := parse(t, e.get("/findings/f-xz", auth.RoleOperator)).Find("#request-exception").Length(); n != 1 {
		t.Errorf("open finding: %d request-exception links; want 1", n)
	}
	if n := parse(t, e.get("/findings/f-vpn", auth.RoleOperator)).Find("#request-exception").Length(); n != 0 {
		t.Errorf("excepted finding: %d request-exception links; want none", n)
	}
}
