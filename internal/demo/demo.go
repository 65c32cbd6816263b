// Package demo seeds a realistic small clinic with a laboratory, so a new
// user sees Patchward working on the first run: EHR and LIS servers, a
// domain controller, a VPN gateway, workstations, chemistry and hematology
// analyzers with their instrument PCs, a PACS and an imaging modality,
// infusion pumps, a video surveillance server, an intranet VM, switches,
// and a few devices nobody bought on purpose. It also carries the real
// advisories those devices are affected by (Feeds) and the risk acceptance
// a clinic records for pumps it may not patch itself (AcceptPumpRisk).
package demo

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/inventory"
)

// Inventory is what seeding needs from the inventory service.
type Inventory interface {
	Assets(ctx context.Context, f inventory.Filter) (inventory.Page, error)
	CreateSite(ctx context.Context, actor audit.Actor, s inventory.Site) (inventory.Site, error)
	CreateGroup(ctx context.Context, actor audit.Actor, g inventory.Group) (inventory.Group, error)
	CreateAsset(ctx context.Context, actor audit.Actor, a inventory.Asset) (inventory.Asset, error)
}

//go:embed feeds/*.json
var feedFiles embed.FS

// Feed is a real advisory document the demo imports as a local feed.
type Feed struct {
	Name string // feed name
	Kind string // feed kind: osv, nvd, kev, epss, csaf
	File string // file name
	Data []byte
}

// feeds lists the demo's advisory files in import order; feeds/README.md
// says where each comes from.
var feeds = []struct{ name, kind, file string }{
	// BD Alaris infusion system: the demo's pumps.
	{"demo-cisa-icsma", "csaf", "icsma-23-194-01.json"},
	// Philips Vue PACS: the clinic's PACS.
	{"demo-cisa-icsma-philips", "csaf", "icsma-21-187-01.json"},
	// Johnson Controls exacq Enterprise Manager (Log4Shell): the video
	// surveillance server.
	{"demo-cisa-icsa-exacq", "csaf", "icsa-21-357-02.json"},
	// Debian's DSA-5970-1 for sope: the intranet server's SOGo.
	{"demo-debian-dsa", "osv", "dsa-5970-1.json"},
	// CISA's KEV catalog, trimmed to the entries for the CVEs above.
	{"demo-cisa-kev", "kev", "known_exploited_vulnerabilities.json"},
}

// Feeds returns the demo's advisory files, all real: CISA's advisories for
// the devices the demo clinic runs, Debian's advisory for one of its
// servers' packages and the CISA KEV entries for the CVEs they name. No
// real EPSS scores for these CVEs were available, so there is no EPSS feed.
func Feeds() ([]Feed, error) {
	out := make([]Feed, 0, len(feeds))
	for _, f := range feeds {
		b, err := feedFiles.ReadFile("feeds/" + f.file)
		if err != nil {
			return nil, fmt.Errorf("demo feeds: %w", err)
		}
		out = append(out, Feed{Name: f.name, Kind: f.kind, File: f.file, Data: b})
	}
	return out, nil
}

// PumpGroup is the demo group of infusion pumps that the demo's risk
// acceptance covers.
const PumpGroup = "BD Alaris infusion pumps"

