// Package fleet is the server side of the endpoint agents: enrollment
// tokens, the agent registry, check-ins that keep each agent's asset and
// software current, and the per-agent job queue with its results. It owns
// the rules (one-time tokens, identity per agent, job state machine,
// idempotent results) and the narrow storage interface it needs; the HTTP
// protocol lives in internal/agentapi/agentserver and the wire types in
// internal/agentapi, which this package uses as its vocabulary for what an
// agent reports and runs.
//
// Until the deployment issue builds rings and calendars on top, fleet owns
// the job queue: jobs are created through the admin API (or by the
// deployment service later) and pulled by agents.
package fleet

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// TokenState is where an enrollment token is in its one-time life.
type TokenState string

// Token states. Only an active token enrolls an agent.
const (
	TokenActive  TokenState = "active"
	TokenUsed    TokenState = "used"
	TokenExpired TokenState = "expired"
	TokenRevoked TokenState = "revoked"
)

// EnrollmentToken lets exactly one agent enroll before it expires. Only the
// SHA-256 of its secret is stored; the secret is shown once at creation.
type EnrollmentToken struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Hash []byte `json:"-"`
	// SiteID, Groups and MaintenanceWindow are preset on the asset the
	// enrolling agent creates (not on an existing asset it links to, whose
	// curated values win).
	SiteID            string     `json:"site_id,omitempty"`
	Groups            []string   `json:"groups,omitempty"`
	MaintenanceWindow string     `json:"maintenance_window,omitempty"`
	CreatedBy         string     `json:"created_by"`
	CreatedAt         time.Time  `json:"created_at"`
	ExpiresAt         time.Time  `json:"expires_at"`
	UsedAt            *time.Time `json:"used_at,omitempty"`
	AgentID           string     `json:"agent_id,omitempty"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	// State is derived from the times above when the token is read.
	State TokenState `json:"state"`
}

// StateAt derives the token's state at now.
func (t EnrollmentToken) StateAt(now time.Time) TokenState {
	switch {
	case t.RevokedAt != nil:
		return TokenRevoked
	case t.UsedAt != nil:
		return TokenUsed
	case !now.Before(t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// TokenSpec is what an admin asks for when creating an enrollment token.
type TokenSpec struct {
	Name string `json:"name"`
	// TTL is how long the token stays usable; DefaultTokenTTL if zero.
	TTL               time.Duration `json:"-"`
	SiteID            string        `json:"site_id,omitempty"`
	Groups            []string      `json:"groups,omitempty"`
	MaintenanceWindow string        `json:"maintenance_window,omitempty"`
}

// Token lifetimes.
const (
	DefaultTokenTTL = 24 * time.Hour
	// MaxTokenTTL keeps forgotten tokens from lingering: a token is for an
	// installation that is about to happen.
	MaxTokenTTL = 30 * 24 * time.Hour
)

// TokenPrefix starts every enrollment token so secret scanners and humans
// can tell it from an API token.
const TokenPrefix = "pwe_"

var nameRE = regexp.MustCompile(`^[\pL\pN][\pL\pN ._:@/()-]{0,63}$`)

// Validate checks a token request.
func (s *TokenSpec) Validate() error {
	var v errs.Validation
	s.Name = strings.TrimSpace(s.Name)
	if !nameRE.MatchString(s.Name) {
		v.Add("name", "is required: up to 64 letters, digits, spaces or . _ : @ / ( ) -")
	}
	if s.TTL < 0 || s.TTL > MaxTokenTTL {
		v.Add("ttl", "must be between 1 minute and %s", MaxTokenTTL)
	} else if s.TTL != 0 && s.TTL < time.Minute {
		v.Add("ttl", "must be at least 1 minute")
	}
	s.MaintenanceWindow = strings.TrimSpace(s.MaintenanceWindow)
	if len(s.MaintenanceWindow) > agentapi.MaxField || !agentapi.Printable(s.MaintenanceWindow) {
		v.Add("maintenance_window", "must be printable and at most %d characters", agentapi.MaxField)
	}
	if len(s.Groups) > 50 {
		v.Add("groups", "at most 50 groups")
	}
	groups := slices.Clone(s.Groups)
	slices.Sort(groups)
	s.Groups = slices.Compact(groups)
	return v.Err("invalid enrollment token")
}

// Agent is an enrolled endpoint agent: the identity every signed request is
// checked against, and the link to the asset it reports for.
type Agent struct {
	ID string `json:"id"`
	// AssetID is empty when an admin deleted the asset; such an agent is
	// refused until it enrolls again.
	AssetID         string     `json:"asset_id,omitempty"`
	PublicKey       []byte     `json:"public_key"`
	Hostname        string     `json:"hostname"`
	OSID            string     `json:"os_id,omitempty"`
	AgentVersion    string     `json:"agent_version,omitempty"`
	ProtocolVersion int        `json:"protocol_version"`
	TokenID         string     `json:"token_id"`
	EnrolledAt      time.Time  `json:"enrolled_at"`
	LastCheckIn     *time.Time `json:"last_checkin,omitempty"`
	InventoryHash   string     `json:"inventory_hash,omitempty"`
	InventoryAt     *time.Time `json:"inventory_at,omitempty"`
	// FactsHash is the hash of the last stored facts, so an unchanged
	// heartbeat costs no write.
	FactsHash string `json:"-"`
	// AssetRevision is the asset's revision after this agent last wrote
	// it. AssetChanged is set on reading when the asset's revision differs:
	// someone else (an admin, an import) changed it since, so its software
	// may no longer be the list InventoryHash names, and the agent is asked
	// for its inventory again.
	AssetRevision int        `json:"-"`
	AssetChanged  bool       `json:"-"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokeReason  string     `json:"revoke_reason,omitempty"`
}

