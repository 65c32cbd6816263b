package match

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
)

func debianPkg(name, src, version string) Package {
	return Package{Name: name, Version: version, Ecosystem: "Debian:12", SourceName: src, SourceVersion: version}
}

// realDebianIndex indexes the real tracker and DSA records.
func realDebianIndex(t *testing.T, kev map[string]advisory.KEV, epss map[string]advisory.EPSS) *Index {
	t.Helper()
	advs := append(loadTracker(t), loadDSAList(t)...)
	advs = append(advs, loadOSVDir(t)...)
	return NewIndex(advs, kev, epss)
}

func TestMatchHostRealDebian(t *testing.T) {
	kev := map[string]advisory.KEV{"CVE-2025-53603": {CVE: "CVE-2025-53603"}}
	epss := map[string]advisory.EPSS{"CVE-2025-53603": {CVE: "CVE-2025-53603", Score: 0.42}}
	ix := realDebianIndex(t, kev, epss)
	sope := func(version string) []Package {
		return []Package{debianPkg("libsope1", "sope", version), debianPkg("sope-bin", "sope", version)}
	}
	for _, tc := range []struct {
		name string
		pkgs []Package
		want []Match
	}{
		{
			// The DSA and the tracker's CVE record describe one vulnerability
			// of the sope source package: one match, CVE canonical, DSA alias;
			// both binaries share it.
			name: "DSA and CVE deduplicated on the source package",
			pkgs: sope("5.8.0-1"),
			want: []Match{{AssetID: "h1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1",
				Binaries: []string{"libsope1", "sope-bin"}, AdvisoryID: "CVE-2025-53603",
				Aliases: []string{"DEBIAN-CVE-2025-53603", "DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1",
				Source: SourceOSV, KEV: true, EPSS: 0.42}},
		},
		{name: "fixed version installed", pkgs: sope("5.8.0-1+deb12u1"), want: []Match{}},
		{
			name: "other release's advisory does not apply",
			pkgs: []Package{{Name: "libsope1", Version: "5.8.0-1", Ecosystem: "Debian:13", SourceName: "sope", SourceVersion: "5.8.0-1"}},
			want: []Match{{AssetID: "h1", Ecosystem: "Debian:13", Package: "sope", Version: "5.8.0-1",
				Binaries: []string{"libsope1"}, AdvisoryID: "CVE-2025-53603", Aliases: []string{"DEBIAN-CVE-2025-53603"},
				FixedVersion: "5.12.1-2", Source: SourceOSV, KEV: true, EPSS: 0.42}},
		},
		{
			name: "bullseye host matched against bullseye fix",
			pkgs: []Package{{Name: "sope-bin", Version: "5.0.1-2", Ecosystem: "Debian:11", SourceName: "sope", SourceVersion: "5.0.1-2"}},
			want: []Match{{AssetID: "h1", Ecosystem: "Debian:11", Package: "sope", Version: "5.0.1-2",
				Binaries: []string{"sope-bin"}, AdvisoryID: "CVE-2025-53603", Aliases: []string{"DEBIAN-CVE-2025-53603"},
				FixedVersion: "5.0.1-2+deb11u1", Source: SourceOSV, KEV: true, EPSS: 0.42}},
		},
		{
			// Without the Source: field the binary name is all we have, and
			// Debian advisories do not name binaries.
			name: "binary name alone does not match a source advisory",
			pkgs: []Package{{Name: "libsope1", Version: "5.8.0-1", Ecosystem: "Debian:12"}},
			want: []Match{},
		},
		{
			name: "real dpkg status of a Debian 12.11 machine has none of these packages",
			pkgs: loadDpkgStatus(t, "Debian:12"),
			want: []Match{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ix.MatchHost(HostInventory{AssetID: "h1", Packages: tc.pkgs})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MatchHost (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDSA3029RealOSVRecord(t *testing.T) {
	ix := NewIndex(loadOSVDir(t), nil, nil)
	got := ix.MatchHost(HostInventory{AssetID: "old", Packages: []Package{
		{Name: "nginx-full", Version: "1.2.1-2.2+wheezy2", Ecosystem: "Debian:7", SourceName: "nginx", SourceVersion: "1.2.1-2.2+wheezy2"},
	}})
	if len(got) != 1 || got[0].AdvisoryID != "CVE-2014-3616" || got[0].FixedVersion != "1.2.1-2.2+wheezy3" || !slices.Equal(got[0].Aliases, []string{"DSA-3029-1"}) {
		t.Errorf("MatchHost(nginx wheezy2) = %+v; want CVE-2014-3616 alias DSA-3029-1 fixed 1.2.1-2.2+wheezy3", got)
	}
}

func TestMatchCPEAndCSAF(t *testing.T) {
	nvd := advisory.Advisory{ID: "CVE-2024-0001", Source: "nvd", Affected: []advisory.Affected{{
		Ecosystem: advisory.EcosystemCPE, CPE: "cpe:2.3:o:acme:infusion_os:*:*:*:*:*:*:*:*", Vulnerable: true,
		Ranges: []advisory.Range{{Type: "CPE", Introduced: "2.0", Fixed: "2.4.1"}},
	}}}
	nvd2 := advisory.Advisory{ID: "CVE-2024-0002", Source: "nvd", Affected: []advisory.Affected{{
		Ecosystem: advisory.EcosystemCPE, CPE: "cpe:2.3:o:acme:infusion_os:*:*:*:*:*:*:*:*", Vulnerable: true,
		Ranges: []advisory.Range{{Type: "CPE", LastAffected: "2.3.9"}},
	}}}
	doc := &advisory.Document{Tracking: "ACME-SA-2024-7", Publisher: "Acme Medical"}
	vex := advisory.Advisory{ID: "ACME-SA-2024-7:CVE-2024-0002", Source: "csaf", Aliases: []string{"CVE-2024-0002"}, Document: doc,
		Affected: []advisory.Affected{{
			Ecosystem: advisory.EcosystemCSAF, CPE: "cpe:2.3:o:acme:infusion_os:2.3.0:*:*:*:*:*:*:*",
			Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_in_execute_path",
		}}}
	icsma := advisory.Advisory{ID: "ICSMA-17-082-01:CVE-2017-6773", Source: "csaf", Aliases: []string{"CVE-2017-6773"},
		Document: &advisory.Document{Tracking: "ICSMA-17-082-01", Publisher: "CISA"},
		Affected: []advisory.Affected{
			{Ecosystem: advisory.EcosystemCSAF, Vendor: "Becton, Dickinson and Company (BD)", Package: "PerformA",
				Status: advisory.StatusKnownAffected, Ranges: []advisory.Range{{LastAffected: "2.0.14.0"}}},
			{Ecosystem: advisory.EcosystemCSAF, Vendor: "Becton, Dickinson and Company (BD)", Package: "PerformA",
				Status: advisory.StatusFixed, Versions: []string{"2.0.15.0"}},
		}}
	ix := NewIndex([]advisory.Advisory{nvd, nvd2, vex, icsma}, nil, nil)
	vexWant := &VEX{Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_in_execute_path", Document: "ACME-SA-2024-7 Acme Medical"}
	for _, tc := range []struct {
		name string
		h    HostInventory
		want []Match
	}{
		{
			name: "NVD range and vendor VEX: not_affected wins, visible",
			h:    HostInventory{AssetID: "pump", CPEs: []string{"cpe:2.3:o:acme:infusion_os:2.3.0:*:*:*:*:*:*:*"}},
			want: []Match{
				{AssetID: "pump", Ecosystem: "CPE", Package: "acme:infusion_os", Version: "2.3.0", AdvisoryID: "CVE-2024-0001", FixedVersion: "2.4.1", Source: SourceNVDCPE},
				{AssetID: "pump", Ecosystem: "CPE", Package: "acme:infusion_os", Version: "2.3.0", AdvisoryID: "CVE-2024-0002",
					Aliases: []string{"ACME-SA-2024-7:CVE-2024-0002"}, Source: SourceCSAF, VEX: vexWant},
			},
		},
		{
			name: "outside the ranges",
			h:    HostInventory{AssetID: "pump", CPEs: []string{"cpe:2.3:o:acme:infusion_os:2.5:*:*:*:*:*:*:*"}},
			want: []Match{},
		},
		{
			name: "ICSMA product by vendor and name",
			h:    HostInventory{AssetID: "lab", Products: []Product{{Vendor: "becton dickinson and company (BD)", Name: "performa", Version: "2.0.9.1"}}},
			want: []Match{{AssetID: "lab", Ecosystem: "CSAF", Package: "becton dickinson and company bd:performa", Version: "2.0.9.1",
				AdvisoryID: "CVE-2017-6773", Aliases: []string{"ICSMA-17-082-01:CVE-2017-6773"}, FixedVersion: "2.0.15.0", Source: SourceCSAF,
				VEX: &VEX{Status: advisory.StatusKnownAffected, Document: "ICSMA-17-082-01 CISA"}}},
		},
		{
			name: "ICSMA product at the fixed version",
			h:    HostInventory{AssetID: "lab", Products: []Product{{Vendor: "Becton, Dickinson and Company (BD)", Name: "PerformA", Version: "2.0.15.0"}}},
			want: []Match{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ix.MatchHost(tc.h)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MatchHost (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNonCVEAliasesShareCanonicalID(t *testing.T) {
	aff := []advisory.Affected{{Ecosystem: "PyPI", Package: "jinja2", Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "3.1.3"}}}}
	ghsa := advisory.Advisory{ID: "GHSA-h5c8-rqwp-cp95", Source: "osv", Aliases: []string{"PYSEC-2024-1"}, Affected: aff}
	pysec := advisory.Advisory{ID: "PYSEC-2024-1", Source: "osv", Aliases: []string{"GHSA-h5c8-rqwp-cp95"}, Affected: aff}
	ix := NewIndex([]advisory.Advisory{pysec, ghsa}, nil, nil)
	got := ix.MatchHost(HostInventory{AssetID: "a", Packages: []Package{{Name: "jinja2", Version: "3.1.2", Ecosystem: "PyPI"}}})
	if len(got) != 1 || got[0].AdvisoryID != "GHSA-h5c8-rqwp-cp95" || !slices.Equal(got[0].Aliases, []string{"PYSEC-2024-1"}) {
		t.Errorf("MatchHost = %+v; want one match GHSA-h5c8-rqwp-cp95 aliased PYSEC-2024-1", got)
	}
}

func TestDiffAndIncrementalEstate(t *testing.T) {
	base := loadTracker(t)
	old := NewIndex(base, nil, nil)
	if d := Diff(old, NewIndex(base, nil, nil)); len(d) != 0 {
		t.Fatalf("Diff(same feed) = %v; want nothing", d.Sorted())
	}
	// A new feed version: sope's advisory gains a later fix and txt2man's
	// CVE enters KEV.
	changed := loadTracker(t)
	for i := range changed {
		for j := range changed[i].Affected {
			if changed[i].Affected[j].Package == "sope" && changed[i].Affected[j].Ecosystem == "Debian:12" {
				changed[i].Affected[j].Ranges[0].Fixed = "5.8.0-1+deb12u2"
			}
		}
	}
	// Modified alone changes no verdict and so no key.
	changed[0].Modified = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	nw := NewIndex(changed, map[string]advisory.KEV{"CVE-2013-1444": {}}, nil)
	d := Diff(old, nw)
	want := []Key{{"debian", "sope"}, {"debian", "txt2man"}}
	if diff := cmp.Diff(want, d.Sorted()); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}

	// The estate re-matches only hosts holding changed keys.
	b := NewEstateBuilder()
	b.Add("h1", debianPkg("libsope1", "sope", "5.8.0-1+deb12u1"))
	b.Add("h1", debianPkg("coreutils", "coreutils", "9.1-1"))
	b.Add("h2", debianPkg("coreutils", "coreutils", "9.1-1"))
	e := b.Estate()
	var hosts []string
	for id, ms := range nw.MatchEstateKeys(e, e.ExpandKeys(d)) {
		hosts = append(hosts, id)
		if id == "h1" && (len(ms) != 1 || ms[0].FixedVersion != "5.8.0-1+deb12u2") {
			t.Errorf("h1 matches = %+v; want the new sope fix", ms)
		}
	}
	if !slices.Equal(hosts, []string{"h1"}) {
		t.Errorf("hosts re-matched = %v; want [h1]", hosts)
	}
}

// TestEstateAgreesWithHost checks that fanning out tuple verdicts gives the
// same matches as matching each host on its own.
func TestEstateAgreesWithHost(t *testing.T) {
	ix := NewIndex(append(loadTracker(t), benchFeed(loadBookworm(t), 3)...), nil, nil)
	hosts := genHosts(loadBookworm(t), loadDpkgStatus(t, "Debian:12"), 20, 300)
	b := NewEstateBuilder()
	for _, h := range hosts {
		b.AddHost(h.AssetID)
		for _, p := range h.Packages {
			b.Add(h.AssetID, p)
		}
	}
	e := b.Estate()
	fresh := NewIndex(append(loadTracker(t), benchFeed(loadBookworm(t), 3)...), nil, nil)
	i, total := 0, 0
	for id, ms := range ix.MatchEstate(e) {
		if id != hosts[i].AssetID {
			t.Fatalf("host %d = %s; want %s", i, id, hosts[i].AssetID)
		}
		want := fresh.MatchHost(hosts[i])
		if diff := cmp.Diff(want, ms); diff != "" {
			t.Fatalf("host %s: estate vs host (-host +estate):\n%s", id, diff)
		}
		total += len(ms)
		i++
	}
	if i != len(hosts) || total == 0 {
		t.Errorf("estate yielded %d hosts and %d matches; want %d hosts and some matches", i, total, len(hosts))
	}
}

func loadCSAF(t *testing.T, name string) []advisory.Advisory {
	t.Helper()
	f, err := os.Open(filepath.Join(matchData, "csaf", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	advs, err := advisory.ParseCSAF(f)
	if err != nil {
		t.Fatalf("ParseCSAF(%s): %v", name, err)
	}
	return advs
}

// TestRealCSAF matches devices known only by make, model and firmware (as
// every ICSMA advisory names them) against real CSAF documents.
func TestRealCSAF(t *testing.T) {
	ix := NewIndex(append(loadCSAF(t, "icsma-23-194-01.json"), loadCSAF(t, "2022-evd-uc-01-na-001.json")...), nil, nil)
	vulns := func(ms []Match) map[string]*VEX {
		out := map[string]*VEX{}
		for _, m := range ms {
			if m.Source != SourceCSAF {
				t.Errorf("match %s source = %q; want csaf", m.AdvisoryID, m.Source)
			}
			out[m.AdvisoryID] = m.VEX
		}
		return out
	}
	pcu := func(v string) HostInventory {
		return HostInventory{AssetID: "pcu", Products: []Product{{Vendor: "Becton, Dickinson and Company (BD)", Name: "BD Alaris Point-of-Care Unit (PCU) Model 8015", Version: v}}}
	}
	old := vulns(ix.MatchHost(pcu("12.1.0")))
	if v := old["CVE-2023-30559"]; v == nil || v.Status != advisory.StatusKnownAffected || !strings.Contains(v.Document, "ICSMA-23-194-01") {
		t.Errorf("BD Alaris PCU 12.1.0: CVE-2023-30559 VEX = %+v; want known_affected from ICSMA-23-194-01 (all %v)", v, old)
	}
	if got := vulns(ix.MatchHost(pcu("12.3.1"))); len(got) != 0 {
		t.Errorf("BD Alaris PCU 12.3.1 (after <=12.1.3) = %v; want no match", got)
	}
	abc := vulns(ix.MatchHost(HostInventory{AssetID: "abc", Products: []Product{{Vendor: "Example Company", Name: "ABC", Version: "4.2"}}}))
	if v := abc["CVE-2021-44228"]; len(abc) != 1 || !v.NotAffected() {
		t.Errorf("Example Company ABC 4.2 = %v; want only CVE-2021-44228, VEX known_not_affected", abc)
	}
}

func TestIntelAcrossAdvisories(t *testing.T) {
	v3 := advisory.Severity{Type: advisory.CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8}
	low := advisory.Severity{Type: advisory.CVSSv3, Vector: "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", Score: 2.0}
	v4 := advisory.Severity{Type: advisory.CVSSv4, Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Score: 9.3}
	advs := []advisory.Advisory{
		// Debian's record scores nothing; NVD's record of the same CVE does.
		{ID: "DSA-5000-1", Source: "osv", Aliases: []string{"CVE-2024-1111"}, Affected: []advisory.Affected{{Ecosystem: "Debian:12", Package: "openssl"}}},
		{ID: "CVE-2024-1111", Source: "nvd", Severity: []advisory.Severity{v3}},
		{ID: "GHSA-aaaa-bbbb-cccc", Source: "osv", Aliases: []string{"CVE-2024-2222"}, Severity: []advisory.Severity{v3}},
		{ID: "CVE-2024-2222", Source: "nvd", Severity: []advisory.Severity{v4}},
		// Two vulnerabilities of one CSAF document alias its tracking ID;
		// each keeps its own score.
		{ID: "ICSMA-21-187-01:CVE-2020-1938", Source: "csaf", Aliases: []string{"CVE-2020-1938", "ICSMA-21-187-01"}, Severity: []advisory.Severity{v3}},
		{ID: "ICSMA-21-187-01:CVE-2020-0001", Source: "csaf", Aliases: []string{"CVE-2020-0001", "ICSMA-21-187-01"}, Severity: []advisory.Severity{low}},
	}
	kev := map[string]advisory.KEV{"CVE-2024-1111": {CVE: "CVE-2024-1111", KnownRansomware: true}}
	epss := map[string]advisory.EPSS{"CVE-2024-1111": {CVE: "CVE-2024-1111", Score: 0.42, Percentile: 0.97}}
	ix := NewIndex(advs, kev, epss)

	tests := []struct {
		id, alias string
		wantCVSS  *advisory.Severity
		wantKEV   bool
		wantEPSS  float64
	}{
		{id: "CVE-2024-1111", alias: "DSA-5000-1", wantCVSS: &v3, wantKEV: true, wantEPSS: 0.42},
		// v4 wins over v3 although its score is lower.
		{id: "CVE-2024-2222", alias: "GHSA-aaaa-bbbb-cccc", wantCVSS: &v4},
		{id: "CVE-2024-9999"},
		{id: "CVE-2020-1938", alias: "ICSMA-21-187-01", wantCVSS: &v3},
		{id: "CVE-2020-0001", alias: "ICSMA-21-187-01", wantCVSS: &low},
	}
	for _, tc := range tests {
		in := ix.Intel(tc.id, []string{tc.alias})
		if diff := cmp.Diff(tc.wantCVSS, in.CVSS); diff != "" {
			t.Errorf("Intel(%s).CVSS (-want +got):\n%s", tc.id, diff)
		}
		if got := in.KEV != nil; got != tc.wantKEV {
			t.Errorf("Intel(%s).KEV listed = %v; want %v", tc.id, got, tc.wantKEV)
		}
		if tc.wantKEV && !in.KEV.KnownRansomware {
			t.Errorf("Intel(%s).KEV lost the ransomware flag", tc.id)
		}
		var gotEPSS float64
		if in.EPSS != nil {
			gotEPSS = in.EPSS.Score
		}
		if gotEPSS != tc.wantEPSS {
			t.Errorf("Intel(%s).EPSS = %v; want %v", tc.id, gotEPSS, tc.wantEPSS)
		}
	}
}

// TestCSAFVendorFixWithoutVersion: a maker's advisory that says "update to
// 21.12" (a vendor_fix remediation) but lists no fixed product still tells
// the finding a fix exists; a fixed product version wins over the note's
// absence, and a mitigation is not a fix.
func TestCSAFVendorFixWithoutVersion(t *testing.T) {
	long := strings.Repeat("Update the Enterprise Manager to version 21.12 or later. ", 10)
	adv := func(id string, rs ...advisory.Remediation) advisory.Advisory {
		return advisory.Advisory{ID: "ICSA-21-357-02:" + id, Source: "csaf", Aliases: []string{id},
			Document: &advisory.Document{Tracking: "ICSA-21-357-02", Publisher: "CISA"},
			Affected: []advisory.Affected{{Ecosystem: advisory.EcosystemCSAF, Vendor: "Johnson Controls", Package: "exacq Enterprise Manager",
				Status: advisory.StatusKnownAffected, Ranges: []advisory.Range{{LastAffected: "21.06"}}, Remediations: rs}}}
	}
	ix := NewIndex([]advisory.Advisory{
		adv("CVE-2021-44228", advisory.Remediation{Category: "vendor_fix", Details: "Update to  version\n21.12", URL: "https://example.test/fix"}),
		adv("CVE-2021-45046", advisory.Remediation{Category: "mitigation", Details: "Block outbound LDAP"}),
		adv("CVE-2021-45105", advisory.Remediation{Category: "vendor_fix", Details: long}),
	}, nil, nil)
	got := ix.MatchHost(HostInventory{AssetID: "cctv", Products: []Product{{Vendor: "Johnson Controls", Name: "exacq Enterprise Manager", Version: "21.06"}}})
	notes := map[string]string{}
	for _, m := range got {
		notes[m.AdvisoryID] = m.FixNote
	}
	if want := "Update to version 21.12 (https://example.test/fix)"; notes["CVE-2021-44228"] != want {
		t.Errorf("vendor_fix note = %q; want %q", notes["CVE-2021-44228"], want)
	}
	if notes["CVE-2021-45046"] != "" {
		t.Errorf("a mitigation became a fix note: %q", notes["CVE-2021-45046"])
	}
	if n := notes["CVE-2021-45105"]; len(n) > maxFixNote+len("…") || !strings.HasSuffix(n, "…") {
		t.Errorf("long note = %d bytes %q; want it cut at %d with an ellipsis", len(n), n, maxFixNote)
	}
}
