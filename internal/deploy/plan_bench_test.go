package deploy

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/policy"
)

// BenchmarkPlanWave plans one wave at fleet scale under the default
// policy: assets spread over 20 sites in four time zones, a quarter each
// on a weekly window, a daily window, a named policy window and the
// baseline, ten jobs at once per site, one hour per job.
func BenchmarkPlanWave(b *testing.B) {
	zones := []string{"America/Chicago", "America/New_York", "Europe/Berlin", "Australia/Sydney"}
	windows := []string{"sun-0200-0500", "daily-1900-2300", "servers-weekly", ""}
	for _, n := range []int{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("assets-%d", n), func(b *testing.B) {
			cal, err := NewCalendar(policy.Default(), nil)
			if err != nil {
				b.Fatal(err)
			}
			wave := make([]Asset, n)
			for i := range wave {
				loc, err := time.LoadLocation(zones[i%len(zones)])
				if err != nil {
					b.Fatal(err)
				}
				wave[i] = Asset{ID: fmt.Sprintf("a%05d", i), Site: fmt.Sprintf("site-%02d", i%20), Location: loc, Window: windows[i%len(windows)]}
			}
			from := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
			var planned []PlannedStart
			for b.Loop() {
				if planned, err = cal.Plan(wave, time.Hour, from, PlanOptions{ChangeType: policy.ChangeNormal, MaxConcurrent: 10}); err != nil {
					b.Fatal(err)
				}
			}
			if len(planned) != n {
				b.Fatalf("planned %d of %d assets", len(planned), n)
			}
		})
	}
}
