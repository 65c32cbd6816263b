// Package policy is the clinic's patch management policy as code: one YAML
// file, versioned in the database, that both drives enforcement (risk
// weights, SLA tiers, approvals, windows, rings, exception rules) and is
// rendered as the written policy document auditors ask for, so the two can
// never drift apart.
//
// Load decodes a file strictly, validates it and compiles its CEL
// expressions into an immutable *Compiled; a bad file is refused whole with
// an *Error that lists every problem with its line, column and setting
// path. Default is the embedded default.yaml, in force before any version
// is applied. Services evaluate through *Compiled (RuleHits, ClassesOf,
// RingOf, Mission, TierForScore…) and read settings through its Policy
// method, which returns a deep copy so no caller can change the policy
// another request is using. Render writes the policy document in Markdown
// or HTML.
package policy

import "time"

// SchemaVersion is the policy file format this build reads.
const SchemaVersion = 1

// Risk modes: how a finding's tier is decided.
const (
	// ModeScore adds weighted factors into a 0–100 score and maps it onto
	// the tiers by score band.
	ModeScore = "score"
	// ModeSSVC walks CISA's SSVC decision table and maps its outcome
	// (Track, Track*, Attend, Act) onto a tier.
	ModeSSVC = "ssvc"
	// ModeKEVBands follows CISA's binding operational directives: KEV
	// entries by their catalog due date, then critical and high CVSS bands.
	ModeKEVBands = "kev_bands"
)

// Clock starts: when a finding's SLA clock starts.
const (
	ClockFirstSeen    = "first_seen"
	ClockFixAvailable = "fix_available"
)

// Change types, as the seeds name them.
const (
	ChangeStandard  = "standard"
	ChangeNormal    = "normal"
	ChangeEmergency = "emergency"
)

// Exception decision types.
const (
	DecisionAccept   = "accept"
	DecisionMitigate = "mitigate"
	DecisionTransfer = "transfer"
	DecisionAvoid    = "avoid"
)

// Decisions lists every exception decision type.
var Decisions = []string{DecisionAccept, DecisionMitigate, DecisionTransfer, DecisionAvoid}

// Compensating control kinds an exception may record.
const (
	ControlSegmentation    = "segmentation"
	ControlAllowlisting    = "allowlisting"
	ControlMonitoring      = "monitoring"
	ControlFeatureDisabled = "feature_disabled"
	ControlAccessControl   = "access_restriction"
	ControlVendorManaged   = "vendor_managed"
	ControlOther           = "other"
)

// ControlKinds lists every compensating control kind.
var ControlKinds = []string{ControlSegmentation, ControlAllowlisting, ControlMonitoring,
	ControlFeatureDisabled, ControlAccessControl, ControlVendorManaged, ControlOther}

// Policy is one version of the policy file. Field order is the order of the
// rendered document.
type Policy struct {
	// Version is the file format version (SchemaVersion).
	Version      int          `yaml:"version"`
	Organization Organization `yaml:"organization"`
	Risk         Risk         `yaml:"risk"`
	SLA          SLA          `yaml:"sla"`
	// AssetClasses name assets that get stricter SLA targets (domain
	// controllers, EHR/LIS servers, VPN gateways, patient-care devices).
	AssetClasses []AssetClass `yaml:"asset_classes"`
	Roles        []Role       `yaml:"roles"`
	Approvals    Approvals    `yaml:"approvals"`
	Emergency    Emergency    `yaml:"emergency"`
	Windows      []Window     `yaml:"maintenance_windows"`
	Freezes      []Freeze     `yaml:"freezes"`
	Rings        []Ring       `yaml:"rings"`
	Testing      Testing      `yaml:"testing"`
	Rollback     Rollback     `yaml:"rollback"`
	Exceptions   Exceptions   `yaml:"exceptions"`
	Retention    Retention    `yaml:"retention"`
}

// Organization says whose policy this is and what it covers.
type Organization struct {
	Name string `yaml:"name"`
	// Scope is the policy's coverage statement (seed: "every endpoint,
	// server, network device, and clinical system").
	Scope []string `yaml:"scope"`
	// Owner is the role accountable for the policy; ReviewEvery how often
	// it is reviewed.
	Owner       string   `yaml:"owner"`
	ReviewEvery Duration `yaml:"review_every"`
	// TimeZone is the IANA zone used for assets whose site names none.
	TimeZone string `yaml:"time_zone"`
}

