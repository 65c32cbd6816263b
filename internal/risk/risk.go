// Package risk turns findings into a defensible priority: a score or SSVC
// decision with its full explanation, an SLA tier and due date whose clock
// and every re-prioritisation are recorded, and risk acceptance (exceptions)
// with compensating controls, owners, approvers, expiry and review.
package risk

import (
	"time"

	"github.com/patchward/patchward/internal/policy"
)

// Input is everything the assessment of one finding depends on.
type Input struct {
	Facts policy.Facts
	// KEVDateAdded and KEVDueDate come from the CISA catalog entry, when
	// the vulnerability is listed.
	KEVDateAdded *time.Time
	KEVDueDate   *time.Time
	// Exploitation overrides the SSVC exploitation input when a source
	// states it ("none", "poc", "active"); empty derives it from KEV/EPSS.
	Exploitation string
}

// Factor is one term of an explanation: what was looked at, what it was, and
// what it added to the score (negative for compensating controls).
type Factor struct {
	Name   string  `json:"name"`
	Input  string  `json:"input"`
	Points float64 `json:"points"`
	// Note says why, where the points alone do not (a rule's description,
	// a tier floor).
	Note string `json:"note,omitempty"`
}

// SSVCDecision is one walk through the SSVC decision table.
type SSVCDecision struct {
	Table           string `json:"table"`
	Exploitation    string `json:"exploitation"`
	Automatable     string `json:"automatable"`
	TechnicalImpact string `json:"technical_impact"`
	Mission         string `json:"mission_wellbeing"`
	Outcome         string `json:"outcome"`
	// Why explains how each input was derived from the data.
	Why map[string]string `json:"why,omitempty"`
}

// Assessment is the priority of one finding under one policy version.
type Assessment struct {
	Mode  string  `json:"mode"`
	Score float64 `json:"score"`
	// Tier is the SLA tier's name; Rank its position (0 is most urgent).
	Tier    string        `json:"tier"`
	Rank    int           `json:"rank"`
	Factors []Factor      `json:"factors"`
	SSVC    *SSVCDecision `json:"ssvc,omitempty"`
	// Band is the KEV-bands mode band (kev, critical, high, other).
	Band string `json:"band,omitempty"`
	// Classes are the asset classes the asset belongs to.
	Classes []string `json:"asset_classes,omitempty"`
	// Target is the remediation target from the clock start: the tier's,
	// or the strictest of the asset classes' when they set one. AbsoluteDue
	// replaces it when a source fixes the date (KEV catalog due date).
	Target      policy.Duration `json:"-"`
	TargetText  string          `json:"target"`
	TargetWhy   string          `json:"target_reason"`
	AbsoluteDue *time.Time      `json:"absolute_due,omitempty"`
	DueSoon     policy.Duration `json:"-"`
}

// SLA states, computed from the due date at read time.
const (
	SLAOnTrack  = "on_track"
	SLADueSoon  = "due_soon"
	SLABreached = "breached"
	// SLAExcepted findings are covered by an approved exception: their
	// clock is stopped until it ends.
	SLAExcepted = "excepted"
	// SLAMet and SLAMissed are for remediated findings.
	SLAMet    = "met"
	SLAMissed = "missed"
	// SLAAwaitingFix findings have no clock yet: the policy starts clocks
	// when a fix is available and none is known.
	SLAAwaitingFix = "awaiting_fix"
)

// Record statuses.
const (
	StatusOpen     = "open"
	StatusExcepted = "excepted"
	StatusFixed    = "fixed"
	// StatusNotAffected follows the finding's vendor VEX statement.
	StatusNotAffected = "not_affected"
)

// Clock bases: why a clock started when it did.
const (
	BasisFirstSeen      = "first_seen"
	BasisFixAvailable   = "fix_available"
	BasisReopened       = "reopened"
	BasisExceptionEnded = "exception_ended"
	BasisReprioritized  = "reprioritized"
	BasisPolicyChanged  = "policy_changed"
	// BasisAwaitingFix marks a clock that has not started: the policy
	// starts clocks when a fix is available and none is known yet.
	BasisAwaitingFix = "awaiting_fix"
	// BasisVEXWithdrawn: the vendor withdrew a not-affected statement, so
	// the clock runs from then (nobody could act on it before).
	BasisVEXWithdrawn = "vex_withdrawn"
)

