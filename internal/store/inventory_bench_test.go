package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// seedFleet inserts n synthetic assets spread over sites, types, owners and
// tags in one transaction, the shape of a hospital group's estate.
func seedFleet(b *testing.B, db *store.DB, n int) (siteID string) {
	b.Helper()
	ctx := context.Background()
	svc := inventory.NewService(db.Inventory(), nil)
	var sites []string
	for i := range 20 {
		s, err := svc.CreateSite(ctx, admin, inventory.Site{Name: fmt.Sprintf("Site %02d", i), TimeZone: "America/Chicago"})
		if err != nil {
			b.Fatal(err)
		}
		sites = append(sites, s.ID)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := db.Inventory().Transact(ctx, func(tx inventory.Tx) error {
		for i := range n {
			a := inventory.Asset{
				ID: inventory.NewID(), Name: fmt.Sprintf("host-%06d", i), Hostname: fmt.Sprintf("host-%06d.example.org", i),
				Type: inventory.Types[rng.IntN(len(inventory.Types))], Serial: fmt.Sprintf("SN%08d", i),
				SiteID: sites[rng.IntN(len(sites))], Exposure: inventory.Exposures[rng.IntN(len(inventory.Exposures))],
				Criticality: inventory.Levels[rng.IntN(len(inventory.Levels))], HandlesPHI: rng.IntN(3) == 0,
				BusinessOwner: fmt.Sprintf("Owner %d", rng.IntN(200)), TechnicalOwner: "IT",
				SupportStatus: inventory.Supports[rng.IntN(3)], Tags: []string{fmt.Sprintf("dept-%d", rng.IntN(40))},
				CreatedAt: now, UpdatedAt: now, Revision: 1,
			}
			a.Normalize()
			if a.SupportStatus == inventory.SupportEnded {
				a.EndOfSupport = &now
			}
			if err := tx.InsertAsset(ctx, &a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seed %d assets: %v", n, err)
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	return sites[3]
}

// BenchmarkAssetList measures listing and filtering a 50,000-asset estate:
// what every inventory page load and API list call costs.
func BenchmarkAssetList(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			db := storetest.Open(b, engine, store.Options{})
			site := seedFleet(b, db, 50_000)
			svc := inventory.NewService(db.Inventory(), nil)
			yes := true
			for _, bc := range []struct {
				name string
				f    inventory.Filter
			}{
				{"first-page", inventory.Filter{Limit: 50}},
				{"deep-page", inventory.Filter{Limit: 50, Offset: 40_000}},
				{"site+type+criticality", inventory.Filter{SiteID: site, Type: inventory.TypeServer, Criticality: inventory.LevelCritical, Limit: 50}},
				{"phi+exposure", inventory.Filter{PHI: &yes, Exposure: inventory.ExposureInternet, Limit: 50}},
				{"owner", inventory.Filter{Owner: "owner 17", Limit: 50}},
				{"tag", inventory.Filter{Tag: "dept-7", Limit: 50}},
				{"search", inventory.Filter{Q: "host-0499", Limit: 50}},
			} {
				b.Run(bc.name, func(b *testing.B) {
					ctx := context.Background()
					for b.Loop() {
						p, err := svc.Assets(ctx, bc.f)
						if err != nil {
							b.Fatal(err)
						}
						if p.Total == 0 {
							b.Fatal("filter matched nothing")
						}
					}
				})
			}
		})
	}
}
