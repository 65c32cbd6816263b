package change

import (
	"slices"
	"sort"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// ClassApprover is one extra sign-off an asset class demands (the
// laboratory director for LIS and analyzer changes).
type ClassApprover struct {
	Class string `json:"class"`
	Role  string `json:"role"`
}

// Requirement is what approving one change takes under the policy in
// force: Quorum distinct people signing as any of Roles, plus one person
// per class approver role. Class approvers apply to every change type,
// emergency and pre-approved standard ones included: CLIA expects the
// laboratory director's sign-off on lab systems however urgent the patch,
// so the emergency lane lowers the quorum, not the class sign-offs.
type Requirement struct {
	Type        Type     `json:"type"`
	PreApproved bool     `json:"pre_approved"`
	Quorum      int      `json:"quorum"`
	Roles       []string `json:"roles"`
	// ClassApprovers are the asset classes' approvers for the targets,
	// one entry per distinct role (the first class that asks for it).
	ClassApprovers []ClassApprover `json:"class_approvers,omitempty"`
	// Classes are the asset classes the targets belong to.
	Classes []string `json:"classes,omitempty"`
}

// Requirements returns the approval requirement for a change of type t on
// assets in classes.
func Requirements(p *policy.Compiled, t Type, classes []policy.AssetClass) Requirement {
	pol := p.Policy()
	rule := pol.Approvals.Types[string(t)]
	req := Requirement{Type: t, PreApproved: rule.PreApproved, Quorum: rule.Quorum, Roles: rule.Roles}
	for _, c := range classes {
		if !slices.Contains(req.Classes, c.Name) {
			req.Classes = append(req.Classes, c.Name)
		}
		for _, r := range c.Approvers {
			if !slices.ContainsFunc(req.ClassApprovers, func(ca ClassApprover) bool { return ca.Role == r }) {
				req.ClassApprovers = append(req.ClassApprovers, ClassApprover{Class: c.Name, Role: r})
			}
		}
	}
	return req
}

// Relevant reports whether an approval signed as role counts for req.
func (req Requirement) Relevant(role string) bool {
	return slices.Contains(req.Roles, role) ||
		slices.ContainsFunc(req.ClassApprovers, func(ca ClassApprover) bool { return ca.Role == role })
}

// Approvers returns every policy role whose approval counts for req: the
// type's roles, then the class approvers'.
func (req Requirement) Approvers() []string {
	out := slices.Clone(req.Roles)
	for _, ca := range req.ClassApprovers {
		if !slices.Contains(out, ca.Role) {
			out = append(out, ca.Role)
		}
	}
	return out
}

// ApprovalStatus is how far a change's approvals meet its requirement.
type ApprovalStatus struct {
	Requirement Requirement `json:"requirement"`
	// Approvers are the people whose approvals count, by actor ID.
	Approvers []string `json:"approvers"`
	// QuorumMet counts distinct people signing as one of the type's roles.
	QuorumMet int `json:"quorum_met"`
	// MissingClass lists class approvers nobody has signed as yet.
	MissingClass []ClassApprover `json:"missing_class_approvers,omitempty"`
	Complete     bool            `json:"complete"`
}

// Evaluate measures approvals (expired and rejecting ones are ignored)
// against req. Each person counts once, under the role they signed as.
func Evaluate(req Requirement, approvals []Approval) ApprovalStatus {
	st := ApprovalStatus{Requirement: req}
	byRole := map[string]bool{}
	quorum := map[string]bool{}
	for _, a := range approvals {
		if a.ExpiredAt != nil || a.Decision != Approve {
			continue
		}
		if !slices.Contains(st.Approvers, a.ByID) {
			st.Approvers = append(st.Approvers, a.ByID)
		}
		byRole[a.Role] = true
		if slices.Contains(req.Roles, a.Role) {
			quorum[a.ByID] = true
		}
	}
	sort.Strings(st.Approvers)
	st.QuorumMet = len(quorum)
	for _, ca := range req.ClassApprovers {
		if !byRole[ca.Role] {
			st.MissingClass = append(st.MissingClass, ca)
		}
	}
	st.Complete = st.QuorumMet >= req.Quorum && len(st.MissingClass) == 0
	return st
}

// classNames returns the names of classes.
func classNames(classes []policy.AssetClass) []string {
	var out []string
	for _, c := range classes {
		out = append(out, c.Name)
	}
	return out
}

// RequiredCases returns the policy test cases a change of type t on assets
// in classes must pass: none for types outside testing.required_for; for
// an emergency change the abbreviated emergency.tests; otherwise every
// policy case. Either way only cases that apply to the classes (a case
// without applies_to applies to every change).
func RequiredCases(p *policy.Compiled, t Type, classes []string) []string {
	pol := p.Policy()
	if !slices.Contains(pol.Testing.RequiredFor, string(t)) {
		return nil
	}
	var ids []string
	if t == Emergency {
		ids = pol.Emergency.Tests
	} else {
		for _, tc := range pol.Testing.Cases {
			ids = append(ids, tc.ID)
		}
	}
	var out []string
	for _, id := range ids {
		tc, ok := p.TestCase(id)
		if !ok {
			continue
		}
		if len(tc.AppliesTo) == 0 || slices.ContainsFunc(tc.AppliesTo, func(c string) bool { return slices.Contains(classes, c) }) {
			out = append(out, id)
		}
	}
	return out
}

// MayDecide is separation of duties (approvals.separation_of_duties): when
// the policy asks for it, neither the change's requester nor anyone who
// edited its content may approve or reject it. It is the rule Approve and
// Reject enforce; the UI asks it so as not to offer a decision it would
// refuse. Whether u's role may sign at all is a separate question.
func MayDecide(pol *policy.Compiled, c Change, u User) error {
	if !pol.Policy().Approvals.SeparationOfDuties {
		return nil
	}
	if c.RequestedByID == u.Actor.ID {
		return errs.E(errs.Forbidden, "you requested this change; someone else must approve or reject it (policy approvals.separation_of_duties)")
	}
	if slices.Contains(c.EditedBy, u.Actor.ID) {
		return errs.E(errs.Forbidden, "you edited this change; someone else must approve or reject it (policy approvals.separation_of_duties)")
	}
	return nil
}
