// Package inventory holds the clinic's asset inventory: every device and
// system Patchward knows about, where it is, who owns it, how exposed and how
// critical it is, and what software it runs. It owns the validation rules and
// the narrow storage interface it needs; adapters implement that interface.
package inventory

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/errs"
)

// Type is what kind of asset a record describes (seed: "every endpoint,
// server, virtual machine, network device, and clinical system, including
// IoMT and imaging equipment").
type Type string

// Asset types.
const (
	TypeEndpoint             Type = "endpoint"
	TypeServer               Type = "server"
	TypeVM                   Type = "vm"
	TypeNetworkDevice        Type = "network_device"
	TypeClinicalSystem       Type = "clinical_system"
	TypeAnalyzer             Type = "analyzer"
	TypeInstrumentController Type = "instrument_controller"
	TypeImaging              Type = "imaging"
	TypeIoMT                 Type = "iomt"
	TypeMobile               Type = "mobile"
	TypeUnknown              Type = "unknown"
)

// Types lists every valid asset type in display order.
var Types = []Type{TypeEndpoint, TypeServer, TypeVM, TypeNetworkDevice, TypeClinicalSystem,
	TypeAnalyzer, TypeInstrumentController, TypeImaging, TypeIoMT, TypeMobile, TypeUnknown}

// Exposure says how reachable an asset is; it drives risk and SLA tiers.
type Exposure string

// Exposure levels, most exposed first.
const (
	ExposureInternet     Exposure = "internet_facing"
	ExposureVPN          Exposure = "vpn"
	ExposureInternal     Exposure = "internal"
	ExposureClinicalVLAN Exposure = "clinical_vlan"
	ExposureIsolated     Exposure = "isolated"
)

// Exposures lists every valid exposure.
var Exposures = []Exposure{ExposureInternet, ExposureVPN, ExposureInternal, ExposureClinicalVLAN, ExposureIsolated}

// Level is an ordinal rating used for business criticality.
type Level string

// Criticality levels.
const (
	LevelLow      Level = "low"
	LevelMedium   Level = "medium"
	LevelHigh     Level = "high"
	LevelCritical Level = "critical"
)

// Levels lists criticality levels from lowest to highest.
var Levels = []Level{LevelLow, LevelMedium, LevelHigh, LevelCritical}

// SafetyImpact is how directly an asset's failure can harm a patient.
type SafetyImpact string

// Patient-safety impact levels.
const (
	SafetyNone   SafetyImpact = "none"
	SafetyLow    SafetyImpact = "low"
	SafetyMedium SafetyImpact = "medium"
	SafetyHigh   SafetyImpact = "high"
	SafetyDirect SafetyImpact = "direct_patient_care"
)

// SafetyImpacts lists impact levels from lowest to highest.
var SafetyImpacts = []SafetyImpact{SafetyNone, SafetyLow, SafetyMedium, SafetyHigh, SafetyDirect}

// Classification is the most sensitive class of data an asset handles.
type Classification string

// Data classifications.
const (
	ClassPublic       Classification = "public"
	ClassInternal     Classification = "internal"
	ClassConfidential Classification = "confidential"
	ClassPHI          Classification = "phi"
)

// Classifications lists data classes from least to most sensitive.
var Classifications = []Classification{ClassPublic, ClassInternal, ClassConfidential, ClassPHI}

// Restriction is what a device maker allows the owner to do about patches on
// a regulated medical device.
type Restriction string

// Vendor patching restrictions.
const (
	RestrictionNone          Restriction = "none"
	RestrictionOwnerOS       Restriction = "owner_may_install_os_patches"
	RestrictionVendorOnly    Restriction = "vendor_mediated_only"
	RestrictionVendorApprove Restriction = "vendor_approval_required"
	RestrictionNoPatching    Restriction = "no_patching"
)

// Restrictions lists every valid restriction.
var Restrictions = []Restriction{RestrictionNone, RestrictionOwnerOS, RestrictionVendorApprove, RestrictionVendorOnly, RestrictionNoPatching}

// Support is whether the vendor still ships fixes for an asset.
type Support string

