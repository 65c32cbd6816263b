package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/demo"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

func TestSeed(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	inv := inventory.NewService(db.Inventory(), nil)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	n, err := demo.Seed(ctx, inv, now)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if n < 20 {
		t.Errorf("Seed created %d assets; want at least 20", n)
	}
	// The demo must cover every kind of device the product talks about.
	for _, typ := range []inventory.Type{inventory.TypeServer, inventory.TypeEndpoint, inventory.TypeMobile,
		inventory.TypeNetworkDevice, inventory.TypeAnalyzer, inventory.TypeInstrumentController,
		inventory.TypeClinicalSystem, inventory.TypeImaging, inventory.TypeIoMT, inventory.TypeUnknown} {
		p, err := inv.Assets(ctx, inventory.Filter{Type: typ, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total == 0 {
			t.Errorf("demo has no %s", typ)
		}
	}
	again, err := demo.Seed(ctx, inv, now)
	if err != nil || again != 0 {
		t.Errorf("second Seed = %d, %v; want 0, nil (idempotent)", again, err)
	}
}