// Risk configures scoring.
type Risk struct {
	// Mode is ModeScore, ModeSSVC or ModeKEVBands.
	Mode    string  `yaml:"mode"`
	Weights Weights `yaml:"weights"`
	// Rules are the organisation's own adjustments, as CEL expressions over
	// asset, vuln and finding (see Facts).
	Rules []Rule `yaml:"rules"`
	// Tiers are ordered most urgent first; in score mode their score bands
	// must not overlap and together cover 0–100.
	Tiers []Tier `yaml:"tiers"`
	SSVC  SSVC   `yaml:"ssvc"`
	// KEVBands configures ModeKEVBands.
	KEVBands KEVBands `yaml:"kev_bands"`
}

// Weights are the points each risk factor contributes in score mode. Every
// weight is non-negative and ordinal tables never decrease from the least to
// the most severe level, so raising a risk input never lowers a score.
type Weights struct {
	// CVSS points at base score 10, scaled linearly.
	CVSS float64 `yaml:"cvss"`
	// KEV points when CISA lists the vulnerability as known exploited;
	// Ransomware extra points when CISA records known ransomware use.
	KEV        float64 `yaml:"kev"`
	Ransomware float64 `yaml:"ransomware"`
	// EPSS points at probability 1, scaled by the EPSS probability.
	EPSS float64 `yaml:"epss"`
	// Exposure points by inventory exposure level; NetworkZone by zone name.
	Exposure    map[string]float64 `yaml:"exposure"`
	NetworkZone map[string]float64 `yaml:"network_zone"`
	// Criticality points by asset business criticality.
	Criticality map[string]float64 `yaml:"criticality"`
	// PHI points when the asset handles protected health information.
	PHI float64 `yaml:"phi"`
	// PatientSafety points by patient-safety impact level.
	PatientSafety map[string]float64 `yaml:"patient_safety"`
	// FixAvailable points when a fixed version exists: the finding is
	// actionable now.
	FixAvailable float64 `yaml:"fix_available"`
	// CompensatingControl points removed per compensating control in force,
	// at most MaxControlReduction in total.
	CompensatingControl float64 `yaml:"compensating_control"`
	MaxControlReduction float64 `yaml:"max_control_reduction"`
}

// Rule is an organisation-defined adjustment. When must be a CEL expression
// returning bool; Add points are added when it holds (may be negative), and
// MinTier lifts the finding to at least that tier.
type Rule struct {
	Name        string  `yaml:"name"`
	Description string  `yaml:"description"`
	When        string  `yaml:"when"`
	Add         float64 `yaml:"add"`
	MinTier     string  `yaml:"min_tier"`
}

// Tier is one SLA tier.
type Tier struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// MinScore and MaxScore bound the tier in score mode: MinScore ≤ score
	// < MaxScore, except the top tier includes 100.
	MinScore float64 `yaml:"min_score"`
	MaxScore float64 `yaml:"max_score"`
	// Due is the remediation target from the clock start.
	Due Duration `yaml:"due"`
	// DueSoon is how long before the due date a finding counts as due soon.
	DueSoon Duration `yaml:"due_soon"`
}

// SSVC configures the SSVC mode: the decision table (data, not code) and how
// its outcomes map onto tiers.
type SSVC struct {
	// Table names the embedded decision table ("cisa-2.0.3") or is empty
	// for the default.
	Table string `yaml:"table"`
	// Outcomes maps each decision (track, track*, attend, act) to a tier.
	Outcomes map[string]string `yaml:"outcomes"`
	// PoCEPSSPercentile: an EPSS percentile at or above this counts as
	// public proof of concept when nothing better is known.
	PoCEPSSPercentile float64 `yaml:"poc_epss_percentile"`
	// MissionImpact says which assets rate high or medium for "Mission &
	// Well-being"; everything else is low. Each is a CEL bool expression.
	MissionHigh   string `yaml:"mission_high"`
	MissionMedium string `yaml:"mission_medium"`
}

// KEVBands configures ModeKEVBands (BOD 22-01 and BOD 19-02).
type KEVBands struct {
	// UseCatalogDueDate takes the KEV catalog's own due date when present.
	UseCatalogDueDate bool `yaml:"use_catalog_due_date"`
	// KEV is the target for KEV entries without a catalog due date.
	KEV      Duration `yaml:"kev"`
	Critical Duration `yaml:"critical"`
	High     Duration `yaml:"high"`
	// Other is the target for everything else.
	Other Duration `yaml:"other"`
	// Tiers map each band (kev, critical, high, other) to a tier name.
	Tiers map[string]string `yaml:"tiers"`
}

