package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
)

// ActionRequest is the body of a change's state move (submit, approve,
// schedule, halt…). Why is the reason recorded with the transition; Note
// an approver's comment (required to reject; Why is taken when Note is
// empty); As the policy role an approver signs as (empty: the one their
// role carries that the change still needs); Revision the revision the
// user acted on (a mismatch answers 409; approvals require it).
// PlannedWindows, for schedule only, replace the change's plan.
type ActionRequest struct {
	Why            string                 `json:"why,omitempty"`
	Note           string                 `json:"note,omitempty"`
	As             string                 `json:"as,omitempty"`
	Revision       int                    `json:"revision,omitempty"`
	PlannedWindows []change.PlannedWindow `json:"planned_windows,omitempty"`
}

// ChangeResult is a change after a write; approve adds how far the
// approvals meet the policy, and a move that started or steered the
// change's rollout adds the rollout as it stands after it.
type ChangeResult struct {
	change.Change
	ApprovalStatus *change.ApprovalStatus `json:"approval_status,omitempty"`
	Rollout        *deploy.Rollout        `json:"rollout,omitempty"`
}

// ApprovalsResult is a change's approvals, expired ones included, and how
// far the valid ones meet the policy in force.
type ApprovalsResult struct {
	Approvals []change.Approval     `json:"approvals"`
	Status    change.ApprovalStatus `json:"status"`
}

// TestRunRequest records one run of a change's test protocol.
type TestRunRequest struct {
	Results []change.CaseResult `json:"results"`
}

// SignOffRequest gives one of a change's requested sign-offs.
type SignOffRequest struct {
	// Role is the policy role signed as; the caller's Patchward role must
	// be the one it grants.
	Role     string `json:"role"`
	Note     string `json:"note,omitempty"`
	Revision int    `json:"revision,omitempty"`
}

// ReviewRequest records an emergency change's post-incident review.
type ReviewRequest struct {
	Summary  string   `json:"summary"`
	Lessons  []string `json:"lessons,omitempty"`
	Revision int      `json:"revision,omitempty"`
}

// EvidenceNameHeader names an evidence upload when the filename query
// parameter is awkward; Content-Disposition's filename is read as well.
const EvidenceNameHeader = "X-Patchward-Filename"

// changeAction is one state move offered as its own route, so each has its
// own permission in the table and the document.
type changeAction struct {
	name    string
	perm    auth.Permission
	summary string
	do      func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error)
}

func step(in ActionRequest) change.Step { return change.Step{Why: in.Why, Revision: in.Revision} }

func plain(c change.Change, err error) (ChangeResult, error) { return ChangeResult{Change: c}, err }

var changeActions = []changeAction{
	{"submit", auth.PermChangeWrite, "Submit a draft for approval (checks targets, patches, rollback plan and the policy's test cases)",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			return plain(a.Changes.Submit(r.Context(), u, id, step(in)))
		}},
	{"approve", auth.PermChangeApprove, "Approve a submitted change (send the revision you reviewed; nobody approves a change they requested or edited)",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			c, st, err := a.Changes.Approve(r.Context(), u, id, change.Decision{As: in.As, Note: noteOf(in), Revision: in.Revision})
			return ChangeResult{Change: c, ApprovalStatus: &st}, err
		}},
	{"reject", auth.PermChangeApprove, "Reject a submitted change (note required)",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			return plain(a.Changes.Reject(r.Context(), u, id, change.Decision{As: in.As, Note: noteOf(in), Revision: in.Revision}))
		}},
	{"rework", auth.PermChangeWrite, "Return a rejected change to draft",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			return plain(a.Changes.Rework(r.Context(), u, id, step(in)))
		}},
	{"schedule", auth.PermChangeOperate, "Schedule an approved change into its planned windows (planned_windows replace the plan)",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			return plain(a.Changes.Schedule(r.Context(), u, id, in.PlannedWindows, step(in)))
		}},
	{"start", auth.PermChangeOperate, "Start deployment (needs a passing test run since the last edit where the policy requires testing)",
		func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
			if a.Rollouts == nil {
				return plain(a.Changes.Start(r.Context(), u, id, step(in)))
			}
			if _, err := a.Rollouts.Start(r.Context(), u, id, in.Why); err != nil {
				return ChangeResult{}, err
			}
			return a.withRollout(r.Context(), id)
		}},
	{"complete", auth.PermChangeOperate, "Complete a deployed change (every requested sign-off given; an emergency needs its post-incident review). With a rollout: only once it awaits completion",
		viaRollout(change.ActComplete, (*change.Service).Complete)},
	{"halt", auth.PermChangeOperate, "Halt a deployment in progress (why required); its rollout halts with it and cancels its queued jobs",
		viaRollout(change.ActHalt, (*change.Service).Halt)},
	{"resume", auth.PermChangeOperate, "Resume a halted deployment; with a rollout (why then required) the rollout resumes too, retrying the halted wave's failed assets",
		viaRollout(change.ActResume, (*change.Service).Resume)},
	{"rollback", auth.PermChangeOperate, "Roll back a change in progress or halted (why: which trigger fired). With a rollout, rollback jobs go to every asset it changed and the change is rolled back when they succeed; without one, records that it was rolled back",
		viaRollout(change.ActRollBack, (*change.Service).RollBack)},
	{"cancel", auth.PermChangeWrite, "Cancel a change that has not started, or a halted one (why required); a halted change's rollout is aborted",
		viaRollout(change.ActCancel, (*change.Service).Cancel)},
}

