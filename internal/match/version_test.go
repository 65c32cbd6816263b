package match

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/errs"
)

// oraclePair is one judged comparison: want is the sign of a vs b.
type oraclePair struct {
	line int
	a, b string
	want int
}

// readOracle loads a TSV of "a<TAB>b<TAB>-1|0|1" lines from testdata.
func readOracle(t testing.TB, name string) []oraclePair {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "oracles", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pairs []oraclePair
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 {
			t.Fatalf("%s:%d: %d columns, want 3", name, n, len(cols))
		}
		want, err := strconv.Atoi(cols[2])
		if err != nil || want < -1 || want > 1 {
			t.Fatalf("%s:%d: verdict %q is not -1, 0 or 1", name, n, cols[2])
		}
		pairs = append(pairs, oraclePair{line: n, a: cols[0], b: cols[1], want: want})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pairs) == 0 {
		t.Fatalf("%s: no pairs", name)
	}
	return pairs
}

// knownDisagreement is an oracle pair whose upstream verdict we do not
// reproduce, with the reason. Every entry must still disagree, so a library
// upgrade that fixes one forces the list to shrink.
type knownDisagreement struct {
	file, a, b string
	reason     string
}

// disagreements is deliberately short: only pairs where the reference
// tool's own behaviour differs from the library and the upstream oracle
// file, or the file, is the odd one out.
var disagreements = []knownDisagreement{
	{
		file: "osv-scalibr-semantic/pypi-versions.tsv", a: "// 1.0.0+local", b: "1.0.0 False",
		reason: "not a comparison: upstream pypi-versions.txt has the commented-out lines " +
			"\"// 1.0.0+local < 1.0.0 False\" and \"… > 1.0.0 False\", which the TSV flattening " +
			"turned into two pairs (lines 5 and 6); the real pair on line 5 of the .txt, " +
			"\"1.0.0+local > 1.0.0\", is line 4 of the TSV and agrees",
	},
}

