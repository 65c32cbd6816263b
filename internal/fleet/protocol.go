package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// MaxJobsPerPull bounds how many jobs one pull returns.
const MaxJobsPerPull = 50

func agentActor(a Agent, addr string) audit.Actor {
	return audit.Actor{Kind: audit.ActorAgent, ID: a.ID, Name: a.Hostname, Addr: addr}
}

// Authenticate returns the agent a request claims to come from. An unknown
// agent is Unauthorized; the caller verifies the signature with the
// returned public key and then calls Usable.
func (s *Service) Authenticate(ctx context.Context, agentID string) (Agent, error) {
	if !agentapi.ValidID(agentID) {
		return Agent{}, errs.E(errs.Unauthorized, "unknown agent")
	}
	a, err := s.store.GetAgent(ctx, agentID)
	if errors.Is(err, errs.ErrNotFound) {
		return Agent{}, errs.E(errs.Unauthorized, "unknown agent")
	}
	return a, err
}

// Usable refuses a revoked agent, or one whose asset an admin deleted.
func Usable(a Agent) error {
	if a.RevokedAt != nil {
		return errs.E(errs.Forbidden, "this agent was revoked; enroll again with a new token")
	}
	if a.AssetID == "" {
		return errs.E(errs.Forbidden, "this agent's asset was deleted; enroll again with a new token")
	}
	return nil
}

// Enroll registers a new agent with a one-time enrollment token and its
// public key, and creates its asset, or links an existing asset that no
// active agent reports for (same serial, else same host name). The token is
// spent in the same transaction, so it enrolls at most one agent.
func (s *Service) Enroll(ctx context.Context, req agentapi.EnrollRequest, protocol int, addr string) (Agent, error) {
	if err := req.Validate(); err != nil {
		return Agent{}, err
	}
	facts := req.Facts
	if facts.Hostname == "" {
		facts.Hostname = req.Hostname
	}
	now := s.now()
	ag := Agent{ID: inventory.NewID(), PublicKey: req.PublicKey, Hostname: req.Hostname, OSID: facts.OSID,
		AgentVersion: facts.AgentVersion, ProtocolVersion: protocol, EnrolledAt: now,
		FactsHash: factsHash(facts, nil)}
	err := s.store.Transact(ctx, func(tx Tx) error {
		tok, err := tx.TokenByHash(ctx, tokenHash(req.Token))
		if errors.Is(err, errs.ErrNotFound) {
			s.log.WarnContext(ctx, "agent enrollment refused: unknown token", "hostname", req.Hostname, "addr", addr)
			return errRejected
		} else if err != nil {
			return err
		}
		if st := tok.StateAt(now); st != TokenActive {
			s.log.WarnContext(ctx, "agent enrollment refused", "token_id", tok.ID, "token_state", st, "hostname", req.Hostname, "addr", addr)
			return errRejected
		}
		ag.TokenID = tok.ID
		actor := agentActor(ag, addr)
		how, err := s.assetFor(ctx, tx, actor, tok, &ag, facts)
		if err != nil {
			return err
		}
		if err := tx.InsertAgent(ctx, &ag); err != nil {
			if errs.KindOf(err) == errs.Conflict {
				return errs.E(errs.Conflict, "this public key is already enrolled; generate a new key pair")
			}
			return err
		}
		if err := tx.SetAgentFacts(ctx, ag.ID, facts, nil, now); err != nil {
			return err
		}
		tok.UsedAt, tok.AgentID = &now, ag.ID
		if err := tx.UpdateToken(ctx, &tok); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "agent.enroll", ObjectType: "agent", ObjectID: ag.ID,
			After: ag, Reason: fmt.Sprintf("enrollment token %s (%s); %s", tok.ID, tok.Name, how)})
	})
	if err != nil {
		return Agent{}, fmt.Errorf("enroll agent: %w", err)
	}
	return ag, nil
}

