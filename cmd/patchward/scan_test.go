package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scanFeeds builds a feed directory from the advisory package's real test
// files: a Debian DSA, a GitHub advisory, an NVD record for a KEV-listed
// CVE, the KEV catalog and an EPSS file, plus a file that is not a feed.
func scanFeeds(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := "../../internal/advisory/testdata/"
	for i, f := range []string{"osv/DSA-3029-1.json", "osv/GHSA-838r-hvwh-24h8.json", "nvd/CVE-2023-4863.json",
		"kev/known_exploited_vulnerabilities.json", "epss/example-1.csv"} {
		b, err := os.ReadFile(src + f)
		if err != nil {
			t.Fatal(err)
		}
		// Names say nothing: files are recognised by content.
		if err := os.WriteFile(filepath.Join(dir, "feed-"+string(rune('a'+i))), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "NOTES.txt"), []byte("downloaded on Monday\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A Debian 7 host whose nginx binaries come from the nginx source package
// that DSA-3029-1 fixes in 1.2.1-2.2+wheezy3.
const wheezyStatus = `Package: nginx-common
Status: install ok installed
Priority: optional
Section: httpd
Architecture: all
Source: nginx
Version: 1.2.1-2.2+wheezy2
Description: small, powerful, scalable web/proxy server - common files

Package: nginx-full
Status: install ok installed
Priority: optional
Section: httpd
Architecture: amd64
Source: nginx
Version: 1.2.1-2.2+wheezy2
Description: nginx web/proxy server (standard version)

Package: libc6
Status: install ok installed
Priority: required
Section: libs
Architecture: amd64
Source: eglibc
Version: 2.13-38+deb7u10
Description: Embedded GNU C Library: Shared libraries
`

const middlewareSBOM = `{"bomFormat":"CycloneDX","specVersion":"1.4","version":1,
 "metadata":{"component":{"type":"device","name":"Lab middleware appliance","version":"4.2"}},
 "components":[
  {"type":"library","name":"apache-any23","group":"org.apache.any23","version":"2.4","purl":"pkg:maven/org.apache.any23/apache-any23@2.4"},
  {"type":"library","name":"jackson-core","group":"com.fasterxml.jackson.core","version":"2.15.2","purl":"pkg:maven/com.fasterxml.jackson.core/jackson-core@2.15.2"}
 ]}`

func TestScan(t *testing.T) {
	feeds := scanFeeds(t)
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	sbom := filepath.Join(dir, "sbom.json")
	if err := os.WriteFile(status, []byte(wheezyStatus), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sbom, []byte(middlewareSBOM), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, filepath.Join(dir, "unused.db"), filepath.Join(dir, "k"), "scan", "--feeds", feeds,
		"--dpkg-status", status, "--release", "Debian:7", "--sbom", sbom,
		"--cpe", "cpe:2.3:a:google:chrome:116.0.5845.110:*:*:*:*:*:*:*", "--format", "json")
	if ec, ok := err.(exitCode); !ok || ec != 1 {
		t.Fatalf("scan with vulnerabilities: err = %v; want exit status 1\n%s", err, out)
	}
	var res struct {
		Findings []scanFinding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("decode scan JSON: %v\n%s", err, out)
	}
	byVuln := map[string]scanFinding{}
	for _, f := range res.Findings {
		byVuln[f.Vulnerability] = f
	}
	nginx, ok := byVuln["CVE-2014-3616"]
	if !ok || nginx.Package != "nginx" || nginx.Fixed != "1.2.1-2.2+wheezy3" || !strings.Contains(strings.Join(nginx.Aliases, ","), "DSA-3029-1") {
		t.Errorf("nginx finding = %+v; want source package nginx fixed in 1.2.1-2.2+wheezy3 with alias DSA-3029-1", nginx)
	}
	if strings.Join(nginx.Binaries, ",") != "nginx-common,nginx-full" {
		t.Errorf("nginx binaries = %v; want nginx-common, nginx-full", nginx.Binaries)
	}
	any23, ok := byVuln["CVE-2021-38555"]
	if !ok || any23.Fixed != "2.5" || any23.Ecosystem != "Maven" {
		t.Errorf("any23 finding = %+v; want Maven, fixed 2.5", any23)
	}
	chrome, ok := byVuln["CVE-2023-4863"]
	if !ok || !chrome.KEV || chrome.CVSS != 8.8 || chrome.Source != "nvd-cpe" {
		t.Errorf("chrome finding = %+v; want KEV-listed CVE-2023-4863 with CVSS 8.8 from NVD CPE", chrome)
	}
	if _, ok := byVuln["CVE-2014-3616"]; ok && len(res.Findings) != 3 {
		t.Errorf("findings = %d; want 3 (libc6 and jackson-core are not affected)", len(res.Findings))
	}
	if !strings.Contains(out, "skipping") || !strings.Contains(out, "NOTES.txt") {
		t.Errorf("non-feed file not reported as skipped:\n%s", out)
	}

	// The table names the same facts.
	out, _ = runCLI(t, filepath.Join(dir, "unused.db"), filepath.Join(dir, "k"), "scan", "--feeds", feeds,
		"--dpkg-status", status, "--release", "7")
	if !strings.Contains(out, "CVE-2014-3616") || !strings.Contains(out, "1.2.1-2.2+wheezy3") {
		t.Errorf("table output lacks the nginx finding:\n%s", out)
	}
}

func TestScanRefusesBrokenFeeds(t *testing.T) {
	feeds := scanFeeds(t)
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	if err := os.WriteFile(status, []byte(wheezyStatus), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../internal/advisory/testdata/osv/DSA-3029-1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(feeds, "truncated.json"), b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, filepath.Join(dir, "unused.db"), filepath.Join(dir, "k"), "scan", "--feeds", feeds, "--dpkg-status", status, "--release", "7")
	if err == nil || !strings.Contains(err.Error(), "truncated.json") {
		t.Errorf("scan with a truncated feed: err = %v; want an error naming the file\n%s", err, out)
	}
	if _, err := runCLI(t, filepath.Join(dir, "unused.db"), filepath.Join(dir, "k"), "scan", "--feeds", feeds); err == nil {
		t.Error("scan with no input succeeded; want an error")
	}
}
