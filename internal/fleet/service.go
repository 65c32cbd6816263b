package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// Options tunes a Service. Zero values take the defaults documented on each
// field.
type Options struct {
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for check-in jitter;
	// math/rand/v2 if nil.
	Rand func() float64
	Log  *slog.Logger
	// CheckInInterval is how often an idle agent checks in (default 5m).
	CheckInInterval time.Duration
	// Jitter spreads check-ins by ± this fraction of the interval, so a
	// fleet that booted together does not stay in step (default 0.1).
	Jitter float64
	// CheckInRate is the server-wide check-ins per second it takes before
	// telling agents to back off, with a burst of CheckInBurst (defaults:
	// 200/s, burst 1000). Above it NextCheckIn grows up to MaxBackoff
	// times the interval.
	CheckInRate  float64
	CheckInBurst float64
	MaxBackoff   float64
	// SeenGranularity is how stale a stored last check-in may become before
	// a heartbeat writes it (default 1m): a heartbeat inside it writes
	// nothing, which is what lets thousands of agents check in per second.
	SeenGranularity time.Duration
	// Listener, if set, hears about changed inventories.
	Listener InventoryListener
	// JobListener, if set, hears about every job result once it is
	// committed, so the rollout engine reads a wave's gate at once rather
	// than on its next timed tick.
	JobListener JobListener
	// Windows, if set, supplies each agent's maintenance window.
	Windows WindowSource
}

// Service implements the fleet's use cases: the admin's (tokens, agents,
// jobs) and the agent protocol's (enroll, check in, pull jobs, report).
type Service struct {
	store Store
	opt   Options
	now   func() time.Time
	log   *slog.Logger
	load  *bucket
}

// NewService returns a Service on store.
func NewService(store Store, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = mrand.Float64
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.CheckInInterval <= 0 {
		opt.CheckInInterval = 5 * time.Minute
	}
	if opt.Jitter <= 0 || opt.Jitter >= 1 {
		opt.Jitter = 0.1
	}
	if opt.CheckInRate <= 0 {
		opt.CheckInRate = 200
	}
	if opt.CheckInBurst <= 0 {
		opt.CheckInBurst = 1000
	}
	if opt.MaxBackoff < 1 {
		opt.MaxBackoff = 8
	}
	if opt.SeenGranularity <= 0 {
		opt.SeenGranularity = time.Minute
	}
	return &Service{store: store, opt: opt, now: func() time.Time { return opt.Now().UTC().Truncate(time.Microsecond) },
		log: opt.Log, load: newBucket(opt.CheckInRate, opt.CheckInBurst, opt.Now())}
}

// Now is the service's clock, which the protocol handler also uses to
// bound request timestamps, so tests move one clock for both.
func (s *Service) Now() time.Time { return s.now() }

// CheckInInterval is the base interval agents are told at enrollment.
func (s *Service) CheckInInterval() time.Duration { return s.opt.CheckInInterval }

func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateEnrollmentToken issues a one-time enrollment token and returns its
// secret, which is shown once and never stored. The CLI and the admin API
// both call it.
func (s *Service) CreateEnrollmentToken(ctx context.Context, actor audit.Actor, spec TokenSpec) (string, EnrollmentToken, error) {
	if err := spec.Validate(); err != nil {
		return "", EnrollmentToken{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return "", EnrollmentToken{}, err
	}
	ttl := spec.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	now := s.now()
	t := EnrollmentToken{ID: inventory.NewID(), Name: spec.Name, Hash: tokenHash(secret), SiteID: spec.SiteID,
		Groups: spec.Groups, MaintenanceWindow: spec.MaintenanceWindow, CreatedBy: actor.Name,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = s.store.Transact(ctx, func(tx Tx) error {
		var v errs.Validation
		if t.SiteID != "" {
			if _, err := tx.GetSite(ctx, t.SiteID); errors.Is(err, errs.ErrNotFound) {
				v.Add("site_id", "no site %q", t.SiteID)
			} else if err != nil {
				return err
			}
		}
		for _, g := range t.Groups {
			if _, err := tx.GetGroup(ctx, g); errors.Is(err, errs.ErrNotFound) {
				v.Add("groups", "no group %q", g)
			} else if err != nil {
				return err
			}
		}
		if err := v.Err("invalid enrollment token"); err != nil {
			return err
		}
		if err := tx.InsertToken(ctx, &t); err != nil {
			return err
		}
		t.State = t.StateAt(now)
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "enrollment_token.create", ObjectType: "enrollment_token", ObjectID: t.ID, After: t})
	})
	if err != nil {
		return "", EnrollmentToken{}, fmt.Errorf("create enrollment token: %w", err)
	}
	return secret, t, nil
}

