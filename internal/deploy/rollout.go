package deploy

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/policy"
)

// RolloutState is where a rollout of a change stands.
type RolloutState string

// Rollout states. Running, Paused, Halted, RollingBack and
// AwaitingCompletion are active: the engine still looks at them (a paused
// or halted rollout only to record the results of jobs already out).
const (
	RolloutRunning RolloutState = "running"
	// RolloutPaused: an operator paused it; no new wave and no new job
	// starts, jobs already queued run.
	RolloutPaused RolloutState = "paused"
	// RolloutHalted: a gate (or an operator) halted it; pending jobs were
	// cancelled. An operator resumes (retrying the failed assets), rolls
	// back or aborts.
	RolloutHalted      RolloutState = "halted"
	RolloutRollingBack RolloutState = "rolling_back"
	RolloutRolledBack  RolloutState = "rolled_back"
	// RolloutAwaitingCompletion: every wave passed but the change's own
	// completion guard (sign-offs, an emergency's post-incident review)
	// still blocks; the engine completes the change once it is met.
	RolloutAwaitingCompletion RolloutState = "awaiting_completion"
	RolloutCompleted          RolloutState = "completed"
	RolloutAborted            RolloutState = "aborted"
)

// Active reports whether the engine still advances a rollout in s.
func (s RolloutState) Active() bool {
	switch s {
	case RolloutRunning, RolloutPaused, RolloutHalted, RolloutRollingBack, RolloutAwaitingCompletion:
		return true
	}
	return false
}

// ActiveRolloutStates lists the states Active reports true for.
var ActiveRolloutStates = []RolloutState{RolloutRunning, RolloutPaused, RolloutHalted, RolloutRollingBack, RolloutAwaitingCompletion}

// WaveState is where one ring's wave stands.
type WaveState string

// Wave states.
const (
	WavePending WaveState = "pending"
	WaveRunning WaveState = "running"
	// WaveSoaking: the gate's counts are met and it waits out the soak.
	WaveSoaking    WaveState = "soaking"
	WavePassed     WaveState = "passed"
	WaveHalted     WaveState = "halted"
	WaveRolledBack WaveState = "rolled_back"
	// WaveSkipped: the ring holds none of the change's assets, or the
	// rollout ended before it.
	WaveSkipped WaveState = "skipped"
)

// ItemKind says who carries out an item: an agent's job, or a person.
type ItemKind string

// Item kinds.
const (
	ItemAgent  ItemKind = "agent"
	ItemManual ItemKind = "manual"
)

// ItemState is where one asset's work in a wave stands.
type ItemState string

// Item states. Agent items go pending → queued → running → succeeded |
// failed | cancelled; manual items go pending → open → done | failed.
const (
	ItemPending   ItemState = "pending"
	ItemQueued    ItemState = "queued"
	ItemRunning   ItemState = "running"
	ItemSucceeded ItemState = "succeeded"
	ItemFailed    ItemState = "failed"
	ItemCancelled ItemState = "cancelled"
	ItemOpen      ItemState = "open"
	ItemDone      ItemState = "done"
	ItemSkipped   ItemState = "skipped"
)

// Final reports whether nothing more happens to an item in s (short of a
// retry or a rollback).
func (s ItemState) Final() bool {
	switch s {
	case ItemSucceeded, ItemFailed, ItemCancelled, ItemDone, ItemSkipped:
		return true
	}
	return false
}

// RollbackState is where an item's rollback stands ("" when none).
type RollbackState string

// Rollback states.
const (
	RollbackNone    RollbackState = ""
	RollbackQueued  RollbackState = "queued"
	RollbackRunning RollbackState = "running"
	RollbackDone    RollbackState = "rolled_back"
	RollbackFailed  RollbackState = "failed"
)

