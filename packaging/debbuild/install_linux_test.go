//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/patchward/patchward/internal/agent/agenttest"
)

// TestInstallAndPurgeDeb installs the built package with the real dpkg,
// runs the installed binary with the installed config, and purges it,
// checking that the maintainer scripts leave nothing behind. It runs only
// as root and refuses to touch a host where patchward-agent is installed.
func TestInstallAndPurgeDeb(t *testing.T) {
	needDpkgDeb(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; this test must run there")
		}
		t.Skip("needs root to install a package")
	}
	agenttest.LockHost(t)
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "patchward-agent").Output(); err == nil && string(out) == "installed" {
		t.Skip("patchward-agent is really installed on this host; not touching it")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	deb, err := build(options{Root: root, Version: "0.0.1~test", Arch: "amd64", Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("dpkg", "--purge", "patchward-agent").Run() })
	agenttest.MustRun(t, "dpkg", "-i", deb)

	for path, mode := range map[string]os.FileMode{
		"/usr/bin/patchward-agent":                    0o755,
		"/etc/patchward/agent.yaml":                   0o640,
		"/lib/systemd/system/patchward-agent.service": 0o644,
		"/var/lib/patchward-agent":                    0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode()&(os.ModePerm|os.ModeDir) != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
	out, err := exec.Command("/usr/bin/patchward-agent", "-config", "/etc/patchward/agent.yaml", "inventory").Output()
	if err != nil {
		t.Fatalf("installed agent inventory: %v", err)
	}
	var inv struct {
		Facts struct {
			OSID string `json:"os_id"`
		} `json:"facts"`
		Packages []json.RawMessage `json:"packages"`
	}
	if err := json.Unmarshal(out, &inv); err != nil || inv.Facts.OSID == "" || len(inv.Packages) == 0 {
		t.Fatalf("installed agent inventory: %v; os %q, %d packages", err, inv.Facts.OSID, len(inv.Packages))
	}
	// The state directory survives removal (the key is the agent's
	// identity) and goes on purge.
	if err := os.WriteFile(filepath.Join("/var/lib/patchward-agent", "agent.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	agenttest.MustRun(t, "dpkg", "--remove", "patchward-agent")
	if _, err := os.Stat("/var/lib/patchward-agent/agent.key"); err != nil {
		t.Errorf("remove deleted the agent key: %v", err)
	}
	agenttest.MustRun(t, "dpkg", "--purge", "patchward-agent")
	for _, path := range []string{"/usr/bin/patchward-agent", "/etc/patchward/agent.yaml", "/var/lib/patchward-agent"} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still there after purge (%v)", path, err)
		}
	}
}
