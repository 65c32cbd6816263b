//go:build linux

package agenttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NeedRealRPMTools skips unless the test can drive the named RPM tools
// (dnf or zypper, with rpm, rpmbuild and createrepo_c) as root; in CI
// (CI=true) the same conditions fail the run instead, so the test cannot
// silently stop running there. scripts/setup.sh installs them from
// Debian. The tests never touch the host's own packages: everything
// happens in a throw-away install root.
func NeedRealRPMTools(t testing.TB, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to install packages into an install root"
	}
	for _, b := range append([]string{"rpm", "rpmbuild", "createrepo_c"}, tools...) {
		if _, err := exec.LookPath(b); err != nil {
			why = b + " not found (scripts/setup.sh installs it)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real-RPM test cannot run in CI: %s", why)
	}
	t.Skip(why)
}

// E2EExtraPackage is a second test package (always at 1.0-1 in an
// RPMRepo), for jobs that change two packages in one transaction.
const E2EExtraPackage = "patchward-e2e-extra"

// RPMRepo is a private RPM repository (createrepo_c metadata) with
// versions of E2EPackage and E2EExtraPackage 1.0-1.
type RPMRepo struct {
	Dir string
	// RPMs maps version-release to the .rpm file.
	RPMs map[string]string
	// DnfOptions make dnf see only this repository, with signature checks
	// off for it alone (the test packages are unsigned).
	DnfOptions []string
}

// NewRPMRepo builds a noarch E2EPackage at each "version-release", and
// E2EExtraPackage 1.0-1, with rpmbuild and indexes them with createrepo_c.
func NewRPMRepo(t testing.TB, versions ...string) *RPMRepo {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	r := &RPMRepo{Dir: repo, RPMs: map[string]string{}}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, vr := range versions {
		r.RPMs[vr] = buildRPM(t, dir, repo, E2EPackage, vr)
	}
	buildRPM(t, dir, repo, E2EExtraPackage, "1.0-1")
	MustRun(t, "createrepo_c", "--quiet", repo)
	r.DnfOptions = []string{
		"--setopt=reposdir=" + filepath.Join(dir, "no-repos.d"),
		"--repofrompath=patchward-e2e," + "file://" + repo,
		"--setopt=patchward-e2e.gpgcheck=0",
	}
	return r
}

// buildRPM writes a spec for package name at version-release vr and
// builds it with rpmbuild in its own top directory.
func buildRPM(t testing.TB, dir, repo, name, vr string) string {
	t.Helper()
	version, release, ok := strings.Cut(vr, "-")
	if !ok {
		t.Fatalf("RPM version %q has no release", vr)
	}
	spec := fmt.Sprintf(`Name: %[1]s
Version: %[2]s
Release: %[3]s
Summary: Patchward agent end-to-end test package
License: CC0
BuildArch: noarch

%%description
Installed and removed by the agent's tests in a throw-away install root.

%%install
mkdir -p %%{buildroot}/usr/share/%[1]s
echo %[2]s-%[3]s > %%{buildroot}/usr/share/%[1]s/VERSION

%%files
/usr/share/%[1]s/VERSION
`, name, version, release)
	top := filepath.Join(dir, "rpmbuild-"+name+"-"+vr)
	specFile := filepath.Join(dir, name+"-"+vr+".spec")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	MustRun(t, "rpmbuild", "--quiet", "-bb",
		"--define", "_topdir "+top,
		"--define", "_rpmdir "+repo,
		"--define", "_build_id_links none",
		specFile)
	rpm := filepath.Join(repo, "noarch", fmt.Sprintf("%s-%s.noarch.rpm", name, vr))
	if _, err := os.Stat(rpm); err != nil {
		t.Fatalf("rpmbuild made no %s: %v", rpm, err)
	}
	return rpm
}

// RPMVersion is a package's version-release in root's rpm database, ""
// when it is not installed.
func RPMVersion(t testing.TB, root, name string) string {
	t.Helper()
	out, err := exec.Command("rpm", "--root", root, "--query", "--queryformat", "%{VERSION}-%{RELEASE}", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