// viaRollout is a change-level move that acts through the change's rollout
// while the engine still advances one (deploy.Rollouts.ChangeMove), and
// through the change service alone otherwise.
func viaRollout(act change.Action, move func(*change.Service, context.Context, change.User, string, change.Step) (change.Change, error)) func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
	return func(a *API, r *http.Request, u change.User, id string, in ActionRequest) (ChangeResult, error) {
		return a.moveChange(r, u, id, act, in, move)
	}
}

func noteOf(in ActionRequest) string {
	if strings.TrimSpace(in.Note) != "" {
		return in.Note
	}
	return in.Why
}

// changeUser is who acts on a change: the caller as the audit actor, and
// their role for the service's and the policy's checks.
func changeUser(r *http.Request, p auth.Principal) change.User {
	return change.User{Actor: p.Actor(authn.ClientAddr(r)), Role: string(p.Role), PolicyRoles: p.PolicyRoles}
}

// changeRoutes serve change records: reading needs change:read; drafting,
// editing, submitting, test runs, evidence, sign-offs and reviews
// change:write; deciding change:approve; carrying out change:operate. The
// change service checks the policy's approver roles, the emergency
// authority and separation of duties on top.
func (a *API) changeRoutes() []Route {
	read, write := auth.PermChangeRead, auth.PermChangeWrite
	rs := []Route{
		{Method: "GET", Path: "/changes", Tag: "changes", Summary: "List change records, newest first",
			Perm: read, Query: []Param{
				{Name: "state", Enum: enumStrings(change.States)}, {Name: "type", Enum: enumStrings(change.Types)},
				{Name: "asset", Description: "asset ID: changes targeting it directly or through a group"},
				{Name: "limit", Type: "integer", Description: "page size (max 1000, default 100)"}, {Name: "offset", Type: "integer"},
			},
			Resp: []change.Change{}, Handle: a.listChanges},
		{Method: "POST", Path: "/changes", Tag: "changes",
			Summary: "Draft a change record (unknown fields refused; state, requester, risk rating and signatures are the server's)",
			Perm:    write, Body: change.Change{}, Resp: change.Change{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				c, err := decodeChange(w, r)
				if err != nil {
					return err
				}
				out, err := a.Changes.Create(r.Context(), changeUser(r, p), c)
				if err != nil {
					return err
				}
				w.Header().Set("Location", Prefix+"/changes/"+out.ID)
				writeChange(w, http.StatusCreated, out)
				return nil
			}},
		{Method: "GET", Path: "/changes/{id}", Tag: "changes", Summary: "Get a change record (its ETag is its revision)",
			Perm: read, Resp: change.Change{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				c, err := a.Changes.Get(r.Context(), r.PathValue("id"))
				if err != nil {
					return err
				}
				writeChange(w, http.StatusOK, c)
				return nil
			}},
		{Method: "PUT", Path: "/changes/{id}", Tag: "changes",
			Summary: "Edit a draft, submitted or approved change: the revision edited comes from If-Match or the body's revision; editing withdraws approvals when the policy says so",
			Perm:    write, Body: change.Change{}, Resp: change.Change{},
			Query:  []Param{{Name: "why", Description: "why the change was edited, for the audit trail"}},
			Handle: a.updateChange},
		{Method: "GET", Path: "/changes/{id}/history", Tag: "changes", Summary: "A change's state transitions, oldest first: who moved it, when and why",
			Perm: read, Resp: []change.Transition{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				ts, err := a.Changes.History(r.Context(), r.PathValue("id"))
				return reply{w, http.StatusOK}.send(nonNil(ts), err)
			}},
		{Method: "GET", Path: "/changes/{id}/approvals", Tag: "changes", Summary: "A change's approvals (expired ones included) and how far they meet the policy",
			Perm: read, Resp: ApprovalsResult{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				as, st, err := a.Changes.Approvals(r.Context(), r.PathValue("id"))
				return reply{w, http.StatusOK}.send(ApprovalsResult{Approvals: nonNil(as), Status: st}, err)
			}},
		{Method: "GET", Path: "/changes/{id}/test-runs", Tag: "changes", Summary: "A change's test runs, oldest first",
			Perm: read, Resp: []change.TestRun{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				id := r.PathValue("id")
				if _, err := a.Changes.Get(r.Context(), id); err != nil {
					return err
				}
				runs, err := a.Changes.TestRuns(r.Context(), id)
				return reply{w, http.StatusOK}.send(nonNil(runs), err)
			}},
		{Method: "POST", Path: "/changes/{id}/test-runs", Tag: "changes",
			Summary: "Record a test run: a result per protocol case (pass, fail or skipped; notes unless pass), citing evidence already attached",
			Perm:    write, Body: TestRunRequest{}, Resp: change.TestRun{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in TestRunRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusCreated}.send(a.Changes.RecordTestRun(r.Context(), changeUser(r, p), r.PathValue("id"), change.TestRun{Results: in.Results}))
			}},
		{Method: "GET", Path: "/changes/{id}/evidence", Tag: "changes", Summary: "The evidence attached to a change: names, media types, sizes and SHA-256 digests",
			Perm: read, Resp: []change.Evidence{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				id := r.PathValue("id")
				if _, err := a.Changes.Get(r.Context(), id); err != nil {
					return err
				}
				ev, err := a.Changes.EvidenceList(r.Context(), id)
				return reply{w, http.StatusOK}.send(nonNil(ev), err)
			}},
		{Method: "POST", Path: "/changes/{id}/evidence", Tag: "changes",
			Summary: fmt.Sprintf("Attach evidence: the raw file as the body with its Content-Type, named by ?filename= (or %s, or Content-Disposition); at most %d MiB, stored under its SHA-256", EvidenceNameHeader, change.MaxEvidence>>20),
			Perm:    write, BodyType: "application/octet-stream", Resp: change.Evidence{}, Status: http.StatusCreated,
			Query:  []Param{{Name: "filename", Description: "the file's name, without a path"}},
			Handle: a.addEvidence},
		{Method: "GET", Path: "/changes/{id}/evidence/{digest}", Tag: "changes",
			Summary: "Download evidence: the bytes, checked against their SHA-256 before they are sent (altered evidence answers 500 and is never served)",
			Perm:    read, RespType: "application/octet-stream",
			Handle: a.getEvidence},
		{Method: "POST", Path: "/changes/{id}/sign-offs", Tag: "changes",
			Summary: "Give a requested sign-off as a policy role your Patchward role carries, while the change is scheduled or in progress",
			Perm:    write, Body: SignOffRequest{}, Resp: change.Change{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in SignOffRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(a.Changes.SignOff(r.Context(), changeUser(r, p), r.PathValue("id"), strings.TrimSpace(in.Role), in.Note, in.Revision))
			}},
		{Method: "POST", Path: "/changes/{id}/review", Tag: "changes",
			Summary: "Record an emergency change's post-incident review (required before it completes)",
			Perm:    write, Body: ReviewRequest{}, Resp: change.Change{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in ReviewRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(a.Changes.RecordReview(r.Context(), changeUser(r, p), r.PathValue("id"),
					change.Review{Summary: in.Summary, Lessons: in.Lessons}, in.Revision))
			}},
	}
	for _, act := range changeActions {
		rs = append(rs, Route{Method: "POST", Path: "/changes/{id}/" + act.name, Tag: "changes", Summary: act.summary,
			Perm: act.perm, Body: ActionRequest{}, Resp: ChangeResult{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				in, err := decodeAction(w, r)
				if err != nil {
					return err
				}
				out, err := act.do(a, r, changeUser(r, p), r.PathValue("id"), in)
				if err != nil {
					return err
				}
				w.Header().Set("ETag", etag(out.Revision))
				WriteJSON(w, http.StatusOK, out)
				return nil
			}})
	}
	return rs
}

