package agent

import (
	"context"
	"net"
	"os"
	"regexp"
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
	sanitizeFacts(&inv.Facts)
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

// zeroHash stands in for the inventory hash when validating single
// entries with the protocol's own rules.
var zeroHash = strings.Repeat("0", 64)

// validPackages drops entries the server would refuse (the protocol
// refuses a whole check-in for one bad entry, which would leave the host
// unreported), returning how many were dropped. It uses agentapi's own
// validation, so agent and server cannot disagree.
func validPackages(pkgs []agentapi.Package) ([]agentapi.Package, int) {
	out := pkgs[:0:0]
	for _, p := range pkgs {
		req := agentapi.CheckInRequest{InventoryHash: zeroHash, Inventory: []agentapi.Package{p}}
		if req.Validate() == nil {
			out = append(out, p)
		}
	}
	return out, len(pkgs) - len(out)
}

// validPending is validPackages for pending updates.
func validPending(ps []agentapi.PendingUpdate) ([]agentapi.PendingUpdate, int) {
	out := ps[:0:0]
	for _, p := range ps {
		req := agentapi.CheckInRequest{InventoryHash: zeroHash, Pending: []agentapi.PendingUpdate{p}}
		if req.Validate() == nil {
			out = append(out, p)
		}
	}
	return out, len(ps) - len(out)
}

var (
	tzNameRE      = regexp.MustCompile(`^[A-Za-z0-9_+./-]{1,64}$`)
	hostUnsafeRE  = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	factFieldsMax = agentapi.MaxField
	osIDRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// sanitizeFacts makes facts acceptable to the server: a time zone that is
// not an IANA-style name (a POSIX TZ rule, say) becomes "Local", a host
// name with other characters is rewritten, and free-text fields that are
// not printable or too long are dropped rather than failing the check-in.
func sanitizeFacts(f *agentapi.Facts) {
	if !tzNameRE.MatchString(f.TimeZone) {
		f.TimeZone = "Local"
	}
	if !agentapi.ValidHostname(f.Hostname) {
		h := strings.Trim(hostUnsafeRE.ReplaceAllString(f.Hostname, "-"), "-.")
		if len(h) > 253 {
			h = h[:253]
		}
		if !agentapi.ValidHostname(h) {
			h = "unknown"
		}
		f.Hostname = h
	}
	for _, s := range []*string{&f.OSName, &f.OSVersion, &f.Kernel, &f.Firmware, &f.Serial, &f.Make, &f.Model} {
		if len(*s) > factFieldsMax || !agentapi.Printable(*s) {
			*s = ""
		}
	}
	if f.OSID != "" && !osIDRE.MatchString(f.OSID) {
		f.OSID = ""
	}
}
