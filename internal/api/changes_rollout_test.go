package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestChangeStartStartsRollout: with the rollout engine wired, starting a
// change through the API starts its rollout too — rings and waves exist and
// the engine will advance them — so no change is ever in progress with
// nothing deploying it.
func TestChangeStartStartsRollout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		fl := fleet.NewService(db.Fleet(), fleet.Options{Windows: fleet.NewAssetWindows(e.a.Inventory, 0, nil)})
		ro := deploy.NewRollouts(db.Rollouts(), e.a.Changes, fl, e.a.Policies, deploy.RolloutOptions{Now: e.clock.Now})
		e.a.Rollouts = ro
		var c change.Change
		e.do("olga", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &c)
		r, _ := e.act("olga", c, "submit", nil, http.StatusOK)
		r, _ = e.act("bob", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("root", r.Change, "approve", nil, http.StatusOK)
		r, _ = e.act("olga", r.Change, "schedule", nil, http.StatusOK)
		e.passRun("olga", r.Change)
		r, _ = e.act("olga", r.Change, "start", map[string]any{"why": "window tonight"}, http.StatusOK)
		if r.State != change.InProgress {
			t.Fatalf("after start: state %s; want in_progress", r.State)
		}
		got, err := ro.ByChange(context.Background(), c.ID)
		if err != nil {
			t.Fatalf("ByChange after an API start: %v; want the change's rollout", err)
		}
		if len(got.Waves) == 0 {
			t.Errorf("rollout %s has no waves", got.ID)
		}
		// A second start is refused by the change's state machine and
		// starts no second rollout.
		e.act("olga", r.Change, "start", nil, http.StatusConflict)
		if list, err := ro.List(context.Background(), deploy.RolloutFilter{ChangeID: c.ID}); err != nil || len(list) != 1 {
			t.Errorf("rollouts of the change = %d, %v; want exactly 1", len(list), err)
		}
	})
}
