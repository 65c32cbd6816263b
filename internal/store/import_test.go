package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// importEnv is one engine's database for import tests, with a second
// connection that counts rows behind the service's back.
type importEnv struct {
	db  *store.DB
	svc *inventory.Service
	raw *sql.DB
}

// eachImportEnv is storetest.Each plus the raw connection, which needs
// the DSN that Each keeps to itself.
func eachImportEnv(t *testing.T, fn func(t *testing.T, env importEnv)) {
	t.Helper()
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			fn(t, newImportEnv(t, e))
		})
	}
}

func newImportEnv(t testing.TB, e store.Engine) importEnv {
	t.Helper()
	dsn := storetest.DSN(t, e)
	db := storetest.OpenDSN(t, dsn, store.Options{})
	driver := "sqlite"
	if e == store.Postgres {
		driver = "pgx"
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	svc := inventory.NewService(db.Inventory(), fixedClock())
	for _, n := range []string{"Main Clinic", "Core Lab", "Eastside Clinic"} {
		if _, err := svc.CreateSite(context.Background(), admin, inventory.Site{Name: n, TimeZone: "America/Chicago"}); err != nil {
			t.Fatalf("CreateSite: %v", err)
		}
	}
	return importEnv{db: db, svc: svc, raw: raw}
}

// counts returns the number of assets and audit entries actually stored.
func (env importEnv) counts(t *testing.T) (assets, audits int) {
	t.Helper()
	if err := env.raw.QueryRow(`SELECT (SELECT count(*) FROM assets), (SELECT count(*) FROM audit_entries)`).Scan(&assets, &audits); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return assets, audits
}

var ledgerMapping = map[string]string{"Description": "name", "Unit Cost": "-", "Supplier": "-"}

func ledger(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../inventory/testdata/purchases.csv")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bulkCSV(n, bad int) string {
	var b strings.Builder
	b.WriteString("Name,Serial Number,Asset Tag,Device Type,Criticality,IP Address,Site,Tags\n")
	for i := range n {
		crit := "High"
		if i == bad {
			crit = "Extreme"
		}
		fmt.Fprintf(&b, "PC-%05d,SN%05d,TAG-%05d,Desktop,%s,10.1.%d.%d,Main Clinic,clinic;desktop\n", i, i, i, crit, i/250, i%250+1)
	}
	return b.String()
}

func TestImportLedgerAndReconcile(t *testing.T) {
	eachImportEnv(t, func(t *testing.T, env importEnv) {
		ctx := context.Background()
		rep, err := env.svc.ImportCSV(ctx, admin, bytes.NewReader(ledger(t)),
			inventory.ImportOptions{Kind: inventory.ImportPurchase, Mapping: ledgerMapping, Name: "purchases.csv"})
		if err != nil {
			t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
		}
		if rep.Created != 24 {
			t.Errorf("created %d; want 24", rep.Created)
		}
		assets, audits := env.counts(t)
		if assets != 24 || audits != 3+24+1 { // 3 sites, 24 assets, 1 summary
			t.Errorf("stored %d assets, %d audit entries; want 24, 28", assets, audits)
		}
		rec, err := env.svc.Reconcile(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.PurchasedNeverSeen) != 24 || len(rec.SeenNeverPurchased) != 0 || rec.Matched != 0 {
			t.Errorf("before discovery: never seen %d, shadow %d, matched %d; want 24, 0, 0",
				len(rec.PurchasedNeverSeen), len(rec.SeenNeverPurchased), rec.Matched)
		}

		scan := "Hostname,IP Address,MAC Address,Serial Number\n" +
			"lab-lis01,10.20.0.5,00:1a:2b:3c:4d:5e,7ht3kv3\n" +
			"DESKTOP-8F3K2L,10.10.0.77,3c-52-82-aa-bb-cc,\n"
		rep, err = env.svc.ImportCSV(ctx, admin, strings.NewReader(scan), inventory.ImportOptions{Kind: inventory.ImportDiscovery})
		if err != nil {
			t.Fatalf("discovery ImportCSV: %v %+v", err, rep.Errors)
		}
		if rep.Updated != 1 || rep.Created != 1 {
			t.Errorf("discovery updated %d created %d; want 1, 1", rep.Updated, rep.Created)
		}
		rec, err = env.svc.Reconcile(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.PurchasedNeverSeen) != 23 || rec.Matched != 1 || len(rec.SeenNeverPurchased) != 1 ||
			rec.SeenNeverPurchased[0].Name != "DESKTOP-8F3K2L" {
			t.Errorf("after discovery: never seen %d, matched %d, shadow %v; want 23, 1, [DESKTOP-8F3K2L]",
				len(rec.PurchasedNeverSeen), rec.Matched, rec.SeenNeverPurchased)
		}
	})
}

func TestImportAllOrNothingDB(t *testing.T) {
	eachImportEnv(t, func(t *testing.T, env importEnv) {
		ctx := context.Background()
		if _, err := env.svc.ImportCSV(ctx, admin, strings.NewReader(bulkCSV(5, -1)), inventory.ImportOptions{Kind: inventory.ImportInventory}); err != nil {
			t.Fatal(err)
		}
		assets, audits := env.counts(t)
		// 100 rows, the first 5 of which update existing assets, one bad.
		rep, err := env.svc.ImportCSV(ctx, admin, strings.NewReader(bulkCSV(100, 99)), inventory.ImportOptions{Kind: inventory.ImportInventory})
		if !errors.Is(err, errs.ErrInvalid) || rep.ErrorCount != 1 || rep.Errors[0].Row != 101 {
			t.Fatalf("err = %v, errors %+v; want Invalid with one error on line 101", err, rep.Errors)
		}
		if a, au := env.counts(t); a != assets || au != audits {
			t.Errorf("after rejected import: %d assets, %d audits; want %d, %d", a, au, assets, audits)
		}
		// Malformed CSV changes nothing either.
		if _, err := env.svc.ImportCSV(ctx, admin, strings.NewReader("Name,Serial\n\"PC,1\n"), inventory.ImportOptions{Kind: inventory.ImportInventory}); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("malformed err = %v; want Invalid", err)
		}
		if a, au := env.counts(t); a != assets || au != audits {
			t.Errorf("after malformed import: %d assets, %d audits; want %d, %d", a, au, assets, audits)
		}
	})
}

