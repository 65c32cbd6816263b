package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
)

// operate runs an operator's action on a rollout under its lease, so it
// never interleaves with the engine's step on another replica.
func (s *Rollouts) operate(ctx context.Context, u change.User, id, what string, fn func(r *run) error) (Rollout, error) {
	if err := mayOperate(u, what); err != nil {
		return Rollout{}, err
	}
	busy, err := s.withLease(ctx, id, func(l *lease) error {
		ro, err := s.store.GetRollout(ctx, id)
		if err != nil {
			return err
		}
		pol, _, err := s.policies.Current(ctx)
		if err != nil {
			return err
		}
		r := &run{s: s, ro: ro, pol: pol, now: s.now(), lease: l}
		if err := r.sync(ctx); err != nil {
			return err
		}
		return fn(r)
	})
	if err != nil {
		return Rollout{}, err
	}
	if busy {
		return Rollout{}, errBusy
	}
	return s.store.GetRollout(ctx, id)
}

func refuse(ro Rollout, what string) error {
	return errs.E(errs.Conflict, "cannot %s a rollout that is %s", what, strings.ReplaceAll(string(ro.State), "_", " "))
}

// Pause stops the rollout from starting waves or queuing jobs; jobs
// already queued still run and are recorded.
func (s *Rollouts) Pause(ctx context.Context, u change.User, id, why string) (Rollout, error) {
	if err := needWhy(why, "paused"); err != nil {
		return Rollout{}, err
	}
	return s.operate(ctx, u, id, "pause a rollout", func(r *run) error {
		if r.ro.State != RolloutRunning {
			return refuse(r.ro, "pause")
		}
		r.ro.State, r.ro.Reason = RolloutPaused, why
		return r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.pause", ObjectType: "rollout", ObjectID: r.ro.ID,
			After: map[string]any{"state": RolloutPaused}, Reason: why})
	})
}

// Resume continues a paused rollout, or a halted one: the change resumes,
// and the halted wave's failed and cancelled assets get a new job (a
// retry) whose results the gate then reads instead of the old ones.
func (s *Rollouts) Resume(ctx context.Context, u change.User, id, why string) (Rollout, error) {
	if err := needWhy(why, "resumed"); err != nil {
		return Rollout{}, err
	}
	ro, err := s.operate(ctx, u, id, "resume a rollout", func(r *run) error {
		switch r.ro.State {
		case RolloutPaused:
		case RolloutHalted:
			if err := r.changeTo(ctx, u, change.InProgress, why); err != nil {
				return err
			}
		default:
			return refuse(r.ro, "resume")
		}
		var waves []int
		retried := 0
		if wi := r.ro.current(); wi >= 0 && r.ro.Waves[wi].State == WaveHalted {
			w := &r.ro.Waves[wi]
			w.State, w.Verdict, w.Reason, w.FinishedAt = WaveRunning, "", "", nil
			waves = append(waves, wi)
			for _, it := range w.Items {
				if it.Kind != ItemAgent || (it.State != ItemFailed && it.State != ItemCancelled) {
					continue
				}
				if it.RollbackState == RollbackQueued || it.RollbackState == RollbackRunning {
					continue
				}
				it.State, it.RollbackState = ItemPending, RollbackNone
				retried++
				if err := r.saveItem(ctx, it, nil, s.entry(r.ro, it, userName(u), EventPlanned, "retry", "retry after resume: "+why)); err != nil {
					return err
				}
			}
		}
		r.ro.State, r.ro.Reason = RolloutRunning, why
		return r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.resume", ObjectType: "rollout", ObjectID: r.ro.ID,
			After: map[string]any{"state": RolloutRunning, "retried": retried}, Reason: why}, waves...)
	})
	if err != nil {
		return Rollout{}, err
	}
	if err := s.advance(ctx, id); err != nil {
		return Rollout{}, err
	}
	return s.store.GetRollout(ctx, ro.ID)
}