// Rollout is the deployment of one scheduled change: its waves, one per
// policy ring in ring order, and in them each asset's item.
type Rollout struct {
	ID       string `json:"id"`
	ChangeID string `json:"change_id"`
	// ChangeType is the type the calendar planned for; Emergency is set
	// only for an approved emergency change, the one case where jobs may
	// run outside the assets' own windows.
	ChangeType string       `json:"change_type"`
	Emergency  bool         `json:"emergency"`
	State      RolloutState `json:"state"`
	// Reason says why the rollout is in its state (the gate's or the
	// operator's words).
	Reason string `json:"reason,omitempty"`
	// PolicySHA names the policy the rollout was planned under.
	PolicySHA string `json:"policy_sha"`
	// JobDuration is how long one job is planned to take.
	JobDuration time.Duration `json:"job_duration"`
	CreatedBy   string        `json:"created_by"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	FinishedAt  *time.Time    `json:"finished_at,omitempty"`
	// Revision increments on every write of the rollout row.
	Revision int    `json:"revision"`
	Waves    []Wave `json:"waves"`
}

// Wave is one ring's part of a rollout.
type Wave struct {
	Index int       `json:"index"`
	Ring  string    `json:"ring"`
	State WaveState `json:"state"`
	// Verdict and Reason are the gate's last decision; WaitUntil is when a
	// soak ends.
	Verdict      Verdict    `json:"verdict,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	DecidedAt    *time.Time `json:"decided_at,omitempty"`
	WaitUntil    *time.Time `json:"wait_until,omitempty"`
	PlannedStart *time.Time `json:"planned_start,omitempty"`
	PlannedEnd   *time.Time `json:"planned_end,omitempty"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Items        []Item     `json:"items"`
}

// Number is the wave's place in the rollout as people count it, from 1:
// "Wave 1" is the first ring's, on the change page and the calendar.
func (w Wave) Number() int { return w.Index + 1 }

// Item is one asset's work in a wave: an agent job, or a manual task for a
// person (an asset with no enrolled agent, or a vendor-mediated step).
type Item struct {
	ID        string   `json:"id"`
	RolloutID string   `json:"rollout_id"`
	Wave      int      `json:"wave"`
	Seq       int      `json:"seq"`
	AssetID   string   `json:"asset_id"`
	AssetName string   `json:"asset_name"`
	SiteID    string   `json:"site_id,omitempty"`
	Kind      ItemKind `json:"kind"`
	AgentID   string   `json:"agent_id,omitempty"`
	// Packages are the target versions; Previous the versions the
	// inventory showed when the rollout was planned, for rollback.
	Packages []agentapi.JobPackage `json:"packages,omitempty"`
	Previous map[string]string     `json:"previous,omitempty"`
	// Task, Owner and Due describe a manual item.
	Task  string     `json:"task,omitempty"`
	Owner string     `json:"owner,omitempty"`
	Due   *time.Time `json:"due,omitempty"`
	// PlannedStart/PlannedEnd bound the job; SlotEnd is the end of the
	// window occurrence it runs in (zero: open-ended emergency).
	PlannedStart *time.Time `json:"planned_start,omitempty"`
	PlannedEnd   *time.Time `json:"planned_end,omitempty"`
	SlotEnd      *time.Time `json:"slot_end,omitempty"`
	JobID        string     `json:"job_id,omitempty"`
	// Attempts counts the jobs issued (a resume retries failed items).
	Attempts int       `json:"attempts"`
	State    ItemState `json:"state"`
	// Outcome is the agent's or the operator's words; Note an operator's
	// note; RecordedBy who recorded a manual outcome.
	Outcome       string        `json:"outcome,omitempty"`
	Note          string        `json:"note,omitempty"`
	RecordedBy    string        `json:"recorded_by,omitempty"`
	StartedAt     *time.Time    `json:"started_at,omitempty"`
	FinishedAt    *time.Time    `json:"finished_at,omitempty"`
	RollbackJobID string        `json:"rollback_job_id,omitempty"`
	RollbackState RollbackState `json:"rollback_state,omitempty"`
	// ConvergedAt is when an inventory newer than the job first showed
	// every target version.
	ConvergedAt *time.Time `json:"converged_at,omitempty"`
}

// LogEntry is one line of an asset's deployment log: what was planned,
// sent, reported, verified or recorded, by whom, with the job's validation
// steps and any deviation.
type LogEntry struct {
	ID        int64     `json:"id"`
	RolloutID string    `json:"rollout_id"`
	ChangeID  string    `json:"change_id"`
	ItemID    string    `json:"item_id,omitempty"`
	AssetID   string    `json:"asset_id"`
	At        time.Time `json:"at"`
	// Actor is the operator, the agent or the engine.
	Actor    string                `json:"actor"`
	Event    string                `json:"event"`
	JobID    string                `json:"job_id,omitempty"`
	Packages []agentapi.JobPackage `json:"packages,omitempty"`
	// Steps are the job's steps as the agent reported them (name, exit
	// code, pass or fail), without their output.
	Steps []LogStep `json:"steps,omitempty"`
	// Deviation names what went other than planned (skipped, failed,
	// rolled back, cancelled, not converged); empty when all went to plan.
	Deviation string `json:"deviation,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// LogStep is one job step's validation result.
type LogStep struct {
	Name     string    `json:"name"`
	ExitCode int       `json:"exit_code"`
	OK       bool      `json:"ok"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
}

// Log events.
const (
	EventPlanned    = "planned"
	EventJobQueued  = "job_queued"
	EventJobStarted = "job_started"
	EventSucceeded  = "succeeded"
	EventFailed     = "failed"
	EventCancelled  = "cancelled"
	EventManualOpen = "manual_task_open"
	EventManualDone = "manual_task_done"
	EventManualFail = "manual_task_failed"
	EventRollback   = "rollback_queued"
	EventRolledBack = "rolled_back"
	EventRollbackKO = "rollback_failed"
	EventConverged  = "converged"
	EventSkipped    = "skipped"
)

// AssetInfo is what planning needs to know about a target asset beyond its
// policy facts: where it is, its window, its agent and when its software
// was last reported.
type AssetInfo struct {
	ID        string
	Name      string
	SiteID    string
	TimeZone  string
	Window    string
	Owner     string
	AgentID   string
	UpdatedAt time.Time
	// InventoryAt is when the agent last sent a new software list.
	InventoryAt *time.Time
}

// RolloutFilter selects rollouts for listing; zero fields do not filter.
type RolloutFilter struct {
	ChangeID string
	States   []RolloutState
	Limit    int
	Offset   int
}

// RolloutReader is the read side of rollout storage.
type RolloutReader interface {
	GetRollout(ctx context.Context, id string) (Rollout, error)
	// RolloutByChange returns the rollout of a change, NotFound if none.
	RolloutByChange(ctx context.Context, changeID string) (Rollout, error)
	// ListRollouts returns rollouts without their waves, newest first.
	ListRollouts(ctx context.Context, f RolloutFilter) ([]Rollout, error)
	// DeploymentLog returns log entries, oldest first: of one asset when
	// assetID is set, of the whole change otherwise.
	DeploymentLog(ctx context.Context, changeID, assetID string) ([]LogEntry, error)
	// AssetInfo returns planning facts of the assets, in the order given;
	// an unknown asset is NotFound.
	AssetInfo(ctx context.Context, ids []string) ([]AssetInfo, error)
	// Installed returns, per asset, the installed version and ecosystem of
	// each named package it has (an asset with none has no entry).
	Installed(ctx context.Context, assetIDs, names []string) (map[string]map[string]InstalledPackage, error)
	// TargetFacts expands a change's targets to the assets' policy facts.
	TargetFacts(ctx context.Context, t change.Targets) ([]policy.AssetFacts, error)
}

// InstalledPackage is one package's stored version on an asset.
type InstalledPackage struct {
	Version   string
	Ecosystem string
}

// RolloutStore is the storage the rollout engine needs.
type RolloutStore interface {
	RolloutReader
	TransactRollout(ctx context.Context, fn func(RolloutTx) error) error
	// ClaimRollout takes the rollout's lease for owner until until, when no
	// other owner holds an unexpired one at now; it reports whether it
	// did. The lease, not a held transaction, serialises replicas: the
	// engine calls the fleet and change services (their own transactions)
	// while it holds it, which SQLite's single writer could not do inside
	// an open transaction.
	ClaimRollout(ctx context.Context, id, owner string, now, until time.Time) (bool, error)
	// RenewRollout extends owner's lease to until when owner still holds
	// it (expired or not: nobody else took it meanwhile) and reports
	// whether it did. Unlike ClaimRollout it fails on a free lease, since
	// a free lease means another replica took it and released it.
	RenewRollout(ctx context.Context, id, owner string, until time.Time) (bool, error)
	// ReleaseRollout gives the lease up if owner holds it.
	ReleaseRollout(ctx context.Context, id, owner string) error
}

// RolloutTx is one transaction of rollout writes, audited in it.
type RolloutTx interface {
	RolloutReader
	audit.Appender
	// LockRollout reads the rollout row (FOR UPDATE on PostgreSQL).
	LockRollout(ctx context.Context, id string) (Rollout, error)
	// InsertRollout stores a rollout with its waves and items.
	InsertRollout(ctx context.Context, r Rollout) error
	// UpdateRollout stores the rollout row when the stored revision is
	// r.Revision-1; otherwise Conflict.
	UpdateRollout(ctx context.Context, r Rollout) error
	UpdateWave(ctx context.Context, rolloutID string, w Wave) error
	UpdateItem(ctx context.Context, it Item) error
	AddLog(ctx context.Context, e LogEntry) error
}

// Changes is what the engine needs of change control (change.Service).
type Changes interface {
	Get(ctx context.Context, id string) (change.Change, error)
	Start(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Halt(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Resume(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	RollBack(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Complete(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
	Cancel(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error)
}

// Fleet is what the engine needs of the agents' job queue (fleet.Service).
type Fleet interface {
	CreateJob(ctx context.Context, actor audit.Actor, spec fleet.JobSpec) (fleet.Job, error)
	// CreateJobs queues several jobs at once, all or none; a refused one
	// is named by a *fleet.JobError.
	CreateJobs(ctx context.Context, actor audit.Actor, specs []fleet.JobSpec) ([]fleet.Job, error)
	JobStatuses(ctx context.Context, changeID string) ([]fleet.JobStatus, error)
	Job(ctx context.Context, id string) (fleet.JobDetail, error)
	CancelJob(ctx context.Context, actor audit.Actor, id, reason string) (fleet.Job, error)
}

// Policies is where the policy in force comes from (policy.Service).
type Policies interface {
	Current(ctx context.Context) (*policy.Compiled, policy.Version, error)
}