// AgentDetail is an agent with the facts and pending updates it last
// reported.
type AgentDetail struct {
	Agent
	Facts   *agentapi.Facts          `json:"facts,omitempty"`
	Pending []agentapi.PendingUpdate `json:"pending,omitempty"`
	FactsAt *time.Time               `json:"facts_at,omitempty"`
}

// AgentFilter selects agents for listing.
type AgentFilter struct {
	AssetID string
	// Revoked selects revoked (true) or active (false) agents; nil for all.
	Revoked *bool
	Limit   int
	Offset  int
}

// AgentPage is one page of agents.
type AgentPage struct {
	Agents []Agent `json:"agents"`
	Total  int     `json:"total"`
	Limit  int     `json:"limit"`
	Offset int     `json:"offset"`
}

// JobState is where a job is in its life. queued → delivered → running →
// succeeded | failed | rolled_back | refused; an admin may cancel any job
// that has not finished.
type JobState string

// Job states.
const (
	JobQueued     JobState = "queued"
	JobDelivered  JobState = "delivered"
	JobRunning    JobState = "running"
	JobSucceeded  JobState = "succeeded"
	JobFailed     JobState = "failed"
	JobRolledBack JobState = "rolled_back"
	JobRefused    JobState = "refused"
	JobCancelled  JobState = "cancelled"
)

// JobStates lists every state, in life order.
var JobStates = []JobState{JobQueued, JobDelivered, JobRunning, JobSucceeded, JobFailed, JobRolledBack, JobRefused, JobCancelled}

// Finished reports whether no agent result can move the job any more.
// A cancelled job is not finished in this sense: if the agent ran it anyway,
// its result is the truth and is recorded.
func (s JobState) Finished() bool {
	switch s {
	case JobSucceeded, JobFailed, JobRolledBack, JobRefused:
		return true
	}
	return false
}

// Job is work queued for one agent.
type Job struct {
	ID          string                `json:"id"`
	AgentID     string                `json:"agent_id"`
	AssetID     string                `json:"asset_id,omitempty"`
	ChangeID    string                `json:"change_id,omitempty"`
	Kind        string                `json:"kind"`
	Emergency   bool                  `json:"emergency"`
	AllowReboot bool                  `json:"allow_reboot"`
	Packages    []agentapi.JobPackage `json:"packages"`
	PreChecks   []agentapi.Check      `json:"pre_checks,omitempty"`
	PostChecks  []agentapi.Check      `json:"post_checks,omitempty"`
	NotBefore   time.Time             `json:"not_before"`
	Deadline    time.Time             `json:"deadline"`
	State       JobState              `json:"state"`
	CreatedBy   string                `json:"created_by"`
	CreatedAt   time.Time             `json:"created_at"`
	UpdatedAt   time.Time             `json:"updated_at"`
	DeliveredAt *time.Time            `json:"delivered_at,omitempty"`
	StartedAt   *time.Time            `json:"started_at,omitempty"`
	FinishedAt  *time.Time            `json:"finished_at,omitempty"`
	// Attempt is the attempt number of the result that finished the job.
	Attempt int `json:"attempt,omitempty"`
	// Reason is the agent's reason for its result, or the admin's for a
	// cancellation.
	Reason string `json:"reason,omitempty"`
}