// Abort ends the rollout for good: queued jobs are cancelled, assets not
// yet reached are skipped, and the change is cancelled. What was already
// installed stays; roll back first to undo it.
func (s *Rollouts) Abort(ctx context.Context, u change.User, id, why string) (Rollout, error) {
	if err := needWhy(why, "aborted"); err != nil {
		return Rollout{}, err
	}
	return s.operate(ctx, u, id, "abort a rollout", func(r *run) error {
		switch r.ro.State {
		case RolloutRunning, RolloutPaused, RolloutHalted, RolloutAwaitingCompletion:
		default:
			return refuse(r.ro, "abort")
		}
		if err := r.cancelQueued(ctx, u.Actor, "rollout aborted: "+why); err != nil {
			return err
		}
		now := r.now
		var waves []int
		for wi := range r.ro.Waves {
			w := &r.ro.Waves[wi]
			for _, it := range w.Items {
				if it.State == ItemPending || it.State == ItemOpen {
					it.State, it.Outcome, it.FinishedAt = ItemSkipped, "rollout aborted", &now
					if err := r.saveItem(ctx, it, nil, s.entry(r.ro, it, userName(u), EventSkipped, "skipped", why)); err != nil {
						return err
					}
				}
			}
			if w.State == WavePending || w.State == WaveRunning || w.State == WaveSoaking {
				w.State, w.FinishedAt = WaveSkipped, &now
				if w.StartedAt != nil {
					w.State = WaveHalted
				}
				waves = append(waves, wi)
			}
		}
		r.ro.State, r.ro.Reason, r.ro.FinishedAt = RolloutAborted, why, &now
		if err := r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.abort", ObjectType: "rollout", ObjectID: r.ro.ID,
			After: map[string]any{"state": RolloutAborted}, Reason: why}, waves...); err != nil {
			return err
		}
		c, err := s.changes.Get(ctx, r.ro.ChangeID)
		if err != nil {
			return err
		}
		if c.State == change.InProgress || c.State == change.Halted {
			return r.changeTo(ctx, u, change.Cancelled, why)
		}
		return nil
	})
}

// RollBack sends rollback jobs to every asset the rollout changed (a
// manual rollback task where the change was applied by hand) and halts
// the change until they report; the change is rolled back when they all
// succeed.
func (s *Rollouts) RollBack(ctx context.Context, u change.User, id, why string) (Rollout, error) {
	if err := needWhy(why, "rolled back (which trigger fired)"); err != nil {
		return Rollout{}, err
	}
	return s.operate(ctx, u, id, "roll back a rollout", func(r *run) error {
		switch r.ro.State {
		case RolloutRunning, RolloutPaused, RolloutHalted, RolloutAwaitingCompletion:
		default:
			return refuse(r.ro, "roll back")
		}
		if r.ro.State != RolloutHalted {
			if err := r.changeTo(ctx, u, change.Halted, "rolling back: "+why); err != nil {
				return err
			}
		}
		// A failed rollback may be tried again.
		for wi := range r.ro.Waves {
			for _, it := range r.ro.Waves[wi].Items {
				if it.RollbackState == RollbackFailed {
					it.RollbackState = RollbackNone
					if err := r.saveItem(ctx, it, nil); err != nil {
						return err
					}
				}
			}
		}
		return r.rollback(ctx, u, why)
	})
}

// Manual task outcomes an operator records.
const (
	ManualDone   = "done"
	ManualFailed = "failed"
)