// EnrollmentTokens lists every token, used, expired and revoked ones
// included, newest first, without secrets.
func (s *Service) EnrollmentTokens(ctx context.Context) ([]EnrollmentToken, error) {
	ts, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list enrollment tokens: %w", err)
	}
	now := s.now()
	for i := range ts {
		ts[i].State = ts[i].StateAt(now)
	}
	return ts, nil
}

// RevokeEnrollmentToken makes an unused token unusable at once.
func (s *Service) RevokeEnrollmentToken(ctx context.Context, actor audit.Actor, id string) error {
	err := s.store.Transact(ctx, func(tx Tx) error {
		t, err := tx.GetToken(ctx, id)
		if err != nil {
			return err
		}
		now := s.now()
		before := t
		before.State = t.StateAt(now)
		if before.State == TokenUsed || before.State == TokenRevoked {
			return errs.E(errs.Conflict, "enrollment token %q is already %s", t.Name, before.State)
		}
		t.RevokedAt = &now
		if err := tx.UpdateToken(ctx, &t); err != nil {
			return err
		}
		t.State = TokenRevoked
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "enrollment_token.revoke", ObjectType: "enrollment_token", ObjectID: id, Before: before, After: t})
	})
	return wrapf(err, "revoke enrollment token")
}

// Agents lists agents, newest enrollment first.
func (s *Service) Agents(ctx context.Context, f AgentFilter) (AgentPage, error) {
	var err error
	if f.Limit, err = pageLimit(f.Limit, f.Offset); err != nil {
		return AgentPage{}, err
	}
	p, err := s.store.ListAgents(ctx, f)
	return p, wrapf(err, "list agents")
}

// Agent returns one agent with its last reported facts.
func (s *Service) Agent(ctx context.Context, id string) (AgentDetail, error) {
	return s.store.GetAgentDetail(ctx, id)
}

