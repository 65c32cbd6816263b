package advisory

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func parseNVDFile(t *testing.T, name string) []Advisory {
	t.Helper()
	advs, err := ParseNVD(bytes.NewReader(readTestdata(t, "nvd/"+name)))
	if err != nil {
		t.Fatalf("ParseNVD(%s): %v", name, err)
	}
	return advs
}

func findAdvisory(t *testing.T, advs []Advisory, id string) Advisory {
	t.Helper()
	for _, a := range advs {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no advisory %s among %d", id, len(advs))
	return Advisory{}
}

func TestParseNVDXZBackdoor(t *testing.T) {
	advs := parseNVDFile(t, "CVE-2024-3094.json")
	if len(advs) != 1 {
		t.Fatalf("ParseNVD(CVE-2024-3094) = %d advisories; want 1", len(advs))
	}
	got := advs[0]
	want := Advisory{
		ID:        "CVE-2024-3094",
		Source:    SourceNVD,
		Published: date("2024-03-29T17:15:21.150Z"),
		Modified:  date("2026-06-17T07:43:17.830Z"),
		Severity: []Severity{
			{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10.0, Rating: "CRITICAL", Source: "secalert@redhat.com"},
			{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10.0, Rating: "CRITICAL", Source: "nvd@nist.gov"},
		},
		CWEs: []string{"CWE-506"},
		Affected: []Affected{
			{Ecosystem: EcosystemCPE, CPE: "cpe:2.3:a:tukaani:xz:5.6.0:*:*:*:*:*:*:*", Vendor: "tukaani", Package: "xz", Vulnerable: true, Versions: []string{"5.6.0"}},
			{Ecosystem: EcosystemCPE, CPE: "cpe:2.3:a:tukaani:xz:5.6.1:*:*:*:*:*:*:*", Vendor: "tukaani", Package: "xz", Vulnerable: true, Versions: []string{"5.6.1"}},
		},
	}
	if diff := cmp.Diff(want, got, ignoreText, cmpIgnoreRefs); diff != "" {
		t.Errorf("ParseNVD(CVE-2024-3094) mismatch (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got.Details, "Malicious code was discovered in the upstream tarballs of xz") {
		t.Errorf("CVE-2024-3094 details = %q; want the English description", got.Details)
	}
	if !contains(got.References, "https://access.redhat.com/security/cve/CVE-2024-3094") {
		t.Errorf("CVE-2024-3094 references lack Red Hat's advisory: %v", got.References)
	}
}

var cmpIgnoreRefs = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "References" }, cmp.Ignore())

func TestParseNVDCPERanges(t *testing.T) {
	webp := parseNVDFile(t, "CVE-2023-4863.json")[0]
	byCPE := map[string][]Affected{}
	for _, af := range webp.Affected {
		byCPE[af.CPE] = append(byCPE[af.CPE], af)
	}
	chrome := byCPE["cpe:2.3:a:google:chrome:*:*:*:*:*:*:*:*"]
	if len(chrome) != 1 || !cmp.Equal(chrome[0].Ranges, []Range{{Type: "CPE", Fixed: "116.0.5845.187"}}) {
		t.Errorf("CVE-2023-4863 chrome = %+v; want one range fixed at 116.0.5845.187", chrome)
	}
	esr := byCPE["cpe:2.3:a:mozilla:firefox_esr:*:*:*:*:*:*:*:*"]
	wantESR := [][]Range{{{Type: "CPE", Fixed: "102.15.1"}}, {{Type: "CPE", Introduced: "115.0", Fixed: "115.2.1"}}}
	if len(esr) != 2 || !cmp.Equal(esr[0].Ranges, wantESR[0]) || !cmp.Equal(esr[1].Ranges, wantESR[1]) {
		t.Errorf("CVE-2023-4863 firefox_esr = %+v; want <102.15.1 and [115.0, 115.2.1)", esr)
	}
	if deb := byCPE["cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*"]; len(deb) != 1 || !cmp.Equal(deb[0].Versions, []string{"12.0"}) || deb[0].Vendor != "debian" {
		t.Errorf("CVE-2023-4863 debian 12 = %+v; want exact version 12.0", deb)
	}

	// versionEndIncluding is the last affected version.
	mysql := findAdvisory(t, parseNVDFile(t, "vunnel-full-page.json"), "CVE-2023-22068")
	wantMySQL := Affected{Ecosystem: EcosystemCPE, CPE: "cpe:2.3:a:oracle:mysql:*:*:*:*:*:*:*:*", Vendor: "oracle", Package: "mysql", Vulnerable: true,
		Ranges: []Range{{Type: "CPE", Introduced: "8.0", LastAffected: "8.0.34"}}}
	if len(mysql.Affected) == 0 || !cmp.Equal(mysql.Affected[0], wantMySQL) {
		t.Errorf("CVE-2023-22068 affected = %+v; want %+v", mysql.Affected, wantMySQL)
	}
}