// Seed adds the demo clinic unless the inventory already has assets, and
// reports how many assets it created.
func Seed(ctx context.Context, inv Inventory, now time.Time) (int, error) {
	p, err := inv.Assets(ctx, inventory.Filter{Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("seed demo: %w", err)
	}
	if p.Total > 0 {
		return 0, nil
	}
	actor := audit.Actor{Kind: audit.ActorSystem, Name: "demo-seed"}
	sites := map[string]string{}
	for _, s := range []inventory.Site{
		{Name: "Riverside Clinic", Address: "120 River Rd, Springfield, IL", TimeZone: "America/Chicago"},
		{Name: "Riverside Laboratory", Address: "120 River Rd (Lab wing), Springfield, IL", TimeZone: "America/Chicago"},
	} {
		got, err := inv.CreateSite(ctx, actor, s)
		if err != nil {
			return 0, fmt.Errorf("seed demo site: %w", err)
		}
		sites[s.Name] = got.ID
	}
	groups := map[string]string{}
	for _, g := range []inventory.Group{
		// The policy's pilot ring selects the "pilot" tag; its members carry it.
		{Name: "Pilot ring", Description: "IT-owned machines that take patches first (tagged pilot)"},
		{Name: "Tier-1 lab systems", Description: "LIS, middleware and analyzers: vendor-approved cadence"},
		{Name: "Clinical workstations", Description: "Front desk, exam room and nurse station PCs"},
		{Name: "Infrastructure", Description: "Directory, VPN, switching"},
		{Name: PumpGroup, Description: "FDA-cleared infusion pumps on the medical device VLAN; BD service installs their software"},
	} {
		got, err := inv.CreateGroup(ctx, actor, g)
		if err != nil {
			return 0, fmt.Errorf("seed demo group: %w", err)
		}
		groups[g.Name] = got.ID
	}
	n := 0
	for _, a := range assets(now, sites, groups) {
		if _, err := inv.CreateAsset(ctx, actor, a); err != nil {
			return n, fmt.Errorf("seed demo asset %q: %w", a.Name, err)
		}
		n++
	}
	return n, nil
}

func date(y int, m time.Month, d int) *time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return &t
}

func deb(name, version string) inventory.Software {
	return inventory.Software{Name: name, Version: version, Ecosystem: "Debian:12",
		PURL: "pkg:deb/debian/" + name + "@" + version + "?distro=debian-12"}
}

// debSrc is deb for a binary package built from a differently named source
// package: Debian's advisories name source packages.
func debSrc(name, version, source string) inventory.Software {
	sw := deb(name, version)
	sw.SourceName, sw.SourceVersion = source, version
	return sw
}

