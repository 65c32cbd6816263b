package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAptCapturedOutputs(t *testing.T) {
	sim, err := ParseAptSimulate(bytes.NewReader(readTestdata(t, "apt-get-s-dist-upgrade.debian12.txt")))
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseAptListUpgradable(bytes.NewReader(readTestdata(t, "apt-list-upgradable.debian12.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if len(sim) != 121 || len(list) != 121 {
		t.Fatalf("parsed %d (simulate) and %d (list) upgrades; want 121 each", len(sim), len(list))
	}
	// Both commands describe the same upgrades.
	byName := map[string]agentapi.PendingUpdate{}
	for _, u := range list {
		byName[u.Name] = u
	}
	for _, u := range sim {
		l, ok := byName[u.Name]
		if !ok || l.CurrentVersion != u.CurrentVersion || l.AvailableVersion != u.AvailableVersion || l.Security != u.Security {
			t.Errorf("simulate %+v; list %+v", u, l)
		}
	}
	want := agentapi.PendingUpdate{Name: "libgcrypt20", CurrentVersion: "1.10.1-3", AvailableVersion: "1.10.1-3+deb12u1", Security: true}
	if u := byName["libgcrypt20"]; u != want {
		t.Errorf("libgcrypt20 = %+v; want %+v", u, want)
	}
	if byName["bash"].Security {
		t.Errorf("bash from oldstable marked as a security update")
	}
}

func TestParseAptSimulateLines(t *testing.T) {
	in := strings.Join([]string{
		"Inst libssl3 [3.0.2-0ubuntu1.10] (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])",
		"Inst linux-image-6.1.0-30-amd64 (6.1.124-1 Debian:12.9/stable [amd64])", // new package: not a pending update
		"Conf libssl3 (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-updates [amd64])",
		"Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable [all])",
		"garbage",
	}, "\n")
	got, err := ParseAptSimulate(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.PendingUpdate{
		{Name: "libssl3", CurrentVersion: "3.0.2-0ubuntu1.10", AvailableVersion: "3.0.2-0ubuntu1.12", Security: true},
		{Name: "tzdata", CurrentVersion: "2024a-0+deb12u1", AvailableVersion: "2025b-0+deb12u1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseAptSimulate (-want +got):\n%s", diff)
	}
}

func TestParseDpkgQuery(t *testing.T) {
	out := "dpkg-query: no packages found matching nosuch\n" +
		"pw-installed\tlibc6:amd64\tlibc6\t2.36-9+deb12u10\tinstalled\n" +
		"pw-installed\told\told\t1.0\tconfig-files\n"
	got, err := parseDpkgQuery(out, []string{"libc6", "old", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"libc6": "2.36-9+deb12u10", "old": "", "nosuch": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseDpkgQuery (-want +got):\n%s", diff)
	}
}

func TestParseWindowsOutputs(t *testing.T) {
	kbs, err := ParseHotFixCSV(bytes.NewReader(readTestdata(t, "get-hotfix.csv")))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range kbs {
		names = append(names, k.Name)
		if k.Ecosystem != EcosystemWindowsKB || k.Version != "installed" {
			t.Errorf("KB package %+v", k)
		}
	}
	if diff := cmp.Diff([]string{"KB5034441", "KB5033372", "KB5034122", "KB890830"}, names); diff != "" {
		t.Errorf("KBs (-want +got):\n%s", diff)
	}

	pending, err := ParseWUAJSON(readTestdata(t, "wua-pending.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 3 || pending[0].Name != "KB5034122" || !pending[0].Security || pending[1].Security || pending[1].Name != "KB890830" {
		t.Errorf("WUA pending = %+v", pending)
	}
	one, err := ParseWUAJSON(readTestdata(t, "wua-pending-one.json"))
	if err != nil || len(one) != 1 || one[0].Name != "KB5034123" || !one[0].Security {
		t.Errorf("WUA single object = %+v, %v", one, err)
	}
	if none, err := ParseWUAJSON([]byte("\r\n")); err != nil || len(none) != 0 {
		t.Errorf("WUA empty = %+v, %v", none, err)
	}

	pkgs := UninstallPackages([]UninstallEntry{
		{DisplayName: "Mozilla Firefox (x64 en-US)", DisplayVersion: "121.0.1", Publisher: "Mozilla"},
		{DisplayName: "Mozilla Firefox (x64 en-US)", DisplayVersion: "121.0.1"}, // same program, other view
		{DisplayName: "Microsoft Visual C++ 2022 X64 Minimum Runtime", DisplayVersion: "14.38.33130", SystemComponent: 1},
		{DisplayName: "Security Update for Office (KB5002519)", DisplayVersion: "1", ParentKeyName: "Office16.PROPLUS"},
		{DisplayName: "", DisplayVersion: "1.0"},
		{DisplayName: "7-Zip 23.01 (x64)", DisplayVersion: "23.01"},
	})
	want := []agentapi.Package{
		{Name: "7-Zip 23.01 (x64)", Version: "23.01", Ecosystem: EcosystemWindows},
		{Name: "Mozilla Firefox (x64 en-US)", Version: "121.0.1", Ecosystem: EcosystemWindows},
	}
	if diff := cmp.Diff(want, pkgs); diff != "" {
		t.Errorf("UninstallPackages (-want +got):\n%s", diff)
	}
}

func TestParseMacOutputs(t *testing.T) {
	cur, err := ParseSoftwareUpdateList(bytes.NewReader(readTestdata(t, "softwareupdate-l.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.PendingUpdate{
		{Name: "Command Line Tools for Xcode-15.3", AvailableVersion: "15.3"},
		{Name: "macOS Sonoma 14.4.1-23E224", AvailableVersion: "14.4.1"},
		{Name: "Safari17.4.1VenturaAuto-17.4.1", AvailableVersion: "17.4.1"},
	}
	if diff := cmp.Diff(want, cur); diff != "" {
		t.Errorf("softwareupdate -l (-want +got):\n%s", diff)
	}
	old, err := ParseSoftwareUpdateList(bytes.NewReader(readTestdata(t, "softwareupdate-l-legacy.txt")))
	if err != nil {
		t.Fatal(err)
	}
	wantOld := []agentapi.PendingUpdate{
		{Name: "Security Update 2019-001-10.13.6", AvailableVersion: "10.13.6"},
		{Name: "iTunesX-12.8.2", AvailableVersion: "12.8.2"},
	}
	if diff := cmp.Diff(wantOld, old); diff != "" {
		t.Errorf("legacy softwareupdate -l (-want +got):\n%s", diff)
	}
	ids, _ := ParsePkgutilPkgs(bytes.NewReader(readTestdata(t, "pkgutil-pkgs.txt")))
	if len(ids) != 5 || ids[1] != "com.apple.pkg.CLTools_Executables" {
		t.Errorf("pkgutil --pkgs = %v", ids)
	}
	p, ok := ParsePkgInfo(bytes.NewReader(readTestdata(t, "pkgutil-pkg-info.txt")))
	if !ok || p != (agentapi.Package{Name: "com.apple.pkg.CLTools_Executables", Version: "15.3.0.0.1.1708646388", Ecosystem: EcosystemMacOS}) {
		t.Errorf("pkgutil --pkg-info = %+v, %v", p, ok)
	}
	name, ver, build := ParseSwVers(bytes.NewReader(readTestdata(t, "sw_vers.txt")))
	if name != "macOS" || ver != "14.4.1" || build != "23E224" {
		t.Errorf("sw_vers = %q %q %q", name, ver, build)
	}
}

// Fuzz the parsers of command output: they read what other programs
// print and must never panic, whatever those print.
func FuzzParseAptSimulate(f *testing.F) {
	f.Add(readTestdata(f, "apt-get-s-dist-upgrade.debian12.txt"))
	f.Add([]byte("Inst x [1] (2 a [b])"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseAptSimulate(bytes.NewReader(b))
		_, _ = ParseAptListUpgradable(bytes.NewReader(b))
		got, err := parseDpkgQuery(string(b), []string{"libc6"})
		if err == nil && len(got) != 1 {
			t.Fatalf("parseDpkgQuery answered for %d names; want 1", len(got))
		}
	})
}

func FuzzParseWindows(f *testing.F) {
	f.Add(readTestdata(f, "wua-pending.json"))
	f.Add(readTestdata(f, "get-hotfix.csv"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseWUAJSON(b)
		_, _ = ParseHotFixCSV(bytes.NewReader(b))
	})
}

func FuzzParseMac(f *testing.F) {
	f.Add(readTestdata(f, "softwareupdate-l.txt"))
	f.Add(readTestdata(f, "softwareupdate-l-legacy.txt"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSoftwareUpdateList(bytes.NewReader(b))
		_, _ = ParsePkgInfo(bytes.NewReader(b))
		ParseSwVers(bytes.NewReader(b))
		_, _ = ParsePkgutilPkgs(bytes.NewReader(b))
	})
}

// FuzzParseConfig: a broken config file must give an error, never a panic
// or a config that fails its own validation.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("server: https://x\nhooks: {a: [true]}\nrequire_backup_hook: a\n"))
	f.Add([]byte("window: {time_zone: UTC, slots: [{day: 0, start: '01:00', end: '02:00'}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("ParseConfig accepted a config that fails Validate: %v", verr)
			}
		}
	})
}

func TestSanitizeFactsAndEntries(t *testing.T) {
	f := agentapi.Facts{Hostname: "Lab PC #3", TimeZone: "EST5EDT,M3.2.0,M11.1.0", OSID: "Debian", Model: "bad\x00model", Arch: "amd64"}
	sanitizeFacts(&f)
	if f.Hostname != "Lab-PC-3" || f.TimeZone != "Local" || f.OSID != "" || f.Model != "" {
		t.Errorf("sanitized facts = %+v", f)
	}
	req := agentapi.CheckInRequest{Facts: f, InventoryHash: zeroHash}
	if err := req.Validate(); err != nil {
		t.Errorf("sanitized facts refused: %v", err)
	}
	pkgs, dropped := validPackages([]agentapi.Package{
		{Name: "ok", Version: "1", Ecosystem: "Debian:12"},
		{Name: "bad\nname", Version: "1", Ecosystem: "Debian:12"},
		{Name: "nover", Ecosystem: "Debian:12"},
	})
	if len(pkgs) != 1 || dropped != 2 {
		t.Errorf("validPackages kept %v, dropped %d", pkgs, dropped)
	}
}
