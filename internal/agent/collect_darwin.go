//go:build darwin

package agent

import (
	"bytes"
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchward/patchward/internal/agentapi"
)

// RebootRequired: macOS has no persistent flag; softwareupdate reports
// restart-requiring updates as pending instead.
func RebootRequired() bool { return false }

// HostCollector gathers a macOS host's inventory: installer receipts
// (pkgutil) and pending updates (softwareupdate -l). Both are slow, so
// they run at most every PendingInterval.
type HostCollector struct {
	Cfg Config
	Run Runner
	Now func() time.Time

	mu      sync.Mutex
	at      time.Time
	pkgs    []agentapi.Package
	pending []agentapi.PendingUpdate
	warn    []string
}

// NewHostCollector returns the collector for this OS.
func NewHostCollector(cfg Config, run Runner) *HostCollector {
	return &HostCollector{Cfg: cfg, Run: run, Now: time.Now}
}

// Collect implements Collector.
func (c *HostCollector) Collect(ctx context.Context) (Inventory, error) {
	inv := Inventory{Facts: commonFacts()}
	inv.Facts.OSID = "macos"
	if out, ok := c.output(ctx, "sw_vers", "sw_vers"); ok {
		name, ver, build := ParseSwVers(bytes.NewReader(out))
		inv.Facts.OSName, inv.Facts.OSVersion = name, ver
		if build != "" {
			inv.Facts.OSName += " (" + build + ")"
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		inv.Facts.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if tv, err := unix.SysctlTimeval("kern.boottime"); err == nil {
		inv.Facts.UptimeSeconds = int64(time.Since(time.Unix(tv.Unix())) / time.Second)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.Now(); c.at.IsZero() || now.Sub(c.at) >= c.Cfg.PendingInterval.Duration {
		c.warn, c.pkgs, c.pending = nil, nil, nil
		if out, ok := c.output(ctx, "installer receipts", "pkgutil", "--pkgs"); ok {
			ids, _ := ParsePkgutilPkgs(bytes.NewReader(out))
			for _, id := range ids {
				if info, ok := c.output(ctx, "receipt "+id, "pkgutil", "--pkg-info", id); ok {
					if p, ok := ParsePkgInfo(bytes.NewReader(info)); ok {
						c.pkgs = append(c.pkgs, p)
					}
				}
			}
		}
		if out, ok := c.output(ctx, "pending updates", "softwareupdate", "-l"); ok {
			p, _ := ParseSoftwareUpdateList(bytes.NewReader(out))
			c.pending, _ = validPending(p)
		}
		c.pkgs, _ = validPackages(c.pkgs)
		c.at = now
	}
	inv.Packages = c.pkgs
	inv.Pending = c.pending
	inv.Warnings = c.warn
	inv.finish()
	return inv, nil
}

func (c *HostCollector) output(ctx context.Context, what string, argv ...string) ([]byte, bool) {
	var out bytes.Buffer
	st := c.Run.Run(ctx, Command{Name: what, Argv: argv, Timeout: 10 * time.Minute, Stdout: &out})
	if !st.OK {
		c.warn = append(c.warn, what+": "+lastLine(st.Output))
		return nil, false
	}
	return out.Bytes(), true
}