func TestImportDryRunDB(t *testing.T) {
	eachImportEnv(t, func(t *testing.T, env importEnv) {
		ctx := context.Background()
		assets, audits := env.counts(t)
		opt := inventory.ImportOptions{Kind: inventory.ImportPurchase, Mapping: ledgerMapping, DryRun: true}
		dry, err := env.svc.ImportCSV(ctx, admin, bytes.NewReader(ledger(t)), opt)
		if err != nil {
			t.Fatal(err)
		}
		if a, au := env.counts(t); a != assets || au != audits || dry.ID != "" {
			t.Fatalf("dry run wrote: %d assets, %d audits (was %d, %d), id %q", a, au, assets, audits, dry.ID)
		}
		opt.DryRun = false
		real, err := env.svc.ImportCSV(ctx, admin, bytes.NewReader(ledger(t)), opt)
		if err != nil {
			t.Fatal(err)
		}
		ignoreID := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".AssetID" }, cmp.Ignore())
		if diff := cmp.Diff(dry.Preview, real.Preview, ignoreID); diff != "" {
			t.Errorf("preview differs from what the import did (-dry +real):\n%s", diff)
		}
	})
}

func TestImportUpdateBySerialDB(t *testing.T) {
	eachImportEnv(t, func(t *testing.T, env importEnv) {
		ctx := context.Background()
		orig, err := env.svc.CreateAsset(ctx, admin, inventory.Asset{Name: "Chemistry analyzer", Type: inventory.TypeAnalyzer,
			Serial: "C311-1842-07", Criticality: inventory.LevelHigh, Tags: []string{"lab"},
			Software: []inventory.Software{{Name: "cobas IT middleware", Version: "3.2.1"}}})
		if err != nil {
			t.Fatal(err)
		}
		csv := "Serial Number,PO Number,Purchase Date,Manufacturer,Site\nc311-1842-07,PO-2023-0732,7/21/2023,Roche,Core Lab\n"
		rep, err := env.svc.ImportCSV(ctx, admin, strings.NewReader(csv), inventory.ImportOptions{Kind: inventory.ImportPurchase})
		if err != nil {
			t.Fatalf("ImportCSV: %v %+v", err, rep.Errors)
		}
		if rep.Updated != 1 || rep.Preview[0].AssetID != orig.ID {
			t.Fatalf("report %+v; want one update of %s", rep, orig.ID)
		}
		got, err := env.svc.Asset(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := orig
		want.Make, want.PurchaseRef, want.Revision = "Roche", "PO-2023-0732", 2
		p := time.Date(2023, 7, 21, 0, 0, 0, 0, time.UTC)
		want.PurchasedAt = &p
		sites, _ := env.svc.Sites(ctx)
		for _, s := range sites {
			if s.Name == "Core Lab" {
				want.SiteID = s.ID
			}
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(inventory.Asset{}, "UpdatedAt")); diff != "" {
			t.Errorf("updated asset (-want +got):\n%s", diff)
		}
	})
}

func TestExportReimportDB(t *testing.T) {
	eachImportEnv(t, func(t *testing.T, env importEnv) {
		ctx := context.Background()
		if _, err := env.svc.ImportCSV(ctx, admin, bytes.NewReader(ledger(t)),
			inventory.ImportOptions{Kind: inventory.ImportPurchase, Mapping: ledgerMapping}); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := env.svc.ExportCSV(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		fresh := newImportEnv(t, env.db.Engine())
		rep, err := fresh.svc.ImportCSV(ctx, admin, bytes.NewReader(buf.Bytes()), inventory.ImportOptions{Kind: inventory.ImportInventory})
		if err != nil {
			t.Fatalf("re-import: %v %+v", err, rep.Errors)
		}
		siteNames := func(svc *inventory.Service, as []inventory.Asset) []inventory.Asset {
			sites, _ := svc.Sites(ctx)
			for i := range as {
				for _, s := range sites {
					if s.ID == as[i].SiteID {
						as[i].SiteID = s.Name
					}
				}
			}
			return as
		}
		want, _ := env.svc.Assets(ctx, inventory.Filter{Limit: 100})
		got, _ := fresh.svc.Assets(ctx, inventory.Filter{Limit: 100})
		opts := cmp.Options{cmpopts.IgnoreFields(inventory.Asset{}, "ID", "CreatedAt", "UpdatedAt", "Revision"), cmpopts.EquateEmpty()}
		if diff := cmp.Diff(siteNames(env.svc, want.Assets), siteNames(fresh.svc, got.Assets), opts); diff != "" {
			t.Errorf("export → import (-exported +imported):\n%s", diff)
		}
	})
}

// BenchmarkImport50k imports 50,000 new assets into SQLite: the dry run is
// the planning cost; the real import adds 50,000 inserts and audit entries.
func BenchmarkImport50k(b *testing.B) {
	data := bulkCSV(inventory.MaxImportRows, -1)
	for _, dry := range []bool{true, false} {
		b.Run(fmt.Sprintf("dry=%v", dry), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				env := newImportEnv(b, store.SQLite)
				b.StartTimer()
				rep, err := env.svc.ImportCSV(context.Background(), admin, strings.NewReader(data),
					inventory.ImportOptions{Kind: inventory.ImportInventory, DryRun: dry})
				if err != nil || rep.Created != inventory.MaxImportRows {
					b.Fatalf("ImportCSV: %v (created %d)", err, rep.Created)
				}
			}
		})
	}
}
