package deploy

import (
	"context"
	"slices"
	"strings"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
)

// Halt is an operator's halt of a running (or paused) rollout: the change
// halts, queued jobs are cancelled, and the rollout and its current wave
// halt. Nothing is rolled back: the operator then resumes (retrying the
// failed and cancelled assets), rolls back or aborts. A rollout that is
// already halted, rolling back, awaiting completion or ended refuses.
func (s *Rollouts) Halt(ctx context.Context, u change.User, id, why string) (Rollout, error) {
	return s.halt(ctx, u, id, why, why)
}

// halt halts the rollout id with the change: why goes to the change's
// history, reason to the rollout's.
func (s *Rollouts) halt(ctx context.Context, u change.User, id, why, reason string) (Rollout, error) {
	if err := needWhy(why, "halted"); err != nil {
		return Rollout{}, err
	}
	return s.operate(ctx, u, id, "halt a rollout", func(r *run) error {
		switch r.ro.State {
		case RolloutRunning, RolloutPaused:
		default:
			return refuse(r.ro, "halt")
		}
		// The change first: if it refuses, nothing moved; if a later write
		// fails, the engine's next step halts a running rollout whose
		// change is halted anyway (stopForChange).
		if err := r.changeTo(ctx, u, change.Halted, why); err != nil {
			return err
		}
		if err := r.cancelQueued(ctx, u.Actor, "rollout halted: "+reason); err != nil {
			return err
		}
		var waves []int
		if wi := r.ro.current(); wi >= 0 {
			now := r.now
			r.ro.Waves[wi].State, r.ro.Waves[wi].FinishedAt = WaveHalted, &now
			waves = append(waves, wi)
		}
		r.ro.State, r.ro.Reason = RolloutHalted, reason
		return r.saveState(ctx, audit.Record{Actor: u.Actor, Action: "rollout.halt", ObjectType: "rollout", ObjectID: r.ro.ID,
			After: map[string]any{"state": RolloutHalted, "by_gate": false}, Reason: reason}, waves...)
	})
}

// ChangeMoves are the change-level moves ChangeMove carries out: the ones
// that, while a rollout is active, must act through it.
var ChangeMoves = []change.Action{change.ActHalt, change.ActResume, change.ActRollBack, change.ActCancel, change.ActComplete}

