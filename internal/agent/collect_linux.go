//go:build linux

package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// rebootRequiredFiles are written by Debian/Ubuntu packages (kernel, libc)
// whose update needs a restart, and by libzypp on SUSE (/run/reboot-needed,
// what `zypper needs-rebooting` reads).
var rebootRequiredFiles = []string{"/run/reboot-required", "/var/run/reboot-required", "/run/reboot-needed"}

// minPendingSpacing is the least time between two pending-update queries.
const minPendingSpacing = time.Minute

// RebootRequired reports whether the OS asked for a reboot.
func RebootRequired() bool {
	for _, f := range rebootRequiredFiles {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// HostCollector gathers a Linux host's inventory: os-release, kernel,
// uptime, reboot flag, DMI identity, installed packages from whichever
// package database exists (dpkg, rpm, apk) and apt's pending updates.
// The package list is re-read only when the database file changes, and
// the pending-updates simulation runs at most every PendingInterval (or
// after the package database changed), so idle check-ins cost little.
type HostCollector struct {
	Cfg Config
	Run Runner
	Now func() time.Time

	mu         sync.Mutex
	pkgKey     string
	pkgs       []agentapi.Package
	pkgWarn    []string
	pending    []agentapi.PendingUpdate
	pendingKey string
	pendingAt  time.Time
}

// NewHostCollector returns the collector for this OS.
func NewHostCollector(cfg Config, run Runner) *HostCollector {
	return &HostCollector{Cfg: cfg, Run: run, Now: time.Now}
}

// Collect implements Collector.
func (c *HostCollector) Collect(ctx context.Context) (Inventory, error) {
	inv := Inventory{Facts: commonFacts()}
	osr, err := readOSReleaseFile("/etc/os-release")
	if err != nil {
		osr, err = readOSReleaseFile("/usr/lib/os-release")
	}
	if err != nil {
		inv.Warnings = append(inv.Warnings, "os-release: "+err.Error())
	}
	inv.Facts.OSID = osr.ID
	inv.Facts.OSName = osr.Name
	inv.Facts.OSVersion = osr.Version
	inv.OSIDLike = osr.IDLike
	inv.Facts.Kernel = readTrim("/proc/sys/kernel/osrelease")
	if up := readTrim("/proc/uptime"); up != "" {
		if f, err := strconv.ParseFloat(strings.Fields(up)[0], 64); err == nil {
			inv.Facts.UptimeSeconds = int64(f)
		}
	}
	inv.Facts.RebootRequired = RebootRequired()
	inv.Facts.Make = readTrim("/sys/class/dmi/id/sys_vendor")
	inv.Facts.Model = readTrim("/sys/class/dmi/id/product_name")
	inv.Facts.Serial = readTrim("/sys/class/dmi/id/product_serial") // root only
	if v := readTrim("/sys/class/dmi/id/bios_version"); v != "" {
		inv.Facts.Firmware = strings.TrimSpace(readTrim("/sys/class/dmi/id/bios_vendor") + " " + v)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	key := c.packagesChanged(osr)
	inv.Packages = c.pkgs
	inv.Warnings = append(inv.Warnings, c.pkgWarn...)
	if c.dpkg() {
		now := c.Now()
		// The simulation costs apt a second or more of CPU: rerun it when
		// the package database changed, but not more than once a minute
		// (a busy dpkg changes its status file many times per install).
		age := now.Sub(c.pendingAt)
		if c.pending == nil || (key != c.pendingKey && age >= minPendingSpacing) || age >= c.Cfg.PendingInterval.Duration {
			p, err := c.aptPending(ctx)
			if err != nil {
				inv.Warnings = append(inv.Warnings, "pending updates: "+err.Error())
			} else {
				c.pending, c.pendingKey, c.pendingAt = p, key, now
			}
		}
		inv.Pending = c.pending
	}
	inv.finish()
	return inv, nil
}

func (c *HostCollector) dpkgStatus() string {
	return filepath.Join(c.Cfg.Apt.AdminDir, "status")
}

func (c *HostCollector) dpkg() bool {
	_, err := os.Stat(c.dpkgStatus())
	return err == nil
}

// packageDBs are the databases tried in order; the first that exists wins.
func (c *HostCollector) packageDBs() []string {
	return []string{c.dpkgStatus(), "/var/lib/rpm/rpmdb.sqlite", "/var/lib/rpm/Packages.db", "/var/lib/rpm/Packages", "/usr/lib/sysimage/rpm/rpmdb.sqlite", "/lib/apk/db/installed"}
}

// packagesChanged re-reads the package list when its database changed
// (by path, size and modification time) and returns that key.
func (c *HostCollector) packagesChanged(osr osRelease) string {
	for _, db := range c.packageDBs() {
		st, err := os.Stat(db)
		if err != nil {
			continue
		}
		key := db + "|" + strconv.FormatInt(st.Size(), 10) + "|" + st.ModTime().UTC().Format(time.RFC3339Nano)
		if key == c.pkgKey {
			return key
		}
		pkgs, err := readPackageDB(db, osr)
		c.pkgWarn = nil
		if err != nil {
			c.pkgWarn = []string{"packages: " + err.Error()}
			return key
		}
		if pkgs, dropped := validPackages(pkgs); dropped > 0 {
			c.pkgWarn = []string{fmt.Sprintf("packages: %d entries the protocol would refuse were left out", dropped)}
			c.pkgs, c.pkgKey = pkgs, key
			return key
		}
		c.pkgs, c.pkgKey = pkgs, key
		return key
	}
	c.pkgWarn = []string{"packages: no dpkg, rpm or apk database found"}
	return ""
}

// aptPending simulates a dist-upgrade; -s needs no root, and NoLocking
// keeps the simulation from contending with a real apt run.
func (c *HostCollector) aptPending(ctx context.Context) ([]agentapi.PendingUpdate, error) {
	argv := append([]string{"apt-get"}, c.Cfg.Apt.Options...)
	argv = append(argv, "-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade")
	var out bytes.Buffer
	st := c.Run.Run(ctx, Command{Name: "pending updates", Argv: argv, Env: []string{"LC_ALL=C"}, Timeout: 5 * time.Minute, Stdout: &out, User: c.Cfg.UnprivilegedUser})
	if !st.OK {
		return nil, fmt.Errorf("apt-get -s dist-upgrade exited %d: %s", st.ExitCode, lastLine(st.Output))
	}
	p, err := ParseAptSimulate(&out)
	p, _ = validPending(p)
	return p, err
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > agentapi.MaxField || !agentapi.Printable(s) {
		return ""
	}
	return s
}
