// Package deploytest drives the rollout engine in tests that run it
// against real agents or simulated ones.
package deploytest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/deploy"
)

// TickUntil ticks the engine until cond holds for rollout id, calling
// between after each round that did not satisfy it (to move a clock, to
// let agents work); it fails t, describing the rollout, once timeout of
// real time has passed.
func TickUntil(t testing.TB, ctx context.Context, r *deploy.Rollouts, id, what string, timeout time.Duration,
	cond func(deploy.Rollout) bool, between func(deploy.Rollout)) deploy.Rollout {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if err := r.Tick(ctx); err != nil {
			t.Fatalf("Tick: %v", err)
		}
		ro, err := r.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(ro) {
			return ro
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s; rollout %s (%s): %s", what, ro.State, ro.Reason, Describe(ro))
		}
		between(ro)
	}
}

// Describe lists a rollout's waves and items, for failure messages.
func Describe(ro deploy.Rollout) string {
	var b strings.Builder
	for _, w := range ro.Waves {
		fmt.Fprintf(&b, "\n  %s %s [%s: %s]", w.Ring, w.State, w.Verdict, w.Reason)
		for _, it := range w.Items {
			fmt.Fprintf(&b, "\n    %s %s %s (%s) rollback=%s", it.AssetName, it.Kind, it.State, it.Outcome, it.RollbackState)
		}
	}
	return b.String()
}
