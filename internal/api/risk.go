package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/risk"
)

// ExceptionRequest asks for a risk acceptance. It names only what a
// requester decides; state, decisions, reviews and control verification
// are the service's to set, so sending them is refused as unknown fields.
type ExceptionRequest struct {
	// Scope is finding, asset or group; Target that finding's, asset's or
	// group's ID. VulnID narrows an asset or group exception to one
	// vulnerability.
	Scope    string           `json:"scope"`
	Target   string           `json:"target"`
	VulnID   string           `json:"vuln_id,omitempty"`
	Decision string           `json:"decision"`
	Reason   string           `json:"reason"`
	Controls []ControlRequest `json:"controls,omitempty"`
	Owner    string           `json:"owner"`
	// ExpiresAt is an RFC 3339 time; every exception ends.
	ExpiresAt string `json:"expires_at"`
}

// ControlRequest is one compensating control in an exception request.
type ControlRequest struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
}

// DecisionRequest approves, rejects, reviews or revokes an exception.
type DecisionRequest struct {
	// Action is approve, reject, review or revoke.
	Action string `json:"action"`
	// Outcome is a review's: continue or revoke.
	Outcome string `json:"outcome,omitempty"`
	Note    string `json:"note,omitempty"`
	// Revision is the one the decider saw; a mismatch answers 409.
	Revision int `json:"revision,omitempty"`
}

// ExceptionDetail is one exception with its review history.
type ExceptionDetail struct {
	risk.Exception
	Reviews []risk.Review `json:"reviews"`
}

var (
	worklistStatuses = []string{risk.StatusOpen, risk.StatusExcepted, risk.StatusFixed, risk.StatusNotAffected, "all"}
	worklistSLAs     = []string{risk.SLABreached, risk.SLADueSoon, risk.SLAOnTrack, risk.SLAExcepted, risk.SLAAwaitingFix}
	worklistSorts    = []string{"score", "due"}
	exceptionStates  = []string{risk.ExceptionRequested, risk.ExceptionApproved, risk.ExceptionRejected, risk.ExceptionRevoked, risk.ExceptionExpired}
	exceptionScopes  = []string{risk.ScopeFinding, risk.ScopeAsset, risk.ScopeGroup}
	decisionActions  = []string{"approve", "reject", "review", "revoke"}
)

// maxExpiringWithin bounds expiring_within: exceptions last at most what
// the policy allows, and ten years covers any policy.
const maxExpiringWithin = 3650

// riskRoutes serve the prioritised worklist, the reasons behind each
// priority, and exceptions. Reading needs risk:read; requesting an
// exception exception:request; deciding one exception:decide, narrowed
// further by the policy's approver roles and separation of duties, which
// the service checks. A recompute re-scores the estate, as a policy apply
// does, so it needs policy:write.
func (a *API) riskRoutes(svc *risk.Service) []Route {
	read := auth.PermRiskRead
	page := []Param{{Name: "limit", Type: "integer", Description: "page size (max 1000, default 50)"}, {Name: "offset", Type: "integer"}}
	return []Route{
		{Method: "GET", Path: "/worklist", Tag: "risk", Summary: "The prioritised worklist: findings most urgent first, with tier, due date and SLA state",
			Perm: read, Query: append([]Param{
				{Name: "status", Enum: worklistStatuses, Description: "record status (default open)"},
				{Name: "tier", Description: "SLA tier name from the policy in force"},
				{Name: "asset", Description: "asset ID"}, {Name: "site", Description: "site ID"},
				{Name: "vuln", Description: "vulnerability ID"},
				{Name: "sla", Enum: worklistSLAs, Description: "SLA state now"},
				{Name: "sort", Enum: worklistSorts, Description: "score (highest first, default) or due (soonest first)"},
			}, page...),
			Resp: risk.WorklistPage{}, Handle: a.worklist},
		{Method: "GET", Path: "/findings/{id}/risk", Tag: "risk", Summary: "Why a finding has its priority: score factor by factor, SLA clock and state, and the history of its tier and due date",
			Perm: read, Resp: risk.Explanation{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(svc.Explain(r.Context(), r.PathValue("id")))
			}},
		{Method: "POST", Path: "/risk/recompute", Tag: "risk", Summary: "Re-score findings and move SLA clocks under the policy in force now (the server also does this on every change)",
			Perm: auth.PermPolicyWrite, Query: []Param{{Name: "asset", Description: "only this asset's findings"}}, Resp: risk.Summary{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				asset := r.URL.Query().Get("asset")
				if asset != "" && a.Inventory != nil {
					if _, err := a.Inventory.Asset(r.Context(), asset); err != nil {
						return err
					}
				}
				return reply{w, http.StatusOK}.send(svc.Recompute(r.Context(), asset))
			}},
		{Method: "GET", Path: "/exceptions", Tag: "exceptions", Summary: "List exceptions (risk acceptances), newest first",
			Perm: read, Query: []Param{
				{Name: "state", Enum: exceptionStates}, {Name: "scope", Enum: exceptionScopes},
				{Name: "target", Description: "finding, asset or group ID"},
				{Name: "review_due", Type: "boolean", Description: "true: only approved exceptions whose review is due now"},
				{Name: "expiring_within", Type: "integer", Description: "only approved exceptions that expire within this many days"},
			},
			Resp: []risk.Exception{}, Handle: a.listExceptions},
		{Method: "POST", Path: "/exceptions", Tag: "exceptions", Summary: "Request an exception: scope, decision, reason, compensating controls, owner and expiry, checked against the policy",
			Perm: auth.PermExceptionRequest, Body: ExceptionRequest{}, Resp: risk.Exception{}, Status: http.StatusCreated,
			Handle: a.requestException},
		{Method: "GET", Path: "/exceptions/aging", Tag: "exceptions", Summary: "Exception aging: counts by state, ages of approved ones, reviews due or overdue, expiries coming",
			Perm: read, Resp: risk.AgingReport{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(svc.ExceptionAging(r.Context()))
			}},
		{Method: "GET", Path: "/exceptions/{id}", Tag: "exceptions", Summary: "Get an exception with its reviews",
			Perm: read, Resp: ExceptionDetail{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				e, rs, err := svc.Exception(r.Context(), r.PathValue("id"))
				if err != nil {
					return err
				}
				if rs == nil {
					rs = []risk.Review{}
				}
				WriteJSON(w, http.StatusOK, ExceptionDetail{Exception: e, Reviews: rs})
				return nil
			}},
		{Method: "POST", Path: "/exceptions/{id}/decision", Tag: "exceptions",
			Summary: "Approve, reject, review or revoke an exception (send the revision you read; nobody decides their own request)",
			Perm:    auth.PermExceptionDecide, Body: DecisionRequest{}, Resp: risk.Exception{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in DecisionRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				in.Action = strings.ToLower(strings.TrimSpace(in.Action))
				if !slices.Contains(decisionActions, in.Action) {
					return fieldError("action", "must be one of "+strings.Join(decisionActions, ", "))
				}
				return reply{w, http.StatusOK}.send(svc.DecideException(r.Context(), requester(r, p), r.PathValue("id"),
					risk.Decision{Action: in.Action, Outcome: in.Outcome, Note: in.Note, Revision: in.Revision}))
			}},
	}
}