// JobStatus is where one job stands, without what it does: the rollout
// engine reads a whole change's jobs this way on every tick.
type JobStatus struct {
	ID        string    `json:"id"`
	AgentID   string    `json:"agent_id"`
	AssetID   string    `json:"asset_id,omitempty"`
	Kind      string    `json:"kind"`
	State     JobState  `json:"state"`
	NotBefore time.Time `json:"not_before"`
}

// Wire is the job as an agent receives it.
func (j Job) Wire() agentapi.Job {
	return agentapi.Job{ID: j.ID, ChangeID: j.ChangeID, Kind: j.Kind, Emergency: j.Emergency,
		AllowReboot: j.AllowReboot, Packages: j.Packages, PreChecks: j.PreChecks, PostChecks: j.PostChecks,
		NotBefore: j.NotBefore, Deadline: j.Deadline}
}

// JobSpec is a request to queue a job.
type JobSpec struct {
	AgentID     string                `json:"agent_id"`
	ChangeID    string                `json:"change_id,omitempty"`
	Kind        string                `json:"kind"`
	Emergency   bool                  `json:"emergency"`
	AllowReboot bool                  `json:"allow_reboot"`
	Packages    []agentapi.JobPackage `json:"packages"`
	PreChecks   []agentapi.Check      `json:"pre_checks,omitempty"`
	PostChecks  []agentapi.Check      `json:"post_checks,omitempty"`
	// NotBefore defaults to now; Deadline to NotBefore + DefaultJobDeadline.
	NotBefore *time.Time `json:"not_before,omitempty"`
	Deadline  *time.Time `json:"deadline,omitempty"`
}

// Job limits.
const (
	DefaultJobDeadline = 7 * 24 * time.Hour
	MaxJobPackages     = 500
	MaxJobChecks       = 20
)

// JobKinds lists the kinds an agent understands.
var JobKinds = []string{agentapi.JobInstall, agentapi.JobRollback, agentapi.JobInventory}

// CheckKinds lists the pre- and post-check kinds an agent understands.
var CheckKinds = []string{"disk_space", "pkg_lock_free", "backup_hook", "service_active", "command"}