// SLA configures the clocks.
type SLA struct {
	// ClockStart is ClockFirstSeen or ClockFixAvailable.
	ClockStart string `yaml:"clock_start"`
	// EPSSJump is the rise in EPSS probability that re-prioritises a
	// finding (a KEV listing always does).
	EPSSJump float64 `yaml:"epss_jump"`
	// Recompute says whether a re-prioritisation may move a due date
	// later; the default only ever brings it forward.
	AllowLaterDueDate bool `yaml:"allow_later_due_date"`
}

// AssetClass names a class of assets by a CEL bool expression over asset and
// gives it stricter targets per tier (tier name → target).
type AssetClass struct {
	Name        string              `yaml:"name"`
	Description string              `yaml:"description"`
	Match       string              `yaml:"match"`
	Due         map[string]Duration `yaml:"due"`
	// Approvers are extra roles whose sign-off a change to this class needs
	// (e.g. laboratory director for LIS and analyzers, as CLIA expects).
	Approvers []string `yaml:"approvers"`
}

// Role is a policy role: who holds it and what it is responsible for. Grants
// names the Patchward role (admin, approver, operator, auditor, viewer) that
// carries it in the software.
type Role struct {
	Name             string   `yaml:"name"`
	Grants           string   `yaml:"grants"`
	Responsibilities []string `yaml:"responsibilities"`
}

// Approvals are the approval rules per change type.
type Approvals struct {
	// SeparationOfDuties forbids a requester approving their own change.
	SeparationOfDuties bool `yaml:"separation_of_duties"`
	// ExpireOnEdit withdraws approvals when a change is edited.
	ExpireOnEdit bool                    `yaml:"expire_on_edit"`
	Types        map[string]ApprovalRule `yaml:"types"`
}

// ApprovalRule says who must approve one change type.
type ApprovalRule struct {
	Description string   `yaml:"description"`
	Roles       []string `yaml:"roles"`
	Quorum      int      `yaml:"quorum"`
	// PreApproved standard changes need no approval per change.
	PreApproved bool `yaml:"pre_approved"`
}

// Emergency is the fast lane for actively exploited vulnerabilities.
type Emergency struct {
	// Authority lists the policy roles that may declare an emergency.
	Authority []string `yaml:"authority"`
	// Triggers describe when an emergency change is proposed.
	Triggers []string `yaml:"triggers"`
	// GoNoGo is the time box for the go/no-go decision.
	GoNoGo Duration `yaml:"go_no_go"`
	// Tests are the abbreviated test case IDs (from Testing.Cases).
	Tests []string `yaml:"tests"`
	// Window names the maintenance window used, or "immediate".
	Window string `yaml:"window"`
	// ReviewWithin is when the post-incident review is due after closing.
	ReviewWithin Duration `yaml:"review_within"`
}

// Window is a named maintenance window. Schedule is an RFC 5545 RRULE for
// the start (e.g. "FREQ=MONTHLY;BYDAY=2TU"), OffsetDays shifts it (Patch
// Tuesday + 2), Start is local "HH:MM" and TimeZone "site" or an IANA zone.
type Window struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Schedule    string   `yaml:"schedule"`
	OffsetDays  int      `yaml:"offset_days"`
	Start       string   `yaml:"start"`
	Duration    Duration `yaml:"duration"`
	TimeZone    string   `yaml:"time_zone"`
	Emergency   bool     `yaml:"emergency"`
}

// Freeze is a period when no non-emergency change runs (proficiency
// testing, accreditation visits). Dates are inclusive, "YYYY-MM-DD".
type Freeze struct {
	Name   string `yaml:"name"`
	From   string `yaml:"from"`
	To     string `yaml:"to"`
	Reason string `yaml:"reason"`
}

// Ring is one deployment wave. Select is a CEL bool expression over asset;
// rings are tried in order and an asset joins the first that selects it.
type Ring struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Select      string `yaml:"select"`
	// The gate to the next ring: at least MinSuccess assets and
	// SuccessRate of the ring succeeded, and Soak has passed.
	MinSuccess  int      `yaml:"min_success"`
	SuccessRate float64  `yaml:"success_rate"`
	Soak        Duration `yaml:"soak"`
	// HaltFailureRate halts the rollout when failures exceed it.
	HaltFailureRate float64 `yaml:"halt_failure_rate"`
	// MaxConcurrent throttles jobs per site (0: no limit).
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Testing are the testing requirements and the test case catalogue.
type Testing struct {
	// RequiredFor lists change types that must record a passing test run.
	RequiredFor []string   `yaml:"required_for"`
	Cases       []TestCase `yaml:"cases"`
}