func TestParseNVDMetricVersions(t *testing.T) {
	advs := parseNVDFile(t, "osvdev-conversion-test.json")
	if len(advs) != 13 {
		t.Fatalf("ParseNVD(conversion test page) = %d; want 13", len(advs))
	}
	proto := findAdvisory(t, advs, "CVE-2025-4565")
	if s := proto.Severity[0]; s.Type != CVSSv4 || s.Score != 8.2 || s.Rating != "HIGH" || s.Source != "cve-coordination@google.com" {
		t.Errorf("CVE-2025-4565 first severity = %+v; want CVSS v4.0 8.2 HIGH from Google", s)
	}
	curl := findAdvisory(t, advs, "CVE-2018-14618")
	var v2 *Severity
	for i := range curl.Severity {
		if curl.Severity[i].Type == CVSSv2 {
			v2 = &curl.Severity[i]
		}
	}
	if v2 == nil || v2.Vector != "AV:N/AC:L/Au:N/C:C/I:C/A:C" || v2.Score != 10 || v2.Rating != "HIGH" || v2.Source != "nvd@nist.gov" {
		t.Errorf("CVE-2018-14618 v2 severity = %+v; want AV:N/AC:L/Au:N/C:C/I:C/A:C 10.0 HIGH from NVD", v2)
	}
}

// TestNVDPublishedScoresAgree parses every NVD API 2.0 file and checks that
// each published base score equals the score computed from its vector.
func TestNVDPublishedScoresAgree(t *testing.T) {
	files, _ := filepath.Glob("testdata/nvd/*.json")
	counts := map[string]int{}
	cves := 0
	for _, f := range files {
		advs := parseNVDFile(t, filepath.Base(f))
		cves += len(advs)
		for _, a := range advs {
			for _, s := range a.Severity {
				_, score, rating, err := ScoreVector(s.Vector)
				if err != nil {
					t.Errorf("%s %s: %v", a.ID, s.Vector, err)
					continue
				}
				if score != s.Score || rating != s.Rating {
					t.Errorf("%s (%s) %s published %.1f %s; computed %.1f %s", a.ID, s.Source, s.Vector, s.Score, s.Rating, score, rating)
				}
				counts[versionOf(s.Vector)]++
			}
		}
	}
	t.Logf("%d NVD API 2.0 CVEs in %d files; published scores reproduced: %v", cves, len(files), counts)
	if cves < 70 {
		t.Errorf("parsed %d CVEs; want the 75 in testdata", cves)
	}
}