var (
	// Package names and versions reach the OS package manager as arguments:
	// they must not start with '-' and hold nothing a shell or apt could
	// read as syntax. The sets cover dpkg, RPM, apk, winget IDs and KBs.
	pkgNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._:@~/-]{0,199}$`)
	pkgVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._:~-]{0,199}$`)
	// Check arguments name a service, hook or command configured on the
	// agent; never a command line.
	checkArgRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9@._:-]{0,127}$`)
	changeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// validate checks a job request; now anchors the default times.
func (s *JobSpec) validate(now time.Time) (notBefore, deadline time.Time, err error) {
	var v errs.Validation
	if !agentapi.ValidID(s.AgentID) {
		v.Add("agent_id", "is required")
	}
	if s.ChangeID != "" && !changeIDRE.MatchString(s.ChangeID) {
		v.Add("change_id", "must be up to 64 letters, digits, '.', '_', ':' or '-'")
	}
	if !slices.Contains(JobKinds, s.Kind) {
		v.Add("kind", "must be one of: %s", strings.Join(JobKinds, ", "))
	}
	switch {
	case s.Kind == agentapi.JobInstall && len(s.Packages) == 0:
		v.Add("packages", "an install job needs at least one package")
	case s.Kind == agentapi.JobInventory && len(s.Packages) > 0:
		v.Add("packages", "an inventory job takes no packages")
	case len(s.Packages) > MaxJobPackages:
		v.Add("packages", "at most %d packages per job", MaxJobPackages)
	}
	seen := map[string]bool{}
	for i, p := range s.Packages {
		switch {
		case !pkgNameRE.MatchString(p.Name):
			v.Add("packages", "package %d: name %q is not a package name", i+1, short(p.Name))
		case s.Kind == agentapi.JobInstall && p.TargetVersion == "":
			v.Add("packages", "package %s: target_version is required", p.Name)
		case p.TargetVersion != "" && !pkgVersionRE.MatchString(p.TargetVersion):
			v.Add("packages", "package %s: %q is not a version", p.Name, short(p.TargetVersion))
		case p.PreviousVersion != "":
			v.Add("packages", "package %s: previous_version is filled in by the agent", p.Name)
		case seen[p.Name]:
			v.Add("packages", "package %s appears twice", p.Name)
		}
		seen[p.Name] = true
	}
	checkChecks(&v, "pre_checks", s.PreChecks)
	checkChecks(&v, "post_checks", s.PostChecks)
	notBefore = now
	if s.NotBefore != nil {
		notBefore = s.NotBefore.UTC()
	}
	deadline = notBefore.Add(DefaultJobDeadline)
	if s.Deadline != nil {
		deadline = s.Deadline.UTC()
	}
	if !deadline.After(notBefore) {
		v.Add("deadline", "must be after not_before")
	}
	if deadline.Before(now) {
		v.Add("deadline", "is in the past")
	}
	if notBefore.Year() > 9000 || deadline.Year() > 9000 {
		v.Add("deadline", "is too far in the future")
	}
	return notBefore.Truncate(time.Microsecond), deadline.Truncate(time.Microsecond), v.Err("invalid job")
}

func checkChecks(v *errs.Validation, field string, cs []agentapi.Check) {
	if len(cs) > MaxJobChecks {
		v.Add(field, "at most %d checks", MaxJobChecks)
		return
	}
	for i, c := range cs {
		switch {
		case !slices.Contains(CheckKinds, c.Kind):
			v.Add(field, "check %d: kind must be one of: %s", i+1, strings.Join(CheckKinds, ", "))
		case c.Kind == "disk_space":
			if n, err := strconv.Atoi(c.Arg); err != nil || n <= 0 || n > 1<<24 {
				v.Add(field, "check %d: disk_space needs the MiB that must be free", i+1)
			}
		case c.Kind == "pkg_lock_free":
			if c.Arg != "" {
				v.Add(field, "check %d: pkg_lock_free takes no argument", i+1)
			}
		case !checkArgRE.MatchString(c.Arg):
			v.Add(field, "check %d: %s needs the name of a service, hook or command configured on the agent", i+1, c.Kind)
		}
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Result is what an agent reported for one attempt of a job.
type Result struct {
	JobID      string            `json:"job_id"`
	AgentID    string            `json:"agent_id"`
	Attempt    int               `json:"attempt"`
	Status     string            `json:"status"`
	Reason     string            `json:"reason,omitempty"`
	Steps      []agentapi.Step   `json:"steps"`
	Installed  map[string]string `json:"installed,omitempty"`
	ReceivedAt time.Time         `json:"received_at"`
}

// JobDetail is a job with every result reported for it.
type JobDetail struct {
	Job
	Results []Result `json:"results"`
}

// JobFilter selects jobs for listing.
type JobFilter struct {
	AgentID  string
	AssetID  string
	ChangeID string
	State    JobState
	Limit    int
	Offset   int
}

// JobPage is one page of jobs, newest first.
type JobPage struct {
	Jobs   []Job `json:"jobs"`
	Total  int   `json:"total"`
	Limit  int   `json:"limit"`
	Offset int   `json:"offset"`
}

// MaxPage is the largest page a listing returns.
const MaxPage = 1000

// InventoryListener hears when an asset's software changed through an agent,
// so the matching engine can re-evaluate that host. It is called after the
// change committed, on the request's goroutine: implementations queue the
// work and return quickly.
type InventoryListener interface {
	InventoryChanged(ctx context.Context, assetID string)
}

// JobListener hears when an agent's result for a job was committed (a new
// attempt, not a repeated one). It is called on the agent's request
// goroutine after the transaction: implementations must not block (the
// rollout engine only wakes its loop) and must not fail the request.
type JobListener interface {
	JobFinished(ctx context.Context, job Job)
}

// WindowSource tells an agent its maintenance window on every check-in, so
// the agent can refuse jobs outside it on its own. It is on the hot path:
// implementations answer from memory.
type WindowSource interface {
	Window(ctx context.Context, assetID string) (*agentapi.Window, error)
}

// errRejected is the one answer for every unusable enrollment token, so a
// caller cannot learn which tokens exist; the log has the detail.
var errRejected = errs.E(errs.Unauthorized, "enrollment token is invalid, used, revoked or expired")

func pageLimit(limit, offset int) (int, error) {
	if offset < 0 {
		return 0, errs.E(errs.Invalid, "offset must not be negative")
	}
	if limit <= 0 {
		return 50, nil
	}
	return min(limit, MaxPage), nil
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