// Support statuses.
const (
	SupportSupported Support = "supported"
	SupportLimited   Support = "limited"
	SupportEnded     Support = "end_of_support"
	SupportUnknown   Support = "unknown"
)

// Supports lists every valid support status.
var Supports = []Support{SupportSupported, SupportLimited, SupportEnded, SupportUnknown}

// Source records how Patchward learned of an asset.
type Source string

// Asset sources.
const (
	SourceManual    Source = "manual"
	SourcePurchase  Source = "purchase"
	SourceDiscovery Source = "discovery"
	SourceAgent     Source = "agent"
	SourceDemo      Source = "demo"
)

// Sources lists every valid source.
var Sources = []Source{SourceManual, SourcePurchase, SourceDiscovery, SourceAgent, SourceDemo}

// Asset is one device or system in the inventory.
type Asset struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Type     Type   `json:"type"`
	Hostname string `json:"hostname,omitempty"`
	Make     string `json:"make,omitempty"`
	Model    string `json:"model,omitempty"`
	Serial   string `json:"serial,omitempty"`
	AssetTag string `json:"asset_tag,omitempty"`

	OSName          string `json:"os_name,omitempty"`
	OSVersion       string `json:"os_version,omitempty"`
	FirmwareVersion string `json:"firmware_version,omitempty"`
	// CPE identifies the OS or firmware for matching devices that report no
	// package list (appliances, analyzers).
	CPE string `json:"cpe,omitempty"`

	IPAddresses []string `json:"ip_addresses,omitempty"`
	MACAddress  string   `json:"mac_address,omitempty"`

	SiteID      string   `json:"site_id,omitempty"`
	Location    string   `json:"location,omitempty"`
	NetworkZone string   `json:"network_zone,omitempty"`
	Exposure    Exposure `json:"exposure"`

	BusinessOwner  string `json:"business_owner,omitempty"`
	TechnicalOwner string `json:"technical_owner,omitempty"`

	DataClass    Classification `json:"data_classification"`
	HandlesPHI   bool           `json:"handles_phi"`
	Criticality  Level          `json:"criticality"`
	SafetyImpact SafetyImpact   `json:"patient_safety_impact"`

	RegulatedDevice  bool        `json:"regulated_device"`
	Restriction      Restriction `json:"vendor_patch_restriction"`
	RestrictionNotes string      `json:"vendor_patch_notes,omitempty"`

	MaintenanceWindow string `json:"maintenance_window,omitempty"`
	PatchSource       string `json:"patch_source,omitempty"`

	SupportStatus  Support    `json:"support_status"`
	EndOfSupport   *time.Time `json:"end_of_support,omitempty"`
	LastPatchedAt  *time.Time `json:"last_patched_at,omitempty"`
	PendingUpdates int        `json:"pending_updates"`

	// PurchaseRef is set when a purchase record covers this asset; LastSeenAt
	// when an agent or discovery import saw it on the network. Reconciliation
	// compares the two.
	PurchaseRef string     `json:"purchase_ref,omitempty"`
	PurchasedAt *time.Time `json:"purchased_at,omitempty"`
	LastSeenAt  *time.Time `json:"last_seen_at,omitempty"`

	Source Source   `json:"source"`
	Tags   []string `json:"tags,omitempty"`
	Groups []string `json:"groups,omitempty"` // group IDs
	Notes  string   `json:"notes,omitempty"`

	Software []Software `json:"software,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Revision increments on every update; clients send it back to detect
	// lost updates.
	Revision int `json:"revision"`
}

// Software is one installed package or application on an asset.
type Software struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Arch      string `json:"arch,omitempty"`
	Ecosystem string `json:"ecosystem,omitempty"`
	PURL      string `json:"purl,omitempty"`
	// SourceName and SourceVersion name the source package a Debian,
	// Ubuntu or Alpine binary was built from: their advisories name source
	// packages, so matching needs them.
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
}

// Site is a physical location: a clinic, a lab, a data centre.
type Site struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Address   string    `json:"address,omitempty"`
	TimeZone  string    `json:"time_zone"`
	CreatedAt time.Time `json:"created_at"`
}

// Group is a named set of assets used for reporting, rings and exceptions.
type Group struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

const (
	maxShort    = 200
	maxLong     = 4000
	maxTags     = 50
	maxSoftware = 50000
)

var (
	tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,62}$`)
	macRE = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)
)

