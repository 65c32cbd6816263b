// Package change is Patchward's change control: the change record that
// bundles patches for a set of assets with its risk rating, test protocol,
// evidence, rollback plan, approvals and sign-offs, and the state machine
// that takes it from draft to completed (or halted, rolled back,
// cancelled). The seeds ask for change records "that include risk rating,
// test outcomes, and sign-off for compliance and audit trails"; every
// transition is therefore written in the same transaction as its audit
// record, with who and why.
//
// The rules come from the policy in force (internal/policy): who approves
// which change type and how many must (approvals.types), which asset classes
// add approvers (asset_classes[].approvers), separation of duties, expiry of
// approvals on edit, which types need a passing test run
// (testing.required_for), the rollback plan requirement and the emergency
// fast lane (emergency.go_no_go, emergency.tests).
//
// Approvals are given as a policy role. The policy's roles are job titles
// (it-manager, laboratory-director…) while a Patchward user holds one
// Patchward role (admin, approver, operator…); each policy role names the
// Patchward role that carries it in its `grants`. Patchward cannot know
// which person holds which title, so an approver says which policy role
// they sign as, and may sign as a policy role only when their Patchward
// role is the one it grants. The audit record keeps both.
package change

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Type is a change type, as the policy's approvals.types names them.
type Type string

// The change types.
const (
	Standard  Type = policy.ChangeStandard
	Normal    Type = policy.ChangeNormal
	Emergency Type = policy.ChangeEmergency
)

// Types lists every change type.
var Types = []Type{Standard, Normal, Emergency}

// Change is one change record.
type Change struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Type        Type   `json:"type"`
	// Findings and Advisories link the change to what it remediates.
	Findings   []string `json:"findings,omitempty"`
	Advisories []string `json:"advisories,omitempty"`
	Targets    Targets  `json:"targets"`
	Patches    []Patch  `json:"patches"`
	// Risk is the most urgent risk record among the linked findings,
	// computed by the service, never given by the requester.
	Risk           RiskRating      `json:"risk"`
	PlannedWindows []PlannedWindow `json:"planned_windows,omitempty"`
	Communication  Communication   `json:"communication"`
	// PreChecks are what must be verified before deployment (backup or
	// snapshot verified, configuration exported, baseline measured).
	PreChecks    []string     `json:"pre_checks,omitempty"`
	TestProtocol []TestStep   `json:"test_protocol,omitempty"`
	RollbackPlan RollbackPlan `json:"rollback_plan"`
	// SignOffs are the acceptance sign-offs by role (IT and laboratory
	// stakeholders) that a change needs before it can complete.
	SignOffs []SignOff `json:"sign_offs,omitempty"`
	// Emergency is set for emergency changes only.
	Emergency *EmergencyInfo `json:"emergency,omitempty"`

	State       State  `json:"state"`
	RequestedBy string `json:"requested_by"`
	// RequestedByID is the requester's actor ID: separation of duties
	// compares IDs, not display names.
	RequestedByID string `json:"requested_by_id"`
	// EditedBy lists the actor IDs of everyone who edited the content after
	// creating it: like the requester, they may not approve what they
	// wrote when the policy separates duties.
	EditedBy []string `json:"edited_by,omitempty"`
	// Revision increments on every write, for optimistic concurrency.
	Revision int `json:"revision"`
	// EditedAt is when the content last changed; a test run must be at or
	// after it to count.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	EditedAt  time.Time `json:"edited_at"`
}

