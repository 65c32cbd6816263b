package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// staticIntel is an advisory index that knows nothing: every finding is
// scored on its own KEV/EPSS fields and the asset.
type staticIntel struct{ ix *match.Index }

func (s staticIntel) Intel(id string, aliases []string) (match.Intel, bool) {
	return s.ix.Intel(id, aliases), true
}

// BenchmarkRiskRecompute re-scores an estate of 100,000 open findings on
// 1,000 assets under the default policy: the first pass rewrites every
// record (the seeded ones differ), later passes find nothing changed and
// write nothing — the cost of the watcher's periodic pass.
func BenchmarkRiskRecompute(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			db := storetest.Open(b, engine, store.Options{})
			seedRiskBench(b, db)
			ctx := context.Background()
			now := func() time.Time { return riskT0 }
			svc := risk.NewService(db.Risk(), policy.NewService(db.Policies(), now),
				staticIntel{match.NewIndex(nil, nil, nil)}, risk.Options{Now: now})
			start := time.Now()
			sum, err := svc.Recompute(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: first pass assessed %d, wrote %d records and %d events in %v",
				engine, sum.Assessed, sum.Changed, sum.Events, time.Since(start).Round(time.Millisecond))
			for b.Loop() {
				if sum, err = svc.Recompute(ctx, ""); err != nil {
					b.Fatal(err)
				}
			}
			if sum.Changed != 0 {
				b.Fatalf("an unchanged estate rewrote %d records", sum.Changed)
			}
			b.ReportMetric(float64(sum.Assessed), "findings")
		})
	}
}
