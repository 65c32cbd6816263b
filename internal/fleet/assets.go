package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/inventory"
)

// AssetType guesses an asset type from what an agent reports: virtual
// machines by their hypervisor's make/model, Windows Server and anything
// calling itself a server as servers, desktops (Windows client, macOS, a
// Linux "Desktop"/"Workstation" edition) as endpoints, and other Linux,
// BSD and Unix hosts as servers, which is what clinics run them as.
func AssetType(f agentapi.Facts) inventory.Type {
	hw := strings.ToLower(f.Make + " " + f.Model)
	for _, v := range []string{"vmware", "qemu", "kvm", "virtualbox", "virtual machine", "hvm domu", "xen", "bochs", "parallels", "hyper-v", "openstack", "amazon ec2", "google compute engine"} {
		if strings.Contains(hw, v) {
			return inventory.TypeVM
		}
	}
	osName := strings.ToLower(f.OSName + " " + f.OSVersion)
	switch {
	case strings.Contains(osName, "server"):
		return inventory.TypeServer
	case f.OSID == "windows", f.OSID == "macos", strings.Contains(osName, "desktop"), strings.Contains(osName, "workstation"):
		return inventory.TypeEndpoint
	}
	return inventory.TypeServer
}

// junkSerials are placeholder serial numbers firmware reports when the
// vendor left the field empty; matching on them would link unrelated hosts.
var junkSerials = []string{"", "0", "none", "n/a", "na", "default string", "to be filled by o.e.m.",
	"system serial number", "not specified", "not applicable", "0123456789", "123456789", "chassis serial number"}

// usableSerial returns the serial if it identifies a machine, else "".
func usableSerial(s string) string {
	s = strings.TrimSpace(s)
	if slices.Contains(junkSerials, strings.ToLower(s)) || strings.Trim(s, "0 ") == "" {
		return ""
	}
	return s
}

// hostKeys returns the lower-case host names an asset may be recorded
// under: the full name and its first label.
func hostKeys(hostname string) []string {
	h := strings.ToLower(strings.TrimSuffix(hostname, "."))
	first, _, _ := strings.Cut(h, ".")
	if first == h {
		return []string{h}
	}
	return []string{h, first}
}

// choose picks the existing asset an enrolling agent is: the one asset
// whose serial matches, else the one whose full host name matches, else the
// one whose short host name matches. Assets another active agent reports
// for are never taken over, and a tie links nothing (a duplicate asset an
// admin can merge is better than one host's data on another's record).
func choose(cands []Candidate, hostname, serial string) (assetID, why string) {
	var free []Candidate
	for _, c := range cands {
		if !c.AgentOwned {
			free = append(free, c)
		}
	}
	keys := hostKeys(hostname)
	tiers := []struct {
		why   string
		match func(Candidate) bool
	}{
		{"serial number matches", func(c Candidate) bool { return serial != "" && strings.EqualFold(c.Serial, serial) }},
		{"host name matches", func(c Candidate) bool { return strings.EqualFold(c.Hostname, hostname) }},
		{"short host name matches", func(c Candidate) bool {
			ck := hostKeys(c.Hostname)
			return slices.Contains(keys, ck[len(ck)-1]) || slices.Contains(ck, keys[len(keys)-1])
		}},
	}
	for _, t := range tiers {
		var hits []string
		for _, c := range free {
			if t.match(c) {
				hits = append(hits, c.AssetID)
			}
		}
		switch len(hits) {
		case 0:
			continue
		case 1:
			return hits[0], t.why
		default:
			return "", t.why + " for several assets; created a new one"
		}
	}
	return "", ""
}

// applyFacts copies what the agent observes onto the asset. The agent owns
// OS, firmware and network facts; hardware identity (make, model, serial)
// is only filled in when empty, since purchase records are curated and
// often better than what firmware reports.
func applyFacts(a *inventory.Asset, f agentapi.Facts, pending int) {
	if f.OSName != "" {
		a.OSName = f.OSName
	}
	if f.OSVersion != "" {
		a.OSVersion = f.OSVersion
	}
	if f.Firmware != "" {
		a.FirmwareVersion = f.Firmware
	}
	if f.IPAddresses != nil {
		a.IPAddresses = slices.Clone(f.IPAddresses)
	}
	if f.MACAddress != "" {
		a.MACAddress = strings.ToLower(strings.ReplaceAll(f.MACAddress, "-", ":"))
	}
	if a.Make == "" {
		a.Make = f.Make
	}
	if a.Model == "" {
		a.Model = f.Model
	}
	if a.Serial == "" {
		a.Serial = usableSerial(f.Serial)
	}
	if a.Hostname == "" {
		a.Hostname = f.Hostname
	}
	a.PendingUpdates = pending
}