// RecordManual records the outcome of an open manual task (done or
// failed) with a note; the wave's gate counts it like a job's result. An
// outcome recorded before the task's planned start is accepted (people
// do work early) and logged as a deviation. On a manual rollback task
// (a done item the rollout is rolling back: its rollback is queued)
// done means rolled back and failed a failed rollback, as a rollback
// job's result would.
func (s *Rollouts) RecordManual(ctx context.Context, u change.User, rolloutID, itemID, outcome, note string) (Rollout, error) {
	if outcome != ManualDone && outcome != ManualFailed {
		return Rollout{}, errs.E(errs.Invalid, "outcome must be %q or %q", ManualDone, ManualFailed)
	}
	if strings.TrimSpace(note) == "" || len(note) > 2000 {
		return Rollout{}, errs.E(errs.Invalid, "a note of up to 2000 characters is required: what was done, by whom, what was seen")
	}
	ro, err := s.operate(ctx, u, rolloutID, "record a manual task", func(r *run) error {
		var it *Item
		for wi := range r.ro.Waves {
			for ii := range r.ro.Waves[wi].Items {
				if r.ro.Waves[wi].Items[ii].ID == itemID {
					it = &r.ro.Waves[wi].Items[ii]
				}
			}
		}
		if it == nil {
			return errs.E(errs.NotFound, "rollout %s has no item %q", rolloutID, itemID)
		}
		if it.Kind == ItemManual && it.RollbackState == RollbackQueued {
			return r.recordRollback(ctx, u, *it, outcome, note)
		}
		if it.Kind != ItemManual || it.State != ItemOpen {
			return errs.E(errs.Conflict, "item %s is a %s item that is %s; only an open manual task takes an outcome", itemID, it.Kind, it.State)
		}
		if !r.ro.State.Active() {
			return refuse(r.ro, "record a manual task on")
		}
		item := *it
		now := r.now
		item.State, item.Outcome, item.Note, item.RecordedBy, item.FinishedAt = ItemDone, ManualDone, note, userName(u), &now
		event, deviations := EventManualDone, []string(nil)
		if outcome == ManualFailed {
			item.State, item.Outcome, event, deviations = ItemFailed, ManualFailed, EventManualFail, []string{"manual task failed"}
		}
		early := item.PlannedStart != nil && now.Before(*item.PlannedStart)
		if early {
			deviations = append(deviations, "recorded before its planned start "+item.PlannedStart.Format(time.RFC3339))
		}
		return r.saveItem(ctx, item, &audit.Record{Actor: u.Actor, Action: "rollout.manual_task", ObjectType: "rollout", ObjectID: rolloutID,
			After: map[string]any{"item": itemID, "asset_id": item.AssetID, "outcome": outcome, "before_planned_start": early}, Reason: note},
			s.entry(r.ro, item, userName(u), event, strings.Join(deviations, "; "), note))
	})
	if err != nil {
		return Rollout{}, err
	}
	if err := s.advance(ctx, ro.ID); err != nil {
		return Rollout{}, err
	}
	return s.store.GetRollout(ctx, ro.ID)
}

// recordRollback records a manual rollback task's outcome: done rolls
// the item back, failed fails its rollback (the rollout then halts
// naming the asset, as for a failed rollback job).
func (r *run) recordRollback(ctx context.Context, u change.User, it Item, outcome, note string) error {
	it.RollbackState = RollbackDone
	event, deviation := EventRolledBack, "rolled back"
	if outcome == ManualFailed {
		it.RollbackState, event, deviation = RollbackFailed, EventRollbackKO, "manual rollback failed"
	}
	return r.saveItem(ctx, it, &audit.Record{Actor: u.Actor, Action: "rollout.manual_rollback", ObjectType: "rollout", ObjectID: r.ro.ID,
		After: map[string]any{"item": it.ID, "asset_id": it.AssetID, "outcome": outcome, "rollback_state": it.RollbackState}, Reason: note},
		r.s.entry(r.ro, it, userName(u), event, deviation, note))
}

// PackageState is one package's convergence on an asset.
type PackageState struct {
	Name   string `json:"name"`
	Target string `json:"target_version"`
	// Installed is what the newest inventory shows ("" if absent).
	Installed string `json:"installed,omitempty"`
}

// Convergence is an item's verification against the inventory.
type Convergence struct {
	Item Item `json:"item"`
	// ConvergedAt is the time of the inventory that proved the target
	// versions; nil when not (yet) converged.
	ConvergedAt *time.Time     `json:"converged_at,omitempty"`
	Missing     []PackageState `json:"missing,omitempty"`
	Reason      string         `json:"reason"`
}

