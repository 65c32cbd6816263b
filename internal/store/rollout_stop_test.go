package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestRolloutStopsWhenChangeHalted: an operator halts the change itself
// (the change API, not the rollout's): on its next tick the engine issues
// no further job, cancels the queued ones and halts the rollout, so a
// halted change never keeps deploying.
func TestRolloutStopsWhenChangeHalted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		w := newRolloutWorld(t, db)
		hold := make(chan struct{}) // the agents enroll, then stay silent
		pilots := <-w.sim(t, ctx, &wg, "pilot", w.pilot, 3, 0, hold)
		<-w.sim(t, ctx, &wg, "ward", w.rest, 2, 0, hold)
		c := w.scheduledChange(t)
		ro, err := w.rollouts.Start(ctx, tech, c.ID, "clinic window open")
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		queued, err := w.fleet.Jobs(ctx, fleet.JobFilter{ChangeID: c.ID})
		if err != nil || queued.Total == 0 {
			t.Fatalf("jobs after start = %d, %v; want the pilot's first jobs queued (%d pilots)", queued.Total, err, len(pilots))
		}
		if _, err := w.changes.Halt(ctx, tech, c.ID, change.Step{Why: "lab reports analyzer errors"}); err != nil {
			t.Fatalf("Halt the change: %v", err)
		}
		if err := w.rollouts.Tick(ctx); err != nil {
			t.Fatalf("Tick: %v", err)
		}
		got, err := w.rollouts.Get(ctx, ro.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != deploy.RolloutHalted {
			t.Fatalf("rollout after the change was halted = %s (%s); want halted", got.State, got.Reason)
		}
		jobs, err := w.fleet.Jobs(ctx, fleet.JobFilter{ChangeID: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		if jobs.Total != queued.Total {
			t.Errorf("%d jobs after the halt; want no new ones (%d before)", jobs.Total, queued.Total)
		}
		for _, j := range jobs.Jobs {
			if j.State != fleet.JobCancelled {
				t.Errorf("job %s on %s is %s after the change was halted; want cancelled", j.ID, j.AssetID, j.State)
			}
		}
		close(hold)
	})
}