// observed is the audit view of what an agent reports about its asset:
// asset fields it owns plus host state that lives on the agent. Uptime is
// left out: it changes every check-in and would make every heartbeat a
// change.
func observed(a inventory.Asset, f *agentapi.Facts) map[string]any {
	m := map[string]any{"os_name": a.OSName, "os_version": a.OSVersion, "firmware_version": a.FirmwareVersion,
		"ip_addresses": strings.Join(a.IPAddresses, ","), "mac_address": a.MACAddress, "make": a.Make,
		"model": a.Model, "serial": a.Serial, "hostname": a.Hostname, "pending_updates": a.PendingUpdates}
	if f != nil {
		m["kernel"], m["arch"], m["time_zone"] = f.Kernel, f.Arch, f.TimeZone
		m["reboot_required"], m["agent_version"], m["agent_hostname"] = f.RebootRequired, f.AgentVersion, f.Hostname
	}
	return m
}

// diff returns the entries of before and after that differ.
func diff(before, after map[string]any) (b, a map[string]any) {
	b, a = map[string]any{}, map[string]any{}
	for k, v := range after {
		if before[k] != v {
			b[k], a[k] = before[k], v
		}
	}
	return b, a
}

// factsHash fingerprints the facts and pending updates that are stored, so
// an unchanged heartbeat is recognised without reading them back.
func factsHash(f agentapi.Facts, pending []agentapi.PendingUpdate) string {
	f.UptimeSeconds = 0
	b, _ := json.Marshal(struct {
		F agentapi.Facts
		P []agentapi.PendingUpdate
	}{f, pending})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// toSoftware maps the agent's packages to the inventory's software list in
// the canonical order, so the stored list is stable across check-ins.
func toSoftware(pkgs []agentapi.Package) []inventory.Software {
	sorted := slices.Clone(pkgs)
	slices.SortFunc(sorted, func(a, b agentapi.Package) int {
		return strings.Compare(a.Ecosystem+"\x00"+a.Name+"\x00"+a.Arch, b.Ecosystem+"\x00"+b.Name+"\x00"+b.Arch)
	})
	out := make([]inventory.Software, len(sorted))
	for i, p := range sorted {
		out[i] = inventory.Software{Name: p.Name, Version: p.Version, Arch: p.Arch, Ecosystem: p.Ecosystem, PURL: p.PURL,
			SourceName: p.SourceName, SourceVersion: p.SourceVersion}
	}
	return out
}

// InventoryDelta counts how an asset's software changed, for the audit
// entry (which records counts, not the list).
type InventoryDelta struct {
	Hash     string `json:"hash"`
	Count    int    `json:"count"`
	Added    int    `json:"added,omitempty"`
	Removed  int    `json:"removed,omitempty"`
	Upgraded int    `json:"changed,omitempty"`
}

func inventoryDelta(old, cur []inventory.Software, hash string) InventoryDelta {
	key := func(s inventory.Software) string { return s.Ecosystem + "\x00" + s.Name + "\x00" + s.Arch }
	before := map[string][]string{}
	for _, s := range old {
		before[key(s)] = append(before[key(s)], s.Version)
	}
	d := InventoryDelta{Hash: hash, Count: len(cur)}
	seen := map[string]bool{}
	for _, s := range cur {
		k := key(s)
		vs, ok := before[k]
		switch {
		case !ok:
			d.Added++
		case !seen[k] && !slices.Contains(vs, s.Version):
			d.Upgraded++
		}
		seen[k] = true
	}
	for k := range before {
		if !seen[k] {
			d.Removed++
		}
	}
	return d
}

func ptr(t time.Time) *time.Time { return &t }
