package agent

import (
	"context"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// Inventory is what the agent reports about its host.
type Inventory struct {
	Facts    agentapi.Facts           `json:"facts"`
	Packages []agentapi.Package       `json:"packages"`
	Pending  []agentapi.PendingUpdate `json:"pending"`
	// Hash is agentapi.InventoryHash of Packages.
	Hash string `json:"inventory_hash"`
	// OSIDLike is os-release's ID_LIKE, used to pick the package manager.
	OSIDLike []string `json:"-"`
	// Warnings name collectors that failed; the rest of the inventory is
	// still reported.
	Warnings []string `json:"warnings,omitempty"`
}

// Collector gathers the host's inventory. Implementations cache what is
// expensive, so calling Collect at every check-in stays cheap while idle.
type Collector interface {
	Collect(ctx context.Context) (Inventory, error)
}

// finish sorts, bounds and hashes an inventory.
func (inv *Inventory) finish() {
	sort.Slice(inv.Packages, func(i, j int) bool {
		a, b := inv.Packages[i], inv.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Arch < b.Arch
	})
	if len(inv.Packages) > agentapi.MaxPackages {
		inv.Warnings = append(inv.Warnings, "inventory truncated to the protocol's package limit")
		inv.Packages = inv.Packages[:agentapi.MaxPackages]
	}
	if len(inv.Pending) > agentapi.MaxPending {
		inv.Pending = inv.Pending[:agentapi.MaxPending]
	}
	inv.Hash = agentapi.InventoryHash(inv.Packages)
}

// commonFacts fills what every OS shares.
func commonFacts() agentapi.Facts {
	f := agentapi.Facts{
		Hostname:     Hostname(),
		Arch:         runtime.GOARCH,
		TimeZone:     localZoneName(),
		AgentVersion: Version,
	}
	f.IPAddresses, f.MACAddress = addresses()
	return f
}

// localZoneName returns the IANA name of the host's zone when it can be
// found ($TZ, /etc/timezone, the /etc/localtime link), else Go's name.
func localZoneName() string {
	if tz := os.Getenv("TZ"); tz != "" && !strings.HasPrefix(tz, ":") {
		return tz
	}
	if b, err := os.ReadFile("/etc/timezone"); err == nil {
		if z := strings.TrimSpace(string(b)); z != "" {
			return z
		}
	}
	if l, err := os.Readlink("/etc/localtime"); err == nil {
		if i := strings.Index(l, "zoneinfo/"); i >= 0 {
			return l[i+len("zoneinfo/"):]
		}
	}
	return time.Local.String()
}

// addresses lists the host's unicast addresses (up to the protocol's
// limit) and the MAC of the first interface that is up and has one.
func addresses() ([]string, string) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, ""
	}
	var ips []string
	mac := ""
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if mac == "" && len(ifc.HardwareAddr) == 6 {
			mac = ifc.HardwareAddr.String()
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || len(ips) >= agentapi.MaxIPs {
				continue
			}
			ips = append(ips, ipn.IP.String())
		}
	}
	return ips, mac
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