// assetFor links or creates the asset of an enrolling agent, sets
// ag.AssetID and says which it did.
func (s *Service) assetFor(ctx context.Context, tx Tx, actor audit.Actor, tok EnrollmentToken, ag *Agent, f agentapi.Facts) (string, error) {
	serial := usableSerial(f.Serial)
	cands, err := tx.Candidates(ctx, hostKeys(ag.Hostname), serial)
	if err != nil {
		return "", err
	}
	now := s.now()
	id, why := choose(cands, ag.Hostname, serial)
	if id != "" {
		a, err := tx.GetAssetRecord(ctx, id)
		if err != nil {
			return "", err
		}
		before := observed(a, nil)
		applyFacts(&a, f, a.PendingUpdates)
		a.LastSeenAt = &now
		a.Revision++
		a.UpdatedAt = now
		if err := tx.UpdateAssetObserved(ctx, &a); err != nil {
			return "", err
		}
		b, af := diff(before, observed(a, nil))
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.facts", ObjectType: "asset", ObjectID: a.ID,
			Before: b, After: af, Reason: "agent enrolled: " + why}); err != nil {
			return "", err
		}
		ag.AssetID, ag.AssetRevision = a.ID, a.Revision
		return fmt.Sprintf("linked to existing asset %s (%s)", a.ID, why), nil
	}
	name, _, _ := strings.Cut(ag.Hostname, ".")
	a := inventory.Asset{Name: name, Type: AssetType(f), Hostname: ag.Hostname, Source: inventory.SourceAgent,
		SiteID: tok.SiteID, MaintenanceWindow: tok.MaintenanceWindow}
	for _, g := range tok.Groups {
		// A group deleted since the token was made is skipped rather than
		// failing an installation in progress.
		if _, err := tx.GetGroup(ctx, g); err == nil {
			a.Groups = append(a.Groups, g)
		} else if !errors.Is(err, errs.ErrNotFound) {
			return "", err
		}
	}
	applyFacts(&a, f, 0)
	a.LastSeenAt = &now
	a.Normalize()
	if err := a.Validate(); err != nil {
		return "", err
	}
	a.ID, a.CreatedAt, a.UpdatedAt, a.Revision = inventory.NewID(), now, now, 1
	if err := tx.InsertAsset(ctx, &a); err != nil {
		return "", err
	}
	if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.create", ObjectType: "asset", ObjectID: a.ID, After: a, Reason: "agent enrolled"}); err != nil {
		return "", err
	}
	ag.AssetID, ag.AssetRevision = a.ID, a.Revision
	how := "created asset " + a.ID
	if why != "" {
		how += " (" + why + ")"
	}
	return how, nil
}

// CheckIn handles a heartbeat. Unchanged facts and inventory cost one read
// and, at most once per SeenGranularity, one small write: no transaction,
// no audit entry. Changed facts, a new inventory or newly running jobs are
// applied in one transaction with their audit entries. The inventory is
// accepted only if it hashes to the hash the agent claims, so the stored
// hash always names the stored list.
func (s *Service) CheckIn(ctx context.Context, ag Agent, protocol int, addr string, req agentapi.CheckInRequest) (agentapi.CheckInResponse, error) {
	if err := Usable(ag); err != nil {
		return agentapi.CheckInResponse{}, err
	}
	if err := req.Validate(); err != nil {
		return agentapi.CheckInResponse{}, err
	}
	if req.Inventory != nil && agentapi.InventoryHash(req.Inventory) != req.InventoryHash {
		return agentapi.CheckInResponse{}, errs.E(errs.Invalid, "invalid check-in: inventory_hash: does not match the inventory sent (see agentapi.InventoryHash)")
	}
	now := s.now()
	fh := factsHash(req.Facts, req.Pending)
	// An asset someone else changed may no longer hold the software the
	// stored hash names: the hash then counts as unknown.
	stored := ag.InventoryHash
	if ag.AssetChanged {
		stored = ""
	}
	newInventory := req.Inventory != nil && req.InventoryHash != stored
	if fh != ag.FactsHash || newInventory || len(req.Running) > 0 || protocol != ag.ProtocolVersion {
		var err error
		if stored, newInventory, err = s.applyCheckIn(ctx, ag.ID, protocol, addr, req, fh); err != nil {
			return agentapi.CheckInResponse{}, fmt.Errorf("check-in: %w", err)
		}
		ag.LastCheckIn = nil // force the heartbeat write below
	}
	if ag.LastCheckIn == nil || now.Sub(*ag.LastCheckIn) >= s.opt.SeenGranularity {
		if err := s.store.Touch(ctx, ag.ID, ag.AssetID, now.Truncate(time.Second)); err != nil {
			return agentapi.CheckInResponse{}, fmt.Errorf("check-in: record heartbeat: %w", err)
		}
	}
	jobs, err := s.store.HasDueJobs(ctx, ag.ID, now)
	if err != nil {
		return agentapi.CheckInResponse{}, fmt.Errorf("check-in: %w", err)
	}
	resp := agentapi.CheckInResponse{InventoryWanted: req.InventoryHash != stored, JobsAvailable: jobs,
		NextCheckIn: agentapi.Duration{Duration: s.nextCheckIn(now)}}
	if s.opt.Windows != nil {
		if resp.Window, err = s.opt.Windows.Window(ctx, ag.AssetID); err != nil {
			return agentapi.CheckInResponse{}, fmt.Errorf("check-in: maintenance window: %w", err)
		}
	}
	if newInventory && s.opt.Listener != nil {
		s.opt.Listener.InventoryChanged(ctx, ag.AssetID)
	}
	return resp, nil
}

