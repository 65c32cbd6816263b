package match

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
)

func TestAffects(t *testing.T) {
	// Shapes taken from real records: ALSA-2024:2433 (AlmaLinux:9 avahi),
	// GO-2024-2611 (google.golang.org/protobuf, SEMVER), NVD CPE ranges for
	// Apache httpd and Cisco IOS, and Debian's openssl in bookworm.
	eco := func(e string, rs ...advisory.Range) advisory.Affected {
		return advisory.Affected{Ecosystem: e, Ranges: rs}
	}
	fixedAt := func(intro, fixed string) advisory.Range {
		return advisory.Range{Type: "ECOSYSTEM", Introduced: intro, Fixed: fixed}
	}
	tests := []struct {
		name      string
		a         advisory.Affected
		version   string
		affected  bool
		fixedWant string
	}{
		{"alma below fix", eco("AlmaLinux:9", fixedAt("0", "0.8-20.el9")), "0.8-12.el9", true, "0.8-20.el9"},
		{"alma at fix", eco("AlmaLinux:9", fixedAt("0", "0.8-20.el9")), "0.8-20.el9", false, ""},
		{"alma above fix", eco("AlmaLinux:9", fixedAt("0", "0.8-20.el9")), "0.8-20.el9_4.1", false, ""},
		{"alma epoch beats fix", eco("AlmaLinux:9", fixedAt("0", "0.8-20.el9")), "1:0.7-1.el9", false, ""},
		{"debian openssl affected", eco("Debian:12", fixedAt("0", "3.0.19-1~deb12u2")), "3.0.19-1~deb12u1", true, "3.0.19-1~deb12u2"},
		{"debian openssl fixed", eco("Debian:12", fixedAt("0", "3.0.19-1~deb12u2")), "3.0.19-1~deb12u2", false, ""},
		{"debian tilde sorts before", eco("Debian:12", fixedAt("0", "3.0.19-1")), "3.0.19-1~deb12u2", true, "3.0.19-1"},
		{"empty introduced", eco("Debian:12", advisory.Range{Type: "ECOSYSTEM", Fixed: "2.0-1"}), "1.0-1", true, "2.0-1"},
		{"before introduced", eco("Debian:12", fixedAt("1.5-1", "2.0-1")), "1.0-1", false, ""},
		{"at introduced", eco("Debian:12", fixedAt("1.5-1", "2.0-1")), "1.5-1", true, "2.0-1"},
		{"introduced exclusive", eco("Debian:12", advisory.Range{Introduced: "1.5-1", IntroducedExclusive: true, Fixed: "2.0-1"}), "1.5-1", false, ""},
		{"introduced exclusive above", eco("Debian:12", advisory.Range{Introduced: "1.5-1", IntroducedExclusive: true, Fixed: "2.0-1"}), "1.5-2", true, "2.0-1"},
		{"last affected inclusive", eco("PyPI", advisory.Range{Type: "ECOSYSTEM", Introduced: "0", LastAffected: "2.31.0"}), "2.31.0", true, ""},
		{"last affected above", eco("PyPI", advisory.Range{Type: "ECOSYSTEM", Introduced: "0", LastAffected: "2.31.0"}), "2.31.1", false, ""},
		{"no end: unfixed", eco("npm", advisory.Range{Type: "SEMVER", Introduced: "1.0.0"}), "9.9.9", true, ""},
		{"limit closes range", eco("npm", advisory.Range{Type: "SEMVER", Introduced: "1.0.0", Limit: "2.0.0"}), "2.1.0", false, ""},
		{"below limit", eco("npm", advisory.Range{Type: "SEMVER", Introduced: "1.0.0", Limit: "2.0.0"}), "1.9.0", true, ""},
		{"go semver with v", eco("Go", advisory.Range{Type: "SEMVER", Introduced: "0", Fixed: "1.33.0"}), "v1.32.0", true, "1.33.0"},
		{"go semver fixed", eco("Go", advisory.Range{Type: "SEMVER", Introduced: "0", Fixed: "1.33.0"}), "v1.33.0", false, ""},
		{"smallest fix of matching ranges",
			eco("Maven", fixedAt("2.0", "2.17.1"), fixedAt("2.0", "2.15.0"), fixedAt("3.0", "3.0.1")), "2.14.1", true, "2.15.0"},
		{"second range matches", eco("Maven", fixedAt("2.0-beta9", "2.3.1"), fixedAt("2.4", "2.12.2")), "2.11.0", true, "2.12.2"},
		{"between ranges", eco("Maven", fixedAt("2.0-beta9", "2.3.1"), fixedAt("2.4", "2.12.2")), "2.3.2", false, ""},
		{"git ranges ignored",
			advisory.Affected{Ecosystem: "PyPI", Ranges: []advisory.Range{{Type: "GIT", Introduced: "0", Fixed: "abc123"}}}, "1.0", false, ""},
		{"listed version",
			advisory.Affected{Ecosystem: "PyPI", Versions: []string{"1.0", "1.1"}, Ranges: []advisory.Range{{Type: "GIT", Introduced: "0", Fixed: "abc"}}}, "1.1", true, ""},
		{"listed version equal by ordering", advisory.Affected{Ecosystem: "Debian:12", Versions: []string{"0:1.2-1"}}, "1.2-1", true, ""},
		{"listed version picks nearest fix above",
			advisory.Affected{Ecosystem: "PyPI", Versions: []string{"1.1"}, Ranges: []advisory.Range{fixedAt("2.0", "2.5"), fixedAt("3.0", "3.1")}}, "1.1", true, "2.5"},
		{"not listed", advisory.Affected{Ecosystem: "PyPI", Versions: []string{"1.0"}}, "1.0.1", false, ""},
		{"no ranges no versions", advisory.Affected{Ecosystem: "npm"}, "1.0.0", false, ""},
		{"alpine", eco("Alpine:v3.19", fixedAt("0", "3.1.4-r5")), "3.1.4-r3", true, "3.1.4-r5"},
		{"ubuntu", eco("Ubuntu:22.04:LTS", fixedAt("0", "3.0.2-0ubuntu1.15")), "3.0.2-0ubuntu1.10", true, "3.0.2-0ubuntu1.15"},

		// NVD: versionStartIncluding 2.4.0, versionEndExcluding 2.4.58.
		{"cpe range", cpeAff("cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Introduced: "2.4.0", Fixed: "2.4.58"}), "2.4.57", true, "2.4.58"},
		{"cpe range end", cpeAff("cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Introduced: "2.4.0", Fixed: "2.4.58"}), "2.4.58", false, ""},
		{"cpe range numeric not lexical", cpeAff("cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Introduced: "2.4.0", Fixed: "2.4.58"}), "2.4.9", true, "2.4.58"},
		// versionEndIncluding 15.2(7)E9 (Cisco IOS trains).
		{"cpe cisco end including", cpeAff("cpe:2.3:o:cisco:ios:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", LastAffected: "15.2(7)E9"}), "15.2(7)E9", true, ""},
		{"cpe cisco above", cpeAff("cpe:2.3:o:cisco:ios:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", LastAffected: "15.2(7)E9"}), "15.2(7)E10", false, ""},
		{"cpe start excluding", cpeAff("cpe:2.3:a:x:y:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Introduced: "7.2.0", IntroducedExclusive: true, Fixed: "7.2.8"}), "7.2.0", false, ""},
		{"cpe any version", cpeAff("cpe:2.3:h:qualcomm:qca9563:*:*:*:*:*:*:*:*"), "1.0", true, ""},
		{"cpe exact version", cpeAff("cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*"), "7.2.8", true, ""},
		{"cpe exact other version", cpeAff("cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*"), "7.2.9", false, ""},
		{"cpe escaped exact", cpeAff(`cpe:2.3:o:cisco:ios:15.2\(7\)e10:*:*:*:*:*:*:*`), "15.2(7)E10", true, ""},
		{"cpe na version", cpeAff("cpe:2.3:h:acme:pump:-:*:*:*:*:*:*:*"), "1.0", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			affected, fixed, err := Affects(tt.a, tt.version)
			if err != nil {
				t.Fatalf("Affects(%q) error: %v", tt.version, err)
			}
			if affected != tt.affected || fixed != tt.fixedWant {
				t.Errorf("Affects(%+v, %q) = %v, %q; want %v, %q", tt.a, tt.version, affected, fixed, tt.affected, tt.fixedWant)
			}
		})
	}
}

func cpeAff(cpe string, rs ...advisory.Range) advisory.Affected {
	return advisory.Affected{Ecosystem: advisory.EcosystemCPE, CPE: cpe, Vulnerable: true, Ranges: rs}
}

func TestAffectsErrors(t *testing.T) {
	tests := []struct {
		name    string
		a       advisory.Affected
		version string
		kind    errs.Kind
	}{
		{"unknown ecosystem", advisory.Affected{Ecosystem: "Nonesuch", Versions: []string{"1"}}, "1", errs.Unsupported},
		{"bad bound", advisory.Affected{Ecosystem: "Debian:12", Ranges: []advisory.Range{{Introduced: "0", Fixed: "x:1"}}}, "1.0", errs.Invalid},
		{"bad installed", advisory.Affected{Ecosystem: "Debian:12", Ranges: []advisory.Range{{Introduced: "0", Fixed: "2"}}}, "y:1", errs.Invalid},
		{"empty installed", advisory.Affected{Ecosystem: "npm", Ranges: []advisory.Range{{Introduced: "0", Fixed: "2"}}}, "", errs.Invalid},
		{"cpe any installed", cpeAff("cpe:2.3:a:x:y:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Fixed: "2"}), "*", errs.Invalid},
		{"cpe na installed", cpeAff("cpe:2.3:a:x:y:*:*:*:*:*:*:*:*", advisory.Range{Type: "CPE", Fixed: "2"}), "-", errs.Invalid},
		{"bad cpe", cpeAff("cpe:2.3:a:x"), "1", errs.Invalid},
		{"mixed orderings", advisory.Affected{Ecosystem: "Debian:12", Ranges: []advisory.Range{{Type: "SEMVER", Fixed: "2.0.0"}}}, "1.0", errs.Invalid},
	}
	for _, tt := range tests {
		_, _, err := Affects(tt.a, tt.version)
		if errs.KindOf(err) != tt.kind {
			t.Errorf("%s: Affects error = %v (kind %v); want kind %v", tt.name, err, errs.KindOf(err), tt.kind)
		}
	}
}

func TestCompileAffectedReuse(t *testing.T) {
	set, err := CompileAffected(advisory.Affected{Ecosystem: "Debian:12", Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "2.38.1-5+deb12u1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if set.Ecosystem() != "Debian:12" {
		t.Errorf("Ecosystem() = %q", set.Ecosystem())
	}
	for v, want := range map[string]bool{"2.38.1-5": true, "2.38.1-5+b1": true, "2.38.1-5+deb12u1": false, "2.38.1-5+deb12u3": false} {
		pv, err := ParseVersion("Debian:12", v)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := set.Affects(pv); got != want {
			t.Errorf("Affects(%q) = %v; want %v", v, got, want)
		}
	}
}

func TestParseCPE(t *testing.T) {
	tests := []struct {
		in   string
		want CPE
	}{
		{"cpe:2.3:a:apache:http_server:2.4.58:*:*:*:*:*:*:*",
			CPE{Part: "a", Vendor: "apache", Product: "http_server", Version: "2.4.58", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{`cpe:2.3:o:cisco:ios:15.2\(7\)E10:*:*:*:*:*:*:*`,
			CPE{Part: "o", Vendor: "cisco", Product: "ios", Version: "15.2(7)e10", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{`cpe:2.3:a:microsoft:.net_framework:4.8:-:*:*:*:*:x64:*`,
			CPE{Part: "a", Vendor: "microsoft", Product: ".net_framework", Version: "4.8", Update: "-", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "x64", Other: "*"}},
		{`cpe:2.3:a:vendor:prod\:uct:1.0:*:*:*:*:*:*:*`,
			CPE{Part: "a", Vendor: "vendor", Product: "prod:uct", Version: "1.0", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{`cpe:2.3:a:v:p:\*:*:*:*:*:*:*:*`, // escaped star is a literal, not ANY
			CPE{Part: "a", Vendor: "v", Product: "p", Version: "*", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{"cpe:2.3:a:nginx:nginx:1.21.1", // truncated, as in osv-scalibr's SBOM fixtures
			CPE{Part: "a", Vendor: "nginx", Product: "nginx", Version: "1.21.1", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{"cpe:/a:apache:http_server:2.4.58",
			CPE{Part: "a", Vendor: "apache", Product: "http_server", Version: "2.4.58", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{"cpe:/o:microsoft:windows_10:1809::~~enterprise~~x64~",
			CPE{Part: "o", Vendor: "microsoft", Product: "windows_10", Version: "1809", Update: "*", Edition: "*", Language: "*", SWEdition: "enterprise", TargetSW: "*", TargetHW: "x64", Other: "*"}},
		{"CPE:/H:Qualcomm:QCA9563:-",
			CPE{Part: "h", Vendor: "qualcomm", Product: "qca9563", Version: "-", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
		{"cpe:/a:wolfssl:wolfssl:4.8.1%2b",
			CPE{Part: "a", Vendor: "wolfssl", Product: "wolfssl", Version: "4.8.1+", Update: "*", Edition: "*", Language: "*", SWEdition: "*", TargetSW: "*", TargetHW: "*", Other: "*"}},
	}
	for _, tt := range tests {
		got, err := ParseCPE(tt.in)
		if err != nil {
			t.Errorf("ParseCPE(%q) error: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseCPE(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
		// String renders a 2.3 name that parses back to the same value.
		again, err := ParseCPE(got.String())
		if err != nil || again != got {
			t.Errorf("ParseCPE(%q.String() = %q) = %+v, %v; want round trip", tt.in, got.String(), again, err)
		}
	}
	bad := []string{
		"", "cpe:2.3:a:x", "cpe:2.3:a:v:p:1:*:*:*:*:*:*:*:extra", "cpe:2.3:q:v:p:1:*:*:*:*:*:*:*",
		"cpe:2.3:a:v:p:1:*:*:*:*:*:*:\\", "cpe:2.3:a:v::1:*:*:*:*:*:*:*", "cpe:/a:v:p:1:2:3:4:5",
		"cpe:/a:v:p:%zz", "cpe:/a:v:p:1:u:~a~b", "apache httpd", "cpe:2.3:a:v:p:1 2:*:*:*:*:*:*:*",
		"cpe:/a:v:" + strings.Repeat("p", 2000),
	}
	for _, s := range bad {
		if _, err := ParseCPE(s); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseCPE(%q) error = %v; want an Invalid error", s, err)
		}
	}
}

func TestCPEMatches(t *testing.T) {
	tests := []struct {
		criteria, target string
		want             bool
	}{
		{"cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", "cpe:2.3:a:apache:http_server:2.4.57:*:*:*:*:*:*:*", true},
		{"cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", "cpe:/a:apache:http_server:2.4.57", true},
		{"cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", "cpe:2.3:a:apache:tomcat:9.0:*:*:*:*:*:*:*", false},
		{"cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", "cpe:2.3:o:apache:http_server:2.4:*:*:*:*:*:*:*", false},
		{"cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*", "cpe:2.3:o:fortinet:fortios:7.2.08:*:*:*:*:*:*:*", true},
		{"cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*", "cpe:2.3:o:fortinet:fortios:7.2.9:*:*:*:*:*:*:*", false},
		{"cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*", "cpe:2.3:o:fortinet:fortios:*:*:*:*:*:*:*:*", true},
		{`cpe:2.3:o:cisco:ios:15.2\(7\)e10:*:*:*:*:*:*:*`, "cpe:/o:cisco:ios:15.2%287%29E10", true},
		{"cpe:2.3:o:microsoft:windows_10:1809:*:*:*:*:*:x64:*", "cpe:2.3:o:microsoft:windows_10:1809:*:*:*:*:*:x86:*", false},
		{"cpe:2.3:o:microsoft:windows_10:1809:*:*:*:*:*:x64:*", "cpe:2.3:o:microsoft:windows_10:1809:*:*:*:*:*:*:*", true},
		{"cpe:2.3:h:acme:pump:-:*:*:*:*:*:*:*", "cpe:2.3:h:acme:pump:-:*:*:*:*:*:*:*", true},
		{"cpe:2.3:h:acme:pump:-:*:*:*:*:*:*:*", "cpe:2.3:h:acme:pump:1.0:*:*:*:*:*:*:*", false},
		{"cpe:2.3:a:Apache:HTTP_Server:*:*:*:*:*:*:*:*", "cpe:2.3:a:apache:http_server:2.4:*:*:*:*:*:*:*", true},
	}
	for _, tt := range tests {
		c, err := ParseCPE(tt.criteria)
		if err != nil {
			t.Fatal(err)
		}
		target, err := ParseCPE(tt.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Matches(target); got != tt.want {
			t.Errorf("ParseCPE(%q).Matches(%q) = %v; want %v", tt.criteria, tt.target, got, tt.want)
		}
	}
}

// FuzzParseCPE: arbitrary input is parsed or refused with an Invalid error,
// and whatever parses renders to a 2.3 name that parses back identically.
func FuzzParseCPE(f *testing.F) {
	for _, s := range []string{
		"cpe:2.3:a:apache:http_server:2.4.58:*:*:*:*:*:*:*", `cpe:2.3:o:cisco:ios:15.2\(7\)e10:*:*:*:*:*:*:*`,
		"cpe:/o:microsoft:windows_10:1809::~~enterprise~~x64~", "cpe:/a:wolfssl:wolfssl:4.8.1%2b", "cpe:/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPE(s)
		if err != nil {
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("ParseCPE(%q) error kind %v: %v", s, errs.KindOf(err), err)
			}
			return
		}
		again, err := ParseCPE(c.String())
		if err != nil {
			t.Fatalf("ParseCPE(%q).String() = %q does not parse: %v", s, c.String(), err)
		}
		if again != c {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, c)
		}
		if !c.Matches(c) {
			t.Fatalf("%q does not match itself", s)
		}
	})
}

// FuzzAffects drives range evaluation with arbitrary bounds and versions:
// it must return or refuse with a kinded error, never panic.
func FuzzAffects(f *testing.F) {
	f.Add("Debian:12", "0", "2.0-1", "", "1.0-1")
	f.Add("CPE", "2.4.0", "2.4.58", "", "2.4.9")
	f.Add("PyPI", "1.0", "", "2.0", "1.5")
	f.Fuzz(func(t *testing.T, eco, intro, fixed, last, v string) {
		a := advisory.Affected{Ecosystem: eco, Ranges: []advisory.Range{{Introduced: intro, Fixed: fixed, LastAffected: last}}}
		affected, fx, err := Affects(a, v)
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.Unsupported {
				t.Fatalf("Affects error kind %v: %v", k, err)
			}
			return
		}
		if !affected && fx != "" {
			t.Fatalf("not affected but fixed = %q", fx)
		}
		if fx != "" && fx != fixed {
			t.Fatalf("fixed = %q; the only fix bound is %q", fx, fixed)
		}
	})
}