// decodeAction reads an ActionRequest; an empty body is an empty request,
// so `resume` needs no ceremony.
func decodeAction(w http.ResponseWriter, r *http.Request) (ActionRequest, error) {
	var in ActionRequest
	if r.ContentLength == 0 {
		return in, nil
	}
	return in, DecodeJSON(w, r, &in)
}

// decodeChange reads a change record through change.Decode: strict, with
// the server's fields cleared, bounded in size.
func decodeChange(w http.ResponseWriter, r *http.Request) (change.Change, error) {
	if err := requireType(r, "application/json"); err != nil {
		return change.Change{}, err
	}
	return change.Decode(http.MaxBytesReader(w, r.Body, change.MaxDocument+1))
}

func (a *API) listChanges(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	f := change.Filter{Asset: r.URL.Query().Get("asset")}
	var err error
	if f.State, err = queryEnum(r, "state", change.States); err != nil {
		return err
	}
	if f.Type, err = queryEnum(r, "type", change.Types); err != nil {
		return err
	}
	if f.Limit, err = queryInt(r, "limit", 100); err != nil {
		return err
	}
	if f.Limit > 1000 {
		return errs.E(errs.Invalid, "query parameter limit must be at most 1000")
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	cs, err := a.Changes.List(r.Context(), f)
	return reply{w, http.StatusOK}.send(nonNil(cs), err)
}

func (a *API) updateChange(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id := r.PathValue("id")
	c, err := decodeChange(w, r)
	if err != nil {
		return err
	}
	if c.ID != "" && c.ID != id {
		return fieldError("id", "the body's id does not match the URL's")
	}
	c.ID = id
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" {
		rev, ok := parseETag(im)
		if !ok {
			return errs.E(errs.Invalid, `If-Match must be the change's ETag, its revision in quotes ("3")`)
		}
		if c.Revision != 0 && c.Revision != rev {
			return errs.E(errs.Invalid, "If-Match names revision %d but the body names revision %d", rev, c.Revision)
		}
		c.Revision = rev
	}
	if c.Revision == 0 {
		return fieldError("revision", "required: send the revision you edited, in the body or as If-Match")
	}
	out, err := a.Changes.Update(r.Context(), changeUser(r, p), c, strings.TrimSpace(r.URL.Query().Get("why")))
	if err != nil {
		return err
	}
	writeChange(w, http.StatusOK, out)
	return nil
}