// applyCheckIn stores what changed in one transaction and returns the
// stored inventory hash and whether the inventory was replaced.
func (s *Service) applyCheckIn(ctx context.Context, agentID string, protocol int, addr string, req agentapi.CheckInRequest, fh string) (hash string, replaced bool, err error) {
	err = s.store.Transact(ctx, func(tx Tx) error {
		replaced = false
		ag, err := tx.LockAgent(ctx, agentID)
		if err != nil {
			return err
		}
		if err := Usable(ag); err != nil {
			return err
		}
		now := s.now()
		actor := agentActor(ag, addr)
		asset, err := tx.GetAssetRecord(ctx, ag.AssetID)
		if errors.Is(err, errs.ErrNotFound) {
			return errs.E(errs.Forbidden, "this agent's asset was deleted; enroll again with a new token")
		} else if err != nil {
			return err
		}
		assetChanged := false
		agentBefore := ag
		// stale: someone else changed the asset since this agent last wrote
		// it. Its facts are applied again, and its inventory replaced even
		// if the hash is the one stored, so the stored hash names the
		// stored list again.
		stale := asset.Revision != ag.AssetRevision
		if fh != ag.FactsHash || stale {
			old, err := tx.GetAgentDetail(ctx, ag.ID)
			if err != nil {
				return err
			}
			before := observed(asset, old.Facts)
			before["pending_updates"] = len(old.Pending)
			applyFacts(&asset, req.Facts, len(req.Pending))
			after := observed(asset, &req.Facts)
			b, a := diff(before, after)
			if err := tx.SetAgentFacts(ctx, ag.ID, req.Facts, req.Pending, now); err != nil {
				return err
			}
			if req.Facts.Hostname != "" {
				ag.Hostname = req.Facts.Hostname
			}
			ag.AgentVersion, ag.OSID, ag.FactsHash = req.Facts.AgentVersion, req.Facts.OSID, fh
			if len(a) > 0 {
				if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.facts", ObjectType: "asset", ObjectID: asset.ID, Before: b, After: a}); err != nil {
					return err
				}
			}
			assetChanged = true
		}
		if req.Inventory != nil && (req.InventoryHash != ag.InventoryHash || stale) {
			old, err := tx.AssetSoftware(ctx, asset.ID)
			if err != nil {
				return err
			}
			sw := toSoftware(req.Inventory)
			if err := tx.ReplaceAssetSoftware(ctx, asset.ID, sw); err != nil {
				return err
			}
			d := inventoryDelta(old, sw, req.InventoryHash)
			if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.inventory", ObjectType: "asset", ObjectID: asset.ID,
				Before: InventoryDelta{Hash: ag.InventoryHash, Count: len(old)}, After: d}); err != nil {
				return err
			}
			ag.InventoryHash, ag.InventoryAt = req.InventoryHash, &now
			assetChanged, replaced, stale = true, true, false
		}
		if assetChanged {
			asset.LastSeenAt = &now
			asset.Revision++
			asset.UpdatedAt = now
			if err := tx.UpdateAssetObserved(ctx, &asset); err != nil {
				return err
			}
			if !stale {
				ag.AssetRevision = asset.Revision
			}
		}
		for _, id := range req.Running {
			if err := s.markRunning(ctx, tx, ag, actor, id, now); err != nil {
				return err
			}
		}
		ag.ProtocolVersion = protocol
		if agentChanged(agentBefore, ag) {
			if err := tx.UpdateAgent(ctx, &ag); err != nil {
				return err
			}
		}
		hash = ag.InventoryHash
		if stale {
			hash = "" // still unknown: ask for the inventory
		}
		return nil
	})
	return hash, replaced, err
}

