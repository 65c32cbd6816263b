package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// fakeStore is an in-memory Store. Transact works on a copy and keeps it
// only when fn succeeds, like a database transaction.
type fakeStore struct {
	assets map[string]Asset
	sites  []Site
	groups []Group
	audit  []audit.Record
}

func newFakeStore() *fakeStore { return &fakeStore{assets: map[string]Asset{}} }

func (f *fakeStore) clone() *fakeStore {
	c := &fakeStore{assets: make(map[string]Asset, len(f.assets)), sites: slices.Clone(f.sites),
		groups: slices.Clone(f.groups), audit: slices.Clone(f.audit)}
	for k, v := range f.assets {
		c.assets[k] = cloneAsset(v)
	}
	return c
}

func (f *fakeStore) Transact(ctx context.Context, fn func(Tx) error) error {
	tx := f.clone()
	if err := fn(tx); err != nil {
		return err
	}
	*f = *tx
	return nil
}

func (f *fakeStore) GetAsset(_ context.Context, id string) (Asset, error) {
	a, ok := f.assets[id]
	if !ok {
		return Asset{}, errs.E(errs.NotFound, "asset %q not found", id)
	}
	return cloneAsset(a), nil
}

func (f *fakeStore) AllAssets(context.Context) ([]Asset, error) {
	out := make([]Asset, 0, len(f.assets))
	for _, a := range f.assets {
		out = append(out, cloneAsset(a))
	}
	slices.SortFunc(out, func(a, b Asset) int {
		return cmpOr(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func (f *fakeStore) ListAssets(ctx context.Context, flt Filter) (Page, error) {
	all, _ := f.AllAssets(ctx)
	p := Page{Total: len(all), Limit: flt.Limit, Offset: flt.Offset}
	all = all[min(flt.Offset, len(all)):]
	p.Assets = all[:min(flt.Limit, len(all))]
	return p, nil
}

func (f *fakeStore) GetSite(_ context.Context, id string) (Site, error) {
	for _, s := range f.sites {
		if s.ID == id {
			return s, nil
		}
	}
	return Site{}, errs.E(errs.NotFound, "site %q not found", id)
}

func (f *fakeStore) ListSites(context.Context) ([]Site, error) { return slices.Clone(f.sites), nil }

func (f *fakeStore) GetGroup(_ context.Context, id string) (Group, error) {
	for _, g := range f.groups {
		if g.ID == id {
			return g, nil
		}
	}
	return Group{}, errs.E(errs.NotFound, "group %q not found", id)
}

func (f *fakeStore) ListGroups(context.Context) ([]Group, error) { return slices.Clone(f.groups), nil }

func (f *fakeStore) AppendAudit(_ context.Context, rec audit.Record) error {
	if rec.Action == "" || rec.ObjectType == "" || rec.Actor.Kind == "" {
		return errors.New("fake: incomplete audit record")
	}
	for _, v := range []any{rec.Before, rec.After} {
		if _, err := json.Marshal(v); err != nil {
			return err
		}
	}
	f.audit = append(f.audit, rec)
	return nil
}

func (f *fakeStore) InsertAsset(_ context.Context, a *Asset) error {
	if _, ok := f.assets[a.ID]; ok || a.ID == "" {
		return errs.E(errs.Conflict, "already exists")
	}
	f.assets[a.ID] = cloneAsset(*a)
	return nil
}

func (f *fakeStore) UpdateAsset(_ context.Context, a *Asset) error {
	old, ok := f.assets[a.ID]
	if !ok || old.Revision != a.Revision-1 {
		return errs.E(errs.Conflict, "changed by someone else")
	}
	f.assets[a.ID] = cloneAsset(*a)
	return nil
}

func (f *fakeStore) DeleteAsset(_ context.Context, id string) error {
	delete(f.assets, id)
	return nil
}

func (f *fakeStore) InsertSite(_ context.Context, s *Site) error {
	f.sites = append(f.sites, *s)
	return nil
}

func (f *fakeStore) UpdateSite(context.Context, *Site) error  { return nil }
func (f *fakeStore) DeleteSite(context.Context, string) error { return nil }

func (f *fakeStore) InsertGroup(_ context.Context, g *Group) error {
	f.groups = append(f.groups, *g)
	return nil
}

func (f *fakeStore) UpdateGroup(context.Context, *Group) error { return nil }
func (f *fakeStore) DeleteGroup(context.Context, string) error { return nil }

var (
	testActor = audit.Actor{Kind: "cli", Name: "tester", Addr: "local"}
	testNow   = time.Date(2026, 3, 2, 14, 30, 0, 0, time.UTC)
)

// newTestService returns a service on a fake store with the sites the
// ledger names and one group.
func newTestService(t testing.TB) (*Service, *fakeStore) {
	t.Helper()
	fs := newFakeStore()
	svc := NewService(fs, func() time.Time { return testNow })
	ctx := context.Background()
	for _, n := range []string{"Main Clinic", "Core Lab", "Eastside Clinic"} {
		if _, err := svc.CreateSite(ctx, testActor, Site{Name: n, TimeZone: "America/Chicago"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.CreateGroup(ctx, testActor, Group{Name: "Lab Analyzers"}); err != nil {
		t.Fatal(err)
	}
	fs.audit = nil
	return svc, fs
}

// ledgerMapping is what a user passes for the testdata ledger's columns
// that are not asset fields.
var ledgerMapping = map[string]string{"Description": "name", "Unit Cost": Ignore, "Supplier": Ignore}

func readLedger(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/purchases.csv")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importString(t testing.TB, svc *Service, csv string, opt ImportOptions) (ImportReport, error) {
	t.Helper()
	return svc.ImportCSV(context.Background(), testActor, strings.NewReader(csv), opt)
}

func TestFieldAliasesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, f := range fields {
		for _, k := range append([]string{headerKey(f.name)}, f.aliases...) {
			if k != headerKey(k) {
				t.Errorf("alias %q of %s is not normalised", k, f.name)
			}
			if prev, dup := seen[k]; dup {
				t.Errorf("header %q maps to both %s and %s", k, prev, f.name)
			}
			seen[k] = f.name
		}
	}
}

func TestHeaderMapping(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Serial Number", "serial"},
		{"serial_number", "serial"},
		{"S/N", "serial"},
		{"Service Tag", "serial"},
		{"Asset ID", "asset_tag"},
		{"Asset Tag", "asset_tag"},
		{"ASSET-TAG", "asset_tag"},
		{"Manufacturer", "make"},
		{"Vendor", "make"},
		{"Device Type", "type"},
		{"PO Number", "purchase_ref"},
		{"P.O. #", "purchase_ref"},
		{"Purchase Date", "purchased_at"},
		{"Owner", "business_owner"},
		{"IP", "ip_addresses"},
		{"IP Address", "ip_addresses"},
		{"MAC Address", "mac_address"},
		{"Tags", "tags"},
		{"Site", "site"},
		{"site_id", "site"},
		{"Groups", "groups"},
		{"Handles PHI", "handles_phi"},
		{"Patient Safety Impact", "patient_safety_impact"},
		{"End of Life", "end_of_support"},
		{"Last Seen", "last_seen_at"},
		{"id", "id"},
	} {
		i, ok := fieldIndex[headerKey(tc.header)]
		if got := fields[i].name; !ok || got != tc.want {
			t.Errorf("header %q maps to %q (found %v); want %q", tc.header, got, ok, tc.want)
		}
	}
	for _, h := range []string{"Unit Cost", "Description", "Supplier", "Quantity", ""} {
		if _, ok := fieldIndex[headerKey(h)]; ok {
			t.Errorf("header %q maps to a field; want unknown", h)
		}
	}
}

func TestMapColumns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  []string
		mapping map[string]string
		kind    ImportKind
		want    []ColumnMap
		wantErr []string // substrings of the error
	}{
		{name: "auto", header: []string{"Name", "Serial Number", "Asset ID"}, kind: ImportInventory,
			want: []ColumnMap{{"Name", "name"}, {"Serial Number", "serial"}, {"Asset ID", "asset_tag"}}},
		{name: "mapping wins and ignores", header: []string{"Description", "Cost", "Serial"},
			mapping: map[string]string{"description": "name", "COST": "-"}, kind: ImportInventory,
			want: []ColumnMap{{"Description", "name"}, {"Cost", "-"}, {"Serial", "serial"}}},
		{name: "mapping by field alias", header: []string{"Kit", "Serial"}, mapping: map[string]string{"Kit": "Asset Tag"},
			kind: ImportInventory, want: []ColumnMap{{"Kit", "asset_tag"}, {"Serial", "serial"}}},
		{name: "unknown columns listed together", header: []string{"Name", "Unit Cost", "Qty", "Serial"}, kind: ImportInventory,
			wantErr: []string{`unknown columns "Unit Cost", "Qty"`, "Header=-"}},
		{name: "mapping to unknown field", header: []string{"Name", "Cost"}, mapping: map[string]string{"Cost": "price"},
			kind: ImportInventory, wantErr: []string{`names "price", which is not a field`}},
		{name: "mapping names absent column", header: []string{"Name"}, mapping: map[string]string{"Colour": "-"},
			kind: ImportInventory, wantErr: []string{`column "Colour", which is not in the file`}},
		{name: "two columns one field", header: []string{"Serial", "Service Tag"}, kind: ImportInventory,
			wantErr: []string{`"Serial" and "Service Tag" both map to serial`}},
		{name: "duplicate header", header: []string{"Name", "name"}, kind: ImportInventory,
			wantErr: []string{`appears twice`}},
		{name: "trailing empty header column", header: []string{"Name", ""}, kind: ImportInventory,
			want: []ColumnMap{{"Name", "name"}}},
		{name: "purchase needs PO or date", header: []string{"Name", "Serial"}, kind: ImportPurchase,
			wantErr: []string{"purchase import needs a PO number"}},
		{name: "mapping names a column twice", header: []string{"Name", "Cost"}, mapping: map[string]string{"Cost": "-", "COST": "-"},
			kind: ImportInventory, wantErr: []string{`the mapping names column "Cost" twice`}},
		{name: "only ignored", header: []string{"Cost"}, mapping: map[string]string{"Cost": "-"}, kind: ImportInventory,
			wantErr: []string{"no column maps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rep ImportReport
			rows := []csvRow{{line: 2, cells: make([]string, len(tc.header))}}
			_, err := mapColumns(tc.header, rows, ImportOptions{Kind: tc.kind, Mapping: tc.mapping}, &rep)
			if len(tc.wantErr) > 0 {
				if !errors.Is(err, errs.ErrInvalid) {
					t.Fatalf("mapColumns err = %v; want Invalid", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("mapColumns err = %q; want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("mapColumns: %v", err)
			}
			if diff := cmp.Diff(tc.want, rep.Columns); diff != "" {
				t.Errorf("columns (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	d := newDirectory([]Site{{ID: "s1", Name: "Main Clinic"}}, []Group{{ID: "g1", Name: "Lab Analyzers"}, {ID: "g2", Name: "Tier 1"}})
	for _, tc := range []struct {
		field, in string
		want      string // export form after parsing
		wantErr   string
	}{
		{"exposure", "Internet Facing", "internet_facing", ""},
		{"exposure", "internet-facing", "internet_facing", ""},
		{"exposure", "CLINICAL VLAN", "clinical_vlan", ""},
		{"exposure", "moon", "", `"moon" is not valid; use one of: internet_facing, vpn, internal, clinical_vlan, isolated`},
		{"type", "Desktop", "endpoint", ""},
		{"type", "Infusion Pump", "iomt", ""},
		{"type", "Network Device", "network_device", ""},
		{"patient_safety_impact", "Direct patient care", "direct_patient_care", ""},
		{"vendor_patch_restriction", "Vendor approval required", "vendor_approval_required", ""},
		{"support_status", "EOL", "end_of_support", ""},
		{"criticality", "High", "high", ""},
		{"handles_phi", "Yes", "true", ""},
		{"handles_phi", "0", "false", ""},
		{"handles_phi", "maybe", "", "is not yes or no"},
		{"purchased_at", "2024-03-15", "2024-03-15T00:00:00Z", ""},
		{"purchased_at", "3/5/2024", "2024-03-05T00:00:00Z", ""},
		{"purchased_at", "03/05/2024", "2024-03-05T00:00:00Z", ""},
		{"purchased_at", "2024-03-15T10:20:30+02:00", "2024-03-15T08:20:30Z", ""},
		{"purchased_at", "2024-03-15 10:20", "2024-03-15T10:20:00Z", ""},
		{"purchased_at", "3/5/2024 2:15 PM", "2024-03-05T14:15:00Z", ""},
		{"purchased_at", "15/03/2024", "", "is not a date; use YYYY-MM-DD"},
		{"purchased_at", "0001-01-01", "", "not a plausible date"},
		{"ip_addresses", "10.0.0.5; 10.0.0.6", "10.0.0.5;10.0.0.6", ""},
		{"ip_addresses", "10.0.0.5 fe80::1 10.0.0.5", "10.0.0.5;fe80::1", ""},
		{"ip_addresses", "10.0.20.7/24", "10.0.20.7", ""},
		{"ip_addresses", "10.0.0.300", "", `"10.0.0.300": not an IP address`},
		{"ip_addresses", manyIPs(65), "", "more than 64 addresses"},
		{"mac_address", "AA-BB-CC-00-11-22", "aa:bb:cc:00:11:22", ""},
		{"mac_address", "aabb.cc00.1122", "aa:bb:cc:00:11:22", ""},
		{"mac_address", "AABBCC001122", "aa:bb:cc:00:11:22", ""},
		{"mac_address", "N/A", "", ""},
		{"mac_address", "aa:bb", "", "is not a MAC address"},
		{"tags", "LIS; Tier 1", "LIS;Tier-1", ""},
		{"tags", "a,b", "a;b", ""},
		{"site", "main clinic", "Main Clinic", ""},
		{"site", "s1", "Main Clinic", ""},
		{"site", "Westside", "", `no site named "Westside" (sites: "Main Clinic")`},
		{"groups", "lab analyzers; Tier 1", "Lab Analyzers;Tier 1", ""},
		{"groups", "Nope", "", `no group named "Nope"`},
		{"pending_updates", "12", "12", ""},
		{"pending_updates", "-1", "", "not a whole number"},
		{"serial", "TBD", "", ""},
		{"hostname", "lab-pc-01.clinic.local.", "lab-pc-01.clinic.local", ""},
	} {
		f := fields[fieldNamed(tc.field)]
		var a Asset
		err := f.set(&a, tc.in, d)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s(%q) err = %v; want %q", tc.field, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s(%q) err = %v", tc.field, tc.in, err)
			continue
		}
		if got := f.get(&a, d); got != tc.want {
			t.Errorf("%s(%q) = %q; want %q", tc.field, tc.in, got, tc.want)
		}
	}
}

func manyIPs(n int) string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
	}
	return strings.Join(ips, ";")
}

func TestSniffDelimiter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rune
	}{
		{"name,serial\nx,y", ','},
		{"name;serial;type\nx;y;z", ';'},
		{"name\tserial\nx\ty", '\t'},
		{`"a;b",c` + "\n", ','},
		{"name\n", ','},
	} {
		if got := sniffDelimiter([]byte(tc.in)); got != tc.want {
			t.Errorf("sniffDelimiter(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestImportLedger(t *testing.T) {
	svc, fs := newTestService(t)
	rep, err := svc.ImportCSV(context.Background(), testActor, bytes.NewReader(readLedger(t)),
		ImportOptions{Kind: ImportPurchase, Mapping: ledgerMapping, Name: "purchases.csv"})
	if err != nil {
		t.Fatalf("ImportCSV: %v\n%+v", err, rep.Errors)
	}
	if rep.Rows != 24 || rep.Created != 24 || rep.Updated != 0 || len(rep.Errors) != 0 || rep.ID == "" {
		t.Errorf("report rows=%d created=%d updated=%d errors=%v id=%q; want 24 created", rep.Rows, rep.Created, rep.Updated, rep.Errors, rep.ID)
	}
	if len(fs.assets) != 24 || len(fs.audit) != 25 {
		t.Errorf("stored %d assets, %d audit records; want 24, 25", len(fs.assets), len(fs.audit))
	}
	last := fs.audit[len(fs.audit)-1]
	if last.Action != "inventory.import" || last.ObjectType != "import" || last.ObjectID != rep.ID {
		t.Errorf("summary audit = %s %s %s; want inventory.import import %s", last.Action, last.ObjectType, last.ObjectID, rep.ID)
	}
	if got := cleanLabel("bad\x00name\xff.csv\n"); got != "badname?.csv" {
		t.Errorf("cleanLabel = %q; want badname?.csv", got)
	}
	if a := fs.audit[0]; a.Action != "asset.import_create" || !strings.Contains(a.Reason, "purchases.csv") || !strings.Contains(a.Reason, "line 2") {
		t.Errorf("first audit = %s %q; want asset.import_create naming the file and line", a.Action, a.Reason)
	}
	var sysmex *Asset
	for _, a := range fs.assets {
		if a.Serial == "XN1000-21457" {
			sysmex = &a
		}
	}
	if sysmex == nil {
		t.Fatal("Sysmex analyzer not imported")
	}
	purchased := time.Date(2023, 7, 19, 0, 0, 0, 0, time.UTC)
	want := Asset{Name: "Hematology analyzer", Type: TypeAnalyzer, Make: "Sysmex", Model: "XN-1000",
		Serial: "XN1000-21457", AssetTag: "LAB-00201", SiteID: fs.sites[1].ID, Exposure: ExposureInternal,
		BusinessOwner: "Lab Director", DataClass: ClassPHI, HandlesPHI: true, Criticality: LevelMedium,
		SafetyImpact: SafetyNone, Restriction: RestrictionNone, SupportStatus: SupportUnknown,
		PurchaseRef: "PO-2023-0731", PurchasedAt: &purchased, Source: SourcePurchase, Tags: []string{},
		Notes: `Vendor remote support via "SNCS" only`}
	if diff := cmp.Diff(want, *sysmex, ignoreIdentity); diff != "" {
		t.Errorf("Sysmex asset (-want +got):\n%s", diff)
	}
	for _, a := range fs.assets {
		if a.Serial == "DMPXK2Q1HF" && (a.AssetTag != "" || a.Type != TypeMobile || a.Name != "Check-in kiosk tablet") {
			t.Errorf("iPad = tag %q type %q name %q; want no tag (N/A), mobile", a.AssetTag, a.Type, a.Name)
		}
	}

	// The same file again changes nothing.
	rep, err = svc.ImportCSV(context.Background(), testActor, bytes.NewReader(readLedger(t)),
		ImportOptions{Kind: ImportPurchase, Mapping: ledgerMapping})
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if rep.Unchanged != 24 || rep.Created+rep.Updated != 0 || len(fs.assets) != 24 {
		t.Errorf("re-import unchanged=%d created=%d updated=%d; want all unchanged", rep.Unchanged, rep.Created, rep.Updated)
	}
}

// ignoreIdentity drops what the database assigns.
var ignoreIdentity = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".ID", ".CreatedAt", ".UpdatedAt", ".Revision":
		return true
	}
	return false
}, cmp.Ignore())

func TestImportRowErrors(t *testing.T) {
	const head = "Name,Serial,Type,Exposure,Purchase Date,IP,Site\n"
	for _, tc := range []struct {
		name string
		csv  string
		kind ImportKind
		want []RowError
	}{
		{name: "invalid enum", csv: head + "PC1,S1,Desktop,Internet Facng,,,\n",
			want: []RowError{{Row: 2, Column: "Exposure", Message: `exposure: "Internet Facng" is not valid; use one of: internet_facing, vpn, internal, clinical_vlan, isolated`}}},
		{name: "bad date", csv: head + "PC1,S1,,,31/12/2023,,\n",
			want: []RowError{{Row: 2, Column: "Purchase Date", Message: `purchased_at: "31/12/2023" is not a date; use YYYY-MM-DD (or M/D/YYYY)`}}},
		{name: "bad IP", csv: head + "PC1,S1,,,,10.0.0.999,\n",
			want: []RowError{{Row: 2, Column: "IP", Message: `ip_addresses: "10.0.0.999": not an IP address`}}},
		{name: "unknown site", csv: head + "PC1,S1,,,,,Westside\n",
			want: []RowError{{Row: 2, Column: "Site", Message: `site: no site named "Westside" (sites: "Main Clinic", "Core Lab", "Eastside Clinic")`}}},
		{name: "duplicate serial in file", csv: head + "PC1,S1,,,,,\nPC2,s1,,,,,\n",
			want: []RowError{{Row: 3, Column: "Serial", Message: `serial "s1" is also on line 2; each device may appear once`}}},
		{name: "ragged rows", csv: head + "PC1,S1\nPC2,S2,,,,,\nPC3,S3,,,,,,extra\n",
			want: []RowError{
				{Row: 2, Message: `has 2 fields but the header has 7; check for an unquoted ',' or a missing cell`},
				{Row: 4, Message: `has 8 fields but the header has 7; check for an unquoted ',' or a missing cell`}}},
		{name: "several errors in one row", csv: head + "PC1,S1,Toaster,moon,,,\n",
			want: []RowError{
				{Row: 2, Column: "Type", Message: `type: "Toaster" is not valid; use one of: endpoint, server, vm, network_device, clinical_system, analyzer, instrument_controller, imaging, iomt, mobile, unknown`},
				{Row: 2, Column: "Exposure", Message: `exposure: "moon" is not valid; use one of: internet_facing, vpn, internal, clinical_vlan, isolated`}}},
		{name: "multi-line cell keeps line numbers", csv: head + "\"PC1\nsecond line\",S1,,,,,\nPC2,S2,Toaster,,,,\n",
			want: []RowError{{Row: 4, Column: "Type", Message: `type: "Toaster" is not valid; use one of: endpoint, server, vm, network_device, clinical_system, analyzer, instrument_controller, imaging, iomt, mobile, unknown`}}},
		{name: "field too long", csv: "Name,Serial\nPC1," + strings.Repeat("x", 201) + "\n",
			want: []RowError{{Row: 2, Column: "Serial", Message: "serial: must be at most 200 characters"}}},
		{name: "purchase row without PO or date", kind: ImportPurchase, csv: "Serial,PO Number\nS1,\n",
			want: []RowError{{Row: 2, Message: "purchase row has neither a PO number (purchase_ref) nor a purchase date (purchased_at)"}}},
		{name: "discovery row without identifier", kind: ImportDiscovery, csv: "IP,OS\n10.0.0.5,Windows\n",
			want: []RowError{{Row: 2, Message: "row has no serial, asset_tag, mac, hostname, so Patchward cannot tell which device it is (now or on the next import)"}}},
		{name: "no name derivable", csv: "Notes,Type\nsomething,Desktop\n",
			want: []RowError{{Row: 2, Message: "name: is required: add a name, hostname, serial, asset tag or MAC column"}}},
		{name: "restriction needs regulated", csv: "Name,Vendor Patch Restriction\nPump,vendor_mediated_only\n",
			want: []RowError{{Row: 2, Column: "Vendor Patch Restriction", Message: `vendor_patch_restriction: only applies to regulated medical devices; set regulated_device or use "none"`}}},
		{name: "PHI contradiction", csv: "Name,Handles PHI,Data Classification\nPC,no,PHI\n",
			want: []RowError{{Row: 2, Column: "Handles PHI", Message: `handles_phi: says no, but data_classification is "phi"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, fs := newTestService(t)
			kind := tc.kind
			if kind == "" {
				kind = ImportInventory
			}
			rep, err := importString(t, svc, tc.csv, ImportOptions{Kind: kind})
			if !errors.Is(err, errs.ErrInvalid) {
				t.Fatalf("ImportCSV err = %v; want Invalid", err)
			}
			if diff := cmp.Diff(tc.want, rep.Errors); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if len(fs.assets) != 0 || len(fs.audit) != 0 {
				t.Errorf("wrote %d assets, %d audit records; want none", len(fs.assets), len(fs.audit))
			}
		})
	}
}

func TestImportFileErrors(t *testing.T) {
	manyCols := strings.Repeat("x,", MaxImportColumns) + "x\n"
	var manyRows strings.Builder
	manyRows.WriteString("Name\n")
	for i := range MaxImportRows + 1 {
		fmt.Fprintf(&manyRows, "pc%d\n", i)
	}
	for _, tc := range []struct {
		name, csv string
		kind      errs.Kind
		want      string
	}{
		{"empty", "", errs.Invalid, "file is empty"},
		{"blank lines", "\n\n  \n", errs.Invalid, "file is empty"},
		{"unclosed quote", "Name,Serial\n\"PC1,S1\n", errs.Invalid, "malformed CSV at line 2"},
		{"bare quote", "Name,Serial\nPC\"1,S1\n", errs.Invalid, `malformed CSV at line 2, column 3: bare " in non-quoted-field`},
		{"xlsx", "PK\x03\x04\x14\x00rest", errs.Invalid, "spreadsheet workbook, not CSV"},
		{"utf16", "\xff\xfeN\x00a\x00", errs.Invalid, "UTF-16"},
		{"latin1", "Name,Notes\nPC1,M\xfcller\n", errs.Invalid, "line 2 is not UTF-8"},
		{"nul", "Name\nPC\x001\n", errs.Invalid, "NUL bytes"},
		{"too large", "Name\n" + strings.Repeat("a", MaxImportBytes), errs.TooLarge, "larger than 10 MiB"},
		{"too many columns", manyCols, errs.TooLarge, "201 columns"},
		{"too many rows", manyRows.String(), errs.TooLarge, "more than 50000 rows"},
		{"unknown columns", "Name,Colour,Cost\nPC,red,1\n", errs.Invalid, `unknown columns "Colour", "Cost"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, fs := newTestService(t)
			_, err := importString(t, svc, tc.csv, ImportOptions{Kind: ImportInventory})
			if errs.KindOf(err) != tc.kind || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ImportCSV err = %v (kind %v); want %v containing %q", err, errs.KindOf(err), tc.kind, tc.want)
			}
			if len(fs.assets) != 0 || len(fs.audit) != 0 {
				t.Errorf("wrote %d assets; want none", len(fs.assets))
			}
		})
	}
	svc, _ := newTestService(t)
	// A body capped by the HTTP layer fails as TooLarge too.
	capped := http.MaxBytesReader(nil, io.NopCloser(strings.NewReader("Name\n"+strings.Repeat("a", 100))), 50)
	if _, err := svc.ImportCSV(context.Background(), testActor, capped, ImportOptions{Kind: ImportInventory}); !errors.Is(err, errs.ErrTooLarge) {
		t.Errorf("MaxBytesReader body err = %v; want TooLarge", err)
	}
	for _, opt := range []ImportOptions{{Kind: "ledger"}, {Kind: ImportInventory, Match: []string{"colour"}}} {
		if _, err := importString(t, svc, "Name\nPC\n", opt); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("ImportCSV(%+v) err = %v; want Invalid", opt, err)
		}
	}
}

func TestImportFormats(t *testing.T) {
	for _, tc := range []struct{ name, csv string }{
		{"BOM", "\ufeffName,Serial\nPC1,S1\n"},
		{"semicolon", "Name;Serial;Tags\nPC1;S1;a,b\n"},
		{"tab", "Name\tSerial\nPC1\tS1\n"},
		{"sep line", "sep=;\nName;Serial\nPC1;S1\n"},
		{"CRLF and trailing blank rows", "Name,Serial\r\nPC1,S1\r\n,\r\n,\r\n"},
		{"trailing empty column", "Name,Serial,\nPC1,S1,\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, fs := newTestService(t)
			rep, err := importString(t, svc, tc.csv, ImportOptions{Kind: ImportInventory})
			if err != nil {
				t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
			}
			if rep.Rows != 1 || rep.Created != 1 || len(fs.assets) != 1 {
				t.Fatalf("rows=%d created=%d; want 1", rep.Rows, rep.Created)
			}
			for _, a := range fs.assets {
				if a.Name != "PC1" || a.Serial != "S1" {
					t.Errorf("asset = %q %q; want PC1 S1", a.Name, a.Serial)
				}
			}
			if rep.Preview[0].Row != strings.Count(tc.csv[:strings.Index(tc.csv, "PC1")], "\n")+1 {
				t.Errorf("preview row = %d; want the line of PC1", rep.Preview[0].Row)
			}
		})
	}
}

// bulkCSV builds n inventory rows; row bad (0-based, -1 for none) has an
// invalid criticality.
func bulkCSV(n, bad int) string {
	var b strings.Builder
	b.WriteString("Name,Serial Number,Asset Tag,Device Type,Criticality,IP Address,Site\n")
	for i := range n {
		crit := "High"
		if i == bad {
			crit = "Extreme"
		}
		fmt.Fprintf(&b, "PC-%05d,SN%05d,TAG-%05d,Desktop,%s,10.1.%d.%d,Main Clinic\n", i, i, i, crit, i/250, i%250+1)
	}
	return b.String()
}

func TestImportAllOrNothing(t *testing.T) {
	svc, fs := newTestService(t)
	if _, err := importString(t, svc, bulkCSV(10, -1), ImportOptions{Kind: ImportInventory}); err != nil {
		t.Fatal(err)
	}
	assets, audits := len(fs.assets), len(fs.audit)
	rep, err := importString(t, svc, bulkCSV(100, 57), ImportOptions{Kind: ImportInventory})
	if !errors.Is(err, errs.ErrInvalid) {
		t.Fatalf("err = %v; want Invalid", err)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Row != 59 || rep.Errors[0].Column != "Criticality" {
		t.Errorf("errors = %+v; want one on line 59, Criticality", rep.Errors)
	}
	if !strings.Contains(err.Error(), "nothing was imported") {
		t.Errorf("err = %q; want it to say nothing was imported", err)
	}
	if len(fs.assets) != assets || len(fs.audit) != audits {
		t.Errorf("after failed import: %d assets, %d audits; want %d, %d", len(fs.assets), len(fs.audit), assets, audits)
	}
}

func TestImportDryRun(t *testing.T) {
	svc, fs := newTestService(t)
	ctx := context.Background()
	rep, err := svc.ImportCSV(ctx, testActor, bytes.NewReader(readLedger(t)),
		ImportOptions{Kind: ImportPurchase, Mapping: ledgerMapping, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.assets) != 0 || len(fs.audit) != 0 || rep.ID != "" {
		t.Fatalf("dry run wrote %d assets, %d audits, id %q", len(fs.assets), len(fs.audit), rep.ID)
	}
	real, err := svc.ImportCSV(ctx, testActor, bytes.NewReader(readLedger(t)), ImportOptions{Kind: ImportPurchase, Mapping: ledgerMapping})
	if err != nil {
		t.Fatal(err)
	}
	// The preview is exactly what happened, apart from the new IDs.
	if diff := cmp.Diff(rep.Preview, real.Preview, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".AssetID" }, cmp.Ignore())); diff != "" {
		t.Errorf("dry-run preview differs from the import (-dry +real):\n%s", diff)
	}
	if rep.Created != real.Created || rep.Rows != real.Rows {
		t.Errorf("dry run created %d of %d; import %d of %d", rep.Created, rep.Rows, real.Created, real.Rows)
	}
	// A dry run with errors reports them and still writes nothing.
	before := len(fs.audit)
	rep, err = importString(t, svc, bulkCSV(5, 2), ImportOptions{Kind: ImportInventory, DryRun: true})
	if !errors.Is(err, errs.ErrInvalid) || len(rep.Errors) != 1 || len(fs.audit) != before {
		t.Errorf("dry run with errors: err=%v errors=%v audits %d→%d", err, rep.Errors, before, len(fs.audit))
	}
}

func TestImportUpdateBySerial(t *testing.T) {
	svc, fs := newTestService(t)
	ctx := context.Background()
	orig, err := svc.CreateAsset(ctx, testActor, Asset{Name: "Chem analyzer", Type: TypeAnalyzer, Serial: "C311-1842-07",
		Criticality: LevelHigh, Notes: "keep me", Software: []Software{{Name: "cobas IT middleware", Version: "3.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	csv := "Serial Number,PO Number,Purchase Date,Manufacturer,Criticality\nc311-1842-07,PO-9,2023-07-21,Roche,\n"
	rep, err := importString(t, svc, csv, ImportOptions{Kind: ImportPurchase})
	if err != nil {
		t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
	}
	want := []RowResult{{Row: 2, Action: ActionUpdate, AssetID: orig.ID, AssetName: "Chem analyzer", Changes: []Change{
		{Field: "make", Old: "", New: "Roche"},
		{Field: "purchase_ref", Old: "", New: "PO-9"},
		{Field: "purchased_at", Old: "", New: "2023-07-21T00:00:00Z"},
	}}}
	if diff := cmp.Diff(want, rep.Preview); diff != "" {
		t.Errorf("preview (-want +got):\n%s", diff)
	}
	got := fs.assets[orig.ID]
	if got.Revision != 2 || got.Make != "Roche" || got.Criticality != LevelHigh || got.Notes != "keep me" ||
		len(got.Software) != 1 || got.Source != SourceManual {
		t.Errorf("updated asset = %+v; want make set, the rest (software, source, empty-cell criticality) kept", got)
	}
	last := fs.audit[len(fs.audit)-2]
	if last.Action != "asset.import_update" || last.Before == nil || last.ObjectID != orig.ID {
		t.Errorf("audit = %+v; want asset.import_update with before state", last)
	}
}

func TestImportMatching(t *testing.T) {
	svc, _ := newTestService(t)
	ctx := context.Background()
	mk := func(a Asset) Asset {
		t.Helper()
		a, err := svc.CreateAsset(ctx, testActor, a)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	byTag := mk(Asset{Name: "tagged", AssetTag: "CLN-1"})
	byMAC := mk(Asset{Name: "by mac", MACAddress: "aa:bb:cc:dd:ee:01"})
	byHost := mk(Asset{Name: "by host", Hostname: "LAB-PC-07", Serial: "OLD-SERIAL"})
	mk(Asset{Name: "twin a", Hostname: "twin"})
	mk(Asset{Name: "twin b", Hostname: "twin"})
	mk(Asset{Name: "both", AssetTag: "CLN-9", MACAddress: "aa:bb:cc:dd:ee:09"})
	for _, tc := range []struct {
		name, csv string
		match     []string
		wantID    string // "" for a create
		wantErr   string
	}{
		{"asset tag", "Asset Tag,Hostname\ncln-1,new-host\n", nil, byTag.ID, ""},
		{"mac in other form", "MAC,Hostname\nAABB.CCDD.EE01,x\n", nil, byMAC.ID, ""},
		{"hostname", "Hostname,OS\nlab-pc-07,Windows 11\n", nil, byHost.ID, ""},
		{"hostname with different serial is a new device", "Hostname,Serial\nlab-pc-07,NEW-SERIAL\n", nil, "", ""},
		{"match restricted to serial", "Hostname,OS\nlab-pc-07,Windows 11\n", []string{"serial"}, "", ""},
		{"by id", "id,name\n" + byTag.ID + ",renamed\n", nil, byTag.ID, ""},
		{"ambiguous", "Hostname\ntwin\n", nil, "", `hostname "twin" matches 2 existing assets`},
		{"two rows one asset", "Asset Tag,MAC\nCLN-9,\n,aa-bb-cc-dd-ee-09\n", nil, "", `matches the same asset "both" as line 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := importString(t, svc, tc.csv, ImportOptions{Kind: ImportInventory, Match: tc.match, DryRun: true})
			if tc.wantErr != "" {
				if err == nil || len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0].Message, tc.wantErr) {
					t.Errorf("errors = %+v; want %q", rep.Errors, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
			}
			if got := rep.Preview[0].AssetID; got != tc.wantID {
				t.Errorf("matched %q (%s); want %q", got, rep.Preview[0].Action, tc.wantID)
			}
		})
	}
}

func TestImportDiscovery(t *testing.T) {
	svc, fs := newTestService(t)
	ctx := context.Background()
	if _, err := svc.ImportCSV(ctx, testActor, bytes.NewReader(readLedger(t)), ImportOptions{Kind: ImportPurchase, Mapping: ledgerMapping}); err != nil {
		t.Fatal(err)
	}
	csv := "Hostname,IP Address,MAC Address,Serial Number,OS\n" +
		"lab-lis01,10.20.0.5,00:1a:2b:3c:4d:5e,7HT3KV3,Windows Server 2022\n" +
		"unknown-nas,10.20.0.99,00-1A-2B-3C-4D-99,,\n"
	rep, err := importString(t, svc, csv, ImportOptions{Kind: ImportDiscovery})
	if err != nil {
		t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
	}
	if rep.Updated != 1 || rep.Created != 1 {
		t.Fatalf("updated=%d created=%d; want 1, 1", rep.Updated, rep.Created)
	}
	for _, a := range fs.assets {
		switch a.Serial {
		case "7HT3KV3":
			if a.LastSeenAt == nil || !a.LastSeenAt.Equal(testNow) || a.Hostname != "lab-lis01" || a.Source != SourcePurchase || a.Name != "LIS server" {
				t.Errorf("LIS server after discovery = %+v", a)
			}
		case "":
			if a.Name != "unknown-nas" || a.Source != SourceDiscovery || a.Type != TypeUnknown || a.LastSeenAt == nil || a.MACAddress != "00:1a:2b:3c:4d:99" {
				t.Errorf("new discovered asset = %+v", a)
			}
		}
	}
}

// FuzzImportCSV feeds arbitrary bytes to the importer: it must never panic,
// must fail only with Invalid or TooLarge, and a failure must change nothing.
func FuzzImportCSV(f *testing.F) {
	ledger, err := os.ReadFile("testdata/purchases.csv")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(ledger),
		string(ledger[:len(ledger)/2]),
		strings.Replace(string(ledger), `"$849.00"`, `"$849.00`, 1),
		strings.ReplaceAll(string(ledger), ",", ";"),
		"\ufeff" + string(ledger),
		"Name,Serial\nPC1,S1\nPC2\n",
		"Name,Serial\n\"PC1,S1\n",
		"Name,Serial\nPC\"1,S1\n",
		"sep=;\nName;Serial\nPC1;S1\n",
		"Name,Type,Exposure\nPC,desktop,Internet Facing\n",
		"Hostname,IP,MAC\nh1,10.0.0.1 10.0.0.2,aabbccddeeff\n",
		"id,name,groups,site\nx,PC,Lab Analyzers,Core Lab\n",
		"Name,Colour\nPC,red\n",
		"",
		"\x00\x01",
		"PK\x03\x04",
	} {
		for kind := range 3 {
			f.Add([]byte(seed), uint8(kind), false)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, dry bool) {
		svc, fs := newTestService(t)
		opt := ImportOptions{Kind: ImportKinds[int(kind)%len(ImportKinds)], DryRun: dry, Mapping: map[string]string{}}
		// Map the ledger's extra columns only when present, so the mapping
		// itself is not what fails.
		for k, v := range ledgerMapping {
			if bytes.Contains(data, []byte(k)) {
				opt.Mapping[k] = v
			}
		}
		rep, err := svc.ImportCSV(context.Background(), testActor, bytes.NewReader(data), opt)
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("ImportCSV error kind %v: %v", k, err)
			}
			if len(fs.assets) != 0 || len(fs.audit) != 0 {
				t.Fatalf("failed import wrote %d assets", len(fs.assets))
			}
			return
		}
		if rep.Created+rep.Updated+rep.Unchanged != rep.Rows || rep.ErrorCount != 0 {
			t.Fatalf("report does not add up: %+v", rep)
		}
		if !dry && len(fs.assets) != rep.Created {
			t.Fatalf("stored %d assets; report says %d created", len(fs.assets), rep.Created)
		}
	})
}