// TestVersionOracles holds CompareVersions (and the parsed Version form the
// engine uses) to every pair judged by each ecosystem's own tool: Debian
// 12's dpkg, rpm 4.18's rpmvercmp test suite, and osv-scalibr's fixtures
// generated from apk-tools, pip, Maven, NuGet, Composer, RubyGems, …
func TestVersionOracles(t *testing.T) {
	tests := []struct {
		ecosystem string
		file      string
		min       int // guards against a truncated copy of the file
	}{
		{"Debian:12", "dpkg/debian12-dpkg-oracle.tsv", 5000},
		{"Debian:12", "dpkg/dpkg-Dpkg_Version.t.tsv", 43},
		{"Debian:11", "dpkg/dpkg-snapshot-debian-versions-oracle.tsv", 4563},
		{"Debian", "osv-scalibr-semantic/debian-versions.tsv", 30},
		{"Debian", "osv-scalibr-semantic/debian-versions-generated.tsv", 14442},
		{"Ubuntu:22.04:LTS", "dpkg/dpkg-Dpkg_Version.t.tsv", 43},
		{"Red Hat", "rpm/rpmvercmp.at.tsv", 91},
		{"Red Hat", "rpm/rpmvercmp-documented-oddities.tsv", 12},
		{"Red Hat", "osv-scalibr-semantic/redhat-versions.tsv", 165},
		{"Rocky Linux:9", "osv-scalibr-semantic/redhat-versions.tsv", 165},
		{"AlmaLinux:9", "rpm/rpmvercmp.at.tsv", 91},
		{"SUSE", "rpm/rpmvercmp.at.tsv", 91},
		{"openSUSE", "rpm/rpmvercmp.at.tsv", 91},
		{"Alpine:v3.19", "osv-scalibr-semantic/alpine-versions.tsv", 778},
		{"Alpine:v3.19", "osv-scalibr-semantic/alpine-versions-generated.tsv", 13979},
		{"PyPI", "osv-scalibr-semantic/pypi-versions.tsv", 39},
		{"PyPI", "osv-scalibr-semantic/pypi-versions-generated.tsv", 12375},
		{"Maven", "osv-scalibr-semantic/maven-versions.tsv", 102},
		{"Maven", "osv-scalibr-semantic/maven-versions-generated.tsv", 14752},
		{"NuGet", "osv-scalibr-semantic/nuget-versions.tsv", 35},
		{"Packagist", "osv-scalibr-semantic/packagist-versions.tsv", 95},
		{"Packagist", "osv-scalibr-semantic/packagist-versions-generated.tsv", 10630},
		{"RubyGems", "osv-scalibr-semantic/rubygems-versions.tsv", 25},
		{"RubyGems", "osv-scalibr-semantic/rubygems-versions-generated.tsv", 4098},
		{"npm", "osv-scalibr-semantic/semver-versions.tsv", 86},
		{"Go", "osv-scalibr-semantic/semver-versions.tsv", 86},
		{"crates.io", "osv-scalibr-semantic/semver-versions.tsv", 86},
		{"Pub", "osv-scalibr-semantic/pub-versions.tsv", 100},
		{"CRAN", "osv-scalibr-semantic/cran-versions.tsv", 21},
		{"CRAN", "osv-scalibr-semantic/cran-versions-generated.tsv", 57},
		{"Hackage", "osv-scalibr-semantic/hackage-versions.tsv", 11},
	}
	used := map[knownDisagreement]bool{}
	for _, tt := range tests {
		t.Run(tt.ecosystem+"/"+tt.file, func(t *testing.T) {
			pairs := readOracle(t, tt.file)
			if len(pairs) < tt.min {
				t.Fatalf("%s has %d pairs, want at least %d", tt.file, len(pairs), tt.min)
			}
			bad, listed := 0, 0
			for _, p := range pairs {
				if d, ok := lookupDisagreement(tt.file, p.a, p.b); ok {
					used[d] = true
					listed++
					continue
				}
				if err := checkPair(tt.ecosystem, p); err != nil {
					bad++
					if bad <= 20 {
						t.Errorf("%s:%d: %v", tt.file, p.line, err)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d pairs disagree", bad, len(pairs))
			}
			t.Logf("%s: %d of %d pairs agree, %d listed as not comparisons", tt.file, len(pairs)-bad-listed, len(pairs), listed)
		})
	}
	for _, d := range disagreements {
		if !used[d] {
			t.Errorf("listed disagreement %s %q vs %q no longer appears in the oracle", d.file, d.a, d.b)
		}
	}
}

func lookupDisagreement(file, a, b string) (knownDisagreement, bool) {
	for _, d := range disagreements {
		if d.file == file && (d.a == a && d.b == b || d.a == b && d.b == a) {
			return d, true
		}
	}
	return knownDisagreement{}, false
}

// checkPair compares one pair in both directions, through both the string
// and the parsed API, and requires antisymmetry.
func checkPair(ecosystem string, p oraclePair) error {
	got, err := CompareVersions(ecosystem, p.a, p.b)
	if err != nil {
		return fmt.Errorf("CompareVersions(%q, %q, %q): %v", ecosystem, p.a, p.b, err)
	}
	if got != p.want {
		return fmt.Errorf("CompareVersions(%q, %q, %q) = %d; want %d", ecosystem, p.a, p.b, got, p.want)
	}
	rev, err := CompareVersions(ecosystem, p.b, p.a)
	if err != nil || rev != -p.want {
		return fmt.Errorf("CompareVersions(%q, %q, %q) = %d, %v; want %d", ecosystem, p.b, p.a, rev, err, -p.want)
	}
	va, err := ParseVersion(ecosystem, p.a)
	if err != nil {
		return fmt.Errorf("ParseVersion(%q, %q): %v", ecosystem, p.a, err)
	}
	vb, err := ParseVersion(ecosystem, p.b)
	if err != nil {
		return fmt.Errorf("ParseVersion(%q, %q): %v", ecosystem, p.b, err)
	}
	if c := va.Compare(vb); c != p.want {
		return fmt.Errorf("ParseVersion(%q).Compare(%q) = %d; want %d", p.a, p.b, c, p.want)
	}
	return nil
}

// TestDpkgBinary cross-checks a sample of the oracle against the real
// dpkg --compare-versions on this machine, so the checked-in verdicts cannot
// drift from the tool they claim to come from.
func TestDpkgBinary(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed")
	}
	if testing.Short() {
		t.Skip("runs dpkg per pair")
	}
	pairs := readOracle(t, "dpkg/debian12-dpkg-oracle.tsv")
	// Every 50th pair: 100 pairs, ~3 dpkg runs each, a second or two.
	for i := 0; i < len(pairs); i += 50 {
		p := pairs[i]
		got := 0
		for _, op := range []struct {
			name string
			res  int
		}{{"lt", -1}, {"gt", 1}} {
			err := exec.Command(dpkg, "--compare-versions", p.a, op.name, p.b).Run()
			var exit *exec.ExitError
			switch {
			case err == nil:
				got = op.res
			case errors.As(err, &exit) && exit.ExitCode() == 1:
			default:
				t.Fatalf("dpkg --compare-versions %q %s %q: %v", p.a, op.name, p.b, err)
			}
			if got != 0 {
				break
			}
		}
		if got != p.want {
			t.Errorf("dpkg --compare-versions says %q vs %q is %d; oracle file says %d", p.a, p.b, got, p.want)
		}
		lib, err := CompareVersions("Debian:12", p.a, p.b)
		if err != nil || lib != got {
			t.Errorf("CompareVersions(Debian, %q, %q) = %d, %v; dpkg says %d", p.a, p.b, lib, err, got)
		}
	}
}

func TestCompareVersionsEcosystemNames(t *testing.T) {
	tests := []struct {
		ecosystem, a, b string
		want            int
	}{
		{"Debian:12", "1:1.0-1", "2.0-1", 1},
		{"Debian:12", "1.0~rc1-1", "1.0-1", -1},
		{"Ubuntu:22.04:LTS", "3.0.2-0ubuntu1.15", "3.0.2-0ubuntu1.9", 1},
		{"Ubuntu:Pro:16.04:LTS", "1.0-1ubuntu0.1~esm1", "1.0-1ubuntu0.1", -1},
		{"AlmaLinux:9", "1:3.0.7-27.el9", "3.0.7-28.el9", 1},
		{"Rocky Linux:8", "2.28-225.el8_8.6", "2.28-225.el8", 1},
		{"Red Hat:enterprise_linux:9::baseos", "4.18.0-513.el8", "4.18.0-477.el8", 1},
		{"SUSE:Linux Enterprise Server 15 SP5", "1.1.1l-150500.17.25.1", "1.1.1l-150500.17.9.1", 1},
		{"openSUSE:Leap 15.5", "2.0~beta1-1.1", "2.0-1.1", -1},
		{"Alpine:v3.19", "3.1.4-r5", "3.1.4-r10", -1},
		{"Alpine:v3.19", "1.36.1-r15", "1.36.1_p1-r0", -1},
		{"npm", "1.2.3-beta.1", "1.2.3", -1},
		{"Go", "v1.2.3", "1.2.4", -1},
		{"Go", "v0.0.0-20230101000000-abcdef123456", "0.1.0", -1},
		{"PyPI", "2.0.0rc1", "2.0.0", -1},
		{"PyPI", "1.0.post1", "1.0", 1},
		{"Maven", "2.17.1", "2.17.1-SNAPSHOT", 1},
		{"NuGet", "6.0.0-preview.1", "6.0.0", -1},
		{"crates.io", "0.10.0", "0.9.9", 1},
		{"RubyGems", "7.0.8.1", "7.0.8", 1},
		{"Packagist", "5.4.0-RC1", "5.4.0", -1},
		{"CPE", "15.2(7)E10", "15.2(7)E9", 1},
		{"Fedora:40", "6.8.5-301.fc40", "6.8.5-300.fc40", 1},
	}
	for _, tt := range tests {
		got, err := CompareVersions(tt.ecosystem, tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("CompareVersions(%q, %q, %q) = %d, %v; want %d", tt.ecosystem, tt.a, tt.b, got, err, tt.want)
		}
	}
}

func TestCompareVersionsErrors(t *testing.T) {
	tests := []struct {
		ecosystem, a, b string
		kind            errs.Kind
	}{
		{"Nonesuch", "1", "2", errs.Unsupported},
		{"", "1", "2", errs.Unsupported},
		{"Debian:12", "", "1.0", errs.Invalid},
		{"Debian:12", "1.0", "  ", errs.Invalid},
		{"Debian:12", "x:1.0", "1.0", errs.Invalid},
		{"PyPI", strings.Repeat("1", 300), "1", errs.Invalid},
	}
	for _, tt := range tests {
		_, err := CompareVersions(tt.ecosystem, tt.a, tt.b)
		if errs.KindOf(err) != tt.kind {
			t.Errorf("CompareVersions(%q, %q, %q) error = %v (kind %v); want kind %v", tt.ecosystem, tt.a, tt.b, err, errs.KindOf(err), tt.kind)
		}
	}
}

func TestCompareCPEVersions(t *testing.T) {
	// Each row is in ascending order; every pair within a row is checked in
	// both directions, which also exercises transitivity.
	chains := [][]string{
		{"1.0", "1.0.1", "1.0.2", "1.1", "1.10", "2"},
		{"2.0.0-dev", "2.0.0-alpha", "2.0.0-beta2", "2.0.0-rc1", "2.0.0-rc2", "2.0.0", "2.0.0a", "2.0.0.1"},
		{"1.1.1", "1.1.1a", "1.1.1k", "1.1.1w", "1.1.2"},
		{"15.2(4)E", "15.2(4)E1", "15.2(4)E10", "15.2(7)", "15.2(7)E9", "15.2(7)E10", "15.3(1)"},
		{"2.4.9", "2.4.57", "2.4.58", "2.4.100"},
		{"10.0.17763", "10.0.19044", "10.0.19045", "10.0.22621"},
		{"7.2.8", "7.2.10", "7.10.0"},
		{"R0.13", "R0.13a", "R0.13c"},
		{"1", "123456789012345678901234567890"},
	}
	for _, chain := range chains {
		for i := range chain {
			for j := range chain {
				want := cmpSign(i - j)
				if got := CompareCPEVersions(chain[i], chain[j]); got != want {
					t.Errorf("CompareCPEVersions(%q, %q) = %d; want %d", chain[i], chain[j], got, want)
				}
			}
		}
	}
	equal := [][2]string{
		{"7.2.8", "7.2.08"}, {"1.0", "1-0"}, {"15.2\\(7\\)e10", "15.2(7)E10"}, {"2.4.58", "2.4.58"},
		{"*", "-"}, {"*", ""}, {"1.0RC1", "1.0-rc-1"},
	}
	for _, e := range equal {
		if got := CompareCPEVersions(e[0], e[1]); got != 0 {
			t.Errorf("CompareCPEVersions(%q, %q) = %d; want 0", e[0], e[1], got)
		}
	}
	for _, v := range []string{"0", "0.0.1", "a", "rc1"} {
		if got := CompareCPEVersions("*", v); got != -1 {
			t.Errorf("CompareCPEVersions(*, %q) = %d; want -1 (logical values sort first)", v, got)
		}
	}
}

func TestParseVersionCrossOrdering(t *testing.T) {
	d, err := ParseVersion("Debian:12", "1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseVersion("Red Hat", "1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseVersion("CPE", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	// Different orderings never compare equal, and the order is antisymmetric.
	for _, p := range [][2]Version{{d, r}, {d, c}, {r, c}} {
		x, y := p[0].Compare(p[1]), p[1].Compare(p[0])
		if x == 0 || x != -y {
			t.Errorf("cross-ordering compare %v/%v = %d, %d; want non-zero and antisymmetric", p[0], p[1], x, y)
		}
	}
	if d.String() != "1.0-1" {
		t.Errorf("String() = %q; want %q", d.String(), "1.0-1")
	}
}

// FuzzCompareCPEVersions checks that the CPE ordering is antisymmetric and
// reflexive for arbitrary input and never panics.
func FuzzCompareCPEVersions(f *testing.F) {
	for _, s := range [][2]string{{"15.2(7)E10", "15.2(7)E9"}, {"1.0rc1", "1.0"}, {"*", "-"}, {"1.1.1w", "1.1.1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		x, y := CompareCPEVersions(a, b), CompareCPEVersions(b, a)
		if x != -y {
			t.Fatalf("CompareCPEVersions(%q, %q) = %d but reverse = %d", a, b, x, y)
		}
		if CompareCPEVersions(a, a) != 0 {
			t.Fatalf("CompareCPEVersions(%q, itself) != 0", a)
		}
	})
}

// FuzzCompareVersions feeds arbitrary strings to every ordering: parsing may
// refuse them with a kinded error but must not panic, and accepted versions
// must compare antisymmetrically.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1:2.3-4", "1.0~rc1", "3.1.4-r5", "1.2.3-beta.1", "2.0.0rc1", "2.17.1-SNAPSHOT", "15.2(7)E10", "1.0^git1"} {
		f.Add(s, "1.0")
	}
	ecosystems := []string{"Debian:12", "Red Hat", "Alpine:v3.19", "npm", "PyPI", "Maven", "NuGet", "RubyGems", "Packagist", "CPE"}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, eco := range ecosystems {
			x, err := CompareVersions(eco, a, b)
			if err != nil {
				if k := errs.KindOf(err); k != errs.Invalid {
					t.Fatalf("CompareVersions(%q, %q, %q) error kind %v: %v", eco, a, b, k, err)
				}
				continue
			}
			y, err := CompareVersions(eco, b, a)
			if err != nil {
				t.Fatalf("CompareVersions(%q) accepted (%q, %q) but not the reverse: %v", eco, a, b, err)
			}
			if x != -y {
				t.Fatalf("CompareVersions(%q, %q, %q) = %d but reverse = %d", eco, a, b, x, y)
			}
		}
	})
}

func BenchmarkCompareDebian(b *testing.B) {
	pairs := readOracle(b, "dpkg/debian12-dpkg-oracle.tsv")
	b.Run("unparsed", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p := pairs[i%len(pairs)]
			if _, err := CompareVersions("Debian:12", p.a, p.b); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parsed", func(b *testing.B) {
		type parsed struct{ a, b Version }
		pp := make([]parsed, len(pairs))
		for i, p := range pairs {
			va, err := ParseVersion("Debian:12", p.a)
			if err != nil {
				b.Fatal(err)
			}
			vb, err := ParseVersion("Debian:12", p.b)
			if err != nil {
				b.Fatal(err)
			}
			pp[i] = parsed{va, vb}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			p := pp[i%len(pp)]
			p.a.Compare(p.b)
		}
	})
}
