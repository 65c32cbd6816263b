package installed

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func byName(pkgs []Package) map[string]Package {
	m := make(map[string]Package, len(pkgs))
	for _, p := range pkgs {
		m[p.Name] = p
	}
	return m
}

func TestParseDpkgStatusDebian12(t *testing.T) {
	pkgs, err := ParseDpkgStatus(bytes.NewReader(readTestdata(t, "debian12-dpkg-status")), "Debian:12")
	if err != nil {
		t.Fatal(err)
	}
	// All 703 paragraphs of this fresh Debian 12.11 machine are "install ok
	// installed"; they come from 386 source packages, 53 of them binNMUs.
	if len(pkgs) != 703 {
		t.Fatalf("ParseDpkgStatus returned %d packages; want 703", len(pkgs))
	}
	sources := map[string]bool{}
	for _, p := range pkgs {
		sources[p.SourceName] = true
		if p.Ecosystem != "Debian:12" {
			t.Fatalf("%s: Ecosystem = %q; want Debian:12", p.Name, p.Ecosystem)
		}
		if strings.HasSuffix(p.SourceVersion, "+b1") {
			t.Errorf("%s: SourceVersion %q keeps a binNMU suffix", p.Name, p.SourceVersion)
		}
	}
	if len(sources) != 386 {
		t.Errorf("%d distinct source packages; want 386", len(sources))
	}
	m := byName(pkgs)
	tests := []Package{
		// "Source: openssl" — source at the binary's version.
		{Name: "libssl3", Version: "3.0.19-1~deb12u2", Arch: "amd64", Ecosystem: "Debian:12",
			PURL:       "pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
			SourceName: "openssl", SourceVersion: "3.0.19-1~deb12u2"},
		// "Source: bash (5.2.15-2)" for binNMU 5.2.15-2+b8.
		{Name: "bash", Version: "5.2.15-2+b8", Arch: "amd64", Ecosystem: "Debian:12",
			PURL:       "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2",
			SourceName: "bash", SourceVersion: "5.2.15-2"},
		// "Source: util-linux" with a security-update version.
		{Name: "util-linux-extra", Version: "2.38.1-5+deb12u3", Arch: "amd64", Ecosystem: "Debian:12",
			PURL:       "pkg:deb/debian/util-linux-extra@2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&upstream=util-linux",
			SourceName: "util-linux", SourceVersion: "2.38.1-5+deb12u3"},
	}
	for _, want := range tests {
		if diff := cmp.Diff(want, m[want.Name]); diff != "" {
			t.Errorf("package %s mismatch (-want +got):\n%s", want.Name, diff)
		}
	}
	// No Source field: the source is the binary.
	if p := m["adduser"]; p.SourceName != "adduser" || p.SourceVersion != p.Version {
		t.Errorf("adduser source = %q %q; want adduser %q", p.SourceName, p.SourceVersion, p.Version)
	}
	sw := m["libssl3"].Software()
	if want := (inventory.Software{Name: "libssl3", Version: "3.0.19-1~deb12u2", Arch: "amd64", Ecosystem: "Debian:12", PURL: m["libssl3"].PURL, SourceName: "openssl", SourceVersion: "3.0.19-1~deb12u2"}); sw != want {
		t.Errorf("Software() = %+v; want %+v", sw, want)
	}
	// The PURLs must pass the inventory's own validation.
	a := inventory.Asset{Name: "host", Software: Software(pkgs)}
	a.Normalize()
	if err := a.Validate(); err != nil {
		t.Errorf("inventory rejects the parsed software: %v", err)
	}
}

func TestParseDpkgStatusScalibr(t *testing.T) {
	pkgs, err := ParseDpkgStatus(bytes.NewReader(readTestdata(t, "osv-scalibr-dpkg-valid")), "")
	if err != nil {
		t.Fatal(err)
	}
	m := byName(pkgs)
	if len(pkgs) != 7 {
		t.Errorf("got %d packages; want 7", len(pkgs))
	}
	for name, want := range map[string][2]string{
		"util-linux-extra": {"util-linux", "2.38.1-5"}, // binNMU +b1 with explicit source version
		"libacl1":          {"acl", "2.3.1-3"},
		"attr":             {"attr", "1:2.5.1-4"},
	} {
		if p := m[name]; p.SourceName != want[0] || p.SourceVersion != want[1] {
			t.Errorf("%s source = %q %q; want %q %q", name, p.SourceName, p.SourceVersion, want[0], want[1])
		}
	}
	if eco := m["acl"].Ecosystem; eco != "Debian" {
		t.Errorf("Ecosystem without release = %q; want Debian", eco)
	}
}