func TestParseNVDShapes(t *testing.T) {
	var page struct {
		Vulnerabilities []struct {
			CVE json.RawMessage `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(readTestdata(t, "nvd/CVE-2024-3094.json"), &page); err != nil {
		t.Fatal(err)
	}
	bare := page.Vulnerabilities[0].CVE
	wrapped := []byte(`{"cve":` + string(bare) + `}`)
	for name, in := range map[string][]byte{"bare cve": bare, "cve wrapper": wrapped} {
		advs, err := ParseNVD(bytes.NewReader(in))
		if err != nil || len(advs) != 1 || advs[0].ID != "CVE-2024-3094" || advs[0].Severity[1].Score != 10 {
			t.Errorf("ParseNVD(%s) = %v, %v; want CVE-2024-3094", name, advs, err)
		}
	}
}

func TestParseNVDRejects(t *testing.T) {
	good := `{"id":"CVE-2024-0001","published":"2024-01-01T00:00:00.000","lastModified":"2024-01-02T00:00:00.000"`
	tests := []struct {
		name, input, wantMsg string
	}{
		{"array", `[]`, "not a JSON object"},
		{"truncated page", `{"format":"NVD_CVE","version":"2.0","vulnerabilities":[{"cve":{"id":"CVE-2024-3094"`, "truncated"},
		{"wrong format", `{"format":"CSAF","vulnerabilities":[]}`, "NVD_CVE"},
		{"wrong version", `{"format":"NVD_CVE","version":"1.1","vulnerabilities":[]}`, "2.0"},
		{"null cve", `{"vulnerabilities":[{"cve":null}]}`, "no cve object"},
		{"bad id", `{"id":"CVE-24-1","published":"2024-01-01T00:00:00.000","lastModified":"2024-01-01T00:00:00.000"}`, "not a CVE ID"},
		{"bad date", `{"id":"CVE-2024-0001","published":"01/01/2024","lastModified":"2024-01-01T00:00:00.000"}`, `"CVE-2024-0001": published`},
		{"bad vector", good + `,"metrics":{"cvssMetricV31":[{"cvssData":{"vectorString":"CVSS:3.1/AV:N","baseScore":9.8}}]}}`, "CVSS vector"},
		{"vector under wrong metric", good + `,"metrics":{"cvssMetricV31":[{"cvssData":{"vectorString":"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":9.8}}]}}`, "metric for CVSS:3.1"},
		{"score out of range", good + `,"metrics":{"cvssMetricV31":[{"cvssData":{"vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":98}}]}}`, "out of range"},
		{"bad cpe", good + `,"configurations":[{"nodes":[{"cpeMatch":[{"vulnerable":true,"criteria":"cpe:/a:x:y"}]}]}]}`, "not a CPE 2.3 name"},
		{"two ends", good + `,"configurations":[{"nodes":[{"cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:x:y:*:*:*:*:*:*:*:*","versionEndIncluding":"1","versionEndExcluding":"2"}]}]}]}`, "both versionEnd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			advs, err := ParseNVD(strings.NewReader(tt.input))
			if advs != nil || errs.KindOf(err) != errs.Invalid {
				t.Fatalf("ParseNVD = %v, %v; want nil and an Invalid error", advs, err)
			}
			if !strings.Contains(errs.Public(err), tt.wantMsg) {
				t.Errorf("ParseNVD error %q; want it to mention %q", errs.Public(err), tt.wantMsg)
			}
		})
	}
}

func TestParseNVDStartExcludingAndPlatforms(t *testing.T) {
	in := `{"id":"CVE-2024-0001","published":"2024-01-01T00:00:00.000","lastModified":"2024-01-02T00:00:00.000","vulnStatus":"Rejected",
	"configurations":[{"operator":"AND","nodes":[
	  {"operator":"OR","cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:acme:pump\\:fw:*:*:*:*:*:*:*:*","versionStartExcluding":"1.0","versionEndExcluding":"2.0"}]},
	  {"operator":"OR","cpeMatch":[{"vulnerable":false,"criteria":"cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"}]}]}]}`
	advs, err := ParseNVD(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Affected{
		{Ecosystem: EcosystemCPE, CPE: `cpe:2.3:a:acme:pump\:fw:*:*:*:*:*:*:*:*`, Vendor: "acme", Package: "pump:fw", Vulnerable: true,
			Ranges: []Range{{Type: "CPE", Introduced: "1.0", IntroducedExclusive: true, Fixed: "2.0"}}},
		{Ecosystem: EcosystemCPE, CPE: "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*", Vendor: "microsoft", Package: "windows", Vulnerable: false},
	}
	if diff := cmp.Diff(want, advs[0].Affected); diff != "" {
		t.Errorf("affected (-want +got):\n%s", diff)
	}
	if w := advs[0].Withdrawn; w == nil || !w.Equal(date("2024-01-02T00:00:00Z")) {
		t.Errorf("rejected CVE withdrawn = %v; want its lastModified", w)
	}
}
