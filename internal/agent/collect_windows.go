//go:build windows

package agent

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/patchward/patchward/internal/agentapi"
)

// RebootRequired reads the flags Windows Update and Component Based
// Servicing set when an installed update waits for a restart.
func RebootRequired() bool {
	for _, p := range []string{
		`SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`,
		`SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`,
	} {
		if k, err := registry.OpenKey(registry.LOCAL_MACHINE, p, registry.QUERY_VALUE); err == nil {
			k.Close()
			return true
		}
	}
	return false
}

// HostCollector gathers a Windows host's inventory: programs from the
// registry's uninstall keys, installed KBs (Get-HotFix) and pending
// updates from the Windows Update Agent. The PowerShell queries are slow,
// so they run at most every PendingInterval.
type HostCollector struct {
	Cfg Config
	Run Runner
	Now func() time.Time

	mu      sync.Mutex
	at      time.Time
	kbs     []agentapi.Package
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
	inv.Facts.OSID = "windows"
	if k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows NT\CurrentVersion`, registry.QUERY_VALUE); err == nil {
		name, _, _ := k.GetStringValue("ProductName")
		disp, _, _ := k.GetStringValue("DisplayVersion")
		build, _, _ := k.GetStringValue("CurrentBuild")
		ubr, _, _ := k.GetIntegerValue("UBR")
		k.Close()
		inv.Facts.OSName = strings.TrimSpace(name + " " + disp)
		inv.Facts.OSVersion = build
		if ubr > 0 {
			inv.Facts.OSVersion = build + "." + itoa(int64(ubr))
		}
		inv.Facts.Kernel = inv.Facts.OSVersion
	}
	inv.Facts.UptimeSeconds = int64(windows.DurationSinceBoot() / time.Second)
	inv.Facts.RebootRequired = RebootRequired()
	inv.Packages, _ = validPackages(UninstallPackages(readUninstallKeys()))

	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.Now(); c.at.IsZero() || now.Sub(c.at) >= c.Cfg.PendingInterval.Duration {
		c.warn = nil
		c.kbs, c.pending = nil, nil
		if out, ok := c.powershell(ctx, "installed updates", `Get-HotFix | Select-Object HotFixID,Description,InstalledOn | ConvertTo-Csv -NoTypeInformation`); ok {
			if kbs, err := ParseHotFixCSV(bytes.NewReader(out)); err == nil {
				c.kbs, _ = validPackages(kbs)
			} else {
				c.warn = append(c.warn, err.Error())
			}
		}
		if out, ok := c.powershell(ctx, "pending updates", WUAQuery); ok {
			if p, err := ParseWUAJSON(out); err == nil {
				c.pending, _ = validPending(p)
			} else {
				c.warn = append(c.warn, err.Error())
			}
		}
		c.at = now
	}
	inv.Packages = append(inv.Packages, c.kbs...)
	inv.Pending = c.pending
	inv.Warnings = append(inv.Warnings, c.warn...)
	inv.finish()
	return inv, nil
}

func (c *HostCollector) powershell(ctx context.Context, what, script string) ([]byte, bool) {
	var out bytes.Buffer
	st := c.Run.Run(ctx, Command{Name: what, Argv: []string{"powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script}, Timeout: 10 * time.Minute, Stdout: &out})
	if !st.OK {
		c.warn = append(c.warn, what+": "+lastLine(st.Output))
		return nil, false
	}
	return out.Bytes(), true
}

// readUninstallKeys reads both registry views of the uninstall keys.
func readUninstallKeys() []UninstallEntry {
	var out []UninstallEntry
	for _, root := range []string{
		`SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`,
		`SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall`,
	} {
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, root, registry.ENUMERATE_SUB_KEYS)
		if err != nil {
			continue
		}
		names, _ := k.ReadSubKeyNames(-1)
		k.Close()
		for _, n := range names {
			sk, err := registry.OpenKey(registry.LOCAL_MACHINE, root+`\`+n, registry.QUERY_VALUE)
			if err != nil {
				continue
			}
			e := UninstallEntry{Key: n}
			e.DisplayName, _, _ = sk.GetStringValue("DisplayName")
			e.DisplayVersion, _, _ = sk.GetStringValue("DisplayVersion")
			e.Publisher, _, _ = sk.GetStringValue("Publisher")
			e.SystemComponent, _, _ = sk.GetIntegerValue("SystemComponent")
			e.ParentKeyName, _, _ = sk.GetStringValue("ParentKeyName")
			e.ReleaseType, _, _ = sk.GetStringValue("ReleaseType")
			sk.Close()
			out = append(out, e)
		}
	}
	return out
}