// Targets are what the change applies to: assets and groups of assets.
type Targets struct {
	Assets []string `json:"assets,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Empty reports whether there are no targets.
func (t Targets) Empty() bool { return len(t.Assets) == 0 && len(t.Groups) == 0 }

// Patch is one update the change applies: a package to a target version by
// agent, or, for a vendor-mediated device, a manual task.
type Patch struct {
	Package       string      `json:"package,omitempty"`
	Ecosystem     string      `json:"ecosystem,omitempty"`
	TargetVersion string      `json:"target_version,omitempty"`
	Manual        *ManualTask `json:"manual,omitempty"`
}

// ManualTask is a vendor-mediated step that cannot be done by agent
// (firmware re-flash by the device maker's engineer).
type ManualTask struct {
	Description string     `json:"description"`
	Owner       string     `json:"owner"`
	Due         *time.Time `json:"due,omitempty"`
}

// RiskRating is the change's priority: the most urgent of its findings'
// risk records.
type RiskRating struct {
	Tier string `json:"tier,omitempty"`
	// Rank is the tier's position (0 most urgent); -1 when unrated.
	Rank  int     `json:"rank"`
	Score float64 `json:"score"`
	// FindingID is the finding that gave the rating.
	FindingID string `json:"finding_id,omitempty"`
	// Findings is how many linked findings had a risk record.
	Findings int `json:"findings"`
	// PolicyVersion is the policy version the rating was computed under.
	PolicyVersion int       `json:"policy_version"`
	ComputedAt    time.Time `json:"computed_at"`
}

// PlannedWindow is when the change is planned: a named policy maintenance
// window, or an explicit start and end read in a time zone.
type PlannedWindow struct {
	Window   string     `json:"window,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	TimeZone string     `json:"time_zone,omitempty"`
}

// Communication is the change's communication plan.
type Communication struct {
	// Notify lists who is told (lab operations, clinicians, help desk).
	Notify     []string `json:"notify,omitempty"`
	UserImpact string   `json:"user_impact,omitempty"`
	Message    string   `json:"message,omitempty"`
}

// TestStep is one case of the change's test protocol: a policy test case
// (CaseID from testing.cases) or a custom one.
type TestStep struct {
	CaseID   string `json:"case_id"`
	Name     string `json:"name"`
	Criteria string `json:"criteria"`
	// Custom is true for cases the policy does not define.
	Custom bool `json:"custom,omitempty"`
}

// RollbackPlan says in advance when and how the change is backed out.
type RollbackPlan struct {
	// Triggers are the conditions that roll the change back (a failed
	// test case, abnormal QC, connectivity loss).
	Triggers []string `json:"triggers,omitempty"`
	Steps    []string `json:"steps,omitempty"`
	Owner    string   `json:"owner,omitempty"`
}

// Empty reports whether no plan was written.
func (p RollbackPlan) Empty() bool { return len(p.Triggers) == 0 && len(p.Steps) == 0 }

// SignOff is one acceptance sign-off by a policy role.
type SignOff struct {
	Role string     `json:"role"`
	By   string     `json:"by,omitempty"`
	At   *time.Time `json:"at,omitempty"`
	Note string     `json:"note,omitempty"`
}

// EmergencyInfo is the emergency path's record.
type EmergencyInfo struct {
	DeclaredAt time.Time `json:"declared_at"`
	// GoNoGoBy is the time box: not approved by then, the change can no
	// longer be approved.
	GoNoGoBy      time.Time `json:"go_no_go_by"`
	Justification string    `json:"justification"`
	// PostIncidentReview must be recorded before the change completes.
	PostIncidentReview *Review `json:"post_incident_review,omitempty"`
}

// Review is an emergency change's post-incident review.
type Review struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Summary string    `json:"summary"`
	Lessons []string  `json:"lessons,omitempty"`
}

// Test results.
const (
	ResultPass    = "pass"
	ResultFail    = "fail"
	ResultSkipped = "skipped"
)

// TestRun is one execution of (part of) a change's test protocol.
type TestRun struct {
	ID       string       `json:"id"`
	ChangeID string       `json:"change_id"`
	Results  []CaseResult `json:"results"`
	RunBy    string       `json:"run_by"`
	At       time.Time    `json:"at"`
}

// CaseResult is one case's outcome in a run.
type CaseResult struct {
	CaseID   string        `json:"case_id"`
	Result   string        `json:"result"`
	Notes    string        `json:"notes,omitempty"`
	Evidence []EvidenceRef `json:"evidence,omitempty"`
}

