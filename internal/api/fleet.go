package api

import (
	"net/http"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// EnrollmentTokenRequest asks for a one-time agent enrollment token.
type EnrollmentTokenRequest struct {
	Name string `json:"name"`
	// ExpiresIn is a Go duration ("24h", "90m"); 24h if empty, at most 720h.
	ExpiresIn string `json:"expires_in,omitempty"`
	// SiteID, Groups and MaintenanceWindow are preset on the asset the
	// enrolling agent creates.
	SiteID            string   `json:"site_id,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	MaintenanceWindow string   `json:"maintenance_window,omitempty"`
}

// EnrollmentTokenCreated carries a new token's secret, shown this once.
type EnrollmentTokenCreated struct {
	Secret string                `json:"secret"`
	Token  fleet.EnrollmentToken `json:"token"`
}

// ReasonRequest is the body of revocations and cancellations: why, for the
// audit trail.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// fleetRoutes are the admin side of the endpoint agents: enrollment
// tokens, the agent registry and the per-agent job queue.
// Tokens and agent revocation need agent:admin (who may add a machine to
// the trusted fleet); queueing and cancelling jobs need job:write.
func (a *API) fleetRoutes(svc *fleet.Service) []Route {
	tokenAdmin, agentAdmin, jobWrite, read := auth.PermAgentAdmin, auth.PermAgentAdmin, auth.PermJobWrite, auth.PermAssetRead
	page := []Param{{Name: "limit", Type: "integer", Description: "page size (max 1000, default 50)"}, {Name: "offset", Type: "integer"}}
	return []Route{
		{Method: "POST", Path: "/enrollment-tokens", Tag: "agents", Summary: "Create a one-time agent enrollment token (the secret is shown once)",
			Perm: tokenAdmin, Body: EnrollmentTokenRequest{}, Resp: EnrollmentTokenCreated{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in EnrollmentTokenRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				spec := fleet.TokenSpec{Name: in.Name, SiteID: in.SiteID, Groups: in.Groups, MaintenanceWindow: in.MaintenanceWindow}
				if in.ExpiresIn != "" {
					d, err := time.ParseDuration(in.ExpiresIn)
					if err != nil {
						return errs.E(errs.Invalid, "expires_in must be a duration such as 24h or 90m")
					}
					spec.TTL = d
				}
				secret, tok, err := svc.CreateEnrollmentToken(r.Context(), p.Actor(authn.ClientAddr(r)), spec)
				if err != nil {
					return err
				}
				WriteJSON(w, http.StatusCreated, EnrollmentTokenCreated{Secret: secret, Token: tok})
				return nil
			}},
		{Method: "GET", Path: "/enrollment-tokens", Tag: "agents", Summary: "List enrollment tokens with their state (no secrets)",
			Perm: tokenAdmin, Resp: []fleet.EnrollmentToken{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(svc.EnrollmentTokens(r.Context()))
			}},
		{Method: "DELETE", Path: "/enrollment-tokens/{id}", Tag: "agents", Summary: "Revoke an unused enrollment token",
			Perm: tokenAdmin, Status: http.StatusNoContent,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				if err := svc.RevokeEnrollmentToken(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id")); err != nil {
					return err
				}
				w.WriteHeader(http.StatusNoContent)
				return nil
			}},
		{Method: "GET", Path: "/agents", Tag: "agents", Summary: "List enrolled agents, newest first",
			Perm: read, Query: append([]Param{{Name: "asset", Description: "asset ID"}, {Name: "revoked", Type: "boolean"}}, page...),
			Resp: fleet.AgentPage{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				f := fleet.AgentFilter{AssetID: r.URL.Query().Get("asset")}
				var err error
				if f.Revoked, err = queryBool(r, "revoked"); err != nil {
					return err
				}
				if f.Limit, err = queryInt(r, "limit", 50); err != nil {
					return err
				}
				if f.Offset, err = queryInt(r, "offset", 0); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(svc.Agents(r.Context(), f))
			}},
		{Method: "GET", Path: "/agents/{id}", Tag: "agents", Summary: "Get an agent with the facts and pending updates it last reported",
			Perm: read, Resp: fleet.AgentDetail{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(svc.Agent(r.Context(), r.PathValue("id")))
			}},
		{Method: "POST", Path: "/agents/{id}/revoke", Tag: "agents", Summary: "Revoke an agent: its requests are refused and its open jobs cancelled",
			Perm: agentAdmin, Body: ReasonRequest{}, Resp: fleet.AgentDetail{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in ReasonRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				if err := svc.RevokeAgent(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in.Reason); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(svc.Agent(r.Context(), r.PathValue("id")))
			}},
		{Method: "POST", Path: "/agent-jobs", Tag: "agents", Summary: "Queue a job for an agent: install package versions, with pre- and post-checks",
			Perm: jobWrite, Body: fleet.JobSpec{}, Resp: fleet.Job{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in fleet.JobSpec
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				j, err := svc.CreateJob(r.Context(), p.Actor(authn.ClientAddr(r)), in)
				if err != nil {
					return err
				}
				w.Header().Set("Location", Prefix+"/agent-jobs/"+j.ID)
				WriteJSON(w, http.StatusCreated, j)
				return nil
			}},
		{Method: "GET", Path: "/agent-jobs", Tag: "agents", Summary: "List agent jobs, newest first",
			Perm: read, Query: append([]Param{{Name: "agent", Description: "agent ID"}, {Name: "asset", Description: "asset ID"},
				{Name: "change", Description: "change ID"}, {Name: "state", Enum: enumStrings(fleet.JobStates)}}, page...),
			Resp: fleet.JobPage{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				q := r.URL.Query()
				f := fleet.JobFilter{AgentID: q.Get("agent"), AssetID: q.Get("asset"), ChangeID: q.Get("change")}
				var err error
				if f.State, err = queryEnum(r, "state", fleet.JobStates); err != nil {
					return err
				}
				if f.Limit, err = queryInt(r, "limit", 50); err != nil {
					return err
				}
				if f.Offset, err = queryInt(r, "offset", 0); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(svc.Jobs(r.Context(), f))
			}},
		{Method: "GET", Path: "/agent-jobs/{id}", Tag: "agents", Summary: "Get a job with every result and step the agent reported",
			Perm: read, Resp: fleet.JobDetail{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(svc.Job(r.Context(), r.PathValue("id")))
			}},
		{Method: "POST", Path: "/agent-jobs/{id}/cancel", Tag: "agents", Summary: "Cancel a job that has not finished (an agent already running it still reports)",
			Perm: jobWrite, Body: ReasonRequest{}, Resp: fleet.Job{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in ReasonRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(svc.CancelJob(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in.Reason))
			}},
	}
}