// requester is who acts on an exception: the caller as the audit actor, and
// their role for the policy's approver check.
func requester(r *http.Request, p auth.Principal) risk.Requester {
	return risk.Requester{Actor: p.Actor(authn.ClientAddr(r)), Role: string(p.Role)}
}

func (a *API) worklist(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	f := risk.WorklistFilter{Tier: q.Get("tier"), AssetID: q.Get("asset"), SiteID: q.Get("site"), VulnID: q.Get("vuln")}
	var err error
	if f.Status, err = queryEnum(r, "status", worklistStatuses); err != nil {
		return err
	}
	if f.SLA, err = queryEnum(r, "sla", worklistSLAs); err != nil {
		return err
	}
	if f.Sort, err = queryEnum(r, "sort", worklistSorts); err != nil {
		return err
	}
	if f.Limit, err = queryInt(r, "limit", 50); err != nil {
		return err
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Risk.Worklist(r.Context(), f))
}

func (a *API) listExceptions(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	f := risk.ExceptionFilter{Target: q.Get("target")}
	var err error
	if f.State, err = queryEnum(r, "state", exceptionStates); err != nil {
		return err
	}
	if f.Scope, err = queryEnum(r, "scope", exceptionScopes); err != nil {
		return err
	}
	now := a.Risk.Now()
	due, err := queryBool(r, "review_due")
	if err != nil {
		return err
	}
	if due != nil && *due {
		f.ReviewDueBy = &now
	}
	if q.Get("expiring_within") != "" {
		days, err := queryInt(r, "expiring_within", 0)
		if err != nil {
			return err
		}
		if days > maxExpiringWithin {
			return errs.E(errs.Invalid, "query parameter expiring_within must be at most %d days", maxExpiringWithin)
		}
		by := now.AddDate(0, 0, days)
		f.ExpiringBy = &by
	}
	es, err := a.Risk.Exceptions(r.Context(), f)
	if es == nil {
		es = []risk.Exception{}
	}
	return reply{w, http.StatusOK}.send(es, err)
}

func (a *API) requestException(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in ExceptionRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	e := risk.Exception{Scope: in.Scope, Target: in.Target, VulnID: in.VulnID, Decision: in.Decision,
		Reason: in.Reason, Owner: in.Owner}
	for _, c := range in.Controls {
		e.Controls = append(e.Controls, risk.Control{Kind: c.Kind, Description: c.Description})
	}
	if s := strings.TrimSpace(in.ExpiresAt); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fieldError("expires_at", "must be an RFC 3339 time such as 2027-01-31T17:00:00Z")
		}
		e.ExpiresAt = t.UTC()
	}
	out, err := a.Risk.RequestException(r.Context(), requester(r, p), e)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/exceptions/"+out.ID)
	WriteJSON(w, http.StatusCreated, out)
	return nil
}

// fieldError is an Invalid error about one field of the request body.
func fieldError(field, msg string) error {
	var v errs.Validation
	v.Add(field, "%s", msg)
	return v.Err("invalid request")
}
