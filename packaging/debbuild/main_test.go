package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/agent"
)

// needDpkgDeb skips without dpkg-deb, except in CI, where the packaging
// test must run.
func needDpkgDeb(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dpkg-deb is required in CI to check the .deb")
		}
		t.Skip("dpkg-deb not found")
	}
}

func TestBuildDeb(t *testing.T) {
	needDpkgDeb(t)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	path, err := build(options{Root: root, Version: "1.2.3", Arch: "amd64", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("dpkg-deb", "-I", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -I: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: patchward-agent", "Version: 1.2.3", "Architecture: amd64", "Depends: apt, dpkg", "Section: admin", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	list, err := exec.Command("dpkg-deb", "-c", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, list)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`-rwxr-xr-x root/root .* \./usr/bin/patchward-agent\n`),
		regexp.MustCompile(`-rw-r--r-- root/root .* \./lib/systemd/system/patchward-agent\.service\n`),
		regexp.MustCompile(`-rw-r----- root/root .* \./etc/patchward/agent\.yaml\n`),
		regexp.MustCompile(`drwx------ root/root .* \./var/lib/patchward-agent/\n`),
		regexp.MustCompile(`\./usr/share/doc/patchward-agent/agent\.md\n`),
	} {
		if !want.Match(list) {
			t.Errorf("dpkg-deb -c lacks %s:\n%s", want, list)
		}
	}
	conf, err := exec.Command("dpkg-deb", "-I", path, "conffiles").CombinedOutput()
	if err != nil || strings.TrimSpace(string(conf)) != "/etc/patchward/agent.yaml" {
		t.Errorf("conffiles = %q, %v; want /etc/patchward/agent.yaml", conf, err)
	}
	// The packaged binary carries the package version.
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", path, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	v, err := exec.Command(filepath.Join(x, "usr/bin/patchward-agent"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(v), "patchward-agent 1.2.3 ") {
		t.Errorf("packaged agent version = %q, %v", v, err)
	}
	// The unit file is valid as far as systemd can tell without the binary
	// installed.
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		unit := filepath.Join(x, "lib/systemd/system/patchward-agent.service")
		out, _ := exec.Command(sa, "verify", unit).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "/usr/bin/patchward-agent") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	}
}

// TestPackagedConfigIsValid: the config the package installs must load.
func TestPackagedConfigIsValid(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "packaging", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ParseConfig(b)
	if err != nil {
		t.Fatalf("packaging/agent.yaml: %v", err)
	}
	if cfg.StateDir != agent.DefaultStateDir || cfg.UnprivilegedUser != "nobody" {
		t.Errorf("packaged config = %+v", cfg)
	}
}
