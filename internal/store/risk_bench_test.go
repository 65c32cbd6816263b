package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// Risk benchmark estate: 100,000 findings on 1,000 assets, every one with a
// risk record, the size of a hospital group's open backlog.
const (
	benchRiskAssets   = 1000
	benchRiskFindings = 100_000
	benchRiskBatch    = 10_000
)

// seedRiskBench stores the estate and returns its records.
func seedRiskBench(b *testing.B, db *store.DB) []risk.Record {
	b.Helper()
	ctx := context.Background()
	inv := inventory.NewService(db.Inventory(), nil)
	var sites, groups []string
	for i := range 5 {
		s, err := inv.CreateSite(ctx, admin, inventory.Site{Name: fmt.Sprintf("Site %d", i), TimeZone: "Europe/Berlin"})
		if err != nil {
			b.Fatal(err)
		}
		g, err := inv.CreateGroup(ctx, admin, inventory.Group{Name: fmt.Sprintf("Group %d", i)})
		if err != nil {
			b.Fatal(err)
		}
		sites, groups = append(sites, s.ID), append(groups, g.ID)
	}
	rng := rand.New(rand.NewPCG(4, 2))
	now := riskT0
	assets := make([]string, benchRiskAssets)
	err := db.Inventory().Transact(ctx, func(tx inventory.Tx) error {
		for i := range assets {
			a := inventory.Asset{ID: inventory.NewID(), Name: fmt.Sprintf("host-%05d", i), Type: inventory.TypeServer,
				SiteID: sites[i%len(sites)], Criticality: inventory.LevelHigh, Tags: []string{"bench", fmt.Sprintf("dept-%d", i%40)},
				Groups: []string{groups[i%len(groups)]}, CreatedAt: now, UpdatedAt: now, Revision: 1}
			a.Normalize()
			assets[i] = a.ID
			if err := tx.InsertAsset(ctx, &a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]risk.Record, 0, benchRiskFindings)
	fs := make([]match.Finding, 0, benchRiskBatch)
	flush := func() {
		putFindings(b, db, fs...)
		fs = fs[:0]
	}
	tiers := []string{"critical", "high", "medium", "low"}
	for i := range benchRiskFindings {
		f := testFinding(assets[i%len(assets)], fmt.Sprintf("pkg-%d", i/len(assets)), fmt.Sprintf("CVE-2026-%06d", i), match.StateOpen)
		fs = append(fs, f)
		if len(fs) == benchRiskBatch {
			flush()
		}
		rank := rng.IntN(len(tiers))
		r := risk.Record{FindingID: f.ID, AssetID: f.AssetID, VulnID: f.VulnID, Status: risk.StatusOpen,
			Assessment: risk.Assessment{Mode: policy.ModeScore, Score: float64(rng.IntN(1000)) / 10, Tier: tiers[rank], Rank: rank,
				Factors: []risk.Factor{{Name: "cvss", Input: "7.5 (3.1)", Points: 30}, {Name: "exposure", Input: "internal", Points: 5},
					{Name: "criticality", Input: "high", Points: 10}, {Name: "epss", Input: "0.25", Points: 4}},
				TargetText: "30d", TargetWhy: "tier " + tiers[rank], Target: policy.Duration{Days: 30}, DueSoon: policy.Duration{Days: 7}},
			PolicyVersion: 1, FirstSeen: f.FirstSeen, ClockBasis: risk.BasisAwaitingFix, EPSS: f.EPSS, ComputedAt: now}
		if i%10 != 0 { // one in ten has no fix yet
			r.ClockStart, r.ClockBasis = f.FirstSeen, risk.BasisFirstSeen
			r.DueAt = now.Add(time.Duration(rng.IntN(60*24)-10*24) * time.Hour) // a sixth breached
			r.DueSoonAt, r.DueReason = r.DueAt.Add(-7*24*time.Hour), "30 days from first seen"
		}
		if i%20 == 1 {
			r.Status = risk.StatusExcepted
		}
		recs = append(recs, r)
	}
	flush()
	for start := 0; start < len(recs); start += benchRiskBatch {
		putRecords(b, db, recs[start:min(start+benchRiskBatch, len(recs))]...)
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	return recs
}

// BenchmarkRisk measures the worklist's first page and its breached
// filter, a 10,000-record upsert and streaming every finding to assess,
// over 100,000 findings with records.
func BenchmarkRisk(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			db := storetest.Open(b, engine, store.Options{})
			start := time.Now()
			recs := seedRiskBench(b, db)
			b.Logf("%s: seeded %d findings with records in %v", engine, len(recs), time.Since(start).Round(time.Millisecond))
			ctx := context.Background()
			for _, wl := range []struct {
				name string
				f    risk.WorklistFilter
			}{
				{"worklist-first-page", risk.WorklistFilter{Now: riskT0}},
				{"worklist-by-due", risk.WorklistFilter{Now: riskT0, Sort: "due"}},
				{"worklist-breached", risk.WorklistFilter{Now: riskT0, SLA: risk.SLABreached}},
				{"worklist-tier", risk.WorklistFilter{Now: riskT0, Tier: "critical"}},
				{"worklist-page-100", risk.WorklistFilter{Now: riskT0, Offset: 5000, Limit: 50}},
			} {
				b.Run(wl.name, func(b *testing.B) {
					var p risk.WorklistPage
					for b.Loop() {
						var err error
						if p, err = db.Risk().Worklist(ctx, wl.f); err != nil {
							b.Fatal(err)
						}
					}
					if len(p.Items) != 50 {
						b.Fatalf("worklist page has %d items; want 50", len(p.Items))
					}
					b.ReportMetric(float64(p.Total), "matched")
				})
			}
			b.Run("put-records-10k", func(b *testing.B) {
				batch := recs[:benchRiskBatch]
				for b.Loop() {
					putRecords(b, db, batch...)
				}
				b.ReportMetric(benchRiskBatch, "records")
			})
			b.Run("each-subject", func(b *testing.B) {
				n := 0
				for b.Loop() {
					n = 0
					if err := db.Risk().EachSubject(ctx, "", func(s risk.Subject) error {
						if s.Record == nil || len(s.Asset.Tags) != 2 {
							return fmt.Errorf("subject %s: record %v, tags %v", s.Finding.ID, s.Record != nil, s.Asset.Tags)
						}
						n++
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				if n != benchRiskFindings {
					b.Fatalf("EachSubject streamed %d subjects; want %d", n, benchRiskFindings)
				}
				b.ReportMetric(float64(n), "subjects")
			})
		})
	}
}