// RevokeAgent refuses every later request of the agent and cancels its
// jobs that have not started. The record stays, so the audit trail and job
// history still resolve; the host enrolls again with a new token.
func (s *Service) RevokeAgent(ctx context.Context, actor audit.Actor, id, reason string) error {
	if len(reason) > 1000 {
		return errs.E(errs.Invalid, "reason must be at most 1000 characters")
	}
	err := s.store.Transact(ctx, func(tx Tx) error {
		a, err := tx.LockAgent(ctx, id)
		if err != nil {
			return err
		}
		if a.RevokedAt != nil {
			return errs.E(errs.Conflict, "agent %s is already revoked", a.Hostname)
		}
		before := a
		now := s.now()
		a.RevokedAt, a.RevokeReason = &now, reason
		if err := tx.UpdateAgent(ctx, &a); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "agent.revoke", ObjectType: "agent", ObjectID: id, Before: before, After: a, Reason: reason}); err != nil {
			return err
		}
		for _, st := range []JobState{JobQueued, JobDelivered} {
			page, err := tx.ListJobs(ctx, JobFilter{AgentID: id, State: st, Limit: MaxPage})
			if err != nil {
				return err
			}
			for _, j := range page.Jobs {
				if err := s.cancel(ctx, tx, actor, j, "agent revoked"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return wrapf(err, "revoke agent")
}

// CreateJob queues a job for an agent. Jobs are delivered when due
// (NotBefore) and never after their Deadline.
func (s *Service) CreateJob(ctx context.Context, actor audit.Actor, spec JobSpec) (Job, error) {
	jobs, err := s.CreateJobs(ctx, actor, []JobSpec{spec})
	if err != nil {
		return Job{}, err
	}
	return jobs[0], nil
}

// CreateJobs queues several jobs in one transaction, each audited: all of
// them or, when one is invalid or its agent cannot take jobs, none. The
// rollout engine queues a wave this way.
func (s *Service) CreateJobs(ctx context.Context, actor audit.Actor, specs []JobSpec) ([]Job, error) {
	now := s.now()
	jobs := make([]Job, len(specs))
	for i, spec := range specs {
		notBefore, deadline, err := spec.validate(now)
		if err != nil {
			return nil, jobErr(len(specs), i, err)
		}
		j := Job{ID: inventory.NewID(), AgentID: spec.AgentID, ChangeID: spec.ChangeID, Kind: spec.Kind,
			Emergency: spec.Emergency, AllowReboot: spec.AllowReboot, Packages: spec.Packages,
			PreChecks: spec.PreChecks, PostChecks: spec.PostChecks, NotBefore: notBefore, Deadline: deadline,
			State: JobQueued, CreatedBy: actor.Name, CreatedAt: now, UpdatedAt: now}
		if j.Packages == nil {
			j.Packages = []agentapi.JobPackage{}
		}
		jobs[i] = j
	}
	err := s.store.Transact(ctx, func(tx Tx) error {
		for i := range jobs {
			j := &jobs[i]
			a, err := tx.GetAgent(ctx, j.AgentID)
			if errors.Is(err, errs.ErrNotFound) {
				return jobErr(len(jobs), i, errs.E(errs.Invalid, "invalid job: agent_id: no agent %q", j.AgentID))
			} else if err != nil {
				return err
			}
			if a.RevokedAt != nil || a.AssetID == "" {
				return jobErr(len(jobs), i, errs.E(errs.Conflict, "agent %s is revoked or lost its asset; it cannot take jobs", a.Hostname))
			}
			j.AssetID = a.AssetID
			if err := tx.InsertJob(ctx, j); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "job.create", ObjectType: "job", ObjectID: j.ID, After: *j}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	return jobs, nil
}

// JobError says which of several jobs CreateJobs refused.
type JobError struct {
	// Index is the refused spec's position in the call.
	Index, Of int
	Err       error
}

func (e *JobError) Error() string { return fmt.Sprintf("job %d of %d: %v", e.Index+1, e.Of, e.Err) }
func (e *JobError) Unwrap() error { return e.Err }

// jobErr names which of several jobs was refused; a single job's error
// stays as it was.
func jobErr(n, i int, err error) error {
	if n == 1 {
		return err
	}
	return &JobError{Index: i, Of: n, Err: err}
}

// Jobs lists jobs, newest first.
func (s *Service) Jobs(ctx context.Context, f JobFilter) (JobPage, error) {
	var err error
	if f.Limit, err = pageLimit(f.Limit, f.Offset); err != nil {
		return JobPage{}, err
	}
	if f.State != "" && !slices.Contains(JobStates, f.State) {
		return JobPage{}, errs.E(errs.Invalid, "unknown job state %q", f.State)
	}
	p, err := s.store.ListJobs(ctx, f)
	return p, wrapf(err, "list jobs")
}

// JobStatuses returns where every job of a change stands, oldest first.
func (s *Service) JobStatuses(ctx context.Context, changeID string) ([]JobStatus, error) {
	if changeID == "" {
		return nil, errs.E(errs.Invalid, "job statuses need a change")
	}
	out, err := s.store.JobStatuses(ctx, changeID)
	return out, wrapf(err, "job statuses")
}

// Job returns a job with all its results and their steps.
func (s *Service) Job(ctx context.Context, id string) (JobDetail, error) {
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return JobDetail{}, err
	}
	rs, err := s.store.JobResults(ctx, id)
	if err != nil {
		return JobDetail{}, fmt.Errorf("job results: %w", err)
	}
	return JobDetail{Job: j, Results: rs}, nil
}

// CancelJob stops a job from being delivered again. An agent that already
// has it may still run it; its result is then recorded, because what
// happened on the host is what the record must show.
func (s *Service) CancelJob(ctx context.Context, actor audit.Actor, id, reason string) (Job, error) {
	if len(reason) > 1000 {
		return Job{}, errs.E(errs.Invalid, "reason must be at most 1000 characters")
	}
	var j Job
	err := s.store.Transact(ctx, func(tx Tx) error {
		var err error
		if j, err = tx.LockJob(ctx, id); err != nil {
			return err
		}
		if j.State.Finished() || j.State == JobCancelled {
			return errs.E(errs.Conflict, "job is already %s", j.State)
		}
		return s.cancel(ctx, tx, actor, j, reason)
	})
	if err != nil {
		return Job{}, fmt.Errorf("cancel job: %w", err)
	}
	return s.store.GetJob(ctx, id)
}

func (s *Service) cancel(ctx context.Context, tx Tx, actor audit.Actor, j Job, reason string) error {
	before := j
	now := s.now()
	j.State, j.Reason, j.UpdatedAt, j.FinishedAt = JobCancelled, reason, now, &now
	if err := tx.UpdateJob(ctx, &j); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "job.cancel", ObjectType: "job", ObjectID: j.ID,
		Before: map[string]any{"state": before.State}, After: map[string]any{"state": j.State}, Reason: reason})
}
