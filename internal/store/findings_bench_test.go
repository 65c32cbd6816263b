package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// benchFindingsHosts is the DB-backed benchmark's estate size: the
// in-memory engine benchmark (internal/match) covers 10,000 hosts; this one
// measures what storage adds per host.
const benchFindingsHosts = 100

// seedSoftwareFleet inserts hosts carrying the real Debian 12 source
// packages of the matcher's test data (one row per source package, at its
// bookworm or bookworm-security version) and returns a derived feed for them.
func seedSoftwareFleet(b *testing.B, db *store.DB, hosts int) []advisory.Advisory {
	b.Helper()
	raw, err := os.ReadFile("../match/testdata/matching/bookworm-packages.tsv")
	if err != nil {
		b.Fatal(err)
	}
	type src struct{ main, sec string }
	sources := map[string]src{}
	var order []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 7 || strings.HasPrefix(line, "#") {
			continue
		}
		if _, ok := sources[f[2]]; !ok {
			order = append(order, f[2])
			sources[f[2]] = src{main: f[4], sec: f[6]}
		}
	}
	var feed []advisory.Advisory
	for i, name := range order {
		s := sources[name]
		for k := range 10 {
			fixed := s.main
			if s.sec != "" && k%3 == 0 {
				fixed = s.sec
			}
			cve := fmt.Sprintf("CVE-2099-%05d", i*10+k)
			feed = append(feed, advisory.Advisory{ID: "PWBENCH-" + cve, Source: "osv", Aliases: []string{cve},
				Affected: []advisory.Affected{{Ecosystem: "Debian:12", Package: name,
					Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: fixed}}}}})
		}
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for h := range hosts {
		rng := rand.New(rand.NewPCG(uint64(h), 7))
		a := inventory.Asset{ID: inventory.NewID(), Name: fmt.Sprintf("host-%05d", h), Type: inventory.TypeServer,
			Criticality: inventory.LevelMedium, CreatedAt: now, UpdatedAt: now, Revision: 1}
		for _, name := range order {
			s := sources[name]
			v := s.main
			if s.sec != "" && rng.IntN(2) == 0 {
				v = s.sec
			}
			a.Software = append(a.Software, inventory.Software{Name: name, Version: v, Ecosystem: "Debian:12"})
		}
		a.Normalize()
		if err := db.Inventory().Transact(ctx, func(tx inventory.Tx) error { return tx.InsertAsset(ctx, &a) }); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	return feed
}

// BenchmarkFindingsEvaluate measures a full DB-backed evaluation (read the
// estate, match, write every host's findings with audit entries) on a first
// sync and on a re-run with nothing changed, and one host's re-evaluation.
func BenchmarkFindingsEvaluate(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			db := storetest.Open(b, engine, store.Options{})
			feed := seedSoftwareFleet(b, db, benchFindingsHosts)
			ctx := context.Background()
			svc := match.NewService(db.Findings(), nil)
			svc.SetIndex(match.NewIndex(feed, nil, nil))
			start := time.Now()
			sum, err := svc.EvaluateAll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			firstSync := time.Since(start)
			page, err := svc.Findings(ctx, match.FindingFilter{Limit: 1})
			if err != nil || len(page.Findings) == 0 {
				b.Fatalf("no findings: %v", err)
			}
			host := page.Findings[0].AssetID
			start = time.Now()
			if _, err := svc.EvaluateAll(ctx); err != nil {
				b.Fatal(err)
			}
			rerun := time.Since(start)
			for b.Loop() {
				if _, err := svc.EvaluateHost(ctx, host); err != nil {
					b.Fatal(err)
				}
			}
			// Reported after the loop: b.Loop resets metrics set before it.
			b.ReportMetric(firstSync.Seconds(), "first-sync-s")
			b.ReportMetric(rerun.Seconds(), "rerun-s")
			b.ReportMetric(float64(sum.Opened), "opened")
			b.ReportMetric(benchFindingsHosts, "hosts")
		})
	}
}