// EvidenceRef points at evidence attached to the same change.
type EvidenceRef struct {
	SHA256 string `json:"sha256"`
	Name   string `json:"name,omitempty"`
}

// Evidence is one attachment (screenshot, QC printout, exported log). The
// bytes are stored once per SHA-256, so the same file attached twice costs
// nothing and the hash is its identity.
type Evidence struct {
	ChangeID   string    `json:"change_id"`
	SHA256     string    `json:"sha256"`
	Name       string    `json:"name"`
	MediaType  string    `json:"media_type"`
	Size       int64     `json:"size"`
	UploadedBy string    `json:"uploaded_by"`
	At         time.Time `json:"at"`
}

// Decisions an approver can give.
const (
	Approve = "approve"
	Reject  = "reject"
)

// Approval is one approver's decision on one revision of a change.
type Approval struct {
	ChangeID string `json:"change_id"`
	// By and ByID are the approver's name and actor ID.
	By   string `json:"by"`
	ByID string `json:"by_id"`
	// Role is the policy role signed as; Grant the approver's Patchward
	// role when signing.
	Role     string    `json:"role"`
	Grant    string    `json:"grant"`
	Decision string    `json:"decision"`
	Note     string    `json:"note,omitempty"`
	At       time.Time `json:"at"`
	// ChangeRevision is the revision the approver saw.
	ChangeRevision int `json:"change_revision"`
	// ExpiredAt is set when an edit withdrew the approval; it stays on
	// record.
	ExpiredAt  *time.Time `json:"expired_at,omitempty"`
	ExpiredWhy string     `json:"expired_why,omitempty"`
}

// Transition is one entry of a change's state history.
type Transition struct {
	ChangeID string    `json:"change_id"`
	From     State     `json:"from"`
	To       State     `json:"to"`
	Action   Action    `json:"action"`
	By       string    `json:"by"`
	Why      string    `json:"why,omitempty"`
	At       time.Time `json:"at"`
	// Revision is the change's revision after the transition.
	Revision int `json:"revision"`
}

// Limits on outside input, so one request cannot fill the database.
const (
	maxText  = 10_000
	maxItems = 500
)

// normalize trims what people type and drops empty list entries.
func (c *Change) normalize() {
	c.Title = strings.TrimSpace(c.Title)
	c.Description = strings.TrimSpace(c.Description)
	c.Findings = cleanList(c.Findings)
	c.Advisories = cleanList(c.Advisories)
	c.Targets.Assets = cleanList(c.Targets.Assets)
	c.Targets.Groups = cleanList(c.Targets.Groups)
	c.PreChecks = cleanList(c.PreChecks)
	c.Communication.Notify = cleanList(c.Communication.Notify)
	c.RollbackPlan.Triggers = cleanList(c.RollbackPlan.Triggers)
	c.RollbackPlan.Steps = cleanList(c.RollbackPlan.Steps)
	c.RollbackPlan.Owner = strings.TrimSpace(c.RollbackPlan.Owner)
	for i := range c.Patches {
		p := &c.Patches[i]
		p.Package, p.Ecosystem, p.TargetVersion = strings.TrimSpace(p.Package), strings.TrimSpace(p.Ecosystem), strings.TrimSpace(p.TargetVersion)
		if p.Manual != nil {
			p.Manual.Description, p.Manual.Owner = strings.TrimSpace(p.Manual.Description), strings.TrimSpace(p.Manual.Owner)
		}
	}
	for i := range c.TestProtocol {
		s := &c.TestProtocol[i]
		s.CaseID, s.Name, s.Criteria = strings.TrimSpace(s.CaseID), strings.TrimSpace(s.Name), strings.TrimSpace(s.Criteria)
	}
}

