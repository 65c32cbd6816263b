package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
)

// runAssetCLI runs the patchward command tree against dbPath.
func runAssetCLI(t *testing.T, dbPath string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--db", dbPath, "--log-level", "error"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRunAssetCLI(t *testing.T, dbPath string, args ...string) string {
	t.Helper()
	out, err := runAssetCLI(t, dbPath, args...)
	if err != nil {
		t.Fatalf("patchward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// newAssetCLIDB migrates a temp SQLite database through the CLI and adds
// the sites the test ledger names (there is no site command yet).
func newAssetCLIDB(t *testing.T) string {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "patchward.db")
	mustRunAssetCLI(t, dbPath, "migrate")
	ctx := context.Background()
	db, err := store.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := inventory.NewService(db.Inventory(), time.Now)
	for _, n := range []string{"Main Clinic", "Core Lab", "Eastside Clinic"} {
		if _, err := svc.CreateSite(ctx, cliActor(), inventory.Site{Name: n, TimeZone: "America/Chicago"}); err != nil {
			t.Fatal(err)
		}
	}
	return dbPath
}

const ledgerPath = "../../internal/inventory/testdata/purchases.csv"

func TestAssetImportExportReconcile(t *testing.T) {
	db := newAssetCLIDB(t)
	mapFlag := "--map=Description=name,Unit Cost=-"

	// Dry run: a full preview, nothing written.
	out := mustRunAssetCLI(t, db, "asset", "import", ledgerPath, "--kind", "purchase", mapFlag, "--map", "Supplier=-", "--dry-run")
	for _, want := range []string{"Serial Number            -> serial", "Unit Cost                -> -",
		`line 7: create "Hematology analyzer"`, "    make: Sysmex", "24 rows: 24 to create, 0 to update, 0 unchanged; dry run, nothing was written"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if out := mustRunAssetCLI(t, db, "asset", "list"); !strings.Contains(out, "0 of 0 assets") {
		t.Errorf("after dry run, list = %s; want no assets", out)
	}

	// Unknown columns: every one named, non-zero exit, nothing written.
	out, err := runAssetCLI(t, db, "asset", "import", ledgerPath, "--kind", "purchase")
	if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), `unknown columns "Description", "Unit Cost", "Supplier"`) {
		t.Errorf("import without mapping err = %v; want Invalid naming the unknown columns", err)
	}
	if !strings.Contains(out, `line 1, column "Unit Cost": unknown column`) || !strings.Contains(out, "NOT imported") {
		t.Errorf("import without mapping printed:\n%s", out)
	}

	// Per-row errors: listed with line numbers, exit non-zero.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("Name,Serial,Exposure\nPC1,S1,internal\nPC2,S2,Internet Facng\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runAssetCLI(t, db, "asset", "import", bad, "--kind", "inventory")
	if err == nil || !strings.Contains(out, `line 3, column "Exposure": exposure: "Internet Facng" is not valid`) {
		t.Errorf("bad import: err=%v\n%s", err, out)
	}

	// The real import.
	out = mustRunAssetCLI(t, db, "asset", "import", ledgerPath, "--kind", "purchase", "--map", "Description=name,Unit Cost=-,Supplier=-")
	if !strings.Contains(out, "24 rows: 24 to create, 0 to update, 0 unchanged; imported") || !strings.Contains(out, "recorded in the audit log") {
		t.Errorf("import output:\n%s", out)
	}

	out = mustRunAssetCLI(t, db, "asset", "list", "--type", "analyzer", "--site", "core lab")
	if !strings.Contains(out, "Hematology analyzer") || strings.Contains(out, "Infusion pump") || !strings.Contains(out, "3 of 3 assets") {
		t.Errorf("list --type analyzer --site 'core lab':\n%s", out)
	}
	var page inventory.Page
	if err := json.Unmarshal([]byte(mustRunAssetCLI(t, db, "asset", "list", "--q", "alaris", "--json")), &page); err != nil || page.Total != 3 {
		t.Fatalf("list --q alaris --json: total %d, %v", page.Total, err)
	}
	if _, err := runAssetCLI(t, db, "asset", "list", "--type", "toaster"); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("list --type toaster err = %v; want Invalid", err)
	}

	out = mustRunAssetCLI(t, db, "asset", "show", page.Assets[0].ID)
	for _, want := range []string{"make:", "BD", "purchase_ref:", "PO-2023-1102", "site:", "Main Clinic"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if _, err := runAssetCLI(t, db, "asset", "show", "no-such-id"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("show missing err = %v; want NotFound", err)
	}

	// Export CSV to a file and JSON to stdout.
	csvPath := filepath.Join(t.TempDir(), "assets.csv")
	mustRunAssetCLI(t, db, "asset", "export", "--format", "csv", "--out", csvPath)
	b, err := os.ReadFile(csvPath)
	if err != nil || !strings.HasPrefix(string(b), strings.Join(inventory.CSVHeader(), ",")+"\n") || strings.Count(string(b), "\n") != 25 {
		t.Errorf("CSV export (%v):\n%s", err, b)
	}
	if fi, err := os.Stat(csvPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	var assets []inventory.Asset
	if err := json.Unmarshal([]byte(mustRunAssetCLI(t, db, "asset", "export", "--format", "json")), &assets); err != nil || len(assets) != 24 {
		t.Errorf("JSON export: %d assets, %v", len(assets), err)
	}
	if _, err := runAssetCLI(t, db, "asset", "export", "--format", "xml"); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("export --format xml err = %v; want Invalid", err)
	}

	// Re-importing the export changes nothing.
	out = mustRunAssetCLI(t, db, "asset", "import", csvPath, "--kind", "inventory")
	if !strings.Contains(out, "24 rows: 0 to create, 0 to update, 24 unchanged; imported") {
		t.Errorf("re-import of export:\n%s", out)
	}

	// A discovery scan finds one purchased device and one nobody bought.
	scan := filepath.Join(t.TempDir(), "scan.csv")
	if err := os.WriteFile(scan, []byte("Hostname;IP Address;MAC;Serial Number\nlab-lis01;10.20.0.5;00:1a:2b:3c:4d:5e;7HT3KV3\nDESKTOP-8F3K2L;10.10.0.77;3c52.82aa.bbcc;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRunAssetCLI(t, db, "asset", "import", scan, "--kind", "discovery")
	out = mustRunAssetCLI(t, db, "asset", "reconcile")
	for _, want := range []string{"25 assets; 1 both purchased and seen", "purchased, never seen on the network: 23",
		"seen, never purchased (shadow or unmanaged): 1", "DESKTOP-8F3K2L", "stale (not seen for more than 30 days): 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("reconcile lacks %q:\n%s", want, out)
		}
	}
	var rec inventory.Reconciliation
	if err := json.Unmarshal([]byte(mustRunAssetCLI(t, db, "asset", "reconcile", "--json", "--stale-days", "7")), &rec); err != nil || rec.StaleDays != 7 || rec.Matched != 1 {
		t.Errorf("reconcile --json: %+v, %v", rec, err)
	}
}

func TestParseColumnMapping(t *testing.T) {
	got, err := parseColumnMapping([]string{"Description=name, Unit Cost = -", "Supplier=-"})
	if err != nil || len(got) != 3 || got["Unit Cost"] != "-" || got["Description"] != "name" {
		t.Errorf("parseColumnMapping = %v, %v", got, err)
	}
	if _, err := parseColumnMapping([]string{"Description"}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("parseColumnMapping(no =) err = %v; want Invalid", err)
	}
}
