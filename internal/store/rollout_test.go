package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestRolloutStore holds both engines to one contract: a rollout with its
// waves and items round-trips, writes are revision-checked, one job is
// never recorded on two items, the lease admits one replica at a time,
// and the deployment log keeps its entries in order.
func TestRolloutStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newChangeFixture(t, db)
		c := f.into(t, change.Scheduled)
		rs := db.Rollouts()
		at := time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC)
		start, end := at.Add(time.Hour), at.Add(2*time.Hour)
		ro := deploy.Rollout{ID: "r1", ChangeID: c.ID, ChangeType: "normal", State: deploy.RolloutRunning, PolicySHA: "abc",
			JobDuration: time.Hour, CreatedBy: "tech", CreatedAt: at, UpdatedAt: at, Revision: 1,
			Waves: []deploy.Wave{
				{Index: 0, Ring: "pilot", State: deploy.WavePending, PlannedStart: &start, PlannedEnd: &end, Items: []deploy.Item{
					{ID: "i1", RolloutID: "r1", Wave: 0, Seq: 0, AssetID: f.server, AssetName: "FILE-01", Kind: deploy.ItemAgent, AgentID: "ag1",
						Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3"}}, Previous: map[string]string{"openssl": "2"},
						PlannedStart: &start, PlannedEnd: &end, SlotEnd: &end, State: deploy.ItemPending},
					{ID: "i2", RolloutID: "r1", Wave: 0, Seq: 1, AssetID: f.analyzer, AssetName: "CHEM-01", Kind: deploy.ItemManual,
						Task: "vendor re-flash", Owner: "vendor", Due: &end, State: deploy.ItemPending, Previous: map[string]string{}},
				}},
				{Index: 1, Ring: "rest", State: deploy.WaveSkipped, Items: []deploy.Item{}},
			}}
		err := rs.TransactRollout(ctx, func(tx deploy.RolloutTx) error {
			if err := tx.InsertRollout(ctx, ro); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, audit.Record{Actor: admin, Action: "rollout.start", ObjectType: "rollout", ObjectID: ro.ID})
		})
		if err != nil {
			t.Fatalf("InsertRollout: %v", err)
		}
		got, err := rs.GetRollout(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ro, got); diff != "" {
			t.Errorf("GetRollout (-want +got):\n%s", diff)
		}
		if got, err := rs.RolloutByChange(ctx, c.ID); err != nil || got.ID != "r1" {
			t.Errorf("RolloutByChange = %s, %v", got.ID, err)
		}
		if _, err := rs.RolloutByChange(ctx, "nope"); errs.KindOf(err) != errs.NotFound {
			t.Errorf("RolloutByChange(unknown) = %v; want NotFound", err)
		}
		dup := ro
		dup.ID = "r2"
		dup.Waves = nil
		if err := rs.TransactRollout(ctx, func(tx deploy.RolloutTx) error { return tx.InsertRollout(ctx, dup) }); errs.KindOf(err) != errs.Conflict {
			t.Errorf("a second rollout of one change = %v; want Conflict", err)
		}

		// Revision-checked rollout writes; item and wave updates.
		err = rs.TransactRollout(ctx, func(tx deploy.RolloutTx) error {
			cur, err := tx.LockRollout(ctx, "r1")
			if err != nil {
				return err
			}
			cur.State, cur.Reason, cur.Revision = deploy.RolloutHalted, "gate", cur.Revision+1
			if err := tx.UpdateRollout(ctx, cur); err != nil {
				return err
			}
			w := cur.Waves[0]
			w.State, w.Verdict, w.Reason = deploy.WaveHalted, deploy.Halt, "2 of 5 failed"
			if err := tx.UpdateWave(ctx, "r1", w); err != nil {
				return err
			}
			it := w.Items[0]
			it.JobID, it.State, it.Attempts = "job-1", deploy.ItemQueued, 1
			if err := tx.UpdateItem(ctx, it); err != nil {
				return err
			}
			it2 := w.Items[1]
			it2.JobID = "job-1"
			return tx.UpdateItem(ctx, it2)
		})
		if errs.KindOf(err) != errs.Conflict {
			t.Fatalf("the same job on a second item = %v; want Conflict (and nothing written)", err)
		}
		err = rs.TransactRollout(ctx, func(tx deploy.RolloutTx) error {
			cur, err := tx.LockRollout(ctx, "r1")
			if err != nil {
				return err
			}
			stale := cur
			cur.State, cur.Revision = deploy.RolloutHalted, cur.Revision+1
			if err := tx.UpdateRollout(ctx, cur); err != nil {
				return err
			}
			stale.State, stale.Revision = deploy.RolloutPaused, stale.Revision+1
			if err := tx.UpdateRollout(ctx, stale); errs.KindOf(err) != errs.Conflict {
				t.Errorf("a stale rollout write = %v; want Conflict", err)
			}
			it := cur.Waves[0].Items[0]
			it.JobID, it.State = "job-1", deploy.ItemQueued
			return tx.UpdateItem(ctx, it)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ = rs.GetRollout(ctx, "r1")
		if got.State != deploy.RolloutHalted || got.Revision != 2 || got.Waves[0].Items[0].JobID != "job-1" {
			t.Errorf("after update: %s rev %d job %q", got.State, got.Revision, got.Waves[0].Items[0].JobID)
		}
		if l, err := rs.ListRollouts(ctx, deploy.RolloutFilter{States: deploy.ActiveRolloutStates}); err != nil || len(l) != 1 {
			t.Errorf("ListRollouts(active) = %d, %v; want 1", len(l), err)
		}
		if l, err := rs.ListRollouts(ctx, deploy.RolloutFilter{States: []deploy.RolloutState{deploy.RolloutCompleted}}); err != nil || len(l) != 0 {
			t.Errorf("ListRollouts(completed) = %d, %v; want 0", len(l), err)
		}

		// The lease: one owner at a time until it expires or is released.
		now := at
		if ok, err := rs.ClaimRollout(ctx, "r1", "a", now, now.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "b", now.Add(30*time.Second), now.Add(2*time.Minute)); ok {
			t.Error("a second replica claimed a held lease")
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "a", now.Add(30*time.Second), now.Add(2*time.Minute)); !ok {
			t.Error("the holder could not renew its lease")
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "b", now.Add(3*time.Minute), now.Add(4*time.Minute)); !ok {
			t.Error("an expired lease was not taken over")
		}
		if ok, _ := rs.RenewRollout(ctx, "r1", "a", now.Add(5*time.Minute)); ok {
			t.Error("a former holder renewed a lease another replica took over")
		}
		if ok, err := rs.RenewRollout(ctx, "r1", "b", now.Add(5*time.Minute)); !ok || err != nil {
			t.Errorf("the holder's renewal = %v, %v; want true", ok, err)
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "a", now.Add(4*time.Minute+30*time.Second), now.Add(6*time.Minute)); ok {
			t.Error("a renewed lease was taken over before its new expiry")
		}
		if err := rs.ReleaseRollout(ctx, "r1", "a"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "a", now.Add(3*time.Minute), now.Add(4*time.Minute)); ok {
			t.Error("a release by a former holder freed another's lease")
		}
		if err := rs.ReleaseRollout(ctx, "r1", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := rs.ClaimRollout(ctx, "r1", "a", now.Add(3*time.Minute), now.Add(4*time.Minute)); !ok {
			t.Error("a released lease could not be claimed")
		}
		if err := rs.ReleaseRollout(ctx, "r1", "a"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := rs.RenewRollout(ctx, "r1", "a", now.Add(5*time.Minute)); ok {
			t.Error("a released lease was renewed")
		}

		// The deployment log, per asset and per change, in order.
		err = rs.TransactRollout(ctx, func(tx deploy.RolloutTx) error {
			for i, ev := range []string{deploy.EventPlanned, deploy.EventJobQueued, deploy.EventFailed} {
				e := deploy.LogEntry{RolloutID: "r1", ChangeID: c.ID, ItemID: "i1", AssetID: f.server, At: at.Add(time.Duration(i) * time.Minute),
					Actor: "agent ag1", Event: ev, JobID: "job-1", Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3"}},
					Steps: []deploy.LogStep{{Name: "install", ExitCode: 100, Started: at, Ended: at}}, Deviation: "failed"}
				if err := tx.AddLog(ctx, e); err != nil {
					return err
				}
			}
			return tx.AddLog(ctx, deploy.LogEntry{RolloutID: "r1", ChangeID: c.ID, ItemID: "i2", AssetID: f.analyzer, At: at, Actor: "tech", Event: deploy.EventManualOpen})
		})
		if err != nil {
			t.Fatal(err)
		}
		log, err := rs.DeploymentLog(ctx, c.ID, f.server)
		if err != nil || len(log) != 3 || log[2].Event != deploy.EventFailed || len(log[2].Steps) != 1 || log[2].Packages[0].Name != "openssl" {
			t.Errorf("DeploymentLog(server) = %+v, %v", log, err)
		}
		if all, _ := rs.DeploymentLog(ctx, c.ID, ""); len(all) != 4 {
			t.Errorf("DeploymentLog(change) has %d entries; want 4", len(all))
		}

		// Planning facts.
		info, err := rs.AssetInfo(ctx, []string{f.analyzer, f.server})
		if err != nil || len(info) != 2 || info[0].ID != f.analyzer || info[1].Name != "FILE-01" || info[0].AgentID != "" {
			t.Errorf("AssetInfo = %+v, %v", info, err)
		}
		if _, err := rs.AssetInfo(ctx, []string{"nope"}); errs.KindOf(err) != errs.NotFound {
			t.Errorf("AssetInfo(unknown) = %v; want NotFound", err)
		}
		// Installed versions of several assets in one call; an asset
		// without the packages has no entry.
		inv := inventory.NewService(db.Inventory(), nil)
		var withSW []string
		for i, sw := range [][]inventory.Software{
			{{Name: "openssl", Version: "3.0.11-1", Ecosystem: "Debian:12"}, {Name: "curl", Version: "7.88.1-10", Ecosystem: "Debian:12"}},
			{{Name: "openssl", Version: "3.0.13-1", Ecosystem: "Debian:12"}, {Name: "bash", Version: "5.2"}},
		} {
			a, err := inv.CreateAsset(ctx, admin, inventory.Asset{Name: fmt.Sprintf("SW-%d", i), Type: inventory.TypeServer, Software: sw})
			if err != nil {
				t.Fatal(err)
			}
			withSW = append(withSW, a.ID)
		}
		inst, err := rs.Installed(ctx, append(withSW, f.analyzer), []string{"openssl", "curl"})
		want := map[string]map[string]deploy.InstalledPackage{
			withSW[0]: {"openssl": {Version: "3.0.11-1", Ecosystem: "Debian:12"}, "curl": {Version: "7.88.1-10", Ecosystem: "Debian:12"}},
			withSW[1]: {"openssl": {Version: "3.0.13-1", Ecosystem: "Debian:12"}},
		}
		if diff := cmp.Diff(want, inst); err != nil || diff != "" {
			t.Errorf("Installed = %v (-want +got):\n%s", err, diff)
		}
		facts, err := rs.TargetFacts(ctx, change.Targets{Groups: []string{f.labGroup}})
		if err != nil || len(facts) != 1 || facts[0].ID != f.analyzer {
			t.Errorf("TargetFacts(lab) = %+v, %v", facts, err)
		}
	})
}