// TestCase is one test with its pass/fail criterion. AppliesTo lists asset
// class names; empty means every change.
type TestCase struct {
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"`
	Criteria  string   `yaml:"criteria"`
	AppliesTo []string `yaml:"applies_to"`
	Evidence  string   `yaml:"evidence"`
}

// Rollback are the rollback requirements.
type Rollback struct {
	RequirePlan bool     `yaml:"require_plan"`
	Triggers    []string `yaml:"triggers"`
	// AutoOnHalt sends rollback jobs when a ring halts.
	AutoOnHalt bool `yaml:"auto_on_halt"`
}

// Exceptions are the risk acceptance rules.
type Exceptions struct {
	// ApproverRoles are the Patchward roles allowed to approve.
	ApproverRoles []string `yaml:"approver_roles"`
	MaxDuration   Duration `yaml:"max_duration"`
	ReviewEvery   Duration `yaml:"review_every"`
	// RequireControls lists decisions that need at least one compensating
	// control (mitigate, by default).
	RequireControls []string `yaml:"require_controls"`
	// Decisions allowed; empty means all four.
	Decisions []string `yaml:"decisions"`
}

// Retention says how long records are kept.
type Retention struct {
	Audit    Duration `yaml:"audit"`
	Findings Duration `yaml:"findings"`
	Evidence Duration `yaml:"evidence"`
}

// Duration is a policy duration: Go syntax ("72h", "90m") or whole days
// ("14d"), weeks ("2w") or years ("6y" = 6×365 days). Days are calendar days
// in the asset's time zone, so "14d" ends at the same local wall-clock time
// even across a DST change; hours are exact elapsed time.
type Duration struct {
	// Days is the calendar-day part; Exact the elapsed-time part.
	Days  int
	Exact time.Duration
}

// Facts are what CEL expressions see: `asset`, `vuln` and `finding`.
type Facts struct {
	Asset   AssetFacts
	Vuln    VulnFacts
	Finding FindingFacts
}

// AssetFacts describe the asset, with inventory's enum values as strings.
type AssetFacts struct {
	ID              string   `cel:"id"`
	Name            string   `cel:"name"`
	Type            string   `cel:"type"`
	Site            string   `cel:"site"`
	NetworkZone     string   `cel:"network_zone"`
	Exposure        string   `cel:"exposure"`
	Criticality     string   `cel:"criticality"`
	SafetyImpact    string   `cel:"patient_safety_impact"`
	DataClass       string   `cel:"data_classification"`
	PHI             bool     `cel:"handles_phi"`
	RegulatedDevice bool     `cel:"regulated_device"`
	Restriction     string   `cel:"vendor_patch_restriction"`
	OSName          string   `cel:"os_name"`
	Make            string   `cel:"make"`
	Model           string   `cel:"model"`
	Tags            []string `cel:"tags"`
	Groups          []string `cel:"groups"`
}

// VulnFacts describe the vulnerability.
type VulnFacts struct {
	ID      string   `cel:"id"`
	Aliases []string `cel:"aliases"`
	// CVSS is the headline base score (v4 when present, else v3.x, else
	// v2); CVSSVersion "4.0", "3.1", "3.0", "2.0" or "" when unscored.
	CVSS           float64 `cel:"cvss"`
	CVSSVersion    string  `cel:"cvss_version"`
	CVSSVector     string  `cel:"cvss_vector"`
	KEV            bool    `cel:"kev"`
	Ransomware     bool    `cel:"ransomware"`
	EPSS           float64 `cel:"epss"`
	EPSSPercentile float64 `cel:"epss_percentile"`
}

// FindingFacts describe the finding.
type FindingFacts struct {
	Ecosystem    string `cel:"ecosystem"`
	Package      string `cel:"package"`
	Version      string `cel:"version"`
	FixAvailable bool   `cel:"fix_available"`
	// Controls are the kinds of compensating control in force.
	Controls []string `cel:"controls"`
	// AgeDays is how long the finding has been open.
	AgeDays float64 `cel:"age_days"`
}
