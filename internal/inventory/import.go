package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// ImportKind says what a CSV file describes, which decides what a row means
// for the asset it matches (seed: "reconcile it regularly with discovery
// tools and purchase records").
type ImportKind string

// Import kinds.
const (
	// ImportPurchase is a purchase ledger: each row proves the clinic bought
	// a device, so it sets purchase_ref/purchased_at.
	ImportPurchase ImportKind = "purchase"
	// ImportDiscovery is a network scan or discovery tool export: each row
	// proves a device was on the network, so it sets last_seen_at.
	ImportDiscovery ImportKind = "discovery"
	// ImportInventory is a spreadsheet of assets, such as an earlier export
	// edited in a spreadsheet program.
	ImportInventory ImportKind = "inventory"
)

// ImportKinds lists every valid import kind.
var ImportKinds = []ImportKind{ImportPurchase, ImportDiscovery, ImportInventory}

// Match keys: the identifiers a row is matched to an existing asset by.
const (
	MatchSerial   = "serial"
	MatchAssetTag = "asset_tag"
	MatchMAC      = "mac"
	MatchHostname = "hostname"
)

// DefaultMatch is the default match order: the most specific identifier
// first, because a serial number names one physical device while a hostname
// is reused when a PC is replaced.
var DefaultMatch = []string{MatchSerial, MatchAssetTag, MatchMAC, MatchHostname}

// Import limits. They keep one upload from holding the single SQLite writer
// (or a PostgreSQL transaction) for minutes, and bound memory per request.
const (
	MaxImportBytes   = 10 << 20
	MaxImportRows    = 50_000
	MaxImportColumns = 200
	// MaxReportErrors caps the errors listed in a report; ErrorCount still
	// counts them all.
	MaxReportErrors = 1000
)

// Ignore is the mapping value that tells an import to skip a column.
const Ignore = "-"

// ImportOptions controls one CSV import.
type ImportOptions struct {
	Kind ImportKind
	// Mapping maps a CSV header (matched exactly, then ignoring case, spaces
	// and punctuation) to a field name, or to Ignore. Headers it does not
	// name are mapped automatically; see ImportFields.
	Mapping map[string]string
	// DryRun computes the full report and writes nothing.
	DryRun bool
	// Match lists the identifiers rows are matched on, in order of
	// precedence; empty means DefaultMatch.
	Match []string
	// Name labels the import in the audit log, e.g. the uploaded file name.
	Name string
}

// Row actions in an import preview.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionUnchanged = "unchanged"
)

// ImportReport is what an import did, or in a dry run would do.
type ImportReport struct {
	// ID names the import in the audit log; empty unless it was written.
	ID     string     `json:"id,omitempty"`
	Kind   ImportKind `json:"kind"`
	DryRun bool       `json:"dry_run"`
	// Delimiter is the field separator found in the header line.
	Delimiter string      `json:"delimiter,omitempty"`
	Columns   []ColumnMap `json:"columns,omitempty"`
	Rows      int         `json:"rows"`
	Created   int         `json:"created"`
	Updated   int         `json:"updated"`
	Unchanged int         `json:"unchanged"`
	// Errors lists at most MaxReportErrors problems, ordered by line;
	// ErrorCount counts every one. Any error means nothing was written.
	Errors     []RowError  `json:"errors"`
	ErrorCount int         `json:"error_count"`
	Preview    []RowResult `json:"preview"`
}

// ColumnMap records which field a CSV column was imported into.
type ColumnMap struct {
	Column string `json:"column"`
	// Field is the field name, or Ignore.
	Field string `json:"field"`
}

