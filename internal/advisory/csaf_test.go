package advisory

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func parseCSAFFile(t *testing.T, name string) []Advisory {
	t.Helper()
	advs, err := ParseCSAF(bytes.NewReader(readTestdata(t, "csaf/"+name)))
	if err != nil {
		t.Fatalf("ParseCSAF(%s): %v", name, err)
	}
	return advs
}

func affectedByID(t *testing.T, a Advisory, productID string, st VEXStatus) Affected {
	t.Helper()
	for _, af := range a.Affected {
		if af.ProductID == productID && af.Status == st {
			return af
		}
	}
	t.Fatalf("%s has no product %s with status %s", a.ID, productID, st)
	return Affected{}
}

// An ICS medical advisory: the product, its vulnerable range, the fixed
// version the vendor names, and CISA's published score.
func TestParseCSAFICSMA(t *testing.T) {
	advs := parseCSAFFile(t, "icsma-24-163-01.json")
	if len(advs) != 2 || advs[0].ID != "CVE-2024-33606" || advs[1].ID != "CVE-2024-28877" {
		t.Fatalf("ICSMA-24-163-01 = %d advisories; want CVE-2024-33606 and CVE-2024-28877", len(advs))
	}
	want := Advisory{
		ID:        "CVE-2024-33606",
		Source:    SourceCSAF,
		Aliases:   []string{"ICSMA-24-163-01"},
		Published: date("2024-06-11T06:00:00Z"),
		Modified:  date("2024-06-11T06:00:00Z"),
		Severity:  []Severity{{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", Score: 8.8, Rating: "HIGH", Source: "CISA"}},
		CWEs:      []string{"CWE-939"},
		Affected: []Affected{{
			Ecosystem:   EcosystemCSAF,
			Vendor:      "MicroDicom",
			Package:     "DICOM Viewer",
			Vulnerable:  true,
			Ranges:      []Range{{Type: "CSAF", Introduced: "0", Fixed: "2024.2"}},
			ProductID:   "CSAFPID-0001",
			ProductName: "MicroDicom DICOM Viewer: <2024.2",
			Status:      StatusKnownAffected,
			Remediations: []Remediation{{
				Category: "vendor_fix",
				Details:  "MicroDicom recommends users upgrade to DICOM Viewer version 2024.2.",
				URL:      "https://www.microdicom.com/downloads.html",
			}},
		}},
		Document: &Document{Title: "MicroDicom DICOM Viewer", Tracking: "ICSMA-24-163-01", Publisher: "CISA", Version: "1"},
	}
	if diff := cmp.Diff(want, advs[0], ignoreText, cmpIgnoreRefs, cmpIgnoreSummary); diff != "" {
		t.Errorf("ICSMA-24-163-01 (-want +got):\n%s", diff)
	}

	// BD Alaris: several products, "<=" ranges (last affected), CVSS 3.0.
	alaris := parseCSAFFile(t, "icsma-23-194-01.json")
	if len(alaris) != 8 {
		t.Errorf("ICSMA-23-194-01 = %d advisories; want 8", len(alaris))
	}
	pcu := affectedByID(t, alaris[0], "CSAFPID-0001", StatusKnownAffected)
	if pcu.Vendor != "Becton, Dickinson and Company (BD)" || pcu.Package != "BD Alaris Point-of-Care Unit (PCU) Model 8015" ||
		!cmp.Equal(pcu.Ranges, []Range{{Type: "CSAF", Introduced: "0", LastAffected: "12.1.3"}}) {
		t.Errorf("ICSMA-23-194-01 PCU = %+v; want BD Alaris PCU 8015 up to and including 12.1.3", pcu)
	}
	if s := alaris[0].Severity[0]; s.Vector != "CVSS:3.0/AV:P/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:H" || s.Score != 5.2 {
		t.Errorf("ICSMA-23-194-01 %s severity = %+v; want CVSS:3.0 5.2", alaris[0].ID, s)
	}

	// BD FACSChorus lists affected versions as "5.0|5.1".
	chorus := parseCSAFFile(t, "icsma-23-331-01.json")
	var lists int
	for _, af := range chorus[0].Affected {
		if cmp.Equal(af.Versions, []string{"5.0", "5.1"}) {
			lists++
		}
	}
	if lists == 0 {
		t.Errorf("ICSMA-23-331-01 affected %+v; want a product with versions 5.0 and 5.1", chorus[0].Affected)
	}
}

var cmpIgnoreSummary = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Summary" }, cmp.Ignore())

// OASIS's VEX example: a vendor says its product is not affected and why.
func TestParseCSAFVEXNotAffected(t *testing.T) {
	advs := parseCSAFFile(t, "2022-evd-uc-01-na-001.json")
	if len(advs) != 1 || advs[0].ID != "CVE-2021-44228" {
		t.Fatalf("2022-EVD-UC-01-NA-001 = %v; want one advisory CVE-2021-44228", advs)
	}
	want := []Affected{{
		Ecosystem:   EcosystemCSAF,
		Vendor:      "Example Company",
		Package:     "ABC",
		Versions:    []string{"4.2"},
		ProductID:   "CSAFPID-0001",
		ProductName: "Example Company ABC 4.2",
		Status:      StatusKnownNotAffected,
		Impact:      "Class with vulnerable code was removed before shipping.",
	}}
	if diff := cmp.Diff(want, advs[0].Affected); diff != "" {
		t.Errorf("VEX not-affected statement (-want +got):\n%s", diff)
	}
	if d := advs[0].Document; d == nil || d.Tracking != "2022-EVD-UC-01-NA-001" || d.Publisher != "Example Company ProductCERT" {
		t.Errorf("document = %+v", d)
	}

	fixed := parseCSAFFile(t, "2022-evd-uc-01-f-001.json")
	if af := fixed[0].Affected; len(af) != 1 || af[0].Status != StatusFixed || af[0].Vulnerable || !cmp.Equal(af[0].Versions, []string{"1.1"}) {
		t.Errorf("2022-EVD-UC-01-F-001 affected = %+v; want DEF 1.1 fixed", af)
	}
}

// Red Hat's CSAF: relationships tie an RPM (PURL) to a platform (CPE),
// and flags carry the not-affected justification.
func TestParseCSAFRedHatRelationshipsAndFlags(t *testing.T) {
	advs := parseCSAFFile(t, "rhsa-2025_23414.json")
	if len(advs) != 2 {
		t.Fatalf("RHSA-2025:23414 = %d advisories; want 2", len(advs))
	}
	a := advs[0]
	if a.ID != "CVE-2021-25220" || !contains(a.Aliases, "RHSA-2025:23414") || !contains(a.Aliases, "2064512") || !cmp.Equal(a.CWEs, []string{"CWE-444"}) {
		t.Errorf("RHSA-2025:23414 first = %s aliases %v CWEs %v; want CVE-2021-25220, RHSA-2025:23414 and Bugzilla 2064512, CWE-444", a.ID, a.Aliases, a.CWEs)
	}
	if a.Summary != "bind: DNS forwarders - cache poisoning vulnerability" {
		t.Errorf("summary = %q", a.Summary)
	}
	na := affectedByID(t, a, "6Server-ELS.EXTENSION:bind-32:9.8.2-0.68.rc1.el6_10.17.src", StatusKnownNotAffected)
	wantNA := Affected{
		Ecosystem:     EcosystemCSAF,
		PURL:          "pkg:rpm/redhat/bind@9.8.2-0.68.rc1.el6_10.17?arch=src&epoch=32",
		CPE:           "cpe:/o:redhat:rhel_els:6",
		Versions:      []string{"bind-32:9.8.2-0.68.rc1.el6_10.17.src"},
		ProductID:     "6Server-ELS.EXTENSION:bind-32:9.8.2-0.68.rc1.el6_10.17.src",
		ProductName:   "bind-32:9.8.2-0.68.rc1.el6_10.17.src as a component of Red Hat Enterprise Linux Server -EXTENSION(v. 6 ELS-EXTENSION)",
		Status:        StatusKnownNotAffected,
		Justification: "vulnerable_code_not_present",
		Remediations: []Remediation{{Category: "workaround",
			Details: "If applicable, modify your configuration to either remove all forwarding or all possibility of recursion. Depending on your use case, it may be possible to use other zone types to replace forward zones."}},
	}
	if diff := cmp.Diff(wantNA, na, cmpIgnoreVendorPackage); diff != "" {
		t.Errorf("known_not_affected bind.src (-want +got):\n%s", diff)
	}
	fx := affectedByID(t, a, "6Server-ELS.EXTENSION:bind-32:9.8.2-0.68.rc1.el6_10.17.x86_64", StatusFixed)
	if fx.Justification != "" || len(fx.Remediations) != 2 || fx.Remediations[0].Category != "vendor_fix" ||
		fx.Remediations[0].URL != "https://access.redhat.com/errata/RHSA-2025:23414" || fx.Remediations[1].Category != "workaround" {
		t.Errorf("fixed bind.x86_64 = %+v; want the RHSA vendor_fix and the workaround, no justification", fx)
	}
	if fx.PURL != "pkg:rpm/redhat/bind@9.8.2-0.68.rc1.el6_10.17?arch=x86_64&epoch=32" || fx.Vendor != "Red Hat" || fx.Package != "bind" {
		t.Errorf("fixed bind.x86_64 purl %q vendor %q package %q; want Red Hat's bind", fx.PURL, fx.Vendor, fx.Package)
	}
	if s := a.Severity[0]; s.Score != 6.8 || s.Source != "Red Hat Product Security" {
		t.Errorf("severity = %+v; want 6.8 from Red Hat Product Security", s)
	}
}

var cmpIgnoreVendorPackage = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Vendor" || p.String() == "Package" }, cmp.Ignore())

// CISA's IT VEX documents: fixed versions, ranges written "all versions",
// and remediations per product.
func TestParseCSAFCISAVEX(t *testing.T) {
	advs := parseCSAFFile(t, "va-24-201-01.json")
	a := advs[0]
	if a.ID != "CVE-2023-45195" || a.Document.Tracking != "VA-24-201-01" {
		t.Fatalf("VA-24-201-01 first = %s in %+v", a.ID, a.Document)
	}
	fixed := affectedByID(t, a, "CSAFPID-0009", StatusFixed)
	if fixed.Vendor != "AdminerEvo" || fixed.Package != "AdminerEvo" || !cmp.Equal(fixed.Versions, []string{"4.8.4"}) {
		t.Errorf("fixed product = %+v; want AdminerEvo 4.8.4", fixed)
	}
	adminer := affectedByID(t, a, "CSAFPID-0006", StatusKnownAffected)
	if !cmp.Equal(adminer.Ranges, []Range{{Type: "CSAF", Introduced: "0"}}) || len(adminer.Remediations) != 1 || adminer.Remediations[0].Category != "none_available" {
		t.Errorf("Adminer (all versions) = %+v; want an open range and none_available", adminer)
	}
	for _, f := range []string{"va-24-254-01.json", "va-24-254-02.json", "va-24-262-01.json", "icsa-24-235-03.json"} {
		if advs := parseCSAFFile(t, f); len(advs) == 0 {
			t.Errorf("ParseCSAF(%s) found no vulnerabilities", f)
		}
	}
}

func TestParseCSAFVersionRange(t *testing.T) {
	tests := []struct {
		in   string
		want Range
		ok   bool
	}{
		{"<2024.2", Range{Introduced: "0", Fixed: "2024.2"}, true},
		{"<= 3.07.11", Range{Introduced: "0", LastAffected: "3.07.11"}, true},
		{"vers:all/<V7.0.3", Range{Introduced: "0", Fixed: "V7.0.3"}, true},
		{"vers:all/*", Range{Introduced: "0"}, true},
		{"vers:all/>=V3.0.1<V3.0.3", Range{Introduced: "V3.0.1", Fixed: "V3.0.3"}, true},
		{">= R5.01.00 | <= R6.06.00", Range{Introduced: "R5.01.00", LastAffected: "R6.06.00"}, true},
		{"All versions < V4.33", Range{Introduced: "0", Fixed: "V4.33"}, true},
		{"All versions", Range{Introduced: "0"}, true},
		{"< 8.1 SP3", Range{Introduced: "0", Fixed: "8.1 SP3"}, true},
		{">= V3.0 and < V4.1", Range{Introduced: "V3.0", Fixed: "V4.1"}, true},
		{"> V2 < V4", Range{Introduced: "V2", IntroducedExclusive: true, Fixed: "V4"}, true},
		// CISA's release-line wildcards (ICSMA-21-187-01: "<= 12.2.x.x").
		{"<= 12.2.x.x", Range{Introduced: "0", Limit: "12.3"}, true},
		{"<=12.2.x.x", Range{Introduced: "0", Limit: "12.3"}, true},
		{"< 5.x", Range{Introduced: "0", Limit: "5"}, true},
		{">= 3.x <= 4.1.x", Range{Introduced: "3", Limit: "4.2"}, true},
		{"> 2.x < 4", Range{Introduced: "3", Fixed: "4"}, true},
		{"<= x.x", Range{Introduced: "0"}, true},
		{"< x.x", Range{}, false},
		{"<= 12.x.3", Range{Introduced: "0", LastAffected: "12.x.3"}, true},
		{"16 <= 20", Range{}, false},
		{"All versions with Fortinet NGFW", Range{}, false},
		{"< 1 < 2", Range{}, false},
		{"<", Range{}, false},
	}
	for _, tt := range tests {
		got, ok := parseCSAFVersionRange(tt.in)
		if tt.ok {
			tt.want.Type = "CSAF"
		}
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseCSAFVersionRange(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// csafVariant re-encodes a real document with one change.
func csafVariant(t *testing.T, name string, change func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readTestdata(t, "csaf/"+name), &doc); err != nil {
		t.Fatal(err)
	}
	change(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCSAFRejects(t *testing.T) {
	vuln0 := func(doc map[string]any) map[string]any {
		return doc["vulnerabilities"].([]any)[0].(map[string]any)
	}
	tests := []struct {
		name    string
		change  func(map[string]any)
		wantMsg string
	}{
		{"undefined product", func(d map[string]any) {
			vuln0(d)["product_status"] = map[string]any{"known_affected": []any{"CSAFPID-9999"}}
		}, `product_status.known_affected names undefined product "CSAFPID-9999"`},
		{"undefined group", func(d map[string]any) {
			vuln0(d)["remediations"].([]any)[0].(map[string]any)["group_ids"] = []any{"G-1"}
		}, "undefined product group"},
		{"flag label", func(d map[string]any) {
			vuln0(d)["flags"] = []any{map[string]any{"label": "not_my_problem", "product_ids": []any{"CSAFPID-0001"}}}
		}, "not a CSAF 2.0 flag label"},
		{"remediation category", func(d map[string]any) {
			vuln0(d)["remediations"].([]any)[0].(map[string]any)["category"] = "pray"
		}, "remediation category"},
		{"csaf version", func(d map[string]any) { d["document"].(map[string]any)["csaf_version"] = "2.1" }, "csaf_version"},
		{"tracking id", func(d map[string]any) {
			delete(d["document"].(map[string]any)["tracking"].(map[string]any), "id")
		}, "tracking.id"},
		{"release date", func(d map[string]any) {
			d["document"].(map[string]any)["tracking"].(map[string]any)["current_release_date"] = "June 2024"
		}, "current_release_date"},
		{"bad vector", func(d map[string]any) {
			vuln0(d)["scores"].([]any)[0].(map[string]any)["cvss_v3"].(map[string]any)["vectorString"] = "CVSS:3.1/AV:N"
		}, `"CVE-2024-33606"): scores[0]: CVSS vector`},
		{"bad cve", func(d map[string]any) { vuln0(d)["cve"] = "CVE-2024" }, "not a CVE ID"},
		{"duplicate product id", func(d map[string]any) {
			d["product_tree"].(map[string]any)["full_product_names"] = []any{map[string]any{"name": "x", "product_id": "CSAFPID-0001"}}
		}, "defined twice"},
		{"dangling relationship", func(d map[string]any) {
			d["product_tree"].(map[string]any)["relationships"] = []any{map[string]any{
				"category": "default_component_of", "product_reference": "CSAFPID-0001", "relates_to_product_reference": "NOPE",
				"full_product_name": map[string]any{"name": "x on nope", "product_id": "REL-1"},
			}}
		}, `refers to undefined product "NOPE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			advs, err := ParseCSAF(bytes.NewReader(csafVariant(t, "icsma-24-163-01.json", tt.change)))
			if advs != nil || errs.KindOf(err) != errs.Invalid {
				t.Fatalf("ParseCSAF = %v, %v; want nil and an Invalid error", advs, err)
			}
			if !strings.Contains(errs.Public(err), tt.wantMsg) {
				t.Errorf("ParseCSAF error %q; want it to mention %q", errs.Public(err), tt.wantMsg)
			}
		})
	}
	for _, in := range []string{"", "[]", "{}", `{"document":`} {
		if _, err := ParseCSAF(strings.NewReader(in)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseCSAF(%q) error = %v; want Invalid", in, err)
		}
	}
}
