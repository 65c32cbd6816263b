package api

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// EmergencyProposal is a proposed emergency change: a vulnerability whose
// findings entered the top risk tier through a CISA KEV listing and that no
// live change covers yet, with the draft change it stands for.
type EmergencyProposal struct {
	change.Proposal
	Draft change.Change `json:"draft"`
}

// DraftProposalRequest is what the person drafting an emergency change
// from a proposal decides: why it cannot wait (required for an emergency)
// and, optionally, an earlier go/no-go deadline than the policy's.
type DraftProposalRequest struct {
	Justification string     `json:"justification"`
	GoNoGoBy      *time.Time `json:"go_no_go_by,omitempty"`
}

// defaultSince is how far back a KEV listing counts unless ?since= says.
const defaultSince = "30d"

var sinceParam = Param{Name: "since", Description: "how far back a KEV listing counts: a duration such as 30d or 72h, or an RFC 3339 time (default 30d)"}

// proposalRoutes serve emergency proposals: listing needs change:read;
// drafting the change change:write, and the change service checks the
// emergency authority (who may declare an emergency) on top.
func (a *API) proposalRoutes(ps ProposalLister) []Route {
	return []Route{
		{Method: "GET", Path: "/emergency-proposals", Tag: "changes",
			Summary: "Emergency proposals: per vulnerability, the open findings that entered the top risk tier through CISA KEV and no live change covers, worst first, each with its draft emergency change",
			Perm:    auth.PermChangeRead, Query: []Param{sinceParam}, Resp: []EmergencyProposal{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				since, err := a.since(r)
				if err != nil {
					return err
				}
				list, err := ps.EmergencyProposals(r.Context(), since)
				if err != nil {
					return err
				}
				out := make([]EmergencyProposal, len(list))
				for i, p := range list {
					out[i] = EmergencyProposal{Proposal: p, Draft: p.Draft()}
				}
				WriteJSON(w, http.StatusOK, out)
				return nil
			}},
		{Method: "POST", Path: "/emergency-proposals/{vuln}/draft", Tag: "changes",
			Summary: "Draft the emergency change a proposal stands for, as the caller: its findings, assets and fixes filled in; the justification is the caller's, and the test protocol and rollback plan are added before submitting",
			Perm:    auth.PermChangeWrite, Query: []Param{sinceParam}, Body: DraftProposalRequest{}, Resp: change.Change{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in DraftProposalRequest
				if r.ContentLength != 0 {
					if err := DecodeJSON(w, r, &in); err != nil {
						return err
					}
				}
				since, err := a.since(r)
				if err != nil {
					return err
				}
				vuln := r.PathValue("vuln")
				list, err := ps.EmergencyProposals(r.Context(), since)
				if err != nil {
					return err
				}
				var draft *change.Change
				for _, pr := range list {
					if strings.EqualFold(pr.VulnID, vuln) {
						d := pr.Draft()
						draft = &d
						break
					}
				}
				if draft == nil {
					return errs.E(errs.NotFound, "no emergency proposal for %s since %s: no open finding of it entered the top tier through KEV without a change covering it", vuln, since.Format(time.RFC3339))
				}
				draft.Emergency = &change.EmergencyInfo{Justification: in.Justification}
				if in.GoNoGoBy != nil {
					draft.Emergency.GoNoGoBy = *in.GoNoGoBy
				}
				c, err := a.Changes.Create(r.Context(), changeUser(r, p), *draft)
				if err != nil {
					return err
				}
				w.Header().Set("Location", Prefix+"/changes/"+url.PathEscape(c.ID))
				writeChange(w, http.StatusCreated, c)
				return nil
			}},
	}
}

// since reads ?since=: a duration counted back from now, or a time.
func (a *API) since(r *http.Request) (time.Time, error) {
	s := strings.TrimSpace(r.URL.Query().Get("since"))
	if s == "" {
		s = defaultSince
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := policy.ParseDuration(s)
	if err != nil || d.Approx() <= 0 {
		return time.Time{}, fieldError("since", "want a positive duration such as 30d or 72h, or an RFC 3339 time")
	}
	return d.Neg().AddTo(a.now(), time.UTC), nil
}
