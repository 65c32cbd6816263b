package main

import (
	"context"

	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
)

// inventoryListeners fans a changed inventory out to every listener: the
// matcher re-evaluates the host, the rollout engine checks convergence.
type inventoryListeners []fleet.InventoryListener

func (ls inventoryListeners) InventoryChanged(ctx context.Context, assetID string) {
	for _, l := range ls {
		l.InventoryChanged(ctx, assetID)
	}
}

// rolloutKick wakes the rollout engine; it is built before the engine
// (the engine needs the fleet service, the fleet service its listener).
type rolloutKick struct{ r *deploy.Rollouts }

func (k *rolloutKick) InventoryChanged(ctx context.Context, assetID string) {
	if k.r != nil {
		k.r.InventoryChanged(ctx, assetID)
	}
}

// JobFinished wakes the engine on every job result, so a wave's gate is
// read (and the next wave or a halt follows) without waiting for the timer.
func (k *rolloutKick) JobFinished(context.Context, fleet.Job) {
	if k.r != nil {
		k.r.Kick()
	}
}
