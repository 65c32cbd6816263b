// Package auth holds Patchward's accounts: local users with argon2id
// password hashes, browser sessions, API tokens for scripts, and the roles
// that decide what each may do. Every HTTP route names the permission it
// needs; this package is the single table that says which roles hold it.
package auth

import (
	"slices"

	"github.com/patchward/patchward/internal/audit"
)

// Role is a user's job in the patch process.
type Role string

// The roles. Auditors read everything and export evidence but change
// nothing; viewers only read the inventory.
const (
	RoleAdmin    Role = "admin"
	RoleApprover Role = "approver"
	RoleOperator Role = "operator"
	RoleAuditor  Role = "auditor"
	RoleViewer   Role = "viewer"
)

// Roles lists every role, most privileged first.
var Roles = []Role{RoleAdmin, RoleApprover, RoleOperator, RoleAuditor, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Permission is one thing a route or service call may require.
type Permission string

// Permissions.
const (
	// PermAuthenticated is held by every signed-in principal: own profile,
	// own password, own API tokens.
	PermAuthenticated Permission = "authenticated"
	PermAssetRead     Permission = "asset:read"
	PermAssetWrite    Permission = "asset:write"
	PermAssetImport   Permission = "asset:import"
	PermAssetExport   Permission = "asset:export"
	PermSiteWrite     Permission = "site:write"
	PermAuditRead     Permission = "audit:read"
	PermAuditExport   Permission = "audit:export"
	PermUserAdmin     Permission = "user:admin"
	// PermMetricsRead lets a Prometheus scraper's token read /metrics.
	PermMetricsRead Permission = "metrics:read"
	// PermAgentAdmin creates enrollment tokens and revokes agents: who may
	// put software on the server's list of trusted machines.
	PermAgentAdmin Permission = "agent:admin"
	// PermJobWrite queues and cancels jobs on agents.
	PermJobWrite Permission = "job:write"
	// PermRiskRead reads the prioritised worklist, scores, explanations,
	// SLA clocks and exceptions.
	PermRiskRead Permission = "risk:read"
	// PermPolicyRead reads the policy and its rendered document;
	// PermPolicyWrite applies a new version.
	PermPolicyRead  Permission = "policy:read"
	PermPolicyWrite Permission = "policy:write"
	// PermExceptionRequest asks for a risk acceptance; PermExceptionDecide
	// approves, rejects, reviews or revokes one (the policy's approver
	// roles narrow it further, and nobody decides their own request).
	PermExceptionRequest Permission = "exception:request"
	PermExceptionDecide  Permission = "exception:decide"
	// PermChangeRead reads change records, their history, approvals, test
	// runs and evidence.
	PermChangeRead Permission = "change:read"
	// PermChangeWrite creates, edits, submits, reworks and cancels changes
	// and records test runs, evidence, sign-offs and post-incident reviews
	// (the change service narrows sign-offs to the policy role's grant).
	PermChangeWrite Permission = "change:write"
	// PermChangeApprove approves or rejects a submitted change; the
	// policy's approver roles and separation of duties narrow it further.
	PermChangeApprove Permission = "change:approve"
	// PermChangeOperate carries a change out: schedule, start, halt,
	// resume, roll back, complete.
	PermChangeOperate Permission = "change:operate"
	// PermCalendarRead reads the maintenance calendar and manages one's own
	// read-only calendar feed tokens.
	PermCalendarRead Permission = "calendar:read"
)

var rolePerms = map[Role][]Permission{
	RoleAdmin: {PermAuthenticated, PermAssetRead, PermAssetWrite, PermAssetImport, PermAssetExport,
		PermSiteWrite, PermAuditRead, PermAuditExport, PermUserAdmin, PermMetricsRead, PermAgentAdmin, PermJobWrite,
		PermRiskRead, PermPolicyRead, PermPolicyWrite, PermExceptionRequest, PermExceptionDecide,
		PermChangeRead, PermChangeWrite, PermChangeApprove, PermChangeOperate, PermCalendarRead},
	// Approvers approve, and may draft changes and sign them off as the
	// policy roles they carry (security officer, system owner, laboratory
	// director); they do not carry changes out.
	RoleApprover: {PermAuthenticated, PermAssetRead, PermAssetExport, PermAuditRead,
		PermRiskRead, PermPolicyRead, PermExceptionRequest, PermExceptionDecide,
		PermChangeRead, PermChangeWrite, PermChangeApprove, PermCalendarRead},
	RoleOperator: {PermAuthenticated, PermAssetRead, PermAssetWrite, PermAssetImport, PermAssetExport, PermMetricsRead, PermJobWrite,
		PermRiskRead, PermPolicyRead, PermExceptionRequest,
		PermChangeRead, PermChangeWrite, PermChangeOperate, PermCalendarRead},
	RoleAuditor: {PermAuthenticated, PermAssetRead, PermAssetExport, PermAuditRead, PermAuditExport, PermMetricsRead,
		PermRiskRead, PermPolicyRead, PermChangeRead, PermCalendarRead},
	RoleViewer: {PermAuthenticated, PermAssetRead, PermRiskRead, PermPolicyRead, PermChangeRead, PermCalendarRead},
}

// Can reports whether role r holds permission p.
func (r Role) Can(p Permission) bool { return slices.Contains(rolePerms[r], p) }

// Principal is an authenticated caller: a user acting through a browser
// session or through one of their API tokens.
type Principal struct {
	UserID      string `json:"user_id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name,omitempty"`
	Role        Role   `json:"role"`
	// PolicyRoles are the policy roles the user holds, read with the
	// account on every request so an admin's change applies at once.
	PolicyRoles []string `json:"policy_roles,omitempty"`
	// TokenID is set when the caller used an API token.
	TokenID string `json:"token_id,omitempty"`
}

// Can reports whether the principal holds permission p.
func (p Principal) Can(perm Permission) bool { return p.Role.Can(perm) }

// Actor returns the audit actor for this principal calling from addr.
func (p Principal) Actor(addr string) audit.Actor {
	a := audit.Actor{Kind: audit.ActorUser, ID: p.UserID, Name: p.Username, Addr: addr}
	if p.TokenID != "" {
		a.Kind, a.ID = audit.ActorToken, p.UserID+"/"+p.TokenID
	}
	return a
}