func assets(now time.Time, site, group map[string]string) []inventory.Asset {
	clinic, lab := site["Riverside Clinic"], site["Riverside Laboratory"]
	seen := func(daysAgo int) *time.Time {
		t := now.Add(-time.Duration(daysAgo) * 24 * time.Hour).UTC().Truncate(time.Second)
		return &t
	}
	linux := []inventory.Software{
		deb("openssl", "3.0.15-1~deb12u1"), deb("openssh-server", "1:9.2p1-2+deb12u3"),
		deb("libc6", "2.36-9+deb12u9"), deb("sudo", "1.9.13p3-1+deb12u1"), deb("curl", "7.88.1-10+deb12u8"),
		deb("postgresql-15", "15.10-0+deb12u1"), deb("nginx", "1.22.1-9"), deb("linux-image-amd64", "6.1.119-1"),
	}
	return []inventory.Asset{
		{Name: "EHR-APP-01", Type: inventory.TypeServer, Hostname: "ehr-app-01.riverside.local", Make: "Dell", Model: "PowerEdge R650",
			Serial: "7XK2QH3", AssetTag: "RC-0001", OSName: "Windows Server", OSVersion: "2019 (1809) build 17763.6532",
			CPE: "cpe:2.3:o:microsoft:windows_server_2019:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.10.20"}, MACAddress: "b0:26:28:4a:11:01",
			SiteID: clinic, Location: "Server closet B1", NetworkZone: "Server VLAN 10", Exposure: inventory.ExposureInternal,
			BusinessOwner: "Practice Manager", TechnicalOwner: "IT Admin", HandlesPHI: true, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyHigh, MaintenanceWindow: "sun-0200-0500", PatchSource: "WSUS",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2029, 1, 9), LastPatchedAt: seen(21), PendingUpdates: 4,
			PurchaseRef: "PO-2023-0141", PurchasedAt: date(2023, 3, 14), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"ehr", "tier1"}, Groups: []string{group["Infrastructure"]}},
		{Name: "LIS-01", Type: inventory.TypeServer, Hostname: "lis-01.riverside.local", Make: "HPE", Model: "ProLiant DL360 Gen10",
			Serial: "CZJ0410ABC", AssetTag: "RL-0002", OSName: "Debian GNU/Linux", OSVersion: "12.11",
			CPE: "cpe:2.3:o:debian:debian_linux:12:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.20.5"}, MACAddress: "94:40:c9:3e:20:05",
			SiteID: lab, Location: "Lab server rack", NetworkZone: "Clinical VLAN 20", Exposure: inventory.ExposureClinicalVLAN,
			BusinessOwner: "Laboratory Director", TechnicalOwner: "IT Admin", HandlesPHI: true, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyHigh, MaintenanceWindow: "sat-2200-sun-0200", PatchSource: "Debian security repository",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2028, 6, 30), LastPatchedAt: seen(35), PendingUpdates: 12,
			PurchaseRef: "PO-2022-0388", PurchasedAt: date(2022, 9, 2), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"lis", "tier1"}, Groups: []string{group["Tier-1 lab systems"]}, Software: linux},
		{Name: "DC01", Type: inventory.TypeServer, Hostname: "dc01.riverside.local", Make: "VMware", Model: "Virtual Platform",
			Serial: "VMware-42 1a 7c", OSName: "Windows Server", OSVersion: "2022 (21H2) build 20348.2849",
			CPE: "cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.10.2"},
			SiteID: clinic, Location: "Hypervisor HV-01", NetworkZone: "Server VLAN 10", Exposure: inventory.ExposureInternal,
			BusinessOwner: "Practice Manager", TechnicalOwner: "IT Admin", DataClass: inventory.ClassConfidential, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyMedium, MaintenanceWindow: "sun-0200-0500", PatchSource: "WSUS",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2031, 10, 14), LastPatchedAt: seen(14), PendingUpdates: 2,
			LastSeenAt: seen(0), Source: inventory.SourceDemo, Tags: []string{"domain-controller"}, Groups: []string{group["Infrastructure"]}},
		{Name: "VPN-GW", Type: inventory.TypeNetworkDevice, Hostname: "vpn.riverside-clinic.example", Make: "Fortinet", Model: "FortiGate 60F",
			Serial: "FGT60FTK21001234", AssetTag: "RC-0010", OSName: "FortiOS", FirmwareVersion: "7.2.8",
			CPE: "cpe:2.3:o:fortinet:fortios:7.2.8:*:*:*:*:*:*:*", IPAddresses: []string{"203.0.113.10", "10.10.0.1"}, MACAddress: "70:4c:a5:12:34:56",
			SiteID: clinic, Location: "Server closet B1", NetworkZone: "Edge", Exposure: inventory.ExposureInternet,
			BusinessOwner: "Practice Manager", TechnicalOwner: "IT Admin", DataClass: inventory.ClassConfidential, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyMedium, MaintenanceWindow: "wed-2200-2300", PatchSource: "Fortinet support portal",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2027, 9, 30), LastPatchedAt: seen(60), PendingUpdates: 1,
			PurchaseRef: "PO-2021-0077", PurchasedAt: date(2021, 5, 20), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"vpn", "internet-facing"}, Groups: []string{group["Infrastructure"]}},
		{Name: "Front desk PC 1", Type: inventory.TypeEndpoint, Hostname: "fd-pc-01", Make: "Dell", Model: "OptiPlex 7010",
			Serial: "5HQ8VX3", AssetTag: "RC-0101", OSName: "Windows 11 Pro", OSVersion: "25H2 build 26200.7171",
			IPAddresses: []string{"10.10.30.21"}, MACAddress: "d0:46:0c:aa:01:21", SiteID: clinic, Location: "Reception",
			NetworkZone: "User VLAN 30", Exposure: inventory.ExposureInternal, BusinessOwner: "Front Office Lead", TechnicalOwner: "IT Admin",
			HandlesPHI: true, Criticality: inventory.LevelMedium, SafetyImpact: inventory.SafetyLow, MaintenanceWindow: "daily-1900-2100",
			PatchSource: "Windows Update for Business", SupportStatus: inventory.SupportSupported, EndOfSupport: date(2027, 10, 12),
			LastPatchedAt: seen(9), PendingUpdates: 3, PurchaseRef: "PO-2024-0012", PurchasedAt: date(2024, 1, 22), LastSeenAt: seen(0),
			Source: inventory.SourceDemo, Tags: []string{"pilot"}, Groups: []string{group["Clinical workstations"], group["Pilot ring"]}},
		{Name: "Exam room 2 PC", Type: inventory.TypeEndpoint, Hostname: "exam-02", Make: "HP", Model: "EliteDesk 800 G6 Mini",
			Serial: "MXL1234XYZ", AssetTag: "RC-0112", OSName: "Windows 10 Enterprise", OSVersion: "22H2 build 19045.5247",
			IPAddresses: []string{"10.10.30.42"}, MACAddress: "98:fa:9b:10:30:42", SiteID: clinic, Location: "Exam room 2",
			NetworkZone: "User VLAN 30", Exposure: inventory.ExposureInternal, BusinessOwner: "Nursing Supervisor", TechnicalOwner: "IT Admin",
			HandlesPHI: true, Criticality: inventory.LevelMedium, SafetyImpact: inventory.SafetyMedium, MaintenanceWindow: "daily-1900-2100",
			PatchSource: "Windows Update for Business", SupportStatus: inventory.SupportLimited, EndOfSupport: date(2025, 10, 14),
			Notes: "Windows 10 past end of support; enrolled in ESU until replacement.", LastPatchedAt: seen(30), PendingUpdates: 6,
			PurchaseRef: "PO-2020-0230", PurchasedAt: date(2020, 11, 3), LastSeenAt: seen(1), Source: inventory.SourceDemo,
			Tags: []string{"esu"}, Groups: []string{group["Clinical workstations"]}},
		{Name: "Physician laptop (Dr. Okafor)", Type: inventory.TypeMobile, Hostname: "lt-okafor", Make: "Lenovo", Model: "ThinkPad T14 Gen 4",
			Serial: "PF4ABC12", AssetTag: "RC-0150", OSName: "Windows 11 Enterprise", OSVersion: "24H2 build 26100.2605",
			SiteID: clinic, NetworkZone: "Remote via VPN", Exposure: inventory.ExposureVPN, BusinessOwner: "Dr. A. Okafor", TechnicalOwner: "IT Admin",
			HandlesPHI: true, Criticality: inventory.LevelHigh, SafetyImpact: inventory.SafetyLow, PatchSource: "Intune",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2027, 10, 12), LastPatchedAt: seen(5), PurchaseRef: "PO-2024-0180",
			PurchasedAt: date(2024, 8, 1), LastSeenAt: seen(2), Source: inventory.SourceDemo, Tags: []string{"pilot"}, Groups: []string{group["Pilot ring"]}},
		{Name: "cobas c 311 chemistry analyzer", Type: inventory.TypeAnalyzer, Make: "Roche", Model: "cobas c 311",
			Serial: "C311-1502-0471", AssetTag: "RL-0201", FirmwareVersion: "03-02", IPAddresses: []string{"10.10.20.31"},
			SiteID: lab, Location: "Chemistry bench", NetworkZone: "Clinical VLAN 20", Exposure: inventory.ExposureClinicalVLAN,
			BusinessOwner: "Laboratory Director", TechnicalOwner: "Roche field service", HandlesPHI: true, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true, Restriction: inventory.RestrictionVendorOnly,
			RestrictionNotes:  "FDA-cleared configuration: software changes only by Roche service under change control.",
			MaintenanceWindow: "lab-quarterly", PatchSource: "Roche service", SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2028, 12, 31), PurchaseRef: "PO-2019-0902", PurchasedAt: date(2019, 6, 10), LastSeenAt: seen(0),
			Source: inventory.SourceDemo, Tags: []string{"analyzer", "chemistry"}, Groups: []string{group["Tier-1 lab systems"]}},
		{Name: "cobas c 311 instrument PC", Type: inventory.TypeInstrumentController, Hostname: "c311-ipc", Make: "Roche", Model: "c 311 control unit",
			Serial: "C311-PC-88123", OSName: "Windows 10 IoT Enterprise LTSC", OSVersion: "2019 build 17763",
			CPE: "cpe:2.3:o:microsoft:windows_10_1809:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.20.32"}, SiteID: lab,
			Location: "Chemistry bench", NetworkZone: "Clinical VLAN 20", Exposure: inventory.ExposureClinicalVLAN,
			BusinessOwner: "Laboratory Director", TechnicalOwner: "IT Admin", HandlesPHI: true, Criticality: inventory.LevelHigh,
			SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true, Restriction: inventory.RestrictionOwnerOS,
			RestrictionNotes:  "Roche validates monthly Windows cumulative updates; owner installs after validation bulletin.",
			MaintenanceWindow: "sun-0600-0700", PatchSource: "Roche-validated Windows updates", SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2029, 1, 9), LastPatchedAt: seen(45), PendingUpdates: 2, LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"instrument-pc"}, Groups: []string{group["Tier-1 lab systems"]}},
		{Name: "XN-1000 hematology analyzer", Type: inventory.TypeAnalyzer, Make: "Sysmex", Model: "XN-1000",
			Serial: "XN1K-21345", AssetTag: "RL-0210", FirmwareVersion: "00-25", IPAddresses: []string{"10.10.20.41"}, SiteID: lab,
			Location: "Hematology bench", NetworkZone: "Clinical VLAN 20", Exposure: inventory.ExposureClinicalVLAN,
			BusinessOwner: "Laboratory Director", TechnicalOwner: "Sysmex field service", HandlesPHI: true, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true, Restriction: inventory.RestrictionVendorOnly,
			MaintenanceWindow: "lab-quarterly", PatchSource: "Sysmex service", SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2027, 3, 31), PurchaseRef: "PO-2020-0415", PurchasedAt: date(2020, 4, 27), LastSeenAt: seen(0),
			Source: inventory.SourceDemo, Tags: []string{"analyzer", "hematology"}, Groups: []string{group["Tier-1 lab systems"]}},
		{Name: "XN-1000 IPU", Type: inventory.TypeInstrumentController, Hostname: "xn-ipu", Make: "Sysmex", Model: "XN IPU",
			Serial: "IPU-778812", OSName: "Windows 7 Embedded", OSVersion: "SP1", IPAddresses: []string{"10.10.20.42"}, SiteID: lab,
			Location: "Hematology bench", NetworkZone: "Isolated analyzer segment", Exposure: inventory.ExposureIsolated,
			BusinessOwner: "Laboratory Director", TechnicalOwner: "Sysmex field service", HandlesPHI: true, Criticality: inventory.LevelHigh,
			SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true, Restriction: inventory.RestrictionNoPatching,
			RestrictionNotes: "Vendor forbids OS patching; compensating controls: isolated segment, allowlisting.",
			PatchSource:      "none", SupportStatus: inventory.SupportEnded, EndOfSupport: date(2020, 1, 14), LastSeenAt: seen(0),
			Source: inventory.SourceDemo, Tags: []string{"instrument-pc", "legacy-os"}, Groups: []string{group["Tier-1 lab systems"]}},
		{Name: "PACS-01", Type: inventory.TypeClinicalSystem, Hostname: "pacs-01.riverside.local", Make: "Philips", Model: "Vue PACS",
			Serial: "VUE-US-0099182", AssetTag: "RC-0030", FirmwareVersion: "12.2", OSName: "Windows Server", OSVersion: "2016 (1607) build 14393.7515",
			CPE: "cpe:2.3:o:microsoft:windows_server_2016:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.40.10"}, SiteID: clinic,
			Location: "Server closet B1", NetworkZone: "Imaging VLAN 40", Exposure: inventory.ExposureClinicalVLAN,
			BusinessOwner: "Radiology Lead", TechnicalOwner: "Philips remote service", HandlesPHI: true, Criticality: inventory.LevelHigh,
			SafetyImpact: inventory.SafetyMedium, RegulatedDevice: true, Restriction: inventory.RestrictionVendorApprove,
			RestrictionNotes:  "Philips validates Windows updates and installs Vue PACS releases remotely under the service contract.",
			MaintenanceWindow: "sun-0200-0500", PatchSource: "Philips remote service", SupportStatus: inventory.SupportLimited,
			EndOfSupport: date(2027, 6, 30), Notes: "Vue PACS 12.2; upgrade quoted by Philips, awaiting budget.", LastPatchedAt: seen(75),
			PendingUpdates: 5, PurchaseRef: "PO-2019-0300", PurchasedAt: date(2019, 7, 18), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"pacs", "dicom"}},
		{Name: "CCTV-01", Type: inventory.TypeServer, Hostname: "cctv-01.riverside.local", Make: "Exacq Technologies, Johnson Controls Inc.",
			Model: "Exacq Enterprise Manager", FirmwareVersion: "21.06", OSName: "Windows Server", OSVersion: "2019 (1809) build 17763.2366",
			CPE: "cpe:2.3:o:microsoft:windows_server_2019:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.60.5"}, SiteID: clinic,
			Location: "Server closet B1", NetworkZone: "Security VLAN 60", Exposure: inventory.ExposureInternal,
			BusinessOwner: "Facilities Manager", TechnicalOwner: "Security integrator", HandlesPHI: true, Criticality: inventory.LevelMedium,
			SafetyImpact: inventory.SafetyLow, PatchSource: "Integrator visit", SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2028, 12, 31), Notes: "Manages the clinic's and the lab's camera recorders; installed by the security integrator, never updated since.",
			LastPatchedAt: seen(400), PurchaseRef: "PO-2021-0512", PurchasedAt: date(2021, 8, 16), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"video-surveillance"}},
		{Name: "INTRANET-01", Type: inventory.TypeVM, Hostname: "intranet-01.riverside.local", Make: "VMware", Model: "Virtual Platform",
			Serial: "VMware-42 1a 9e", OSName: "Debian GNU/Linux", OSVersion: "12.11", CPE: "cpe:2.3:o:debian:debian_linux:12:*:*:*:*:*:*:*",
			IPAddresses: []string{"10.10.10.30"}, SiteID: clinic, Location: "Hypervisor HV-01", NetworkZone: "Server VLAN 10",
			Exposure: inventory.ExposureInternal, BusinessOwner: "Practice Manager", TechnicalOwner: "IT Admin", DataClass: inventory.ClassInternal,
			Criticality: inventory.LevelLow, SafetyImpact: inventory.SafetyNone, MaintenanceWindow: "sun-0200-0500",
			PatchSource: "Debian security repository", SupportStatus: inventory.SupportSupported, EndOfSupport: date(2028, 6, 30),
			Notes: "Staff calendars and shift rota (SOGo); no patient data.", LastPatchedAt: seen(180), PendingUpdates: 9,
			LastSeenAt: seen(0), Source: inventory.SourceDemo, Tags: []string{"intranet", "pilot"}, Groups: []string{group["Pilot ring"]},
			Software: append(linux[:5:5], deb("sogo", "5.8.0-2+deb12u3"), debSrc("libsope1", "5.8.0-1", "sope"))},
		{Name: "DR X-ray room", Type: inventory.TypeImaging, Make: "Carestream", Model: "DRX-Evolution Plus",
			Serial: "DRX-EVP-4410", AssetTag: "RC-0031", OSName: "Windows 10 IoT Enterprise", OSVersion: "2016 LTSB",
			IPAddresses: []string{"10.10.40.20"}, SiteID: clinic, Location: "X-ray room", NetworkZone: "Imaging VLAN 40",
			Exposure: inventory.ExposureClinicalVLAN, BusinessOwner: "Radiology Lead", TechnicalOwner: "Carestream service",
			HandlesPHI: true, Criticality: inventory.LevelHigh, SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true,
			Restriction: inventory.RestrictionVendorApprove, PatchSource: "Carestream validated updates",
			SupportStatus: inventory.SupportSupported, EndOfSupport: date(2027, 12, 31), LastPatchedAt: seen(120), PendingUpdates: 8,
			PurchaseRef: "PO-2018-0501", PurchasedAt: date(2018, 2, 5), LastSeenAt: seen(0), Source: inventory.SourceDemo,
			Tags: []string{"dicom", "modality"}},
		{Name: "Infusion pump 01", Type: inventory.TypeIoMT, Make: "Becton, Dickinson and Company (BD)",
			Model: "BD Alaris Point-of-Care Unit (PCU) Model 8015", Serial: "8015-1100234",
			AssetTag: "RC-0401", FirmwareVersion: "12.1.2", IPAddresses: []string{"10.10.50.11"}, SiteID: clinic, Location: "Infusion suite",
			NetworkZone: "Medical device VLAN 50", Exposure: inventory.ExposureClinicalVLAN, BusinessOwner: "Nursing Supervisor",
			TechnicalOwner: "Biomedical engineering", HandlesPHI: false, DataClass: inventory.ClassConfidential, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyDirect, RegulatedDevice: true, Restriction: inventory.RestrictionVendorOnly,
			PatchSource: "BD service", SupportStatus: inventory.SupportSupported, EndOfSupport: date(2030, 6, 30),
			PurchaseRef: "PO-2022-0610", PurchasedAt: date(2022, 10, 11), LastSeenAt: seen(0), Source: inventory.SourceDemo, Tags: []string{"infusion"},
			Groups: []string{group[PumpGroup]}},
		{Name: "Infusion pump 02", Type: inventory.TypeIoMT, Make: "Becton, Dickinson and Company (BD)",
			Model: "BD Alaris Point-of-Care Unit (PCU) Model 8015", Serial: "8015-1100235",
			AssetTag: "RC-0402", FirmwareVersion: "9.19.2", IPAddresses: []string{"10.10.50.12"}, SiteID: clinic, Location: "Infusion suite",
			NetworkZone: "Medical device VLAN 50", Exposure: inventory.ExposureClinicalVLAN, BusinessOwner: "Nursing Supervisor",
			TechnicalOwner: "Biomedical engineering", DataClass: inventory.ClassConfidential, Criticality: inventory.LevelCritical,
			SafetyImpact: inventory.SafetyDirect, RegulatedDevice: true, Restriction: inventory.RestrictionVendorOnly,
			PatchSource: "BD service", SupportStatus: inventory.SupportLimited, EndOfSupport: date(2026, 12, 31),
			Notes: "Older firmware; BD upgrade scheduled.", PurchaseRef: "PO-2017-0220", PurchasedAt: date(2017, 3, 9), LastSeenAt: seen(3),
			Source: inventory.SourceDemo, Tags: []string{"infusion"}, Groups: []string{group[PumpGroup]}},
		{Name: "Core switch", Type: inventory.TypeNetworkDevice, Hostname: "sw-core-01", Make: "Cisco", Model: "Catalyst 2960-X 48",
			Serial: "FOC2033X0AB", AssetTag: "RC-0011", OSName: "IOS", FirmwareVersion: "15.2(7)E10",
			CPE: "cpe:2.3:o:cisco:ios:15.2\\(7\\)e10:*:*:*:*:*:*:*", IPAddresses: []string{"10.10.0.2"}, MACAddress: "00:1b:54:aa:bb:01",
			SiteID: clinic, Location: "Server closet B1", NetworkZone: "Management VLAN 99", Exposure: inventory.ExposureInternal,
			TechnicalOwner: "IT Admin", DataClass: inventory.ClassInternal, Criticality: inventory.LevelHigh, SafetyImpact: inventory.SafetyMedium,
			MaintenanceWindow: "wed-2200-2300", PatchSource: "Cisco software download", SupportStatus: inventory.SupportLimited,
			EndOfSupport: date(2027, 10, 31), LastPatchedAt: seen(200), PurchaseRef: "PO-2019-0100", PurchasedAt: date(2019, 1, 15),
			LastSeenAt: seen(0), Source: inventory.SourceDemo, Groups: []string{group["Infrastructure"]}},
		{Name: "Lab switch", Type: inventory.TypeNetworkDevice, Hostname: "sw-lab-01", Make: "Cisco", Model: "Catalyst 9200L-24T",
			Serial: "JAE24410XYZ", AssetTag: "RL-0012", OSName: "IOS XE", FirmwareVersion: "17.9.5",
			IPAddresses: []string{"10.10.0.3"}, SiteID: lab, Location: "Lab network cabinet", NetworkZone: "Management VLAN 99",
			Exposure: inventory.ExposureInternal, TechnicalOwner: "IT Admin", Criticality: inventory.LevelHigh, SafetyImpact: inventory.SafetyMedium,
			MaintenanceWindow: "wed-2200-2300", PatchSource: "Cisco software download", SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2030, 10, 31), LastPatchedAt: seen(90), PurchaseRef: "PO-2022-0390", PurchasedAt: date(2022, 9, 2),
			LastSeenAt: seen(0), Source: inventory.SourceDemo, Groups: []string{group["Infrastructure"]}},
		{Name: "Replacement workstation (boxed)", Type: inventory.TypeEndpoint, Make: "Dell", Model: "OptiPlex 7020",
			Serial: "9JK2LM4", AssetTag: "RC-0120", SiteID: clinic, Location: "IT storage", BusinessOwner: "Practice Manager",
			TechnicalOwner: "IT Admin", Criticality: inventory.LevelLow, SupportStatus: inventory.SupportSupported,
			EndOfSupport: date(2030, 2, 1), PurchaseRef: "PO-2026-0044", PurchasedAt: date(2026, 9, 30), Source: inventory.SourceDemo,
			Notes: "Purchased, not yet deployed: appears under 'purchased, never seen'."},
		{Name: "Unknown device 10.10.30.77", Type: inventory.TypeUnknown, IPAddresses: []string{"10.10.30.77"}, MACAddress: "b8:27:eb:4f:22:10",
			SiteID: clinic, NetworkZone: "User VLAN 30", Exposure: inventory.ExposureInternal, Make: "Raspberry Pi Foundation",
			Notes: "Seen by discovery scan; MAC vendor Raspberry Pi. Nobody has claimed it.", LastSeenAt: seen(1),
			Source: inventory.SourceDiscovery, Tags: []string{"shadow-it"}},
		{Name: "Unknown device 10.10.20.199", Type: inventory.TypeUnknown, IPAddresses: []string{"10.10.20.199"}, MACAddress: "3c:22:fb:91:0a:c7",
			SiteID: lab, NetworkZone: "Clinical VLAN 20", Exposure: inventory.ExposureClinicalVLAN, Make: "Apple",
			Notes: "Seen on the clinical VLAN; possibly a personal device.", LastSeenAt: seen(2),
			Source: inventory.SourceDiscovery, Tags: []string{"shadow-it"}},
		{Name: "Unknown device 10.10.50.60", Type: inventory.TypeUnknown, IPAddresses: []string{"10.10.50.60"}, MACAddress: "00:09:fb:12:ab:cd",
			SiteID: clinic, NetworkZone: "Medical device VLAN 50", Exposure: inventory.ExposureClinicalVLAN, Make: "Philips Medical Systems",
			Notes: "Philips OUI on the medical device VLAN; perhaps a patient monitor on loan.", LastSeenAt: seen(0),
			Source: inventory.SourceDiscovery, Tags: []string{"shadow-it"}},
	}
}