// verify checks one finished item against the asset's stored inventory:
// it has converged when an inventory reported after the job (or the
// manual task) finished shows every target version or a newer one. An
// item without packages (a vendor task) converges when it is done.
func (s *Rollouts) verify(ctx context.Context, it Item) (Convergence, error) {
	c := Convergence{Item: it}
	if it.ConvergedAt != nil {
		c.ConvergedAt, c.Reason = it.ConvergedAt, "converged"
		return c, nil
	}
	if it.State != ItemSucceeded && it.State != ItemDone {
		c.Reason = "not deployed: " + string(it.State)
		return c, nil
	}
	if len(it.Packages) == 0 {
		c.ConvergedAt, c.Reason = it.FinishedAt, "manual task recorded done"
		return c, nil
	}
	infos, err := s.store.AssetInfo(ctx, []string{it.AssetID})
	if errs.KindOf(err) == errs.NotFound {
		c.Reason = "the asset is no longer in the inventory"
		return c, nil
	} else if err != nil {
		return c, err
	}
	a := infos[0]
	var evidence *time.Time
	finished := it.FinishedAt
	if finished == nil {
		c.Reason = "no finish time recorded"
		return c, nil
	}
	// An agent inventory stored at the instant the result was is after
	// it: the agent sends its inventory after its result. The versions
	// decide anyway, so an older list never proves a target.
	if a.InventoryAt != nil && !a.InventoryAt.Before(*finished) {
		evidence = a.InventoryAt
	} else if a.UpdatedAt.After(*finished) {
		// A re-imported scan or SBOM rewrites the asset.
		t := a.UpdatedAt
		evidence = &t
	}
	if evidence == nil {
		c.Reason = "no inventory newer than the deployment yet"
		return c, nil
	}
	all, err := s.store.Installed(ctx, []string{it.AssetID}, pkgNames(it.Packages))
	if err != nil {
		return c, err
	}
	inst := all[it.AssetID]
	for _, p := range it.Packages {
		got, ok := inst[p.Name]
		if !ok {
			c.Missing = append(c.Missing, PackageState{Name: p.Name, Target: p.TargetVersion})
			continue
		}
		if got.Version == p.TargetVersion {
			continue
		}
		if cmp, err := match.CompareVersions(got.Ecosystem, got.Version, p.TargetVersion); err != nil || cmp < 0 {
			c.Missing = append(c.Missing, PackageState{Name: p.Name, Target: p.TargetVersion, Installed: got.Version})
		}
	}
	if len(c.Missing) > 0 {
		parts := make([]string, len(c.Missing))
		for i, m := range c.Missing {
			parts[i] = fmt.Sprintf("%s is %q, not %s", m.Name, m.Installed, m.Target)
		}
		c.Reason = "the inventory of " + evidence.Format(time.RFC3339) + " shows " + strings.Join(parts, "; ")
		return c, nil
	}
	c.ConvergedAt = evidence
	c.Reason = "the inventory of " + evidence.Format(time.RFC3339) + " shows " + pkgList(it.Packages)
	return c, nil
}

// NotConverged lists a change's deployed items whose asset has not (yet)
// shown the target versions in an inventory newer than the deployment —
// the retry list. Items that failed, were skipped, cancelled or rolled
// back are listed too, with why, since they did not converge either.
// Findings are never closed here: the matcher closes them from the same
// inventories.
func (s *Rollouts) NotConverged(ctx context.Context, changeID string) ([]Convergence, error) {
	ro, err := s.store.RolloutByChange(ctx, changeID)
	if err != nil {
		return nil, err
	}
	var out []Convergence
	for _, w := range ro.Waves {
		for _, it := range w.Items {
			if it.RollbackState == RollbackDone {
				out = append(out, Convergence{Item: it, Reason: "rolled back"})
				continue
			}
			c, err := s.verify(ctx, it)
			if err != nil {
				return nil, err
			}
			if c.ConvergedAt == nil {
				out = append(out, c)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Convergence) int { return strings.Compare(a.Item.AssetName, b.Item.AssetName) })
	return out, nil
}
