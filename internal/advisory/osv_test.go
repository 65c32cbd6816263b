package advisory

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchward/patchward/internal/errs"
)

func readTestdata(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseOSVFile(t *testing.T, name string) Advisory {
	t.Helper()
	advs, err := ParseOSV(bytes.NewReader(readTestdata(t, "osv/"+name)))
	if err != nil {
		t.Fatalf("ParseOSV(%s): %v", name, err)
	}
	if len(advs) != 1 {
		t.Fatalf("ParseOSV(%s) returned %d advisories; want 1", name, len(advs))
	}
	return advs[0]
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// ignoreText leaves out long prose fields that the assertions are not about.
var ignoreText = cmpopts.IgnoreFields(Advisory{}, "Details")

func TestParseOSVDebianDSA(t *testing.T) {
	got := parseOSVFile(t, "DSA-3029-1.json")
	want := Advisory{
		ID:        "DSA-3029-1",
		Source:    SourceOSV,
		Aliases:   []string{"CVE-2014-3616"},
		Summary:   "nginx - security update",
		Published: date("2014-09-20T00:00:00Z"),
		Modified:  date("2014-09-20T08:18:07Z"),
		References: []string{
			"https://www.debian.org/security/2014/dsa-3029",
		},
		Affected: []Affected{{
			Ecosystem:  "Debian:7",
			Package:    "nginx",
			Vulnerable: true,
			Ranges:     []Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2.1-2.2+wheezy3"}},
		}},
	}
	if diff := cmp.Diff(want, got, ignoreText); diff != "" {
		t.Errorf("ParseOSV(DSA-3029-1) mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Details, "fixed in\nversion 1.2.1-2.2+wheezy3") {
		t.Errorf("DSA-3029-1 details lost the fixed-version text: %q", got.Details)
	}
}

// DLA-3623-1 is trimmed by osv.dev to its identity and upstream CVE list
// (no affected packages); what it has must survive, so KEV and EPSS can
// be joined to it through Upstream.
func TestParseOSVDebianDLAUpstream(t *testing.T) {
	got := parseOSVFile(t, "DLA-3623-1.json")
	if got.ID != "DLA-3623-1" || !got.Published.Equal(date("2023-08-14T00:00:00Z")) || !got.Modified.Equal(date("2025-10-13T15:48:05.749899Z")) {
		t.Errorf("DLA-3623-1 = %s published %v modified %v", got.ID, got.Published, got.Modified)
	}
	if len(got.Upstream) != 44 || got.Upstream[0] != "CVE-2022-39189" || !contains(got.Upstream, "CVE-2023-4004") {
		t.Errorf("DLA-3623-1 upstream = %v; want 44 CVEs from CVE-2022-39189, incl. CVE-2023-4004", got.Upstream)
	}
	if len(got.Affected) != 0 {
		t.Errorf("DLA-3623-1 affected = %v; want none (the record is trimmed)", got.Affected)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseOSVGHSA(t *testing.T) {
	got := parseOSVFile(t, "GHSA-838r-hvwh-24h8.json")
	wantSev := []Severity{{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N", Score: 9.1, Rating: "CRITICAL"}}
	if diff := cmp.Diff(wantSev, got.Severity); diff != "" {
		t.Errorf("GHSA severity (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CWE-611"}, got.CWEs); diff != "" {
		t.Errorf("GHSA CWEs (-want +got):\n%s", diff)
	}
	wantAff := []Affected{{
		Ecosystem: "Maven", Package: "org.apache.any23:apache-any23", Vulnerable: true,
		Ranges: []Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "2.5"}},
	}}
	if diff := cmp.Diff(wantAff, got.Affected); diff != "" {
		t.Errorf("GHSA affected (-want +got):\n%s", diff)
	}
}

func TestParseOSVWithdrawn(t *testing.T) {
	got := parseOSVFile(t, "PYSEC-2021-63-withdrawn.json")
	if got.Withdrawn == nil || !got.Withdrawn.Equal(date("2021-02-10T20:15:00Z")) {
		t.Errorf("PYSEC-2021-63 withdrawn = %v; want 2021-02-10T20:15:00Z", got.Withdrawn)
	}
	if diff := cmp.Diff([]string{"3.1", "3.1.1", "3.2", "3.2.1", "3.3", "3.3.1"}, got.Affected[0].Versions); diff != "" {
		t.Errorf("PYSEC-2021-63 versions (-want +got):\n%s", diff)
	}
	if live := parseOSVFile(t, "PYSEC-2021-63.json"); live.Withdrawn != nil {
		t.Errorf("live PYSEC-2021-63 withdrawn = %v; want nil", live.Withdrawn)
	}
}

func TestParseOSVDistroEcosystems(t *testing.T) {
	alma := parseOSVFile(t, "ALSA-2022_8194.json")
	if alma.ID != "ALSA-2022:8194" || len(alma.Related) != 10 || len(alma.Affected) != 3 {
		t.Fatalf("ALSA-2022:8194 = %s, %d related, %d affected; want 10 related, 3 affected", alma.ID, len(alma.Related), len(alma.Affected))
	}
	for _, af := range alma.Affected {
		want := []Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "4.4.0-2.el9"}}
		if af.Ecosystem != "AlmaLinux:9" || !strings.HasPrefix(af.Package, "libtiff") || !cmp.Equal(af.Ranges, want) {
			t.Errorf("ALSA-2022:8194 affected = %+v; want AlmaLinux:9 libtiff* fixed 4.4.0-2.el9", af)
		}
	}

	// Ubuntu's own "negligible" priority is not CVSS and is left out; the
	// ecosystem string keeps Ubuntu's Pro/LTS qualifiers as given.
	ub := parseOSVFile(t, "UBUNTU-CVE-2016-20013.json")
	if diff := cmp.Diff([]Severity{{Type: CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: 7.5, Rating: "HIGH"}}, ub.Severity); diff != "" {
		t.Errorf("UBUNTU-CVE-2016-20013 severity (-want +got):\n%s", diff)
	}
	ecos := map[string]bool{}
	for _, af := range ub.Affected {
		ecos[af.Ecosystem] = true
	}
	for _, e := range []string{"Ubuntu:14.04:LTS", "Ubuntu:Pro:14.04:LTS"} {
		if !ecos[e] {
			t.Errorf("UBUNTU-CVE-2016-20013 ecosystems %v lack %q", ecos, e)
		}
	}
	if af := ub.Affected[0]; af.Package != "eglibc" || af.PURL != "pkg:deb/ubuntu/eglibc@2.19-0ubuntu6.15+esm4?arch=source&distro=esm-infra-legacy/trusty" ||
		!cmp.Equal(af.Ranges, []Range{{Type: "ECOSYSTEM", Introduced: "0"}}) {
		t.Errorf("UBUNTU-CVE-2016-20013 affected[0] = %+v; want eglibc, its purl, open range from 0", af)
	}

	// A GIT range keeps commit hashes; versions list the affected tags.
	oss := parseOSVFile(t, "OSV-2017-134.json")
	wantOSS := []Affected{{
		Ecosystem: "OSS-Fuzz", Package: "file", PURL: "pkg:generic/file", Vulnerable: true,
		Ranges:   []Range{{Type: "GIT", Introduced: "17ee4cf670c363de8d2ea4a4897d7a699837873f", Fixed: "19ccebafb7663c422c714e0c67fa4775abf91c43"}},
		Versions: []string{"FILE5_29", "FILE5_30"},
	}}
	if diff := cmp.Diff(wantOSS, oss.Affected); diff != "" {
		t.Errorf("OSV-2017-134 affected (-want +got):\n%s", diff)
	}
}

// TestParseOSVAllRealRecords parses every real record as one JSON array,
// the way a mirror serves them.
func TestParseOSVAllRealRecords(t *testing.T) {
	files, _ := filepath.Glob("testdata/osv/*.json")
	var arr bytes.Buffer
	arr.WriteString("[")
	for i, f := range files {
		if i > 0 {
			arr.WriteString(",")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		arr.Write(b)
	}
	arr.WriteString("]")
	advs, err := ParseOSV(&arr)
	if err != nil {
		t.Fatalf("ParseOSV(array of %d records): %v", len(files), err)
	}
	if len(advs) != len(files) || len(files) < 40 {
		t.Fatalf("ParseOSV(array) = %d advisories from %d files", len(advs), len(files))
	}
	for _, a := range advs {
		for _, s := range a.Severity {
			if s.Rating == "" || s.Score < 0 || s.Score > 10 {
				t.Errorf("%s severity %+v lacks a computed score or rating", a.ID, s)
			}
		}
	}
}

func TestFlattenOSVRange(t *testing.T) {
	tests := []struct {
		name   string
		events string
		want   []Range
	}{
		{"introduced fixed", `{"introduced":"0"},{"fixed":"1.2"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2"}}},
		{"last_affected", `{"introduced":"1.0"},{"last_affected":"1.4"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "1.0", LastAffected: "1.4"}}},
		{"two intervals", `{"introduced":"0"},{"fixed":"1.2"},{"introduced":"2.0"},{"fixed":"2.3"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2"}, {Type: "ECOSYSTEM", Introduced: "2.0", Fixed: "2.3"}}},
		{"open interval", `{"introduced":"0"},{"fixed":"1.2"},{"introduced":"3.0"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "1.2"}, {Type: "ECOSYSTEM", Introduced: "3.0"}}},
		{"repeated introduced keeps the first", `{"introduced":"0"},{"introduced":"1.5"},{"fixed":"2"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "2"}}},
		{"limit", `{"introduced":"0"},{"limit":"9.0"}`,
			[]Range{{Type: "ECOSYSTEM", Introduced: "0", Limit: "9.0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := `{"id":"TEST-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[` + tt.events + `]}]}]}`
			advs, err := ParseOSV(strings.NewReader(rec))
			if err != nil {
				t.Fatalf("ParseOSV: %v", err)
			}
			if diff := cmp.Diff(tt.want, advs[0].Affected[0].Ranges); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOSVRejects(t *testing.T) {
	tests := []struct {
		name, input, wantMsg string
	}{
		{"empty", ``, "empty"},
		{"not JSON", `hello`, "not a JSON object or array"},
		{"truncated", `{"id":"DSA-1","affected":[`, "OSV record"},
		{"missing id", `{"modified":"2024-01-01T00:00:00Z"}`, "missing id"},
		{"bad timestamp", `{"id":"X-1","modified":"yesterday"}`, `"X-1"`},
		{"bad vector", `{"id":"X-2","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:Q"}]}`, `OSV record "X-2": severity: CVSS vector`},
		{"vector type mismatch", `{"id":"X-3","severity":[{"type":"CVSS_V2","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N"}]}`, "type CVSS_V2"},
		{"no introduced", `{"id":"X-4","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0.0"}]}]}]}`, "fixed before any introduced"},
		{"empty event", `{"id":"X-5","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{}]}]}]}`, "exactly one"},
		{"no range type", `{"id":"X-6","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"events":[{"introduced":"0"}]}]}]}`, "range type"},
		{"package without ecosystem", `{"id":"X-7","affected":[{"package":{"name":"a"}}]}`, "no ecosystem"},
		{"bad array element", `[{"id":"OK-1"},{"id":""}]`, "array element 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			advs, err := ParseOSV(strings.NewReader(tt.input))
			if advs != nil || errs.KindOf(err) != errs.Invalid {
				t.Fatalf("ParseOSV(%q) = %v, %v; want nil and an Invalid error", tt.input, advs, err)
			}
			if !strings.Contains(errs.Public(err), tt.wantMsg) {
				t.Errorf("ParseOSV(%q) error %q; want it to mention %q", tt.input, errs.Public(err), tt.wantMsg)
			}
		})
	}
}

// osvZip builds an archive the way osv.dev's all.zip is laid out: one
// record per entry, named by ID.
func osvZip(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func realOSVFiles(t testing.TB) map[string][]byte {
	t.Helper()
	paths, _ := filepath.Glob("testdata/osv/*.json")
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	return files
}

func TestParseOSVZip(t *testing.T) {
	files := realOSVFiles(t)
	z := osvZip(t, files)
	advs, err := ParseOSVZip(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatalf("ParseOSVZip: %v", err)
	}
	if len(advs) != len(files) {
		t.Fatalf("ParseOSVZip = %d advisories; want %d", len(advs), len(files))
	}
	var dsa *Advisory
	for i := range advs {
		if advs[i].ID == "DSA-3029-1" {
			dsa = &advs[i]
		}
	}
	if dsa == nil || dsa.Affected[0].Ranges[0].Fixed != "1.2.1-2.2+wheezy3" {
		t.Errorf("ParseOSVZip lost DSA-3029-1's fixed version: %+v", dsa)
	}
}

func TestParseOSVZipRejects(t *testing.T) {
	small := zipLimits{size: 1 << 20, entries: 5, entry: 64 << 10, total: 128 << 10}
	rec := readTestdata(t, "osv/DSA-3029-1.json")

	t.Run("bomb entry", func(t *testing.T) {
		// 1 MiB of zeros deflates to about a kilobyte.
		z := osvZip(t, map[string][]byte{"BOMB.json": make([]byte, 1<<20)})
		_, err := parseOSVZip(bytes.NewReader(z), int64(len(z)), small)
		if errs.KindOf(err) != errs.TooLarge {
			t.Errorf("parseOSVZip(bomb) error = %v; want TooLarge", err)
		}
	})
	t.Run("lying header", func(t *testing.T) {
		// An entry that declares 100 bytes but inflates to 1 MiB: the
		// limit must hold on the bytes actually read.
		var raw bytes.Buffer
		fw, _ := flate.NewWriter(&raw, flate.BestCompression)
		fw.Write(make([]byte, 1<<20))
		fw.Close()
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "LIE.json", Method: zip.Deflate, CompressedSize64: uint64(raw.Len()), UncompressedSize64: 100})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw.Bytes())
		zw.Close()
		_, err = parseOSVZip(bytes.NewReader(buf.Bytes()), int64(buf.Len()), small)
		if errs.KindOf(err) != errs.TooLarge && errs.KindOf(err) != errs.Invalid {
			t.Errorf("parseOSVZip(lying header) error = %v; want TooLarge or Invalid", err)
		}
	})
	t.Run("too many entries", func(t *testing.T) {
		files := map[string][]byte{}
		for i := 0; i < 6; i++ {
			files[string(rune('a'+i))+".json"] = rec
		}
		z := osvZip(t, files)
		if _, err := parseOSVZip(bytes.NewReader(z), int64(len(z)), small); errs.KindOf(err) != errs.TooLarge {
			t.Errorf("parseOSVZip(6 entries, limit 5) error = %v; want TooLarge", err)
		}
	})
	t.Run("total", func(t *testing.T) {
		padded := append(bytes.Repeat([]byte(" "), 50<<10), rec...)
		z := osvZip(t, map[string][]byte{"a.json": padded, "b.json": padded, "c.json": padded})
		if _, err := parseOSVZip(bytes.NewReader(z), int64(len(z)), small); errs.KindOf(err) != errs.TooLarge {
			t.Errorf("parseOSVZip(150 KiB total, limit 128 KiB) error = %v; want TooLarge", err)
		}
	})
	t.Run("archive size", func(t *testing.T) {
		z := osvZip(t, map[string][]byte{"a.json": rec})
		if _, err := parseOSVZip(bytes.NewReader(z), int64(len(z)), zipLimits{size: 10, entries: 5, entry: 1 << 20, total: 1 << 20}); errs.KindOf(err) != errs.TooLarge {
			t.Errorf("parseOSVZip(over archive size) error = %v; want TooLarge", err)
		}
	})
	t.Run("bad record names entry", func(t *testing.T) {
		z := osvZip(t, map[string][]byte{"DSA-3029-1.json": rec, "BROKEN-1.json": []byte(`{"id":"BROKEN-1","affected":[{"package":{"name":"x"}}]}`)})
		advs, err := ParseOSVZip(bytes.NewReader(z), int64(len(z)))
		if advs != nil || errs.KindOf(err) != errs.Invalid || !strings.Contains(errs.Public(err), `"BROKEN-1.json"`) {
			t.Errorf("ParseOSVZip(one broken record) = %d, %v; want nil and Invalid naming the entry", len(advs), err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		z := osvZip(t, map[string][]byte{"a.json": rec})
		cut := z[:len(z)-30]
		if _, err := ParseOSVZip(bytes.NewReader(cut), int64(len(cut))); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseOSVZip(truncated) error = %v; want Invalid", err)
		}
	})
}
