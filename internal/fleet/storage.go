package fleet

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/inventory"
)

// Reader is the read side of fleet storage.
type Reader interface {
	// GetAgent returns the agent's registry row, which is all a signed
	// request needs: it is read on every agent request, so it is small.
	GetAgent(ctx context.Context, id string) (Agent, error)
	GetAgentDetail(ctx context.Context, id string) (AgentDetail, error)
	ListAgents(ctx context.Context, f AgentFilter) (AgentPage, error)
	GetToken(ctx context.Context, id string) (EnrollmentToken, error)
	ListTokens(ctx context.Context) ([]EnrollmentToken, error)
	GetJob(ctx context.Context, id string) (Job, error)
	ListJobs(ctx context.Context, f JobFilter) (JobPage, error)
	// JobStatuses returns where every job of the change stands, oldest
	// first, in one read.
	JobStatuses(ctx context.Context, changeID string) ([]JobStatus, error)
	// JobResults returns a job's results in attempt order.
	JobResults(ctx context.Context, jobID string) ([]Result, error)
	// DueJobs returns the agent's queued and delivered jobs with
	// not_before <= now < deadline, oldest first, at most limit.
	DueJobs(ctx context.Context, agentID string, now time.Time, limit int) ([]Job, error)
	// HasDueJobs reports whether DueJobs would return anything.
	HasDueJobs(ctx context.Context, agentID string, now time.Time) (bool, error)
}

// Candidate is an existing asset an enrolling agent might be, with whether
// an active agent already reports for it.
type Candidate struct {
	AssetID    string
	Hostname   string
	Serial     string
	AgentOwned bool
}

// Tx is fleet's view of one storage transaction. It embeds audit.Appender
// so every change is logged in the same transaction.
type Tx interface {
	Reader
	audit.Appender

	// LockAgent and LockJob read a row for update, so concurrent requests
	// of one agent (or replicas) apply their changes one after the other.
	LockAgent(ctx context.Context, id string) (Agent, error)
	LockJob(ctx context.Context, id string) (Job, error)
	// TokenByHash finds (and locks) the token whose secret hashes to hash.
	TokenByHash(ctx context.Context, hash []byte) (EnrollmentToken, error)
	InsertToken(ctx context.Context, t *EnrollmentToken) error
	// UpdateToken stores used and revoked times.
	UpdateToken(ctx context.Context, t *EnrollmentToken) error

	InsertAgent(ctx context.Context, a *Agent) error
	// UpdateAgent stores every mutable column of a.
	UpdateAgent(ctx context.Context, a *Agent) error
	// SetAgentFacts stores the facts and pending updates last reported.
	SetAgentFacts(ctx context.Context, agentID string, f agentapi.Facts, pending []agentapi.PendingUpdate, at time.Time) error

	GetSite(ctx context.Context, id string) (inventory.Site, error)
	GetGroup(ctx context.Context, id string) (inventory.Group, error)
	// Candidates returns assets whose host name (full or first label,
	// case-insensitive) or serial equals one given; empty values match
	// nothing.
	Candidates(ctx context.Context, hostnames []string, serial string) ([]Candidate, error)
	// GetAssetRecord returns an asset's own columns, without software,
	// tags or groups.
	GetAssetRecord(ctx context.Context, id string) (inventory.Asset, error)
	InsertAsset(ctx context.Context, a *inventory.Asset) error
	// UpdateAssetObserved stores what agents observe (OS, firmware,
	// addresses, hardware identity, pending count, last seen and patched
	// times) and a's revision, which must be one more than the stored one.
	UpdateAssetObserved(ctx context.Context, a *inventory.Asset) error
	AssetSoftware(ctx context.Context, assetID string) ([]inventory.Software, error)
	ReplaceAssetSoftware(ctx context.Context, assetID string, sw []inventory.Software) error

	InsertJob(ctx context.Context, j *Job) error
	// UpdateJob stores j's state, times, attempt and reason.
	UpdateJob(ctx context.Context, j *Job) error
	// GetResult returns the result of one attempt, NotFound if none.
	GetResult(ctx context.Context, jobID string, attempt int) (Result, error)
	InsertResult(ctx context.Context, r *Result) error
}

// Store is fleet's storage: reads, transactions, and the heartbeat write.
type Store interface {
	Reader
	Transact(ctx context.Context, fn func(Tx) error) error
	// Touch records a heartbeat: the agent's last check-in and its asset's
	// last-seen time, unless a newer one is stored. It is an observation,
	// not a change anyone made, so it bumps no revision and writes no
	// audit entry; it is also the hot path, so it is one small statement
	// pair outside any read-modify-write.
	Touch(ctx context.Context, agentID, assetID string, at time.Time) error
}