func agentChanged(a, b Agent) bool {
	return a.Hostname != b.Hostname || a.AgentVersion != b.AgentVersion || a.OSID != b.OSID ||
		a.FactsHash != b.FactsHash || a.InventoryHash != b.InventoryHash || a.ProtocolVersion != b.ProtocolVersion ||
		a.AssetRevision != b.AssetRevision
}

// markRunning moves a job the agent says it is running from queued or
// delivered to running. A job of another agent is ignored and logged: the
// agent learns nothing about it.
func (s *Service) markRunning(ctx context.Context, tx Tx, ag Agent, actor audit.Actor, id string, now time.Time) error {
	j, err := tx.LockJob(ctx, id)
	if errors.Is(err, errs.ErrNotFound) || (err == nil && j.AgentID != ag.ID) {
		s.log.WarnContext(ctx, "agent reported running a job that is not its own", "agent_id", ag.ID, "job_id", id)
		return nil
	} else if err != nil {
		return err
	}
	if j.State != JobQueued && j.State != JobDelivered {
		return nil
	}
	before := j.State
	j.State, j.StartedAt, j.UpdatedAt = JobRunning, &now, now
	if j.DeliveredAt == nil {
		j.DeliveredAt = &now
	}
	if err := tx.UpdateJob(ctx, &j); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "job.start", ObjectType: "job", ObjectID: j.ID,
		Before: map[string]any{"state": before}, After: map[string]any{"state": j.State}})
}