// ChangeMove carries out a change-level move (halt, resume, rollback,
// cancel, complete) so that the change and its rollout never disagree.
// Every surface (JSON API, web UI, CLI) calls it rather than the change
// service for these moves.
//
// Without a rollout, or once it has ended (completed, aborted, rolled
// back), the move is the change service's alone. While the engine still
// advances the change's rollout, the change's own state machine is asked
// first (so an illegal move is refused with the same words either way),
// st.Revision must match, a reason is required (except to complete), and:
//
//   - halt on a running rollout is the rollout's Halt: the change halts,
//     queued jobs are cancelled, the rollout halts. A paused rollout stays
//     paused (it issues nothing) and resuming the change resumes it; under
//     a rollout awaiting completion only the change halts.
//   - resume is the rollout's Resume when it is halted (the change resumes
//     with it and the failed assets are retried); when it is paused the
//     change resumes and then the rollout; when it is running or awaiting
//     completion only the change resumes. A rollout rolling back refuses.
//   - rollback is the rollout's RollBack: rollback jobs go to every asset
//     it changed, the change halts, and the engine rolls the change back
//     when they all succeed.
//   - cancel (allowed for a halted change) is the rollout's Abort, which
//     cancels the change.
//   - complete is allowed only while the rollout awaits completion; while
//     waves are still to run the engine completes the change itself, so a
//     hand completion is refused rather than abandoning them.
//
// After a move the rollout is stepped once, so the reply shows both as
// they now stand. The rollout returned is nil when the change has none.
func (s *Rollouts) ChangeMove(ctx context.Context, u change.User, changeID string, act change.Action, st change.Step) (change.Change, *Rollout, error) {
	if !slices.Contains(ChangeMoves, act) {
		return change.Change{}, nil, errs.E(errs.Invalid, "%q is not a change move that a rollout steers", act)
	}
	ro, err := s.store.RolloutByChange(ctx, changeID)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		return s.changeAlone(ctx, u, changeID, act, st, false)
	case err != nil:
		return change.Change{}, nil, err
	case !ro.State.Active():
		return s.changeAlone(ctx, u, changeID, act, st, true)
	}
	c, err := s.changes.Get(ctx, changeID)
	if err != nil {
		return change.Change{}, nil, err
	}
	if _, err := change.Next(c.State, act); err != nil {
		return change.Change{}, nil, err
	}
	if st.Revision != 0 && st.Revision != c.Revision {
		return change.Change{}, nil, errs.E(errs.Conflict, "change %s changed since you loaded it (revision %d, now %d); reload and try again", c.ID, st.Revision, c.Revision)
	}
	if act != change.ActComplete && strings.TrimSpace(st.Why) == "" {
		// The rollout's operations all need a reason; refuse before
		// either half moves.
		var v errs.Validation
		v.Add("why", "required: say why, for the change's history and the rollout's audit trail")
		return change.Change{}, nil, v.Err("invalid request")
	}
	settle := false
	switch act {
	case change.ActHalt:
		if ro.State == RolloutRunning {
			_, err = s.halt(ctx, u, ro.ID, st.Why, "the change is halted: "+st.Why)
		} else {
			_, err = s.changes.Halt(ctx, u, changeID, st)
			settle = true
		}
	case change.ActResume:
		switch ro.State {
		case RolloutHalted, RolloutRollingBack:
			_, err = s.Resume(ctx, u, ro.ID, st.Why)
		case RolloutPaused:
			if _, err = s.changes.Resume(ctx, u, changeID, st); err == nil {
				_, err = s.Resume(ctx, u, ro.ID, st.Why)
			}
		default:
			_, err = s.changes.Resume(ctx, u, changeID, st)
			settle = true
		}
	case change.ActRollBack:
		_, err = s.RollBack(ctx, u, ro.ID, st.Why)
		settle = true
	case change.ActCancel:
		_, err = s.Abort(ctx, u, ro.ID, st.Why)
	case change.ActComplete:
		if ro.State != RolloutAwaitingCompletion {
			return change.Change{}, nil, errs.E(errs.Conflict,
				"change %s is being deployed by rollout %s, which is %s: the rollout completes the change when every wave has passed its gate; pause, abort or roll it back instead",
				changeID, ro.ID, strings.ReplaceAll(string(ro.State), "_", " "))
		}
		_, err = s.changes.Complete(ctx, u, changeID, st)
		settle = true
	}
	if err != nil {
		return change.Change{}, nil, err
	}
	if settle {
		s.settle(ctx, ro.ID)
	}
	return s.both(ctx, changeID, ro.ID)
}

// changeAlone is a change-level move on a change without an active
// rollout: the change service's alone.
func (s *Rollouts) changeAlone(ctx context.Context, u change.User, id string, act change.Action, st change.Step, hasRollout bool) (change.Change, *Rollout, error) {
	var (
		c   change.Change
		err error
	)
	switch act {
	case change.ActHalt:
		c, err = s.changes.Halt(ctx, u, id, st)
	case change.ActResume:
		c, err = s.changes.Resume(ctx, u, id, st)
	case change.ActRollBack:
		c, err = s.changes.RollBack(ctx, u, id, st)
	case change.ActCancel:
		c, err = s.changes.Cancel(ctx, u, id, st)
	case change.ActComplete:
		c, err = s.changes.Complete(ctx, u, id, st)
	}
	if err != nil || !hasRollout {
		return c, nil, err
	}
	ro, err := s.store.RolloutByChange(ctx, id)
	if err != nil {
		return change.Change{}, nil, err
	}
	return c, &ro, nil
}

// settle lets the engine catch up with a change-level move before the
// reply. The move itself succeeded, so a failing step is only logged: the
// engine's loop tries again on its next tick.
func (s *Rollouts) settle(ctx context.Context, id string) {
	if err := s.advance(ctx, id); err != nil {
		s.log.WarnContext(ctx, "advancing a rollout after a change-level move failed; the engine retries on its next tick", "rollout", id, "err", err)
	}
}

// both reads the change and its rollout as they stand now.
func (s *Rollouts) both(ctx context.Context, changeID, rolloutID string) (change.Change, *Rollout, error) {
	c, err := s.changes.Get(ctx, changeID)
	if err != nil {
		return change.Change{}, nil, err
	}
	ro, err := s.store.GetRollout(ctx, rolloutID)
	if err != nil {
		return change.Change{}, nil, err
	}
	return c, &ro, nil
}
