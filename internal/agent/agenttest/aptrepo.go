//go:build linux

package agenttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// E2EPackage is named with a prefix no Debian or Ubuntu package uses, so a
// test can install and purge it on a real host without touching anything
// else.
const E2EPackage = "patchward-e2e-hello"

// NeedRealApt skips unless the test can drive the real apt as root; in CI
// (CI=true) the same conditions fail the run instead, so the test cannot
// silently stop running there.
func NeedRealApt(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to install packages"
	}
	for _, b := range []string{"apt-get", "dpkg-deb", "dpkg", "dpkg-query"} {
		if _, err := exec.LookPath(b); err != nil {
			why = b + " not found"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real-apt end-to-end test cannot run in CI: %s", why)
	}
	t.Skip(why)
}

// AptRepo is a private apt repository with versions of E2EPackage.
type AptRepo struct {
	Dir string
	// Debs maps version to the .deb file.
	Debs map[string]string
	// Options make apt-get see only this repository and keep its lists and
	// cache in Dir, leaving the host's sources and lists untouched.
	Options []string
}

// NewAptRepo builds E2EPackage at each version with dpkg-deb, indexes them
// in a flat [trusted=yes] file: repository, and registers a cleanup that
// purges the package. A copy left by a killed earlier run is purged first.
// It holds a host-wide lock until the test ends, so real-apt tests in
// different packages never run at the same time.
func NewAptRepo(t testing.TB, versions ...string) *AptRepo {
	t.Helper()
	LockHost(t)
	dir := t.TempDir()
	r := &AptRepo{Dir: dir, Debs: map[string]string{}}
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{repo, filepath.Join(dir, "lists/partial"), filepath.Join(dir, "cache/archives/partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var debs []string
	for _, v := range versions {
		r.Debs[v] = buildDeb(t, dir, repo, v)
		debs = append(debs, r.Debs[v])
	}
	writePackagesIndex(t, repo, debs)
	sources := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(sources, []byte("deb [trusted=yes] file:"+repo+" ./\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Options = []string{
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Dir::State::extended_states=" + filepath.Join(dir, "extended_states"),
		"-o", "APT::Sandbox::User=root",
	}
	if v := InstalledVersion(t); v != "" {
		t.Logf("%s %s left by an earlier run; purging it first", E2EPackage, v)
		MustRun(t, "dpkg", "--purge", E2EPackage)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", E2EPackage).CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge %s: %v\n%s", E2EPackage, err, out)
		}
	})
	return r
}

// LockHost serialises the real-apt and real-dpkg tests of every package's test binary
// (go test runs packages in parallel): they share one dpkg database and
// one test package name. The lock is released when the test ends, after
// its purge.
func LockHost(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "patchward-e2e-apt.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock for real-apt tests: %v", err)
	}
	t.Cleanup(func() { f.Close() })
}

// MustRun runs a command or fails the test with its output.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// InstalledVersion is E2EPackage's installed version, "" when absent.
func InstalledVersion(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version} ${db:Status-Status}", E2EPackage).Output()
	if err != nil {
		return ""
	}
	v, status, _ := strings.Cut(string(out), " ")
	if status != "installed" {
		return ""
	}
	return v
}

// buildDeb makes a tiny architecture-independent package with dpkg-deb.
func buildDeb(t testing.TB, dir, repo, version string) string {
	t.Helper()
	root := filepath.Join(dir, "build-"+version)
	for _, d := range []string{"DEBIAN", "usr/share/" + E2EPackage} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: Patchward tests <tests@patchward.invalid>\nSection: misc\nPriority: optional\nDescription: Patchward agent end-to-end test package\n Installed and purged by the agent's tests; safe to remove.\n", E2EPackage, version)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/share", E2EPackage, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(repo, fmt.Sprintf("%s_%s_all.deb", E2EPackage, version))
	MustRun(t, "dpkg-deb", "--root-owner-group", "--build", root, deb)
	return deb
}

// writePackagesIndex writes the repository's Packages file: with
// dpkg-scanpackages when dpkg-dev is installed, else from dpkg-deb -f and
// the file's size and checksum, which is all apt needs from a flat
// [trusted=yes] repository.
func writePackagesIndex(t testing.TB, repo string, debs []string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-scanpackages"); err == nil {
		cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dpkg-scanpackages: %v", err)
		}
		if err := os.WriteFile(filepath.Join(repo, "Packages"), out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var b strings.Builder
	for _, deb := range debs {
		b.WriteString(strings.TrimRight(MustRun(t, "dpkg-deb", "-f", deb), "\n"))
		st, err := os.Stat(deb)
		if err != nil {
			t.Fatal(err)
		}
		sum := strings.Fields(MustRun(t, "sha256sum", deb))[0]
		fmt.Fprintf(&b, "\nFilename: ./%s\nSize: %d\nSHA256: %s\n\n", filepath.Base(deb), st.Size(), sum)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