// Record is the stored priority and SLA clock of one finding.
type Record struct {
	FindingID string `json:"finding_id"`
	AssetID   string `json:"asset_id"`
	VulnID    string `json:"vuln_id"`
	Status    string `json:"status"`

	Assessment    Assessment `json:"assessment"`
	PolicyVersion int        `json:"policy_version"`

	FirstSeen      time.Time  `json:"first_seen"`
	FixAvailableAt *time.Time `json:"fix_available_at,omitempty"`
	// ClockStart and ClockBasis say when and why the current clock started.
	ClockStart time.Time `json:"clock_start"`
	ClockBasis string    `json:"clock_basis"`
	DueAt      time.Time `json:"due_at"`
	// DueReason is the human explanation of the current due date.
	DueReason string `json:"due_reason"`
	// DueSoonAt is when the finding becomes due soon.
	DueSoonAt time.Time `json:"due_soon_at"`

	ExceptionID string `json:"exception_id,omitempty"`

	// KEV and EPSS are the intelligence the record was last computed from,
	// so that a KEV listing or an EPSS jump is noticed.
	KEV  bool    `json:"kev"`
	EPSS float64 `json:"epss"`

	ResolvedAt      *time.Time     `json:"resolved_at,omitempty"`
	TimeToRemediate *time.Duration `json:"time_to_remediate,omitempty"`
	MetSLA          *bool          `json:"met_sla,omitempty"`

	ComputedAt time.Time `json:"computed_at"`
}

// Event is one entry of a finding's priority history: every time its tier
// or due date changed, and why.
type Event struct {
	FindingID string    `json:"finding_id"`
	At        time.Time `json:"at"`
	Tier      string    `json:"tier"`
	Score     float64   `json:"score"`
	DueAt     time.Time `json:"due_at"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason"`
	// PolicyVersion is the policy version in force.
	PolicyVersion int `json:"policy_version"`
}

// Exception scopes: what an exception covers.
const (
	ScopeFinding = "finding"
	ScopeAsset   = "asset"
	ScopeGroup   = "group"
)

// Exception states.
const (
	ExceptionRequested = "requested"
	ExceptionApproved  = "approved"
	ExceptionRejected  = "rejected"
	ExceptionRevoked   = "revoked"
	ExceptionExpired   = "expired"
)

// Control is one compensating control in force, structured so it can be
// counted, reported and verified, with free text only for the detail.
type Control struct {
	// Kind is one of policy.ControlKinds.
	Kind        string `json:"kind"`
	Description string `json:"description"`
	// VerifiedAt and VerifiedBy record when someone last confirmed the
	// control is in place.
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	VerifiedBy string     `json:"verified_by,omitempty"`
}

// Exception is a documented risk acceptance for findings that cannot be
// remediated in time: a validated device, a vendor restriction.
type Exception struct {
	ID string `json:"id"`
	// Scope is ScopeFinding, ScopeAsset or ScopeGroup; Target the finding,
	// asset or group ID. VulnID, when set, narrows an asset or group
	// exception to one vulnerability.
	Scope  string `json:"scope"`
	Target string `json:"target"`
	VulnID string `json:"vuln_id,omitempty"`

	// Decision is one of policy.Decisions.
	Decision string    `json:"decision"`
	Reason   string    `json:"reason"`
	Controls []Control `json:"controls"`
	// Owner is accountable for the risk and the controls.
	Owner string `json:"owner"`

	State        string     `json:"state"`
	RequestedBy  string     `json:"requested_by"`
	RequestedAt  time.Time  `json:"requested_at"`
	DecidedBy    string     `json:"decided_by,omitempty"`
	DecidedAt    *time.Time `json:"decided_at,omitempty"`
	DecisionNote string     `json:"decision_note,omitempty"`

	// ExpiresAt ends the exception; NextReviewAt is when it must next be
	// reviewed (ReviewEvery from the policy unless shorter).
	ExpiresAt      time.Time  `json:"expires_at"`
	NextReviewAt   time.Time  `json:"next_review_at"`
	LastReviewedAt *time.Time `json:"last_reviewed_at,omitempty"`
	// EndedAt is when it stopped covering findings (expiry, revocation).
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// EndedBy and EndNote say who revoked it and why (empty on expiry),
	// so the record itself answers an auditor without the audit log.
	EndedBy string `json:"ended_by,omitempty"`
	EndNote string `json:"end_note,omitempty"`

	// Revision increments on every change, for optimistic concurrency.
	Revision  int       `json:"revision"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Review is one periodic review of an exception.
type Review struct {
	ExceptionID string    `json:"exception_id"`
	At          time.Time `json:"at"`
	By          string    `json:"by"`
	// Outcome is "continue" (controls confirmed; next review scheduled) or
	// "revoke".
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
}