// Normalize trims and canonicalises fields before validation so that equal
// inputs compare equal (tags lower-cased and sorted, MAC lower-cased).
func (a *Asset) Normalize() {
	for _, p := range []*string{&a.Name, &a.Hostname, &a.Make, &a.Model, &a.Serial, &a.AssetTag,
		&a.OSName, &a.OSVersion, &a.FirmwareVersion, &a.CPE, &a.SiteID, &a.Location, &a.NetworkZone,
		&a.BusinessOwner, &a.TechnicalOwner, &a.RestrictionNotes, &a.MaintenanceWindow,
		&a.PatchSource, &a.PurchaseRef, &a.Notes} {
		*p = strings.TrimSpace(*p)
	}
	a.MACAddress = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(a.MACAddress), "-", ":"))
	if a.Exposure == "" {
		a.Exposure = ExposureInternal
	}
	if a.DataClass == "" {
		a.DataClass = ClassInternal
		if a.HandlesPHI {
			a.DataClass = ClassPHI
		}
	}
	if a.DataClass == ClassPHI {
		a.HandlesPHI = true
	}
	if a.Criticality == "" {
		a.Criticality = LevelMedium
	}
	if a.SafetyImpact == "" {
		a.SafetyImpact = SafetyNone
	}
	if a.Restriction == "" {
		a.Restriction = RestrictionNone
	}
	if a.SupportStatus == "" {
		a.SupportStatus = SupportUnknown
	}
	if a.Source == "" {
		a.Source = SourceManual
	}
	if a.Type == "" {
		a.Type = TypeUnknown
	}
	tags := make([]string, 0, len(a.Tags))
	for _, t := range a.Tags {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	a.Tags = slices.Compact(tags)
	groups := slices.Clone(a.Groups)
	slices.Sort(groups)
	a.Groups = slices.Compact(groups)
	for i := range a.Software {
		s := &a.Software[i]
		s.Name, s.Version, s.Ecosystem, s.PURL = strings.TrimSpace(s.Name), strings.TrimSpace(s.Version), strings.TrimSpace(s.Ecosystem), strings.TrimSpace(s.PURL)
		s.Arch, s.SourceName, s.SourceVersion = strings.TrimSpace(s.Arch), strings.TrimSpace(s.SourceName), strings.TrimSpace(s.SourceVersion)
	}
}