func TestParseDpkgStatusStatesAndSources(t *testing.T) {
	status := `Package: kept
Status: hold ok installed
Architecture: amd64
Version: 1.0-1+b2

Package: gone
Status: deinstall ok config-files
Version: 1.0-1

Package: half
Status: install reinstreq half-installed
Version: 1.0-1

Package: libfoo1
status: install ok installed
source: foo
version: 2.0-3+b1
Description: multi-line
 description lines
 .
 are fine

Package: ubu
Status: install ok installed
Version: 1.2-3ubuntu0.1
`
	pkgs, err := ParseDpkgStatus(strings.NewReader(status), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "kept", Version: "1.0-1+b2", Arch: "amd64", Ecosystem: "Ubuntu", SourceName: "kept", SourceVersion: "1.0-1",
			PURL: "pkg:deb/ubuntu/kept@1.0-1%2Bb2?arch=amd64&upstream=kept%401.0-1"},
		{Name: "libfoo1", Version: "2.0-3+b1", Ecosystem: "Ubuntu", SourceName: "foo", SourceVersion: "2.0-3",
			PURL: "pkg:deb/ubuntu/libfoo1@2.0-3%2Bb1?upstream=foo%402.0-3"},
		{Name: "ubu", Version: "1.2-3ubuntu0.1", Ecosystem: "Ubuntu", SourceName: "ubu", SourceVersion: "1.2-3ubuntu0.1",
			PURL: "pkg:deb/ubuntu/ubu@1.2-3ubuntu0.1"},
	}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Errorf("ParseDpkgStatus mismatch (-want +got):\n%s", diff)
	}
}

func TestParseDpkgStatusRelease(t *testing.T) {
	const one = "Package: a\nStatus: install ok installed\nVersion: 1\n"
	tests := []struct {
		release, eco, purl string
	}{
		{"Debian:12", "Debian:12", "pkg:deb/debian/a@1?distro=debian-12"},
		{"debian:11", "Debian:11", "pkg:deb/debian/a@1?distro=debian-11"},
		{"12", "Debian:12", "pkg:deb/debian/a@1?distro=debian-12"},
		{"12.11", "Debian:12", "pkg:deb/debian/a@1?distro=debian-12"},
		{"bookworm", "Debian:12", "pkg:deb/debian/a@1?distro=debian-12"},
		{"Ubuntu:22.04:LTS", "Ubuntu:22.04:LTS", "pkg:deb/ubuntu/a@1?distro=ubuntu-22.04"},
		{"Ubuntu:Pro:16.04:LTS", "Ubuntu:Pro:16.04:LTS", "pkg:deb/ubuntu/a@1?distro=ubuntu-16.04"},
		{string(readTestdata(t, "debian12-os-release")), "Debian:12", "pkg:deb/debian/a@1?distro=debian-12"},
		{"NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n",
			"Ubuntu:22.04:LTS", "pkg:deb/ubuntu/a@1?distro=ubuntu-22.04"},
		{"NAME=\"Ubuntu\"\nVERSION=\"23.10 (Mantic Minotaur)\"\nID=ubuntu\nVERSION_ID=\"23.10\"\n",
			"Ubuntu:23.10", "pkg:deb/ubuntu/a@1?distro=ubuntu-23.10"},
	}
	for _, tt := range tests {
		pkgs, err := ParseDpkgStatus(strings.NewReader(one), tt.release)
		if err != nil {
			t.Errorf("ParseDpkgStatus(release %q) error: %v", tt.release, err)
			continue
		}
		if pkgs[0].Ecosystem != tt.eco || pkgs[0].PURL != tt.purl {
			t.Errorf("release %q: Ecosystem, PURL = %q, %q; want %q, %q", tt.release, pkgs[0].Ecosystem, pkgs[0].PURL, tt.eco, tt.purl)
		}
	}
	for _, bad := range []string{"Fedora:40", "sid-ish", "ID=alpine\nVERSION_ID=3.19.1\n", "ID=\"unterminated\n"} {
		if _, err := ParseDpkgStatus(strings.NewReader(one), bad); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseDpkgStatus(release %q) error = %v; want Invalid", bad, err)
		}
	}
}

