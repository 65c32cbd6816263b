package installed

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

func componentsByName(s *SBOM) map[string]Component {
	m := map[string]Component{}
	for _, c := range s.Components {
		m[c.Name] = c
	}
	return m
}

func TestParseCycloneDXMedicalDevices(t *testing.T) {
	tests := []struct {
		file       string
		components int
		checks     []Component
	}{
		{"sbom/medical-device/narrow.sbom.json", 55, []Component{
			{Package: Package{Name: "WolfSSL", Version: "4.8.1", PURL: "pkg:github/wolfssl/wolfssl", SourceName: "WolfSSL", SourceVersion: "4.8.1"},
				CPE: "cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*", Type: "firmware"},
			{Package: Package{Name: "AutoMapper", Version: "8.1.0", Ecosystem: "NuGet", PURL: "pkg:nuget/AutoMapper@8.1.0", SourceName: "AutoMapper", SourceVersion: "8.1.0"},
				CPE: "cpe:2.3:a:jimmy_bogard:automapper:8.1.0:*:*:*:*:*:*:*", Type: "library"},
			// A device listed without a version: kept for its CPE only.
			{Package: Package{Name: "Qualcomm Atheros QCA9563", PURL: "pkg:generic/qualcomm_atheros_qca9563", SourceName: "Qualcomm Atheros QCA9563"},
				CPE: "cpe:2.3:h:qualcomm:atheros_qca9563:*:*:*:*:*:*:*:*", Type: "device"},
		}},
		{"sbom/medical-device/extended.sbom.json", 65, []Component{
			{Package: Package{Name: "FreeRTOS", Version: "10.0.1", PURL: "pkg:github/freertos/freertos", SourceName: "FreeRTOS", SourceVersion: "10.0.1"},
				CPE: "cpe:2.3:o:amazon:freertos:10.0.1:*:*:*:-:*:*:*", Type: "firmware"},
			{Package: Package{Name: "UniFi Network Application", Version: "8.3.32", PURL: "pkg:generic/unifi_network_application@8.3.32",
				SourceName: "UniFi Network Application", SourceVersion: "8.3.32"},
				CPE: "cpe:2.3:a:ubiquiti:unifi_network_application:8.3.32:*:*:*:*:*:*:*", Type: "application"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s, err := ParseCycloneDX(bytes.NewReader(readTestdata(t, tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != FormatCycloneDX || s.SpecVersion != "1.4" || s.Name != "REDACTED" {
				t.Errorf("Format, SpecVersion, Name = %q, %q, %q; want CycloneDX, 1.4, REDACTED", s.Format, s.SpecVersion, s.Name)
			}
			if len(s.Components) != tt.components {
				t.Errorf("%d components; want %d", len(s.Components), tt.components)
			}
			m := componentsByName(s)
			for _, want := range tt.checks {
				if diff := cmp.Diff(want, m[want.Name]); diff != "" {
					t.Errorf("component %s mismatch (-want +got):\n%s", want.Name, diff)
				}
			}
			// Everything with a version becomes valid inventory software.
			pkgs := s.Packages()
			for _, p := range pkgs {
				if p.Version == "" {
					t.Errorf("Packages() returned %s without a version", p.Name)
				}
			}
			a := inventory.Asset{Name: "infusion pump", Software: Software(pkgs)}
			a.Normalize()
			if err := a.Validate(); err != nil {
				t.Errorf("inventory rejects the SBOM's software: %v", err)
			}
			if len(s.CPEs()) == 0 {
				t.Error("CPEs() is empty")
			}

		})
	}
}

func TestParseCycloneDXScalibr(t *testing.T) {
	s, err := ParseCycloneDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/sbom-with-nested-comps.cdx.json")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Component{
		{Package: Package{Name: "openssl", Version: "1.1.1", PURL: "pkg:generic/openssl@1.1.1", SourceName: "openssl", SourceVersion: "1.1.1"}, Type: "library"},
		{Package: Package{Name: "Nginx", Version: "1.21.1", SourceName: "Nginx", SourceVersion: "1.21.1"}, CPE: "cpe:2.3:a:nginx:nginx:1.21.1", Type: "application"},
		{Package: Package{Name: "rustls", Version: "0.23.13", Ecosystem: "crates.io", PURL: "pkg:cargo/rustls@0.23.13", SourceName: "rustls", SourceVersion: "0.23.13"}, Type: "library"},
	}
	if diff := cmp.Diff(want, s.Components); diff != "" {
		t.Errorf("nested components mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cpe:2.3:a:nginx:nginx:1.21.1"}, s.CPEs()); diff != "" {
		t.Errorf("CPEs mismatch (-want +got):\n%s", diff)
	}

	s, err = ParseCycloneDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/sbom-with-locations.cdx.json")))
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Components[0]; c.Name != "@gar/promisify" || c.Ecosystem != "npm" {
		t.Errorf("scoped npm component = %q in %q; want @gar/promisify in npm", c.Name, c.Ecosystem)
	}
	for _, f := range []string{"sbom.cdx.json", "sbom.bom.json", "minimal.cdx.json"} {
		if _, err := ParseCycloneDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/"+f))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseSPDX(t *testing.T) {
	s, err := ParseSPDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/ancestor_of.spdx.json")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != FormatSPDX || s.SpecVersion != "SPDX-2.3" || s.Name != "ancestor-of-test" {
		t.Errorf("Format, SpecVersion, Name = %q, %q, %q", s.Format, s.SpecVersion, s.Name)
	}
	log4j := Component{Package: Package{Name: "log4j:log4j", Version: "1.2.15", Ecosystem: "Maven", PURL: "pkg:maven/log4j/log4j@1.2.15",
		SourceName: "log4j:log4j", SourceVersion: "1.2.15"}, CPE: "cpe:2.3:a:apache:log4j:1.2.15:*:*:*:*:*:*:*"}
	if diff := cmp.Diff(log4j, componentsByName(s)["log4j:log4j"]); diff != "" {
		t.Errorf("log4j mismatch (-want +got):\n%s", diff)
	}
	if got := len(s.Packages()); got != 1 {
		t.Errorf("Packages() = %d; want 1 (the other package has no version)", got)
	}

	// Version only in the PURL; CPE only in externalRefs.
	s, err = ParseSPDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/purl_and_cpe.spdx.json")))
	if err != nil {
		t.Fatal(err)
	}
	m := componentsByName(s)
	if c := m["openssl"]; c.Version != "1.1.1l" {
		t.Errorf("openssl version = %q; want 1.1.1l from the PURL", c.Version)
	}
	if c := m["Nginx"]; c.CPE != "cpe:2.3:a:nginx:nginx:1.21.1" || c.Version != "1.21.1" {
		t.Errorf("nginx = %+v", c)
	}
	for _, f := range []string{"descendant_of.spdx.json", "dotspdx.dhi-pkg-python.json", "dotspdx.dhi-python.json", "dotspdx.python.json",
		"external_refs.spdx.json", "independent_packages_descendant.spdx.json", "minimal.spdx.json", "multi_descendant.spdx.json",
		"overlapping_refs.spdx.json", "sbom.spdx.json"} {
		if _, err := ParseSBOM(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/"+f))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestDetectSBOM(t *testing.T) {
	tests := []struct {
		file string
		want SBOMFormat
		kind errs.Kind
	}{
		{"sbom/medical-device/narrow.sbom.json", FormatCycloneDX, 0},
		{"sbom/osv-scalibr/sbom.bom.json", FormatCycloneDX, 0},
		{"sbom/osv-scalibr/sbom.spdx.json", FormatSPDX, 0},
		{"sbom/osv-scalibr/sbom.cdx.xml", "", errs.Unsupported},
		{"sbom/osv-scalibr/sbom.spdx", "", errs.Unsupported},
		{"sbom/osv-scalibr/sbom.spdx.yml", "", errs.Unsupported},
		{"debian12-os-release", "", errs.Invalid},
	}
	for _, tt := range tests {
		got, err := DetectSBOM(readTestdata(t, tt.file))
		if got != tt.want || (tt.kind == 0) != (err == nil) || (err != nil && errs.KindOf(err) != tt.kind) {
			t.Errorf("DetectSBOM(%s) = %q, %v; want %q, kind %v", tt.file, got, err, tt.want, tt.kind)
		}
	}
}

func TestSBOMMalformed(t *testing.T) {
	cdx := func(components string) string {
		return `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[` + components + `]}`
	}
	deep := strings.Repeat(`{"type":"library","name":"x","components":[`, maxComponentDepth+2) +
		`{"type":"library","name":"y"}` + strings.Repeat("]}", maxComponentDepth+2)
	tests := map[string]string{
		"not json":           "{nope",
		"empty":              "  ",
		"no format":          `{"components":[]}`,
		"wrong bomFormat":    `{"bomFormat":"SWID","specVersion":"1.5"}`,
		"both formats":       `{"bomFormat":"CycloneDX","spdxVersion":"SPDX-2.3"}`,
		"bad spec version":   `{"bomFormat":"CycloneDX","specVersion":"9.9"}`,
		"no spec version":    `{"bomFormat":"CycloneDX"}`,
		"bad purl":           cdx(`{"type":"library","name":"a","version":"1","purl":"not a purl"}`),
		"nameless":           cdx(`{"type":"library","version":"1"}`),
		"control in version": cdx(`{"type":"library","name":"a","version":"1\u0007"}`),
		"too deep":           cdx(deep),
		"spdx bad version":   `{"spdxVersion":"SPDX-9.9","packages":[]}`,
		"spdx nameless":      `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[{"SPDXID":"SPDXRef-a","versionInfo":"1"}]}`,
		"spdx bad purl": `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[{"SPDXID":"SPDXRef-a","name":"a",` +
			`"externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:"}]}]}`,
	}
	for name, in := range tests {
		s, err := ParseSBOM(strings.NewReader(in))
		if k := errs.KindOf(err); s != nil || (k != errs.Invalid && k != errs.Unsupported) {
			t.Errorf("%s: ParseSBOM = %v, %v; want nil and an Invalid error", name, s, err)
		}
	}
	// The format-specific readers refuse the other format.
	if _, err := ParseSPDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/sbom.cdx.json"))); errs.KindOf(err) != errs.Invalid {
		t.Errorf("ParseSPDX(CycloneDX) error = %v; want Invalid", err)
	}
	if _, err := ParseCycloneDX(bytes.NewReader(readTestdata(t, "sbom/osv-scalibr/sbom.spdx.json"))); errs.KindOf(err) != errs.Invalid {
		t.Errorf("ParseCycloneDX(SPDX) error = %v; want Invalid", err)
	}
}

func TestPURLEcosystems(t *testing.T) {
	tests := []struct {
		purl, eco, name, version, source, srcVersion string
	}{
		{"pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl", "Debian:12", "libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2"},
		{"pkg:deb/debian/bash@5.2.15-2%2Bb8?distro=bookworm&upstream=bash%405.2.15-2", "Debian:12", "bash", "5.2.15-2+b8", "bash", "5.2.15-2"},
		{"pkg:deb/debian/bash@5.2.15-2%2Bb8", "Debian", "bash", "5.2.15-2+b8", "bash", "5.2.15-2"},
		{"pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1.15?distro=ubuntu-22.04", "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.15", "openssl", "3.0.2-0ubuntu1.15"},
		{"pkg:deb/ubuntu/openssl@3.0.10-1ubuntu2?distro=ubuntu-23.10", "Ubuntu:23.10", "openssl", "3.0.10-1ubuntu2", "openssl", "3.0.10-1ubuntu2"},
		{"pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&upstream=openssl-3.0.7-27.el9.src.rpm&distro=rhel-9.3",
			"Red Hat", "openssl-libs", "1:3.0.7-27.el9", "openssl", "1:3.0.7-27.el9"},
		{"pkg:rpm/rocky/bash@5.1.8-6.el9_1?distro=rocky-9.3", "Rocky Linux:9", "bash", "5.1.8-6.el9_1", "bash", "5.1.8-6.el9_1"},
		{"pkg:rpm/almalinux/bash@5.1.8-6.el9_1?distro=almalinux-9.3", "AlmaLinux:9", "bash", "5.1.8-6.el9_1", "bash", "5.1.8-6.el9_1"},
		{"pkg:rpm/opensuse/curl@8.0.1-1.1?distro=opensuse-leap-15.5", "openSUSE:Leap 15.5", "curl", "8.0.1-1.1", "curl", "8.0.1-1.1"},
		{"pkg:rpm/suse/curl@8.0.1-1.1?distro=sles-15.5", "SUSE:Linux Enterprise Server 15 SP5", "curl", "8.0.1-1.1", "curl", "8.0.1-1.1"},
		{"pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&upstream=openssl&distro=alpine-3.19.1", "Alpine:v3.19", "libcrypto3", "3.1.4-r5", "openssl", "3.1.4-r5"},
		{"pkg:npm/%40angular/core@16.2.0", "npm", "@angular/core", "16.2.0", "@angular/core", "16.2.0"},
		{"pkg:pypi/django@4.2.7", "PyPI", "django", "4.2.7", "django", "4.2.7"},
		{"pkg:golang/golang.org/x/net@v0.17.0", "Go", "golang.org/x/net", "v0.17.0", "golang.org/x/net", "v0.17.0"},
		{"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "Maven", "org.apache.logging.log4j:log4j-core", "2.14.1", "org.apache.logging.log4j:log4j-core", "2.14.1"},
		{"pkg:nuget/Newtonsoft.Json@13.0.1", "NuGet", "Newtonsoft.Json", "13.0.1", "Newtonsoft.Json", "13.0.1"},
		{"pkg:gem/rails@7.0.8", "RubyGems", "rails", "7.0.8", "rails", "7.0.8"},
		{"pkg:composer/symfony/http-kernel@5.4.20", "Packagist", "symfony/http-kernel", "5.4.20", "symfony/http-kernel", "5.4.20"},
		{"pkg:generic/openssl@1.1.1", "", "x", "1.1.1", "x", "1.1.1"},
	}
	for _, tt := range tests {
		p, err := sbomPackage("test", "x", "", tt.purl)
		if err != nil {
			t.Errorf("sbomPackage(%q) error: %v", tt.purl, err)
			continue
		}
		got := [5]string{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}
		want := [5]string{tt.eco, tt.name, tt.version, tt.source, tt.srcVersion}
		if got != want {
			t.Errorf("sbomPackage(%q) = %q; want %q", tt.purl, got, want)
		}
	}
}