// Validate reports every problem with the asset at once, with a message per
// field that a clinic admin can act on.
func (a *Asset) Validate() error {
	var v errs.Validation
	if a.Name == "" {
		v.Add("name", "is required")
	}
	short := map[string]string{"name": a.Name, "hostname": a.Hostname, "make": a.Make, "model": a.Model,
		"serial": a.Serial, "asset_tag": a.AssetTag, "os_name": a.OSName, "os_version": a.OSVersion,
		"firmware_version": a.FirmwareVersion, "cpe": a.CPE, "location": a.Location, "network_zone": a.NetworkZone,
		"business_owner": a.BusinessOwner, "technical_owner": a.TechnicalOwner,
		"maintenance_window": a.MaintenanceWindow, "patch_source": a.PatchSource, "purchase_ref": a.PurchaseRef}
	for _, f := range sortedKeys(short) {
		if len(short[f]) > maxShort {
			v.Add(f, "must be at most %d characters", maxShort)
		}
	}
	if len(a.Notes) > maxLong {
		v.Add("notes", "must be at most %d characters", maxLong)
	}
	if len(a.RestrictionNotes) > maxLong {
		v.Add("vendor_patch_notes", "must be at most %d characters", maxLong)
	}
	checkEnum(&v, "type", a.Type, Types)
	checkEnum(&v, "exposure", a.Exposure, Exposures)
	checkEnum(&v, "criticality", a.Criticality, Levels)
	checkEnum(&v, "patient_safety_impact", a.SafetyImpact, SafetyImpacts)
	checkEnum(&v, "data_classification", a.DataClass, Classifications)
	checkEnum(&v, "vendor_patch_restriction", a.Restriction, Restrictions)
	checkEnum(&v, "support_status", a.SupportStatus, Supports)
	checkEnum(&v, "source", a.Source, Sources)
	if a.HandlesPHI && a.DataClass != ClassPHI {
		v.Add("data_classification", "must be %q when the asset handles PHI", ClassPHI)
	}
	if !a.RegulatedDevice && a.Restriction != RestrictionNone {
		v.Add("vendor_patch_restriction", "only applies to regulated medical devices; set regulated_device or use %q", RestrictionNone)
	}
	if a.CPE != "" && !strings.HasPrefix(a.CPE, "cpe:2.3:") && !strings.HasPrefix(a.CPE, "cpe:/") {
		v.Add("cpe", "must be a CPE 2.3 formatted string (cpe:2.3:...)")
	}
	for _, ip := range a.IPAddresses {
		if _, err := netip.ParseAddr(ip); err != nil {
			v.Add("ip_addresses", "%q is not an IP address", ip)
		}
	}
	if a.MACAddress != "" && !macRE.MatchString(a.MACAddress) {
		v.Add("mac_address", "%q is not a MAC address (aa:bb:cc:dd:ee:ff)", a.MACAddress)
	}
	if a.PendingUpdates < 0 {
		v.Add("pending_updates", "must not be negative")
	}
	if a.SupportStatus == SupportEnded && a.EndOfSupport == nil {
		v.Add("end_of_support", "is required when support_status is %q", SupportEnded)
	}
	if len(a.Tags) > maxTags {
		v.Add("tags", "at most %d tags", maxTags)
	}
	for _, t := range a.Tags {
		if !tagRE.MatchString(t) {
			v.Add("tags", "%q must be lower-case letters, digits, '.', '_', ':' or '-' (max 63)", t)
		}
	}
	if len(a.Software) > maxSoftware {
		v.Add("software", "at most %d entries", maxSoftware)
	}
	for i, s := range a.Software {
		if s.Name == "" || s.Version == "" {
			v.Add("software", "entry %d needs a name and a version", i+1)
			continue
		}
		if len(s.Name) > maxShort || len(s.Version) > maxShort || len(s.Ecosystem) > maxShort || len(s.PURL) > 2*maxShort ||
			len(s.Arch) > maxShort || len(s.SourceName) > maxShort || len(s.SourceVersion) > maxShort {
			v.Add("software", "entry %d has a field longer than allowed", i+1)
			continue
		}
		if s.PURL != "" {
			if _, err := packageurl.FromString(s.PURL); err != nil {
				v.Add("software", "entry %d: %q is not a package URL", i+1, s.PURL)
			}
		}
	}
	return v.Err("invalid asset")
}

// Validate checks a site.
func (s *Site) Validate() error {
	var v errs.Validation
	s.Name = strings.TrimSpace(s.Name)
	if s.Name == "" {
		v.Add("name", "is required")
	} else if len(s.Name) > maxShort {
		v.Add("name", "must be at most %d characters", maxShort)
	}
	if len(s.Address) > maxLong {
		v.Add("address", "must be at most %d characters", maxLong)
	}
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil {
		v.Add("time_zone", "%q is not an IANA time zone (e.g. America/Chicago)", s.TimeZone)
	}
	return v.Err("invalid site")
}

// Validate checks a group.
func (g *Group) Validate() error {
	var v errs.Validation
	g.Name = strings.TrimSpace(g.Name)
	if g.Name == "" {
		v.Add("name", "is required")
	} else if len(g.Name) > maxShort {
		v.Add("name", "must be at most %d characters", maxShort)
	}
	if len(g.Description) > maxLong {
		v.Add("description", "must be at most %d characters", maxLong)
	}
	return v.Err("invalid group")
}

func checkEnum[T ~string](v *errs.Validation, field string, got T, valid []T) {
	if !slices.Contains(valid, got) {
		names := make([]string, len(valid))
		for i, x := range valid {
			names[i] = string(x)
		}
		v.Add(field, "%q is not one of: %s", string(got), strings.Join(names, ", "))
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