// RowError is one problem with the file. Row is the line number a
// spreadsheet shows (the header is line 1); Column is the CSV header, empty
// when the problem is with the row as a whole.
type RowError struct {
	Row     int    `json:"row"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

// RowResult is what one row does to the inventory.
type RowResult struct {
	Row    int    `json:"row"`
	Action string `json:"action"`
	// AssetID is empty for a create in a dry run.
	AssetID   string   `json:"asset_id,omitempty"`
	AssetName string   `json:"asset_name"`
	Changes   []Change `json:"changes,omitempty"`
}

// Change is one field's old and new value, in export form.
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// field is one column of the CSV form of an asset. One table drives
// import, export and previews so that they cannot drift apart.
type field struct {
	name string
	// aliases are extra header spellings, already normalised by headerKey.
	aliases []string
	// get renders the field as an export cell; previews compare these.
	get func(a *Asset, d *directory) string
	// set parses a non-empty cell into a. Nil marks a column exports carry
	// for information and imports ignore (timestamps, revision).
	set func(a *Asset, v string, d *directory) error
}

// ImportFields lists the field names a mapping may name, in export order.
func ImportFields() []string {
	var out []string
	for _, f := range fields {
		if f.set != nil || f.name == "id" {
			out = append(out, f.name)
		}
	}
	return out
}

var fields = []field{
	{name: "id", get: func(a *Asset, _ *directory) string { return a.ID }},
	strField("name", func(a *Asset) *string { return &a.Name }, "assetname", "devicename", "displayname", "itemname"),
	enumField("type", Types, typeSynonyms, func(a *Asset) *Type { return &a.Type }, "devicetype", "assettype", "equipmenttype"),
	hostField(),
	strField("make", func(a *Asset) *string { return &a.Make }, "manufacturer", "vendor", "brand", "mfr", "mfg", "oem"),
	strField("model", func(a *Asset) *string { return &a.Model }, "modelname", "modelnumber", "modelno"),
	idField("serial", func(a *Asset) *string { return &a.Serial }, "serialnumber", "serialno", "serialnum", "sn", "servicetag"),
	idField("asset_tag", func(a *Asset) *string { return &a.AssetTag }, "assetid", "assetnumber", "assetno", "inventorynumber", "propertytag"),
	strField("os_name", func(a *Asset) *string { return &a.OSName }, "os", "operatingsystem"),
	strField("os_version", func(a *Asset) *string { return &a.OSVersion }, "operatingsystemversion"),
	strField("firmware_version", func(a *Asset) *string { return &a.FirmwareVersion }, "firmware", "fwversion"),
	strField("cpe", func(a *Asset) *string { return &a.CPE }),
	{name: "ip_addresses", aliases: []string{"ip", "ips", "ipaddress", "ipaddr", "ipv4", "ipv4address"},
		get: func(a *Asset, _ *directory) string { return strings.Join(a.IPAddresses, ";") },
		set: func(a *Asset, v string, _ *directory) error {
			ips, err := parseIPs(v)
			a.IPAddresses = ips
			return err
		}},
	{name: "mac_address", aliases: []string{"mac", "macaddr", "hardwareaddress"},
		get: func(a *Asset, _ *directory) string { return a.MACAddress },
		set: func(a *Asset, v string, _ *directory) error {
			if placeholder(v) {
				return nil
			}
			m, err := parseMAC(v)
			a.MACAddress = m
			return err
		}},
	{name: "site", aliases: []string{"siteid", "sitename", "facility", "clinic"},
		get: func(a *Asset, d *directory) string { return d.siteName(a.SiteID) },
		set: func(a *Asset, v string, d *directory) error {
			id, err := d.site(v)
			a.SiteID = id
			return err
		}},
	strField("location", func(a *Asset) *string { return &a.Location }, "room"),
	strField("network_zone", func(a *Asset) *string { return &a.NetworkZone }, "zone", "vlan", "networksegment"),
	enumField("exposure", Exposures, exposureSynonyms, func(a *Asset) *Exposure { return &a.Exposure }),
	strField("business_owner", func(a *Asset) *string { return &a.BusinessOwner }, "owner", "assetowner"),
	strField("technical_owner", func(a *Asset) *string { return &a.TechnicalOwner }, "itowner", "techowner", "technicalcontact"),
	enumField("data_classification", Classifications, nil, func(a *Asset) *Classification { return &a.DataClass }, "dataclass", "classification"),
	boolField("handles_phi", func(a *Asset) *bool { return &a.HandlesPHI }, "phi", "containsphi", "storesphi"),
	enumField("criticality", Levels, nil, func(a *Asset) *Level { return &a.Criticality }, "businesscriticality"),
	enumField("patient_safety_impact", SafetyImpacts, safetySynonyms, func(a *Asset) *SafetyImpact { return &a.SafetyImpact }, "safetyimpact", "patientsafety"),
	boolField("regulated_device", func(a *Asset) *bool { return &a.RegulatedDevice }, "regulated", "medicaldevice", "fdaregulated"),
	enumField("vendor_patch_restriction", Restrictions, nil, func(a *Asset) *Restriction { return &a.Restriction }, "patchrestriction", "restriction"),
	strField("vendor_patch_notes", func(a *Asset) *string { return &a.RestrictionNotes }, "restrictionnotes", "patchnotes"),
	strField("maintenance_window", func(a *Asset) *string { return &a.MaintenanceWindow }),
	strField("patch_source", func(a *Asset) *string { return &a.PatchSource }),
	enumField("support_status", Supports, supportSynonyms, func(a *Asset) *Support { return &a.SupportStatus }, "support"),
	timeField("end_of_support", func(a *Asset) **time.Time { return &a.EndOfSupport }, "eos", "eol", "endoflife", "eosdate", "supportend", "supportenddate"),
	timeField("last_patched_at", func(a *Asset) **time.Time { return &a.LastPatchedAt }, "lastpatched", "lastpatchdate"),
	{name: "pending_updates",
		get: func(a *Asset, _ *directory) string { return strconv.Itoa(a.PendingUpdates) },
		set: func(a *Asset, v string, _ *directory) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a whole number of updates", v)
			}
			a.PendingUpdates = n
			return nil
		}},
	strField("purchase_ref", func(a *Asset) *string { return &a.PurchaseRef }, "po", "ponumber", "ponum", "purchaseorder", "purchaseordernumber", "purchasereference"),
	timeField("purchased_at", func(a *Asset) **time.Time { return &a.PurchasedAt }, "purchasedate", "purchased", "dateofpurchase", "podate"),
	timeField("last_seen_at", func(a *Asset) **time.Time { return &a.LastSeenAt }, "lastseen", "lastseendate", "lastcontact"),
	enumField("source", Sources, nil, func(a *Asset) *Source { return &a.Source }),
	{name: "tags", aliases: []string{"labels"},
		get: func(a *Asset, _ *directory) string { return strings.Join(a.Tags, ";") },
		set: func(a *Asset, v string, _ *directory) error {
			a.Tags = nil
			for _, t := range splitList(v) {
				// Spreadsheet users write "Lab Equipment"; tags are
				// slug-like, so spaces become hyphens rather than errors.
				a.Tags = append(a.Tags, strings.Join(strings.Fields(t), "-"))
			}
			return nil
		}},
	{name: "groups", aliases: []string{"group", "assetgroups"},
		get: func(a *Asset, d *directory) string {
			names := make([]string, len(a.Groups))
			for i, g := range a.Groups {
				names[i] = d.groupName(g)
			}
			return strings.Join(names, ";")
		},
		set: func(a *Asset, v string, d *directory) error {
			a.Groups = nil
			var bad []string
			for _, n := range splitList(v) {
				id, ok := d.groups[strings.ToLower(n)]
				if !ok {
					bad = append(bad, strconv.Quote(n))
					continue
				}
				a.Groups = append(a.Groups, id)
			}
			if len(bad) > 0 {
				return fmt.Errorf("no group named %s; create it first", strings.Join(bad, ", "))
			}
			return nil
		}},
	strField("notes", func(a *Asset) *string { return &a.Notes }, "comments", "comment", "remarks"),
	{name: "software_count", get: func(a *Asset, _ *directory) string { return strconv.Itoa(len(a.Software)) }},
	{name: "created_at", get: func(a *Asset, _ *directory) string { return formatTime(&a.CreatedAt) }},
	{name: "updated_at", get: func(a *Asset, _ *directory) string { return formatTime(&a.UpdatedAt) }},
	{name: "revision", get: func(a *Asset, _ *directory) string { return strconv.Itoa(a.Revision) }},
}

// fieldIndex maps every normalised header spelling to its field.
var fieldIndex = func() map[string]int {
	m := map[string]int{}
	for i, f := range fields {
		m[headerKey(f.name)] = i
		for _, a := range f.aliases {
			m[a] = i
		}
	}
	return m
}()

func fieldNamed(name string) int {
	for i, f := range fields {
		if f.name == name {
			return i
		}
	}
	panic("inventory: no import field " + name)
}

var (
	fieldID, fieldSerial, fieldAssetTag = fieldNamed("id"), fieldNamed("serial"), fieldNamed("asset_tag")
	fieldMAC, fieldHostname             = fieldNamed("mac_address"), fieldNamed("hostname")
	fieldHandlesPHI, fieldDataClass     = fieldNamed("handles_phi"), fieldNamed("data_classification")
	fieldPurchaseRef, fieldPurchasedAt  = fieldNamed("purchase_ref"), fieldNamed("purchased_at")
	fieldLastSeen, fieldSource          = fieldNamed("last_seen_at"), fieldNamed("source")
)

// matchField is the field each match key reads.
var matchField = map[string]int{MatchSerial: fieldSerial, MatchAssetTag: fieldAssetTag, MatchMAC: fieldMAC, MatchHostname: fieldHostname}

func strField(name string, p func(*Asset) *string, aliases ...string) field {
	return field{name: name, aliases: aliases,
		get: func(a *Asset, _ *directory) string { return *p(a) },
		set: func(a *Asset, v string, _ *directory) error { *p(a) = v; return nil }}
}

// idField is a string identifier where ledgers write "N/A" or "TBD" for
// "none": those must not become a serial that matches every other "N/A".
func idField(name string, p func(*Asset) *string, aliases ...string) field {
	f := strField(name, p, aliases...)
	f.set = func(a *Asset, v string, _ *directory) error {
		if !placeholder(v) {
			*p(a) = v
		}
		return nil
	}
	return f
}

func hostField() field {
	f := idField("hostname", func(a *Asset) *string { return &a.Hostname }, "host", "fqdn", "dnsname", "computername")
	set := f.set
	f.set = func(a *Asset, v string, d *directory) error { return set(a, strings.TrimSuffix(v, "."), d) }
	return f
}

func enumField[T ~string](name string, valid []T, syn map[string]T, p func(*Asset) *T, aliases ...string) field {
	return field{name: name, aliases: aliases,
		get: func(a *Asset, _ *directory) string { return string(*p(a)) },
		set: func(a *Asset, v string, _ *directory) error {
			x, err := parseEnum(v, valid, syn)
			*p(a) = x
			return err
		}}
}

func boolField(name string, p func(*Asset) *bool, aliases ...string) field {
	return field{name: name, aliases: aliases,
		get: func(a *Asset, _ *directory) string { return strconv.FormatBool(*p(a)) },
		set: func(a *Asset, v string, _ *directory) error {
			b, err := parseBool(v)
			*p(a) = b
			return err
		}}
}

func timeField(name string, p func(*Asset) **time.Time, aliases ...string) field {
	return field{name: name, aliases: aliases,
		get: func(a *Asset, _ *directory) string { return formatTime(*p(a)) },
		set: func(a *Asset, v string, _ *directory) error {
			t, err := parseTime(v)
			if err != nil {
				return err
			}
			*p(a) = &t
			return nil
		}}
}

// Synonyms seen in real ledgers and tool exports, keyed by normEnum form.
var (
	typeSynonyms = map[string]Type{
		"workstation": TypeEndpoint, "desktop": TypeEndpoint, "laptop": TypeEndpoint, "notebook": TypeEndpoint,
		"pc": TypeEndpoint, "computer": TypeEndpoint, "thin_client": TypeEndpoint, "all_in_one": TypeEndpoint,
		"virtual_machine": TypeVM, "switch": TypeNetworkDevice, "router": TypeNetworkDevice,
		"firewall": TypeNetworkDevice, "access_point": TypeNetworkDevice, "wireless_access_point": TypeNetworkDevice,
		"network": TypeNetworkDevice, "analyser": TypeAnalyzer, "lab_analyzer": TypeAnalyzer,
		"medical_device": TypeIoMT, "infusion_pump": TypeIoMT, "modality": TypeImaging,
		"phone": TypeMobile, "smartphone": TypeMobile, "tablet": TypeMobile,
	}
	exposureSynonyms = map[string]Exposure{"internet": ExposureInternet, "public": ExposureInternet}
	safetySynonyms   = map[string]SafetyImpact{"direct": SafetyDirect}
	supportSynonyms  = map[string]Support{"eol": SupportEnded, "end_of_life": SupportEnded, "eos": SupportEnded, "unsupported": SupportEnded}
)

// headerKey folds a header for matching: "Serial Number", "serial_number"
// and "SERIAL-NUMBER" all become "serialnumber".
func headerKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normEnum folds an enum cell: "Internet Facing" and "internet-facing"
// become "internet_facing".
func normEnum(s string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if sep && b.Len() > 0 {
				b.WriteByte('_')
			}
			sep = false
			b.WriteRune(r)
		} else {
			sep = true
		}
	}
	return b.String()
}

func parseEnum[T ~string](v string, valid []T, syn map[string]T) (T, error) {
	k := normEnum(v)
	if slices.Contains(valid, T(k)) {
		return T(k), nil
	}
	if x, ok := syn[k]; ok {
		return x, nil
	}
	names := make([]string, len(valid))
	for i, x := range valid {
		names[i] = string(x)
	}
	return "", fmt.Errorf("%q is not valid; use one of: %s", v, strings.Join(names, ", "))
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "y", "true", "t", "1":
		return true, nil
	case "no", "n", "false", "f", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no (use yes, no, true, false, 1 or 0)", v)
}

// timeLayouts are the date forms accepted: ISO 8601 and the US m/d/yyyy that
// US spreadsheets write. d/m/yyyy is deliberately not guessed at: 03/04/2024
// would be ambiguous.
var timeLayouts = []string{
	"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05",
	"2006-01-02 15:04", "2006-01-02 15:04:05Z07:00", "1/2/2006", "1/2/2006 15:04", "1/2/2006 15:04:05",
	"1/2/2006 3:04 PM", "1/2/2006 3:04:05 PM",
}

// parseTime reads a date or timestamp; without a zone it is UTC. Times are
// truncated to microseconds, what both databases store, so a preview shows
// exactly what will be saved.
func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			if t.Year() < 1900 || t.Year() > 2199 {
				return time.Time{}, fmt.Errorf("%q is not a plausible date", v)
			}
			return t.UTC().Truncate(time.Microsecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date; use YYYY-MM-DD (or M/D/YYYY)", v)
}

func formatTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// splitList splits a list cell on ';', or on ',' when there is no ';'.
func splitList(v string) []string {
	sep := ","
	if strings.Contains(v, ";") {
		sep = ";"
	}
	var out []string
	for _, s := range strings.Split(v, sep) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// maxIPs bounds the addresses one cell may list; Validate checks each
// address but not how many there are.
const maxIPs = 64

// parseIPs reads addresses separated by ';', ',' or spaces. Discovery tools
// often write a prefix (10.0.0.5/24); the address is kept.
func parseIPs(v string) ([]string, error) {
	var (
		out []string
		bad []string
	)
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' || unicode.IsSpace(r) }) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			p, perr := netip.ParsePrefix(s)
			if perr != nil {
				bad = append(bad, strconv.Quote(s))
				continue
			}
			a = p.Addr()
		}
		if len(out) == maxIPs {
			return out, fmt.Errorf("more than %d addresses", maxIPs)
		}
		if ip := a.String(); !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%s: not an IP address", strings.Join(bad, ", "))
	}
	return out, nil
}

// parseMAC accepts the forms switches and scanners print (aa:bb:.., aa-bb-..,
// aabb.ccdd.eeff, aabbccddeeff) and returns the canonical aa:bb:cc:dd:ee:ff.
func parseMAC(v string) (string, error) {
	s := strings.TrimSpace(v)
	if len(s) == 12 {
		if _, err := strconv.ParseUint(s, 16, 64); err == nil {
			s = s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12]
		}
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a MAC address (aa:bb:cc:dd:ee:ff)", v)
	}
	return hw.String(), nil
}

// placeholder reports ledger filler that means "no value".
func placeholder(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "n/a", "na", "none", "null", "-", "--", "tbd", "unknown", "?":
		return true
	}
	return false
}

// directory resolves site and group names, in both directions.
type directory struct {
	siteNames, groupNames map[string]string // id → name
	sites, groups         map[string]string // lower-case name or id → id
	siteList              []string
}

func newDirectory(sites []Site, groups []Group) *directory {
	d := &directory{siteNames: map[string]string{}, groupNames: map[string]string{},
		sites: map[string]string{}, groups: map[string]string{}}
	for _, s := range sites {
		d.siteNames[s.ID] = s.Name
		d.sites[strings.ToLower(s.Name)] = s.ID
		d.siteList = append(d.siteList, strconv.Quote(s.Name))
	}
	for _, g := range groups {
		d.groupNames[g.ID] = g.Name
		d.groups[strings.ToLower(g.Name)] = g.ID
	}
	// IDs resolve too, but never shadow a name.
	for _, s := range sites {
		if _, ok := d.sites[s.ID]; !ok {
			d.sites[s.ID] = s.ID
		}
	}
	for _, g := range groups {
		if _, ok := d.groups[g.ID]; !ok {
			d.groups[g.ID] = g.ID
		}
	}
	return d
}

func (d *directory) siteName(id string) string {
	if n, ok := d.siteNames[id]; ok {
		return n
	}
	return id
}

func (d *directory) groupName(id string) string {
	if n, ok := d.groupNames[id]; ok {
		return n
	}
	return id
}

func (d *directory) site(v string) (string, error) {
	if id, ok := d.sites[strings.ToLower(v)]; ok {
		return id, nil
	}
	if len(d.siteList) == 0 {
		return "", fmt.Errorf("no site named %q; no sites exist yet, create them first", v)
	}
	known := d.siteList
	if len(known) > 10 {
		known = append(known[:10:10], "…")
	}
	return "", fmt.Errorf("no site named %q (sites: %s)", v, strings.Join(known, ", "))
}

// ImportCSV imports a CSV file of purchase records, discovery results or
// assets. Every row creates an asset or updates the one it matches (by
// serial, then asset tag, then MAC, then hostname, case-insensitively). All
// or nothing: if any row has a problem the report lists every problem and
// nothing is written; the error is then Invalid (or TooLarge for limits).
// A dry run computes the same report from the same code and writes nothing.
// The report is returned whether or not err is nil.
func (s *Service) ImportCSV(ctx context.Context, actor audit.Actor, r io.Reader, opt ImportOptions) (ImportReport, error) {
	rep := ImportReport{Kind: opt.Kind, DryRun: opt.DryRun, Errors: []RowError{}, Preview: []RowResult{}}
	if err := checkOptions(&opt); err != nil {
		return rep, err
	}
	tab, err := readCSV(r, &rep)
	if err != nil {
		return rep, err
	}
	cols, err := mapColumns(tab.header, tab.rows, opt, &rep)
	if err != nil {
		return rep, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	im := &importer{opt: opt, now: now, cols: cols, rep: &rep}
	if opt.DryRun {
		// Read outside a transaction: on SQLite a write transaction would
		// block every other writer for the length of a preview.
		if err := im.plan(ctx, s.store, tab); err != nil {
			return rep, err
		}
		return rep, im.rejected()
	}
	err = s.store.Transact(ctx, func(tx Tx) error {
		if err := im.plan(ctx, tx, tab); err != nil {
			return err
		}
		if err := im.rejected(); err != nil {
			return err
		}
		return im.apply(ctx, tx, actor)
	})
	if err != nil {
		rep.ID = ""
		return rep, fmt.Errorf("import %s CSV: %w", opt.Kind, err)
	}
	return rep, nil
}

func checkOptions(opt *ImportOptions) error {
	if !slices.Contains(ImportKinds, opt.Kind) {
		return errs.E(errs.Invalid, "import kind %q is not one of: purchase, discovery, inventory", opt.Kind)
	}
	if len(opt.Match) == 0 {
		opt.Match = DefaultMatch
	}
	var match []string
	for _, m := range opt.Match {
		k := strings.ToLower(strings.TrimSpace(m))
		if k == "mac_address" {
			k = MatchMAC
		}
		if _, ok := matchField[k]; !ok {
			return errs.E(errs.Invalid, "cannot match on %q; use serial, asset_tag, mac or hostname", m)
		}
		if !slices.Contains(match, k) {
			match = append(match, k)
		}
	}
	opt.Match = match
	opt.Name = cleanLabel(opt.Name)
	return nil
}

// cleanLabel makes an uploaded file name safe to store in the audit log: it
// comes from the client, and PostgreSQL rejects invalid UTF-8 and NUL.
func cleanLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return strings.TrimSpace(s)
}

type csvTable struct {
	header []string
	rows   []csvRow
}

type csvRow struct {
	line  int
	cells []string
}

// readCSV reads and checks the whole file. Malformed CSV stops it with the
// line number; a row with the wrong number of fields is recorded in rep
// and skipped so the user sees every such row at once.
func readCSV(r io.Reader, rep *ImportReport) (csvTable, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	// An HTTP handler that caps the body with http.MaxBytesReader hands us
	// its error; it means the same as our own limit.
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return csvTable{}, errs.E(errs.TooLarge, "file is larger than %d MiB; split it into smaller files", min(mbe.Limit, MaxImportBytes)>>20)
	}
	if err != nil {
		return csvTable{}, errs.Wrap(errs.Invalid, err, "could not read the uploaded file")
	}
	if len(data) > MaxImportBytes {
		return csvTable{}, errs.E(errs.TooLarge, "file is larger than %d MiB; split it into smaller files", MaxImportBytes>>20)
	}
	if err := checkText(data); err != nil {
		return csvTable{}, err
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	lineOffset := 0
	delim := sniffDelimiter(data)
	// Excel writes and honours a "sep=;" first line.
	if first, rest, _ := bytes.Cut(data, []byte("\n")); bytes.HasPrefix(first, []byte("sep=")) {
		if d := []rune(strings.TrimSpace(string(first[4:]))); len(d) == 1 && validDelim(d[0]) {
			delim, data, lineOffset = d[0], rest, 1
		}
	}
	rep.Delimiter = string(delim)
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = delim
	cr.LazyQuotes = false
	cr.FieldsPerRecord = 0 // the header sets the count; ragged rows are errors
	var tab csvTable
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			line := pe.StartLine + lineOffset
			rep.addError(RowError{Row: line, Message: fmt.Sprintf("has %d fields but the header has %d; check for an unquoted %q or a missing cell", len(rec), len(tab.header), delim)})
			rep.Rows++
			continue
		}
		if err != nil {
			if errors.As(err, &pe) {
				line := pe.Line + lineOffset
				rep.addError(RowError{Row: line, Message: fmt.Sprintf("malformed CSV at line %d, column %d: %v", line, pe.Column, pe.Err)})
				return tab, errs.E(errs.Invalid, "malformed CSV at line %d, column %d: %v; nothing was imported", line, pe.Column, pe.Err)
			}
			return tab, errs.Wrap(errs.Invalid, err, "could not read the CSV file")
		}
		line, _ := cr.FieldPos(0)
		line += lineOffset
		if tab.header == nil {
			if len(rec) > MaxImportColumns {
				return tab, errs.E(errs.TooLarge, "the header has %d columns; at most %d are allowed", len(rec), MaxImportColumns)
			}
			tab.header = rec
			for i := range tab.header {
				tab.header[i] = strings.TrimSpace(tab.header[i])
			}
			continue
		}
		if blank(rec) {
			continue // spreadsheets leave rows of empty cells at the end
		}
		rep.Rows++
		if rep.Rows > MaxImportRows {
			return tab, errs.E(errs.TooLarge, "file has more than %d rows; split it into smaller files", MaxImportRows)
		}
		tab.rows = append(tab.rows, csvRow{line: line, cells: rec})
	}
	if tab.header == nil {
		return tab, errs.E(errs.Invalid, "file is empty; the first line must be a header naming the columns")
	}
	return tab, nil
}

// checkText rejects files that are not UTF-8 text, with a message that
// says what to do: the usual culprit is a workbook or an "ANSI" CSV.
func checkText(data []byte) error {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return errs.E(errs.Invalid, "file is empty; the first line must be a header naming the columns")
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("\xd0\xcf\x11\xe0")):
		return errs.E(errs.Invalid, "file is a spreadsheet workbook, not CSV; save it as \"CSV UTF-8\" and upload that")
	case bytes.HasPrefix(data, []byte("\xff\xfe")), bytes.HasPrefix(data, []byte("\xfe\xff")):
		return errs.E(errs.Invalid, "file is UTF-16 text; save it as \"CSV UTF-8\" and upload that")
	case bytes.IndexByte(data, 0) >= 0:
		return errs.E(errs.Invalid, "file contains binary data (NUL bytes); it is not a CSV file")
	}
	if !utf8.Valid(data) {
		line := 1
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			if r == '\n' {
				line++
			}
			i += n
		}
		return errs.E(errs.Invalid, "line %d is not UTF-8 text; save the file as \"CSV UTF-8\" and upload that", line)
	}
	return nil
}

func validDelim(r rune) bool { return r == ',' || r == ';' || r == '\t' || r == '|' }

// sniffDelimiter picks comma, semicolon or tab by counting them, outside
// quotes, on the header line. European spreadsheets write semicolons.
func sniffDelimiter(data []byte) rune {
	var counts [256]int
	quoted := false
	for _, c := range data {
		if c == '"' {
			quoted = !quoted
		} else if !quoted && (c == '\n' || c == '\r') {
			break
		} else if !quoted {
			counts[c]++
		}
	}
	best := byte(',')
	for _, d := range []byte{';', '\t'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return rune(best)
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// column is one CSV column and the field it feeds (-1: ignored).
type column struct {
	header string
	field  int
}

// mapColumns maps each header to a field. Every unknown or ambiguous
// column is listed in one message, so the user fixes the mapping once.
func mapColumns(header []string, rows []csvRow, opt ImportOptions, rep *ImportReport) ([]column, error) {
	var problems []string
	bad := func(col, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		rep.addError(RowError{Row: 1, Column: col, Message: msg})
		problems = append(problems, msg)
	}
	// Resolve the explicit mapping's keys to columns.
	explicit := map[int]string{}
	keys := make([]string, 0, len(opt.Mapping))
	for k := range opt.Mapping {
		keys = append(keys, k)
	}
	slices.Sort(keys) // so problems are listed in the same order every time
	for _, key := range keys {
		val := opt.Mapping[key]
		idx := slices.Index(header, strings.TrimSpace(key))
		if idx < 0 {
			for i, h := range header {
				if headerKey(h) == headerKey(key) && headerKey(h) != "" {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			bad(key, "the mapping names column %q, which is not in the file", key)
			continue
		}
		if _, dup := explicit[idx]; dup {
			bad(key, "the mapping names column %q twice", header[idx])
			continue
		}
		explicit[idx] = val
	}
	cols := make([]column, len(header))
	seenHeader := map[string]int{}
	usedBy := map[int]string{}
	var unknown []string
	for i, h := range header {
		cols[i] = column{header: h, field: -1}
		if h == "" {
			if _, ok := explicit[i]; !ok && emptyColumn(rows, i) {
				continue // Excel's trailing empty columns
			}
			h = fmt.Sprintf("column %d", i+1)
			cols[i].header = h
		}
		if prev, dup := seenHeader[strings.ToLower(h)]; dup {
			bad(h, "column %q appears twice (columns %d and %d)", h, prev+1, i+1)
			continue
		}
		seenHeader[strings.ToLower(h)] = i
		f := -1
		if val, ok := explicit[i]; ok {
			if strings.TrimSpace(val) == Ignore {
				rep.Columns = append(rep.Columns, ColumnMap{Column: h, Field: Ignore})
				continue
			}
			idx, ok := fieldIndex[headerKey(val)]
			if !ok || (fields[idx].set == nil && idx != fieldID) {
				bad(h, "the mapping for column %q names %q, which is not a field (fields: %s)", h, val, strings.Join(ImportFields(), ", "))
				continue
			}
			f = idx
		} else if idx, ok := fieldIndex[headerKey(h)]; ok {
			f = idx
		} else {
			unknown = append(unknown, strconv.Quote(h))
			rep.addError(RowError{Row: 1, Column: h, Message: "unknown column"})
			continue
		}
		if other, dup := usedBy[f]; dup {
			bad(h, "columns %q and %q both map to %s; ignore one with %s=%s", other, h, fields[f].name, h, Ignore)
			continue
		}
		usedBy[f] = h
		cols[i].field = f
		rep.Columns = append(rep.Columns, ColumnMap{Column: h, Field: fields[f].name})
	}
	if len(unknown) > 0 {
		problems = append(problems, fmt.Sprintf("unknown columns %s: map each to a field (Header=field) or ignore it (Header=%s); fields: %s",
			strings.Join(unknown, ", "), Ignore, strings.Join(ImportFields(), ", ")))
	}
	if len(problems) == 0 {
		if len(usedBy) == 0 {
			problems = append(problems, "no column maps to an asset field")
		} else if opt.Kind == ImportPurchase && usedBy[fieldPurchaseRef] == "" && usedBy[fieldPurchasedAt] == "" {
			problems = append(problems, "a purchase import needs a PO number (purchase_ref) or purchase date (purchased_at) column")
		}
	}
	if len(problems) > 0 {
		return nil, errs.E(errs.Invalid, "%s; nothing was imported", strings.Join(problems, "; "))
	}
	return cols, nil
}

func emptyColumn(rows []csvRow, i int) bool {
	for _, r := range rows {
		if i < len(r.cells) && strings.TrimSpace(r.cells[i]) != "" {
			return false
		}
	}
	return true
}

// plural formats a count with a noun that takes an s: "1 problem",
// "3 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func (rep *ImportReport) addError(e RowError) {
	rep.ErrorCount++
	if len(rep.Errors) < MaxReportErrors {
		rep.Errors = append(rep.Errors, e)
	}
}

// importer plans an import against one consistent view of the inventory and
// then applies the plan.
type importer struct {
	opt  ImportOptions
	now  time.Time
	cols []column
	rep  *ImportReport

	dir    *directory
	assets []Asset
	byID   map[string]int
	// byKey indexes existing assets by match key and folded value, so 50,000
	// rows cost 50,000 map look-ups rather than 50,000 queries.
	byKey map[string]map[string][]int
	// inFile remembers which line used each identifier, so a device listed
	// twice is reported rather than imported twice.
	inFile  map[string]map[string]int
	claimed map[int]int // asset index → line that matched it
	ops     []importOp
}

type importOp struct {
	line    int
	old     int // index into assets, -1 for a create
	asset   Asset
	preview int // index into rep.Preview
}

func (im *importer) plan(ctx context.Context, r Reader, tab csvTable) error {
	assets, err := r.AllAssets(ctx)
	if err != nil {
		return err
	}
	sites, err := r.ListSites(ctx)
	if err != nil {
		return err
	}
	groups, err := r.ListGroups(ctx)
	if err != nil {
		return err
	}
	im.assets, im.dir = assets, newDirectory(sites, groups)
	im.byID = make(map[string]int, len(assets))
	im.byKey = map[string]map[string][]int{}
	im.inFile = map[string]map[string]int{}
	im.claimed = map[int]int{}
	// Sized up front: growing slices of 50,000 assets dominated the run time.
	im.ops = make([]importOp, 0, len(tab.rows))
	im.rep.Preview = make([]RowResult, 0, len(tab.rows))
	for _, k := range im.opt.Match {
		im.byKey[k] = map[string][]int{}
		im.inFile[k] = map[string]int{}
	}
	for i := range assets {
		im.byID[assets[i].ID] = i
		for _, k := range im.opt.Match {
			if v := keyOf(&assets[i], k); v != "" {
				im.byKey[k][v] = append(im.byKey[k][v], i)
			}
		}
	}
	for n, row := range tab.rows {
		if n%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		im.row(row)
	}
	slices.SortStableFunc(im.rep.Errors, func(a, b RowError) int { return a.Row - b.Row })
	return nil
}

func (im *importer) rejected() error {
	if im.rep.ErrorCount == 0 {
		return nil
	}
	return errs.E(errs.Invalid, "%s in the file (first on line %d); fix them and import again; nothing was imported",
		plural(im.rep.ErrorCount, "problem"), im.rep.Errors[0].Row)
}

// keyOf folds an asset's identifier for matching.
func keyOf(a *Asset, k string) string {
	switch k {
	case MatchSerial:
		return strings.ToLower(strings.TrimSpace(a.Serial))
	case MatchAssetTag:
		return strings.ToLower(strings.TrimSpace(a.AssetTag))
	case MatchMAC:
		return strings.ToLower(strings.TrimSpace(a.MACAddress))
	case MatchHostname:
		return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(a.Hostname), "."))
	}
	return ""
}

type cell struct {
	col   int
	field int
	value string
}

func (im *importer) row(row csvRow) {
	errCount := im.rep.ErrorCount
	fail := func(col, format string, args ...any) {
		im.rep.addError(RowError{Row: row.line, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	var cells []cell
	present := map[int]string{} // field → header
	for i, c := range im.cols {
		if c.field < 0 {
			continue
		}
		v := strings.TrimSpace(unescapeCell(strings.TrimSpace(row.cells[i])))
		if v == "" {
			continue // an empty cell leaves the field as it is
		}
		cells = append(cells, cell{col: i, field: c.field, value: v})
		present[c.field] = c.header
	}
	if len(cells) == 0 {
		fail("", "row has no values in the imported columns; delete it or fill it in")
		return
	}

	// Identifiers first, from a scratch asset, to find the match.
	var scratch Asset
	id := ""
	for _, c := range cells {
		switch c.field {
		case fieldSerial, fieldAssetTag, fieldMAC, fieldHostname:
			_ = fields[c.field].set(&scratch, c.value, im.dir) // errors are reported below
		case fieldID:
			id = c.value
		}
	}
	keys := map[string]string{}
	for _, k := range im.opt.Match {
		if v := keyOf(&scratch, k); v != "" {
			keys[k] = v
			if prev, dup := im.inFile[k][v]; dup {
				fail(present[matchField[k]], "%s %q is also on line %d; each device may appear once", k, fields[matchField[k]].get(&scratch, im.dir), prev)
			} else {
				im.inFile[k][v] = row.line
			}
		}
	}
	if len(keys) == 0 && im.opt.Kind != ImportInventory {
		fail("", "row has no %s, so Patchward cannot tell which device it is (now or on the next import)", strings.Join(im.opt.Match, ", "))
	}
	old := im.match(id, keys, row.line, fail)

	var a Asset
	if old >= 0 {
		a = cloneAsset(im.assets[old])
	}
	for _, c := range cells {
		f := fields[c.field]
		if f.set == nil {
			continue
		}
		if err := f.set(&a, c.value, im.dir); err != nil {
			fail(im.cols[c.col].header, "%s: %v", f.name, err)
		}
	}
	// Identifiers match case-insensitively; a ledger that writes a serial in
	// lower case must not "change" the one on record.
	if old >= 0 {
		o := &im.assets[old]
		for _, p := range [][2]*string{{&a.Serial, &o.Serial}, {&a.AssetTag, &o.AssetTag}, {&a.Hostname, &o.Hostname}} {
			if strings.EqualFold(*p[0], *p[1]) {
				*p[0] = *p[1]
			}
		}
	}
	// Keep handles_phi and data_classification consistent when only one is
	// given, instead of failing a rule the user never saw.
	if _, ok := present[fieldHandlesPHI]; ok {
		if _, ok := present[fieldDataClass]; ok {
			if !a.HandlesPHI && a.DataClass == ClassPHI {
				fail(present[fieldHandlesPHI], "handles_phi: says no, but data_classification is %q", ClassPHI)
			}
		} else if a.HandlesPHI {
			a.DataClass = ClassPHI
		} else if a.DataClass == ClassPHI {
			a.DataClass = ""
		}
	}
	_, sourceGiven := present[fieldSource]
	switch im.opt.Kind {
	case ImportPurchase:
		if present[fieldPurchaseRef] == "" && present[fieldPurchasedAt] == "" {
			fail("", "purchase row has neither a PO number (purchase_ref) nor a purchase date (purchased_at)")
		}
		if old < 0 && !sourceGiven {
			a.Source = SourcePurchase
		}
	case ImportDiscovery:
		if _, ok := present[fieldLastSeen]; !ok {
			seen := im.now
			a.LastSeenAt = &seen
		}
		if old < 0 && !sourceGiven {
			a.Source = SourceDiscovery
		}
	}
	if col, ok := present[fieldLastSeen]; ok && a.LastSeenAt != nil && a.LastSeenAt.After(im.now.Add(24*time.Hour)) {
		fail(col, "last_seen_at: %s is in the future", formatTime(a.LastSeenAt))
	}
	if a.Name == "" {
		a.Name = deriveName(&a)
	}
	a.Normalize()
	if err := a.Validate(); err != nil {
		var fm map[string]string
		var e *errs.Error
		if errors.As(err, &e) {
			fm = e.Fields
		}
		names := make([]string, 0, len(fm))
		for f := range fm {
			names = append(names, f)
		}
		slices.Sort(names)
		for _, f := range names {
			col := ""
			if i, ok := fieldIndex[headerKey(f)]; ok {
				col = present[i]
			}
			if f == "name" && col == "" {
				fm[f] = "is required: add a name, hostname, serial, asset tag or MAC column"
			}
			fail(col, "%s: %s", f, fm[f])
		}
	}
	if im.rep.ErrorCount > errCount {
		return
	}
	res := RowResult{Row: row.line, AssetName: a.Name}
	op := importOp{line: row.line, old: old, asset: a, preview: len(im.rep.Preview)}
	if old < 0 {
		res.Action = ActionCreate
		res.Changes = diff(&Asset{}, &a, im.dir)
		im.rep.Created++
	} else {
		res.AssetID = a.ID
		res.Changes = diff(&im.assets[old], &a, im.dir)
		if len(res.Changes) == 0 {
			res.Action = ActionUnchanged
			im.rep.Unchanged++
		} else {
			res.Action = ActionUpdate
			im.rep.Updated++
		}
	}
	im.rep.Preview = append(im.rep.Preview, res)
	if res.Action != ActionUnchanged {
		im.ops = append(im.ops, op)
	}
}

// match finds the existing asset a row describes, or -1. A lower-precedence
// key does not match an asset whose higher-precedence identifier differs
// from the row's: a hostname reused on replacement hardware with a new
// serial is a new device, not the old one.
func (im *importer) match(id string, keys map[string]string, line int, fail func(col, format string, args ...any)) int {
	found := -1
	if i, ok := im.byID[id]; ok && id != "" {
		found = i
	}
	for n, k := range im.opt.Match {
		if found >= 0 {
			break
		}
		v := keys[k]
		if v == "" {
			continue
		}
		var cands []int
		for _, i := range im.byKey[k][v] {
			conflict := false
			for _, hk := range im.opt.Match[:n] {
				if rv, av := keys[hk], keyOf(&im.assets[i], hk); rv != "" && av != "" && rv != av {
					conflict = true
				}
			}
			if !conflict {
				cands = append(cands, i)
			}
		}
		switch len(cands) {
		case 0:
			continue
		case 1:
			found = cands[0]
		default:
			names := make([]string, 0, 3)
			for _, i := range cands[:min(3, len(cands))] {
				names = append(names, strconv.Quote(im.assets[i].Name))
			}
			fail("", "%s %q matches %d existing assets (%s); make them unique before importing", k, v, len(cands), strings.Join(names, ", "))
			return -1
		}
	}
	if found >= 0 {
		if prev, dup := im.claimed[found]; dup {
			fail("", "matches the same asset %q as line %d; each device may appear once", im.assets[found].Name, prev)
			return -1
		}
		im.claimed[found] = line
	}
	return found
}

// deriveName names a new asset from what the row has: purchase ledgers and
// scans rarely carry a display name.
func deriveName(a *Asset) string {
	if a.Hostname != "" {
		return a.Hostname
	}
	name := strings.TrimSpace(a.Make + " " + a.Model)
	id := a.AssetTag
	if id == "" {
		id = a.Serial
	}
	switch {
	case name != "" && id != "":
		return name + " " + id
	case name != "":
		return name
	case id != "":
		return id
	case len(a.IPAddresses) > 0:
		return a.IPAddresses[0]
	}
	return a.MACAddress
}

func diff(old, new *Asset, d *directory) []Change {
	var out []Change
	for _, f := range fields {
		if f.set == nil {
			continue
		}
		if o, n := f.get(old, d), f.get(new, d); o != n {
			out = append(out, Change{Field: f.name, Old: o, New: n})
		}
	}
	return out
}

func cloneAsset(a Asset) Asset {
	a.IPAddresses = slices.Clone(a.IPAddresses)
	a.Tags = slices.Clone(a.Tags)
	a.Groups = slices.Clone(a.Groups)
	a.Software = slices.Clone(a.Software)
	for _, p := range []**time.Time{&a.EndOfSupport, &a.LastPatchedAt, &a.PurchasedAt, &a.LastSeenAt} {
		if *p != nil {
			t := **p
			*p = &t
		}
	}
	return a
}

// importSummary is the audit record of the import as a whole.
type importSummary struct {
	Kind      ImportKind  `json:"kind"`
	Name      string      `json:"name,omitempty"`
	Match     []string    `json:"match"`
	Columns   []ColumnMap `json:"columns"`
	Rows      int         `json:"rows"`
	Created   int         `json:"created"`
	Updated   int         `json:"updated"`
	Unchanged int         `json:"unchanged"`
}

func (im *importer) apply(ctx context.Context, tx Tx, actor audit.Actor) error {
	importID := NewID()
	label := fmt.Sprintf("%s CSV import %s", im.opt.Kind, importID)
	if im.opt.Name != "" {
		label += fmt.Sprintf(" (%s)", im.opt.Name)
	}
	for _, op := range im.ops {
		a := op.asset
		a.UpdatedAt = im.now
		reason := fmt.Sprintf("%s, line %d", label, op.line)
		if op.old < 0 {
			a.ID, a.CreatedAt, a.Revision = NewID(), im.now, 1
			if err := tx.InsertAsset(ctx, &a); err != nil {
				return fmt.Errorf("line %d: %w", op.line, err)
			}
			if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.import_create", ObjectType: "asset",
				ObjectID: a.ID, After: &a, Reason: reason}); err != nil {
				return err
			}
			im.rep.Preview[op.preview].AssetID = a.ID
			continue
		}
		old := &im.assets[op.old]
		a.Revision = old.Revision + 1
		if err := tx.UpdateAsset(ctx, &a); err != nil {
			return fmt.Errorf("line %d: %w", op.line, err)
		}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.import_update", ObjectType: "asset",
			ObjectID: a.ID, Before: old, After: &a, Reason: reason}); err != nil {
			return err
		}
	}
	im.rep.ID = importID
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "inventory.import", ObjectType: "import", ObjectID: importID,
		After: importSummary{Kind: im.opt.Kind, Name: im.opt.Name, Match: im.opt.Match, Columns: im.rep.Columns,
			Rows: im.rep.Rows, Created: im.rep.Created, Updated: im.rep.Updated, Unchanged: im.rep.Unchanged},
		Reason: label})
}