func writeChange(w http.ResponseWriter, status int, c change.Change) {
	w.Header().Set("ETag", etag(c.Revision))
	WriteJSON(w, status, c)
}

// etag is a change's revision as a strong entity tag.
func etag(rev int) string { return `"` + strconv.Itoa(rev) + `"` }

func parseETag(s string) (int, bool) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// evidenceName is the upload's file name: ?filename=, the header, or
// Content-Disposition's filename parameter.
func evidenceName(r *http.Request) string {
	if n := r.URL.Query().Get("filename"); n != "" {
		return n
	}
	if n := r.Header.Get(EvidenceNameHeader); n != "" {
		return n
	}
	if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
		return params["filename"]
	}
	return ""
}

func (a *API) addEvidence(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if r.ContentLength > change.MaxEvidence {
		return errs.E(errs.TooLarge, "evidence may be at most %d MiB", change.MaxEvidence>>20)
	}
	name := evidenceName(r)
	if strings.TrimSpace(name) == "" {
		return fieldError("filename", "required: name the file with ?filename=, "+EvidenceNameHeader+" or Content-Disposition")
	}
	// One byte over the cap reaches the service, which refuses it with
	// its own message.
	body := http.MaxBytesReader(w, r.Body, change.MaxEvidence+1)
	e, err := a.Changes.AddEvidence(r.Context(), changeUser(r, p), r.PathValue("id"), name, r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/changes/"+e.ChangeID+"/evidence/"+e.SHA256)
	WriteJSON(w, http.StatusCreated, e)
	return nil
}

// TamperedEvidenceMessage is what a client is told when stored evidence no
// longer matches its hash: the fact, without storage detail.
const TamperedEvidenceMessage = "the stored evidence failed its integrity check (its SHA-256 no longer matches) and was not served; the incident has been logged for investigation"

func (a *API) getEvidence(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, sum := r.PathValue("id"), r.PathValue("digest")
	e, content, err := a.Changes.GetEvidence(r.Context(), id, sum)
	if errors.Is(err, change.ErrTampered) {
		a.Log.ErrorContext(r.Context(), "evidence integrity check failed", "change", id, "sha256", sum, "err", err)
		WriteJSON(w, http.StatusInternalServerError, ErrorBody{Error: TamperedEvidenceMessage, Status: http.StatusInternalServerError})
		return nil
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", e.MediaType)
	h.Set("Content-Length", strconv.FormatInt(e.Size, 10))
	// Evidence is whatever someone uploaded: never render it inline in
	// Patchward's origin.
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.Name}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("ETag", `"`+e.SHA256+`"`)
	h.Set("Repr-Digest", "sha-256=:"+base64Hex(e.SHA256)+":")
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, content)
	if err != nil {
		a.Log.WarnContext(r.Context(), "sending evidence", "change", id, "sha256", e.SHA256, "err", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// base64Hex re-encodes a hex digest as standard base64, the form
// Repr-Digest (RFC 9530) carries.
func base64Hex(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}