// cleanList trims entries, drops empty ones and duplicates, keeping order.
func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// validate checks what a change must satisfy in every state; what it needs
// to be submitted is checked by submitGuards. Test protocol steps naming
// a policy case are completed from the policy here.
func (c *Change) validate(p *policy.Compiled) error {
	var v errs.Validation
	if c.Title == "" {
		v.Add("title", "required")
	}
	if len(c.Title) > 200 {
		v.Add("title", "at most 200 characters")
	}
	if len(c.Description) > maxText {
		v.Add("description", "at most %d characters", maxText)
	}
	if !slices.Contains(Types, c.Type) {
		v.Add("type", "must be standard, normal or emergency, got %q", c.Type)
	}
	for name, n := range map[string]int{"findings": len(c.Findings), "advisories": len(c.Advisories),
		"targets.assets": len(c.Targets.Assets), "targets.groups": len(c.Targets.Groups), "patches": len(c.Patches),
		"test_protocol": len(c.TestProtocol), "pre_checks": len(c.PreChecks), "planned_windows": len(c.PlannedWindows)} {
		if n > maxItems {
			v.Add(name, "at most %d entries", maxItems)
		}
	}
	for i, pt := range c.Patches {
		switch {
		case pt.Manual != nil && (pt.Package != "" || pt.TargetVersion != ""):
			v.Add(field("patches", i), "either a package with a target version or a manual task, not both")
		case pt.Manual != nil:
			if pt.Manual.Description == "" || pt.Manual.Owner == "" {
				v.Add(field("patches", i), "a manual task needs a description and an owner")
			}
		case pt.Package == "" || pt.TargetVersion == "":
			v.Add(field("patches", i), "needs a package and a target version (or a manual task)")
		}
	}
	for i, w := range c.PlannedWindows {
		f := field("planned_windows", i)
		switch {
		case w.Window != "" && (w.Start != nil || w.End != nil):
			v.Add(f, "either a policy window's name or a start and end, not both")
		case w.Window != "":
			if _, ok := p.Window(w.Window); !ok && !(w.Window == "immediate" && c.Type == Emergency) {
				v.Add(f, "names no maintenance window in the policy: %q", w.Window)
			}
		case w.Start == nil || w.End == nil:
			v.Add(f, "needs a policy window's name or a start and an end")
		case !w.End.After(*w.Start):
			v.Add(f, "must end after it starts")
		default:
			if _, err := time.LoadLocation(w.TimeZone); err != nil || w.TimeZone == "" {
				v.Add(f, "needs an IANA time zone such as America/Chicago, got %q", w.TimeZone)
			}
		}
	}
	seen := map[string]bool{}
	for i := range c.TestProtocol {
		s := &c.TestProtocol[i]
		f := field("test_protocol", i)
		if s.CaseID == "" {
			v.Add(f, "needs a case ID")
			continue
		}
		if seen[s.CaseID] {
			v.Add(f, "case %q is listed twice", s.CaseID)
		}
		seen[s.CaseID] = true
		if tc, ok := p.TestCase(s.CaseID); ok {
			// A policy case keeps the policy's criterion: the protocol
			// cannot quietly weaken it.
			s.Name, s.Criteria, s.Custom = tc.Name, tc.Criteria, false
			continue
		}
		s.Custom = true
		if s.Name == "" || s.Criteria == "" {
			v.Add(f, "custom case %q needs a name and pass/fail criteria", s.CaseID)
		}
	}
	roles := policyRoles(p)
	for i, so := range c.SignOffs {
		if _, ok := roles[so.Role]; !ok {
			v.Add(field("sign_offs", i), "names no policy role: %q", so.Role)
		}
	}
	if c.Type == Emergency && (c.Emergency == nil || strings.TrimSpace(c.Emergency.Justification) == "") {
		v.Add("emergency.justification", "an emergency change must say why it cannot wait")
	}
	if c.Type != Emergency && c.Emergency != nil {
		v.Add("emergency", "only an emergency change has an emergency record")
	}
	return v.Err("invalid change")
}

func field(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// policyRoles maps each policy role's name to the Patchward role it grants.
func policyRoles(p *policy.Compiled) map[string]string {
	out := map[string]string{}
	for _, r := range p.Policy().Roles {
		out[r.Name] = r.Grants
	}
	return out
}
