package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
)

// VerifyResponse reports an audit verification: OK with the verified tree,
// or the first bad entry. Tampering is a finding, not a failed request.
type VerifyResponse struct {
	OK     bool          `json:"ok"`
	Result *audit.Result `json:"result,omitempty"`
	// Problem, Seq and Checkpoint describe the first failure when OK is false.
	Problem    string `json:"problem,omitempty"`
	Seq        *int64 `json:"seq,omitempty"`
	Checkpoint int64  `json:"checkpoint,omitempty"`
}

func (a *API) auditRoutes() []Route {
	timeDesc := "RFC 3339 time or YYYY-MM-DD (UTC)"
	return []Route{
		{Method: "GET", Path: "/audit/entries", Tag: "audit", Summary: "List audit entries, newest first", Perm: auth.PermAuditRead,
			Query: []Param{{Name: "from", Description: timeDesc + "; inclusive"}, {Name: "to", Description: timeDesc + "; exclusive"},
				{Name: "object_type"}, {Name: "object_id"}, {Name: "actor", Description: "actor ID or name"}, {Name: "action"},
				{Name: "limit", Type: "integer"}, {Name: "offset", Type: "integer"}},
			Resp: audit.Page{}, Handle: a.listAudit},
		{Method: "POST", Path: "/audit/verify", Tag: "audit", Summary: "Verify the whole audit trail (hash chain, Merkle roots, signed checkpoints)",
			Perm: auth.PermAuditRead, Resp: VerifyResponse{}, Handle: a.verifyAudit},
		{Method: "GET", Path: "/audit/export", Tag: "audit", Summary: "Export entries with inclusion proofs and a signed checkpoint, for offline verification",
			Perm: auth.PermAuditExport, Query: []Param{{Name: "from", Description: timeDesc}, {Name: "to", Description: timeDesc}},
			Resp: audit.Bundle{}, Handle: a.exportAudit},
	}
}

// parseWhen reads an optional time bound query parameter.
func parseWhen(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := audit.ParseTime(s, false)
	if err != nil {
		return time.Time{}, errs.E(errs.Invalid, "query parameter %s: %s", name, errs.Public(err))
	}
	return t, nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := audit.Query{ObjectType: r.URL.Query().Get("object_type"), ObjectID: r.URL.Query().Get("object_id"),
		Actor: r.URL.Query().Get("actor"), Action: r.URL.Query().Get("action")}
	var err error
	if q.From, err = parseWhen(r, "from"); err != nil {
		return err
	}
	if q.To, err = parseWhen(r, "to"); err != nil {
		return err
	}
	if q.Limit, err = queryInt(r, "limit", audit.DefaultPage); err != nil {
		return err
	}
	if q.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Audit.List(r.Context(), q))
}

func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	res, err := a.Audit.Verify(r.Context())
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		resp := VerifyResponse{Problem: ve.Error(), Checkpoint: ve.Checkpoint}
		if ve.Seq >= 0 {
			resp.Seq = &ve.Seq
		}
		WriteJSON(w, http.StatusOK, resp)
		return nil
	case err != nil:
		return fmt.Errorf("verify audit trail: %w", err)
	}
	WriteJSON(w, http.StatusOK, VerifyResponse{OK: true, Result: &res})
	return nil
}

func (a *API) exportAudit(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	from, err := parseWhen(r, "from")
	if err != nil {
		return err
	}
	to, err := parseWhen(r, "to")
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = time.Now().UTC()
	}
	b, err := a.Audit.Export(r.Context(), from, to)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="patchward-audit-%s-%s.json"`, from.Format("20060102"), to.Format("20060102")))
	WriteJSON(w, http.StatusOK, b)
	return nil
}