func TestParseDpkgStatusMalformed(t *testing.T) {
	tests := map[string]string{
		"no colon":              "Package: a\nStatus: install ok installed\nVersion 1\n",
		"continuation first":    " leading continuation\nPackage: a\n",
		"kept field continued":  "Package: a\nStatus: install ok installed\nVersion: 1\n 2\n",
		"missing version":       "Package: a\nStatus: install ok installed\n",
		"missing package":       "Status: install ok installed\nVersion: 1\n",
		"bad status":            "Package: a\nStatus: installed\nVersion: 1\n",
		"duplicate field":       "Package: a\nPackage: b\nStatus: install ok installed\nVersion: 1\n",
		"empty version":         "Package: a\nStatus: install ok installed\nVersion:\n",
		"bad source":            "Package: a\nStatus: install ok installed\nSource: a b c\nVersion: 1\n",
		"bad source paren":      "Package: a\nStatus: install ok installed\nSource: a (1\nVersion: 1\n",
		"control char":          "Package: a\x01\nStatus: install ok installed\nVersion: 1\n",
		"long name":             "Package: " + strings.Repeat("a", 300) + "\nStatus: install ok installed\nVersion: 1\n",
		"space in field name":   "Pack age: a\n",
		"binary garbage":        "\x00\x01\x02\x03",
		"line over 1 MiB":       "Package: a\nDescription: " + strings.Repeat("x", 2<<20) + "\n",
		"error in later record": "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\n",
	}
	for name, in := range tests {
		pkgs, err := ParseDpkgStatus(strings.NewReader(in), "Debian:12")
		if errs.KindOf(err) != errs.Invalid || pkgs != nil {
			t.Errorf("%s: ParseDpkgStatus = %d packages, %v; want nil and an Invalid error", name, len(pkgs), err)
		}
	}
}

// TestReadersRefuseOversizedInput checks the caps. Every text reader goes
// through readCapped, so one 64 MiB case (the dpkg status) stands for all.
func TestReadersRefuseOversizedInput(t *testing.T) {
	big := io.MultiReader(strings.NewReader("Package: a\nDescription: x\n"), &repeatReader{b: []byte(" filler line\n"), n: MaxInputBytes})
	if _, err := ParseDpkgStatus(big, "Debian:12"); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("ParseDpkgStatus of %d MiB error = %v; want TooLarge", MaxInputBytes>>20, err)
	}
	if _, err := ParseOSRelease(&repeatReader{b: []byte("# c\n"), n: maxOSReleaseBytes + 1}); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("ParseOSRelease oversized error = %v; want TooLarge", err)
	}
	// Past MaxPackages packages.
	var b strings.Builder
	for i := 0; i <= MaxPackages; i++ {
		b.WriteString("P:p\nV:1-r0\n\n")
	}
	if _, err := ParseApkInstalled(strings.NewReader(b.String())); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("ParseApkInstalled with %d packages error = %v; want TooLarge", MaxPackages+1, err)
	}
}

// repeatReader yields b repeatedly up to n bytes without allocating them.
type repeatReader struct {
	b   []byte
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	w := 0
	for w < len(p) && r.n > 0 {
		c := copy(p[w:], r.b[r.off:])
		if c > r.n {
			c = r.n
		}
		w += c
		r.n -= c
		r.off = (r.off + c) % len(r.b)
	}
	return w, nil
}