// PullJobs returns the agent's due jobs, queued and already delivered ones
// alike: delivering twice is harmless, because the agent runs a job once
// and results are idempotent. First delivery is recorded.
func (s *Service) PullJobs(ctx context.Context, ag Agent, addr string) ([]agentapi.Job, error) {
	if err := Usable(ag); err != nil {
		return nil, err
	}
	now := s.now()
	jobs, err := s.store.DueJobs(ctx, ag.ID, now, MaxJobsPerPull)
	if err != nil {
		return nil, fmt.Errorf("pull jobs: %w", err)
	}
	var queued []string
	for _, j := range jobs {
		if j.State == JobQueued {
			queued = append(queued, j.ID)
		}
	}
	if len(queued) > 0 {
		err := s.store.Transact(ctx, func(tx Tx) error {
			for _, id := range queued {
				j, err := tx.LockJob(ctx, id)
				if err != nil {
					return err
				}
				if j.State != JobQueued {
					continue // another replica delivered it first
				}
				j.State, j.DeliveredAt, j.UpdatedAt = JobDelivered, &now, now
				if err := tx.UpdateJob(ctx, &j); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, audit.Record{Actor: agentActor(ag, addr), Action: "job.deliver", ObjectType: "job", ObjectID: j.ID,
					Before: map[string]any{"state": JobQueued}, After: map[string]any{"state": JobDelivered}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pull jobs: %w", err)
		}
	}
	out := make([]agentapi.Job, len(jobs))
	for i, j := range jobs {
		out[i] = j.Wire()
	}
	return out, nil
}

// ReportResult records an agent's result for one of its jobs. It is
// idempotent per (job, attempt): the same attempt again is accepted and
// changes nothing (duplicate is true). A different attempt for a finished
// job is a Conflict. A job of another agent is NotFound, and logged.
func (s *Service) ReportResult(ctx context.Context, ag Agent, addr string, res agentapi.JobResult) (duplicate bool, err error) {
	if err := Usable(ag); err != nil {
		return false, err
	}
	if err := res.Validate(); err != nil {
		return false, err
	}
	var done Job
	err = s.store.Transact(ctx, func(tx Tx) error {
		duplicate = false
		j, err := tx.LockJob(ctx, res.JobID)
		if errors.Is(err, errs.ErrNotFound) || (err == nil && j.AgentID != ag.ID) {
			s.log.WarnContext(ctx, "agent reported a result for a job that is not its own", "agent_id", ag.ID, "job_id", res.JobID, "addr", addr)
			return errs.E(errs.NotFound, "no job %q for this agent", res.JobID)
		} else if err != nil {
			return err
		}
		if _, err := tx.GetResult(ctx, j.ID, res.Attempt); err == nil {
			duplicate = true
			return nil
		} else if !errors.Is(err, errs.ErrNotFound) {
			return err
		}
		if j.State.Finished() {
			return errs.E(errs.Conflict, "job %s already finished as %s (attempt %d)", j.ID, j.State, j.Attempt)
		}
		now := s.now()
		r := Result{JobID: j.ID, AgentID: ag.ID, Attempt: res.Attempt, Status: res.Status, Reason: res.Reason,
			Steps: res.Steps, Installed: res.Installed, ReceivedAt: now}
		if r.Steps == nil {
			r.Steps = []agentapi.Step{}
		}
		if err := tx.InsertResult(ctx, &r); err != nil {
			return err
		}
		before := j.State
		j.State, j.Attempt, j.Reason, j.UpdatedAt, j.FinishedAt = JobState(res.Status), res.Attempt, res.Reason, now, &now
		if j.DeliveredAt == nil {
			j.DeliveredAt = &now
		}
		actor := agentActor(ag, addr)
		if j.StartedAt == nil && len(res.Steps) > 0 {
			// A job that ran between two check-ins was never reported
			// running: its start is the agent's first step, kept between
			// delivery and now so a wrong agent clock cannot move it
			// outside what the server saw.
			started := clampTime(res.Steps[0].Started, *j.DeliveredAt, now)
			j.StartedAt = &started
			if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "job.start", ObjectType: "job", ObjectID: j.ID,
				Before: map[string]any{"state": before}, After: map[string]any{"state": JobRunning, "started_at": started},
				Reason: "ran between check-ins; start taken from the agent's first step"}); err != nil {
				return err
			}
		}
		if err := tx.UpdateJob(ctx, &j); err != nil {
			return err
		}
		done = j
		failed := 0
		for _, st := range res.Steps {
			if !st.OK {
				failed++
			}
		}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "job.result", ObjectType: "job", ObjectID: j.ID,
			Before: map[string]any{"state": before},
			After:  map[string]any{"state": j.State, "attempt": res.Attempt, "steps": len(res.Steps), "failed_steps": failed, "installed": res.Installed},
			Reason: res.Reason}); err != nil {
			return err
		}
		if j.State == JobSucceeded && (j.Kind == agentapi.JobInstall || j.Kind == agentapi.JobRollback) {
			return s.markPatched(ctx, tx, actor, j, now)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("job result: %w", err)
	}
	// Only after the commit: a listener that reads the job must see the
	// result. A repeated attempt changed nothing, so nobody is told.
	if !duplicate && s.opt.JobListener != nil {
		s.opt.JobListener.JobFinished(ctx, done)
	}
	return duplicate, nil
}

// clampTime is t kept within [lo, hi].
func clampTime(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

// markPatched records on the asset when a patch job last succeeded.
func (s *Service) markPatched(ctx context.Context, tx Tx, actor audit.Actor, j Job, now time.Time) error {
	a, err := tx.GetAssetRecord(ctx, j.AssetID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil // the asset was deleted meanwhile; the job result stands
	} else if err != nil {
		return err
	}
	before := a.LastPatchedAt
	a.LastPatchedAt, a.Revision, a.UpdatedAt = &now, a.Revision+1, now
	if err := tx.UpdateAssetObserved(ctx, &a); err != nil {
		return err
	}
	// This change is the agent's own: keep its view of the asset current,
	// unless someone else had changed the asset before.
	if ag, err := tx.LockAgent(ctx, j.AgentID); err != nil {
		return err
	} else if ag.AssetID == a.ID && ag.AssetRevision == a.Revision-1 {
		ag.AssetRevision = a.Revision
		if err := tx.UpdateAgent(ctx, &ag); err != nil {
			return err
		}
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "asset.patched", ObjectType: "asset", ObjectID: a.ID,
		Before: map[string]any{"last_patched_at": before}, After: map[string]any{"last_patched_at": now, "job_id": j.ID}})
}