func TestParseApkInstalled(t *testing.T) {
	pkgs, err := ParseApkInstalled(bytes.NewReader(readTestdata(t, "osv-scalibr-apk-installed")))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 15 {
		t.Fatalf("got %d packages; want 15", len(pkgs))
	}
	m := byName(pkgs)
	want := Package{Name: "libcrypto3", Version: "3.1.0-r4", Arch: "x86_64", Ecosystem: "Alpine",
		PURL: "pkg:apk/alpine/libcrypto3@3.1.0-r4?arch=x86_64&upstream=openssl", SourceName: "openssl", SourceVersion: "3.1.0-r4"}
	if diff := cmp.Diff(want, m["libcrypto3"]); diff != "" {
		t.Errorf("libcrypto3 mismatch (-want +got):\n%s", diff)
	}
	if p := m["zlib"]; p.SourceName != "zlib" || p.PURL != "pkg:apk/alpine/zlib@1.2.13-r1?arch=x86_64" {
		t.Errorf("zlib = %+v", p)
	}
	o, err := ParseOSRelease(strings.NewReader("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.0\nPRETTY_NAME=\"Alpine Linux v3.18\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	o.Apply(pkgs)
	m = byName(pkgs)
	if p := m["libcrypto3"]; p.Ecosystem != "Alpine:v3.18" || p.PURL != "pkg:apk/alpine/libcrypto3@3.1.0-r4?arch=x86_64&distro=alpine-3.18.0&upstream=openssl" {
		t.Errorf("after Apply: %q %q", p.Ecosystem, p.PURL)
	}

	for name, in := range map[string]string{
		"no version":   "P:a\nA:x86_64\n",
		"no name":      "V:1-r0\n",
		"bad line":     "P:a\nV:1-r0\nnonsense\n",
		"empty value":  "P:\nV:1\n",
		"dup":          "P:a\nP:b\nV:1\n",
		"ctrl in name": "P:a\x7f\nV:1\n",
	} {
		if pkgs, err := ParseApkInstalled(strings.NewReader(in)); errs.KindOf(err) != errs.Invalid || pkgs != nil {
			t.Errorf("%s: ParseApkInstalled = %v, %v; want Invalid", name, pkgs, err)
		}
	}
}

func TestReadRpmDB(t *testing.T) {
	// A real BerkeleyDB Packages file (osv-scalibr's fixture).
	pkgs, err := ReadRpmDB(filepath.Join("testdata", "osv-scalibr-rpm-Packages_epoch"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{Name: "hello", Version: "1:0.0.1-rls", Arch: "x86_64", SourceName: "hello", SourceVersion: "1:0.0.1-rls",
		PURL: "pkg:rpm/hello@0.0.1-rls?arch=x86_64&epoch=1&upstream=hello-0.0.1-rls.src.rpm"}}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Errorf("BerkeleyDB rpmdb mismatch (-want +got):\n%s", diff)
	}

	// A real SQLite rpmdb written by rpm 4.18 (see testdata/README.md). Copy
	// it first: opening a WAL database creates side files next to it.
	dir := t.TempDir()
	db := filepath.Join(dir, "rpmdb.sqlite")
	if err := os.WriteFile(db, readTestdata(t, "rpmdb-fixture.sqlite"), 0o600); err != nil {
		t.Fatal(err)
	}
	pkgs, err = ReadRpmDB(db)
	if err != nil {
		t.Fatal(err)
	}
	m := byName(pkgs)
	wantLibs := Package{Name: "patchward-fixture-libs", Version: "2:1.2.3-4.el9", Arch: "noarch", Ecosystem: "Rocky Linux",
		PURL:       "pkg:rpm/rocky/patchward-fixture-libs@1.2.3-4.el9?arch=noarch&epoch=2&upstream=patchward-fixture-1.2.3-4.el9.src.rpm",
		SourceName: "patchward-fixture", SourceVersion: "2:1.2.3-4.el9"}
	if len(pkgs) != 2 {
		t.Errorf("SQLite rpmdb: %d packages; want 2", len(pkgs))
	}
	if diff := cmp.Diff(wantLibs, m["patchward-fixture-libs"]); diff != "" {
		t.Errorf("SQLite rpmdb mismatch (-want +got):\n%s", diff)
	}
	o := OSRelease{ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}, VersionID: "9.3"}
	o.Apply(pkgs)
	if p := byName(pkgs)["patchward-fixture-libs"]; p.Ecosystem != "Rocky Linux:9" ||
		p.PURL != "pkg:rpm/rocky/patchward-fixture-libs@1.2.3-4.el9?arch=noarch&distro=rocky-9.3&epoch=2&upstream=patchward-fixture-1.2.3-4.el9.src.rpm" {
		t.Errorf("after Apply: %q %q", p.Ecosystem, p.PURL)
	}

	// Not an rpmdb at all, a missing file, a directory.
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not an rpm database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{junk, filepath.Join(dir, "missing"), dir} {
		if pkgs, err := ReadRpmDB(p); errs.KindOf(err) != errs.Invalid || pkgs != nil {
			t.Errorf("ReadRpmDB(%s) = %v, %v; want Invalid", filepath.Base(p), pkgs, err)
		}
	}
}

func TestSplitSourceRPM(t *testing.T) {
	tests := []struct {
		in, name, vr string
		ok           bool
	}{
		{"openssl-3.0.7-27.el9.src.rpm", "openssl", "3.0.7-27.el9", true},
		{"python3.11-pip-22.3.1-4.el9.src.rpm", "python3.11-pip", "22.3.1-4.el9", true},
		{"kernel-5.14.0-362.8.1.el9_3.nosrc.rpm", "kernel", "5.14.0-362.8.1.el9_3", true},
		{"openssl.src.rpm", "", "", false},
		{"openssl-3.0.7.src.rpm", "", "", false},
		{"openssl-3.0.7-27.el9.x86_64.rpm", "", "", false},
	}
	for _, tt := range tests {
		name, vr, ok := splitSourceRPM(tt.in)
		if name != tt.name || vr != tt.vr || ok != tt.ok {
			t.Errorf("splitSourceRPM(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, vr, ok, tt.name, tt.vr, tt.ok)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	o, err := ParseOSRelease(bytes.NewReader(readTestdata(t, "debian12-os-release")))
	if err != nil {
		t.Fatal(err)
	}
	want := OSRelease{ID: "debian", Name: "Debian GNU/Linux", PrettyName: "Debian GNU/Linux 12 (bookworm)",
		Version: "12 (bookworm)", VersionID: "12", VersionCodename: "bookworm"}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("ParseOSRelease mismatch (-want +got):\n%s", diff)
	}
	if got := o.Ecosystem(); got != "Debian:12" {
		t.Errorf("Ecosystem() = %q; want Debian:12", got)
	}
	if got := o.Distro(); got != "debian-12" {
		t.Errorf("Distro() = %q; want debian-12", got)
	}

	ecosystems := []struct {
		content, want string
	}{
		{"ID=ubuntu\nVERSION=\"24.04.1 LTS (Noble Numbat)\"\nVERSION_ID=\"24.04\"", "Ubuntu:24.04:LTS"},
		{"ID=alpine\nVERSION_ID=3.19.1", "Alpine:v3.19"},
		{"ID=alpine\nVERSION_ID=3.20_alpha20240329", "Alpine:v3.20"},
		{"ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.3\"", "Red Hat"},
		{"ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.9\"", "Rocky Linux:8"},
		{"ID=\"almalinux\"\nVERSION_ID=\"9.4\"", "AlmaLinux:9"},
		{"ID=\"sles\"\nVERSION_ID=\"15.5\"", "SUSE:Linux Enterprise Server 15 SP5"},
		{"ID=\"sles\"\nVERSION_ID=\"15\"", "SUSE:Linux Enterprise Server 15"},
		{"ID=\"opensuse-leap\"\nVERSION_ID=\"15.5\"", "openSUSE:Leap 15.5"},
		{"ID=opensuse-tumbleweed\nVERSION_ID=\"20240101\"", "openSUSE:Tumbleweed"},
		{"ID=debian\nVERSION_CODENAME=trixie", "Debian:13"},
		{"ID=debian", "Debian"},
		{"ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"21.3\"", "Ubuntu"},
		{"ID=arch", ""},
		{"# only a comment\n\n", ""},
	}
	for _, tt := range ecosystems {
		o, err := ParseOSRelease(strings.NewReader(tt.content))
		if err != nil {
			t.Errorf("ParseOSRelease(%q) error: %v", tt.content, err)
			continue
		}
		if got := o.Ecosystem(); got != tt.want {
			t.Errorf("ParseOSRelease(%q).Ecosystem() = %q; want %q", tt.content, got, tt.want)
		}
	}
	for _, bad := range []string{"ID", "id=debian", "ID=\"open", "ID=a b", "ID='x'y'", "ID=\"a\\\"", "NAME=\"a\"b\""} {
		if _, err := ParseOSRelease(strings.NewReader(bad)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseOSRelease(%q) error = %v; want Invalid", bad, err)
		}
	}
	q, err := ParseOSRelease(strings.NewReader(`PRETTY_NAME="Say \"hi\" \$HOME"` + "\nNAME='single'\n"))
	if err != nil || q.PrettyName != `Say "hi" $HOME` || q.Name != "single" {
		t.Errorf("quoting: %+v, %v", q, err)
	}
}

func BenchmarkParseDpkgStatus(b *testing.B) {
	data := readTestdata(b, "debian12-dpkg-status")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		pkgs, err := ParseDpkgStatus(bytes.NewReader(data), "Debian:12")
		if err != nil || len(pkgs) != 703 {
			b.Fatal(len(pkgs), err)
		}
	}
}
