package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// changeEnv is the risk tests' environment with the change service and
// the calendar wired in, a third approver (cat) for quorum races, and the
// API's log captured.
type changeEnv struct {
	*riskEnv
	log *syncBuffer
}

// syncBuffer is a log sink the handlers of concurrent requests share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newChangeEnv(t *testing.T, db *store.DB) *changeEnv {
	t.Helper()
	e := &changeEnv{riskEnv: newRiskEnv(t, db), log: &syncBuffer{}}
	ctx := context.Background()
	u, err := e.a.Accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: "cat", Role: auth.RoleApprover, Password: "correct horse battery cat", PolicyRoles: heldRoles["cat"]})
	if err != nil {
		t.Fatal(err)
	}
	if e.tokens["cat"], _, err = e.a.Accounts.CreateToken(ctx, audit.System, u.ID, "t", 0); err != nil {
		t.Fatal(err)
	}
	e.a.Log = slog.New(slog.NewTextHandler(e.log, nil))
	e.a.Changes = change.NewService(db.Changes(), e.a.Policies, db.Risk(), e.clock.Now)
	e.a.Calendar = &api.PolicyCalendar{Policies: e.a.Policies, Inventory: e.a.Inventory, Changes: e.a.Changes, Rollouts: e.a.Rollouts, Clock: e.clock.Now}
	onErr := func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, e.a.Log, err) }
	e.h = authn.Middleware(e.a.Accounts, onErr)(api.Handler(e.a.Routes(), e.a.Log))
	return e
}

// generalCases are the default policy's cases that apply to every asset:
// a normal change on an unclassified server needs exactly these.
var generalCases = []string{"backup-verified", "boot-time", "edr-compatibility", "connectivity"}

// draftJSON is a complete change record as a client sends it.
func (e *changeEnv) draftJSON(typ change.Type, assetID string) map[string]any {
	var protocol []map[string]any
	for _, id := range generalCases {
		protocol = append(protocol, map[string]any{"case_id": id})
	}
	c := map[string]any{
		"title": "Apply openssl 3.0.15 on " + assetID, "type": typ,
		"findings":        []string{e.kev.ID},
		"targets":         map[string]any{"assets": []string{assetID}},
		"patches":         []map[string]any{{"package": "openssl", "ecosystem": "Debian:12", "target_version": "3.0.15-1~deb12u1"}},
		"test_protocol":   protocol,
		"rollback_plan":   map[string]any{"triggers": []string{"a test case fails"}, "steps": []string{"restore the VM snapshot"}, "owner": "it-technician"},
		"communication":   map[string]any{"notify": []string{"lab operations"}, "user_impact": "LIS down 10 minutes"},
		"planned_windows": []map[string]any{{"window": "servers-weekly"}},
	}
	if typ == change.Emergency {
		c["emergency"] = map[string]any{"justification": "KEV-listed and exploited in the wild"}
	}
	return c
}

func (e *changeEnv) act(user string, c change.Change, action string, body map[string]any, want int) (api.ChangeResult, api.ErrorBody) {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["revision"]; !ok {
		body["revision"] = c.Revision
	}
	var out api.ChangeResult
	eb := e.do(user, "POST", "/changes/"+c.ID+"/"+action, body, want, &out)
	return out, eb
}

// passRun records a run passing every case of c's protocol, citing ev.
func (e *changeEnv) passRun(user string, c change.Change, ev ...change.EvidenceRef) change.TestRun {
	e.t.Helper()
	var results []change.CaseResult
	for _, s := range c.TestProtocol {
		results = append(results, change.CaseResult{CaseID: s.CaseID, Result: change.ResultPass, Evidence: ev})
	}
	var run change.TestRun
	e.do(user, "POST", "/changes/"+c.ID+"/test-runs", api.TestRunRequest{Results: results}, http.StatusCreated, &run)
	return run
}

func wantMsg(t *testing.T, what string, eb api.ErrorBody, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(eb.Error, p) {
			t.Errorf("%s error = %q; want it to contain %q", what, eb.Error, p)
		}
	}
}

// TestChangeLifecycleAPI walks a normal change and an emergency change
// through the whole process over HTTP on each engine: draft, edit with
// If-Match, submit, a refused self-approval, two approvals, schedule,
// evidence upload and download, a test run citing it, start, complete;
// and the emergency's post-incident review before it may complete.
func TestChangeLifecycleAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)

		// Scored findings give the change its risk rating.
		e.do("root", "POST", "/risk/recompute", nil, http.StatusOK, nil)
		// ann (security officer) drafts; the server fills in the rest.
		rec := e.call("ann", "POST", "/changes", "", e.draftJSON(change.Normal, e.lis.ID))
		var c change.Change
		e.check(rec, "POST /changes", http.StatusCreated, &c)
		if c.State != change.Draft || c.Revision != 1 || c.RequestedBy != "ann" || rec.Header().Get("ETag") != `"1"` ||
			rec.Header().Get("Location") != api.Prefix+"/changes/"+c.ID {
			t.Fatalf("created change = %s rev %d by %s, ETag %q, Location %q", c.State, c.Revision, c.RequestedBy,
				rec.Header().Get("ETag"), rec.Header().Get("Location"))
		}
		if c.Risk.Findings != 1 || c.Risk.FindingID != e.kev.ID {
			t.Errorf("risk rating = %+v; want rated from the KEV finding", c.Risk)
		}
		var list []change.Change
		e.do("vic", "GET", "/changes?state=draft&asset="+e.lis.ID, nil, http.StatusOK, &list)
		if len(list) != 1 || list[0].ID != c.ID {
			t.Errorf("GET /changes?state=draft&asset=lis = %d changes; want the draft", len(list))
		}
		e.do("vic", "GET", "/changes?state=submitted", nil, http.StatusOK, &list)
		if len(list) != 0 {
			t.Errorf("GET /changes?state=submitted = %d changes; want none", len(list))
		}

		// Edit with If-Match; the same stale revision again is 409.
		edit := e.draftJSON(change.Normal, e.lis.ID)
		edit["title"] = "Apply openssl 3.0.15 on the LIS"
		rec = e.call("ann", "PUT", "/changes/"+c.ID+"?why=clearer+title", "", edit, "If-Match", `"1"`)
		e.check(rec, "PUT /changes/{id} If-Match 1", http.StatusOK, &c)
		if c.Revision != 2 || c.Title != "Apply openssl 3.0.15 on the LIS" || rec.Header().Get("ETag") != `"2"` {
			t.Errorf("edited change = rev %d %q ETag %q; want rev 2 with the new title", c.Revision, c.Title, rec.Header().Get("ETag"))
		}
		rec = e.call("ann", "PUT", "/changes/"+c.ID, "", edit, "If-Match", `"1"`)
		eb := e.check(rec, "PUT stale If-Match", http.StatusConflict, nil)
		wantMsg(t, "stale edit", eb, "changed since you loaded it", "reload")

		c, _ = func() (change.Change, api.ErrorBody) {
			r, eb := e.act("ann", c, "submit", map[string]any{"why": "ready for CAB"}, http.StatusOK)
			return r.Change, eb
		}()
		if c.State != change.Submitted {
			t.Fatalf("after submit state = %s", c.State)
		}

		// Separation of duties: the requester cannot approve.
		_, eb = e.act("ann", c, "approve", map[string]any{"as": "security-officer"}, http.StatusForbidden)
		wantMsg(t, "self-approval", eb, "you requested this change", "separation_of_duties")
		// An operator has no change:approve at all.
		e.act("olga", c, "approve", nil, http.StatusForbidden)

		r, _ := e.act("bob", c, "approve", map[string]any{"as": "system-owner", "note": "tested in staging"}, http.StatusOK)
		if r.State != change.Submitted || r.ApprovalStatus == nil || r.ApprovalStatus.QuorumMet != 1 || r.ApprovalStatus.Complete {
			t.Fatalf("after one approval: %s %+v; want submitted, quorum 1 of 2", r.State, r.ApprovalStatus)
		}
		// The same person cannot count twice.
		_, eb = e.act("bob", c, "approve", nil, http.StatusConflict)
		wantMsg(t, "second approval by bob", eb, "already decided")
		r, _ = e.act("root", c, "approve", map[string]any{"as": "it-manager"}, http.StatusOK)
		if r.State != change.Approved || !r.ApprovalStatus.Complete {
			t.Fatalf("after two approvals: %s %+v; want approved", r.State, r.ApprovalStatus)
		}
		c = r.Change
		var approvals api.ApprovalsResult
		e.do("aud", "GET", "/changes/"+c.ID+"/approvals", nil, http.StatusOK, &approvals)
		if len(approvals.Approvals) != 2 || !approvals.Status.Complete || approvals.Status.QuorumMet != 2 {
			t.Errorf("approvals = %d, status %+v; want 2, complete", len(approvals.Approvals), approvals.Status)
		}

		// An illegal move names the moves that are allowed.
		_, eb = e.act("olga", c, "start", nil, http.StatusConflict)
		wantMsg(t, "start an approved change", eb, "cannot start a change that is approved", "schedule (→ scheduled)", "cancel (→ cancelled)")
		// An approver does not carry changes out.
		e.act("ann", c, "schedule", nil, http.StatusForbidden)
		r, _ = e.act("olga", c, "schedule", map[string]any{"why": "Sunday window"}, http.StatusOK)
		c = r.Change
		if c.State != change.Scheduled {
			t.Fatalf("after schedule state = %s", c.State)
		}

		// Evidence: upload, list, download byte for byte.
		qc := []byte("boot time 41 s (baseline 38 s): PASS\n")
		sum := sha256.Sum256(qc)
		rec = e.call("olga", "POST", "/changes/"+c.ID+"/evidence?filename=boot-time.txt", "text/plain", string(qc))
		var ev change.Evidence
		e.check(rec, "POST evidence", http.StatusCreated, &ev)
		if ev.SHA256 != hex.EncodeToString(sum[:]) || ev.Size != int64(len(qc)) || ev.Name != "boot-time.txt" || ev.MediaType != "text/plain" {
			t.Errorf("evidence = %+v", ev)
		}
		rec = e.call("vic", "GET", "/changes/"+c.ID+"/evidence/"+ev.SHA256, "", nil)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), qc) || rec.Header().Get("Content-Type") != "text/plain" ||
			!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET evidence = %d %q, headers %v", rec.Code, rec.Body, rec.Header())
		}
		var evs []change.Evidence
		e.do("aud", "GET", "/changes/"+c.ID+"/evidence", nil, http.StatusOK, &evs)
		if len(evs) != 1 || evs[0].SHA256 != ev.SHA256 {
			t.Errorf("evidence list = %+v", evs)
		}
		run := e.passRun("olga", c, change.EvidenceRef{SHA256: ev.SHA256, Name: ev.Name})
		var runs []change.TestRun
		e.do("aud", "GET", "/changes/"+c.ID+"/test-runs", nil, http.StatusOK, &runs)
		if len(runs) != 1 || runs[0].ID != run.ID || runs[0].Results[0].Evidence[0].SHA256 != ev.SHA256 {
			t.Errorf("test runs = %+v", runs)
		}

		r, _ = e.act("olga", c, "start", nil, http.StatusOK)
		r, _ = e.act("olga", r.Change, "complete", map[string]any{"why": "all tests passed"}, http.StatusOK)
		if r.State != change.Completed {
			t.Fatalf("after complete state = %s", r.State)
		}
		var hist []change.Transition
		e.do("vic", "GET", "/changes/"+c.ID+"/history", nil, http.StatusOK, &hist)
		var moves []string
		for _, h := range hist {
			moves = append(moves, fmt.Sprintf("%s:%s>%s", h.By, h.Action, h.To))
		}
		if got, want := strings.Join(moves, " "), "ann:create>draft ann:submit>submitted root:approve>approved olga:schedule>scheduled olga:start>in_progress olga:complete>completed"; got != want {
			t.Errorf("history = %s\nwant      %s", got, want)
		}
		_, eb = e.act("olga", r.Change, "halt", map[string]any{"why": "late"}, http.StatusConflict)
		wantMsg(t, "halt a completed change", eb, "completed is final")

		// The emergency lane: one approver, and a review before closing.
		var em change.Change
		e.do("ann", "POST", "/changes", e.draftJSON(change.Emergency, e.pump.ID), http.StatusCreated, &em)
		if em.Emergency == nil || em.Emergency.GoNoGoBy.IsZero() {
			t.Fatalf("emergency record = %+v", em.Emergency)
		}
		r, _ = e.act("ann", em, "submit", nil, http.StatusOK)
		r, _ = e.act("root", r.Change, "approve", map[string]any{"note": "go"}, http.StatusOK)
		if r.State != change.Approved {
			t.Fatalf("emergency after one approval = %s; want approved", r.State)
		}
		r, _ = e.act("olga", r.Change, "schedule", map[string]any{"planned_windows": []map[string]any{{"window": "immediate"}}}, http.StatusOK)
		e.passRun("olga", r.Change)
		r, _ = e.act("olga", r.Change, "start", nil, http.StatusOK)
		_, eb = e.act("olga", r.Change, "complete", nil, http.StatusConflict)
		wantMsg(t, "emergency complete without review", eb, "post-incident review")
		var reviewed change.Change
		e.do("ann", "POST", "/changes/"+em.ID+"/review", api.ReviewRequest{Summary: "patched within 3h; no QC impact",
			Lessons: []string{"keep a pre-approved emergency runbook"}}, http.StatusOK, &reviewed)
		if reviewed.Emergency.PostIncidentReview == nil || reviewed.Emergency.PostIncidentReview.By != "ann" {
			t.Errorf("review = %+v", reviewed.Emergency.PostIncidentReview)
		}
		r, _ = e.act("olga", reviewed, "complete", nil, http.StatusOK)
		if r.State != change.Completed {
			t.Errorf("emergency after review and complete = %s", r.State)
		}
		verifyChangeAudit(t, e, c.ID, "change.create", "change.update", "change.submit", "change.approval", "change.approve",
			"change.schedule", "change.evidence", "change.test_run", "change.start", "change.complete")
	})
}

// verifyChangeAudit checks the trail holds each action on the change.
func verifyChangeAudit(t *testing.T, e *changeEnv, id string, actions ...string) {
	t.Helper()
	page, err := audit.NewService(e.db.Audit(), nil, nil).List(context.Background(), audit.Query{ObjectType: "change", ObjectID: id, Limit: audit.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, en := range page.Entries {
		have[en.Action] = true
	}
	for _, a := range actions {
		if !have[a] {
			t.Errorf("audit trail of change %s lacks %s (has %v)", id, a, have)
		}
	}
}

// TestChangeAPIErrors maps the service's refusals through the one error
// table: validation 400 with fields, strict decoding, not found, stale
// revisions and illegal moves 409, separation of duties 403, oversized
// evidence 413, and tampered evidence 500 with a safe message, logged.
func TestChangeAPIErrors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		post := func(user, path, ctype, body string, want int) api.ErrorBody {
			t.Helper()
			return e.check(e.call(user, "POST", path, ctype, body), "POST "+path, want, nil)
		}
		eb := post("ann", "/changes", "application/json", `{"title":"x","type":"normal","rollback_pln":{}}`, http.StatusBadRequest)
		wantMsg(t, "misspelt field", eb, "not valid JSON of the expected shape")
		post("ann", "/changes", "text/plain", `{}`, http.StatusUnsupportedMediaType)
		post("ann", "/changes", "application/json", `{"title":"`+strings.Repeat("a", change.MaxDocument)+`"}`, http.StatusRequestEntityTooLarge)
		eb = post("ann", "/changes", "application/json", `{"title":"","type":"toaster"}`, http.StatusBadRequest)
		if eb.Fields["title"] == "" || eb.Fields["type"] == "" {
			t.Errorf("invalid change fields = %v; want title and type", eb.Fields)
		}
		post("vic", "/changes", "application/json", `{}`, http.StatusForbidden)
		post("olga", "/changes", "application/json", `{"title":"zero-day","type":"emergency","emergency":{"justification":"x"}}`, http.StatusForbidden)

		// An incomplete draft cannot be submitted; every gap is a field.
		var draft change.Change
		e.do("olga", "POST", "/changes", map[string]any{"title": "Half a plan", "type": "normal"}, http.StatusCreated, &draft)
		_, eb = e.act("olga", draft, "submit", nil, http.StatusBadRequest)
		for _, f := range []string{"targets", "patches", "rollback_plan", "test_protocol"} {
			if eb.Fields[f] == "" {
				t.Errorf("submit incomplete: fields %v lack %s", eb.Fields, f)
			}
		}
		_, eb = e.act("olga", draft, "cancel", map[string]any{}, http.StatusBadRequest)
		if eb.Fields["why"] == "" {
			t.Errorf("cancel without why: fields = %v", eb.Fields)
		}
		_, eb = e.act("olga", draft, "submit", map[string]any{"revision": draft.Revision + 5}, http.StatusConflict)
		wantMsg(t, "stale submit", eb, "changed since you loaded it")
		post("olga", "/changes/"+draft.ID+"/submit", "application/json", `{"why":1}`, http.StatusBadRequest)
		post("olga", "/changes/"+draft.ID+"/submit", "application/json", `{"colour":"red"}`, http.StatusBadRequest)
		e.do("vic", "GET", "/changes/no-such-change", nil, http.StatusNotFound, nil)
		e.do("vic", "GET", "/changes/no-such-change/history", nil, http.StatusNotFound, nil)
		e.do("vic", "GET", "/changes/no-such-change/test-runs", nil, http.StatusNotFound, nil)
		e.do("vic", "GET", "/changes?state=bogus", nil, http.StatusBadRequest, nil)
		e.do("vic", "GET", "/changes?limit=5000", nil, http.StatusBadRequest, nil)

		// PUT: revision from If-Match or the body; both missing, garbled or
		// disagreeing is a 400.
		body := e.draftJSON(change.Normal, e.lis.ID)
		e.check(e.call("olga", "PUT", "/changes/"+draft.ID, "", body), "PUT without revision", http.StatusBadRequest, nil)
		e.check(e.call("olga", "PUT", "/changes/"+draft.ID, "", body, "If-Match", "*"), "PUT If-Match *", http.StatusBadRequest, nil)
		body["revision"] = 1
		e.check(e.call("olga", "PUT", "/changes/"+draft.ID, "", body, "If-Match", `"2"`), "PUT disagreeing", http.StatusBadRequest, nil)
		body["id"] = "another"
		e.check(e.call("olga", "PUT", "/changes/"+draft.ID, "", body), "PUT other id", http.StatusBadRequest, nil)
		delete(body, "id")
		e.check(e.call("olga", "PUT", "/changes/"+draft.ID, "", body), "PUT body revision", http.StatusOK, &draft)

		// Reject needs a note.
		var sub change.Change
		e.do("olga", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &sub)
		r, _ := e.act("olga", sub, "submit", nil, http.StatusOK)
		_, eb = e.act("bob", r.Change, "reject", nil, http.StatusBadRequest)
		if eb.Fields["note"] == "" {
			t.Errorf("reject without note: fields = %v", eb.Fields)
		}
		r, _ = e.act("bob", r.Change, "reject", map[string]any{"why": "no vendor validation"}, http.StatusOK)
		if r.State != change.Rejected {
			t.Errorf("after reject state = %s", r.State)
		}
		r, _ = e.act("olga", r.Change, "rework", nil, http.StatusOK)
		if r.State != change.Draft {
			t.Errorf("after rework state = %s", r.State)
		}

		// Evidence: a name is required, the cap holds, tampering shows.
		path := "/changes/" + sub.ID + "/evidence"
		post("olga", path, "text/plain", "x", http.StatusBadRequest)
		post("vic", path+"?filename=a.txt", "text/plain", "x", http.StatusForbidden)
		eb = post("olga", path+"?filename=big.bin", "application/octet-stream", strings.Repeat("a", change.MaxEvidence+1), http.StatusRequestEntityTooLarge)
		wantMsg(t, "oversized evidence", eb, "20 MiB")
		post("olga", path+"?filename=..%2Fetc%2Fpasswd", "text/plain", "x", http.StatusBadRequest)
		rec := e.call("olga", "POST", path, "image/png", "\x89PNG fake", "Content-Disposition", `attachment; filename="qc screen.png"`)
		var ev change.Evidence
		e.check(rec, "POST evidence with Content-Disposition", http.StatusCreated, &ev)
		if ev.Name != "qc screen.png" || ev.MediaType != "image/png" {
			t.Errorf("evidence named by Content-Disposition = %+v", ev)
		}
		e.do("vic", "GET", path+"/"+strings.Repeat("0", 64), nil, http.StatusNotFound, nil)
		if err := db.ExecRaw(context.Background(), `UPDATE evidence_blobs SET content = $1 WHERE sha256 = $2`, []byte("\x89PNG evil"), ev.SHA256); err != nil {
			t.Fatal(err)
		}
		eb = e.do("vic", "GET", path+"/"+ev.SHA256, nil, http.StatusInternalServerError, nil)
		if eb.Error != api.TamperedEvidenceMessage || strings.Contains(eb.Error, "evidence_blobs") {
			t.Errorf("tampered evidence error = %q", eb.Error)
		}
		if logged := e.log.String(); !strings.Contains(logged, "evidence integrity check failed") || !strings.Contains(logged, ev.SHA256) {
			t.Errorf("tampered evidence was not logged: %q", logged)
		}
	})
}

// TestConcurrentApprovalsAPI races three approvers on one revision of a
// change that needs two: exactly two succeed, the third is refused with a
// conflict, and the record ends approved once, on each engine.
func TestConcurrentApprovalsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		for round := range 3 {
			var c change.Change
			e.do("olga", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &c)
			r, _ := e.act("olga", c, "submit", nil, http.StatusOK)
			c = r.Change
			approvers := map[string]string{"bob": "security-officer", "cat": "system-owner", "root": "it-manager"}
			codes := map[string]int{}
			var (
				mu sync.Mutex
				wg sync.WaitGroup
			)
			for user, role := range approvers {
				wg.Go(func() {
					rec := e.call(user, "POST", "/changes/"+c.ID+"/approve", "", map[string]any{"as": role, "revision": c.Revision})
					mu.Lock()
					codes[user] = rec.Code
					mu.Unlock()
				})
			}
			wg.Wait()
			ok, conflict := 0, 0
			for _, code := range codes {
				switch code {
				case http.StatusOK:
					ok++
				case http.StatusConflict:
					conflict++
				}
			}
			if ok != 2 || conflict != 1 {
				t.Errorf("round %d: approval statuses %v; want two 200 and one 409", round, codes)
			}
			var got change.Change
			e.do("vic", "GET", "/changes/"+c.ID, nil, http.StatusOK, &got)
			var approvals api.ApprovalsResult
			e.do("vic", "GET", "/changes/"+c.ID+"/approvals", nil, http.StatusOK, &approvals)
			var hist []change.Transition
			e.do("vic", "GET", "/changes/"+c.ID+"/history", nil, http.StatusOK, &hist)
			approves := 0
			for _, h := range hist {
				if h.Action == change.ActApprove {
					approves++
				}
			}
			if got.State != change.Approved || got.Revision != c.Revision+1 || len(approvals.Approvals) != 2 || !approvals.Status.Complete || approves != 1 {
				t.Errorf("round %d: after the race: %s rev %d (was %d), %d approvals, complete %v, %d approve transitions; want approved once with two approvals",
					round, got.State, got.Revision, c.Revision, len(approvals.Approvals), approvals.Status.Complete, approves)
			}
		}
	})
}

// TestChangeOperateAPI covers the moves a deployment takes when it goes
// wrong, and the sign-offs a change asks for: halt and resume, halt and
// roll back, cancel, and a completion refused until the laboratory
// director (not the requester) has signed off.
func TestChangeOperateAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newChangeEnv(t, db)
		// inProgress carries a fresh change to in_progress.
		inProgress := func(edit func(map[string]any)) change.Change {
			t.Helper()
			body := e.draftJSON(change.Normal, e.lis.ID)
			if edit != nil {
				edit(body)
			}
			var c change.Change
			e.do("olga", "POST", "/changes", body, http.StatusCreated, &c)
			r, _ := e.act("olga", c, "submit", nil, http.StatusOK)
			r, _ = e.act("bob", r.Change, "approve", nil, http.StatusOK)
			r, _ = e.act("root", r.Change, "approve", nil, http.StatusOK)
			r, _ = e.act("olga", r.Change, "schedule", nil, http.StatusOK)
			e.passRun("olga", r.Change)
			r, _ = e.act("olga", r.Change, "start", nil, http.StatusOK)
			return r.Change
		}

		c := inProgress(nil)
		_, eb := e.act("olga", c, "halt", nil, http.StatusBadRequest)
		if eb.Fields["why"] == "" {
			t.Errorf("halt without why: fields = %v", eb.Fields)
		}
		e.act("aud", c, "halt", map[string]any{"why": "x"}, http.StatusForbidden)
		r, _ := e.act("olga", c, "halt", map[string]any{"why": "QC out of range on CHEM-01"}, http.StatusOK)
		if r.State != change.Halted {
			t.Fatalf("after halt = %s", r.State)
		}
		r, _ = e.act("olga", r.Change, "resume", nil, http.StatusOK)
		if r.State != change.InProgress {
			t.Fatalf("after resume = %s", r.State)
		}
		r, _ = e.act("olga", r.Change, "halt", map[string]any{"why": "connectivity lost"}, http.StatusOK)
		r, _ = e.act("olga", r.Change, "rollback", map[string]any{"why": "trigger: connectivity loss"}, http.StatusOK)
		if r.State != change.RolledBack {
			t.Fatalf("after rollback = %s", r.State)
		}

		var d change.Change
		e.do("ann", "POST", "/changes", e.draftJSON(change.Normal, e.lis.ID), http.StatusCreated, &d)
		r, _ = e.act("ann", d, "cancel", map[string]any{"why": "superseded by the vendor's cumulative update"}, http.StatusOK)
		if r.State != change.Cancelled {
			t.Errorf("after cancel = %s", r.State)
		}

		s := inProgress(func(b map[string]any) { b["sign_offs"] = []map[string]any{{"role": "laboratory-director"}} })
		_, eb = e.act("olga", s, "complete", nil, http.StatusConflict)
		wantMsg(t, "complete before sign-off", eb, "sign-offs still missing: laboratory-director")
		eb = e.do("olga", "POST", "/changes/"+s.ID+"/sign-offs", api.SignOffRequest{Role: "laboratory-director"}, http.StatusForbidden, nil)
		wantMsg(t, "sign-off by an operator", eb, "do not hold", "an admin assigns policy roles")
		var signed change.Change
		e.do("cat", "POST", "/changes/"+s.ID+"/sign-offs", api.SignOffRequest{Role: "laboratory-director", Note: "QC within limits", Revision: s.Revision}, http.StatusOK, &signed)
		if len(signed.SignOffs) != 1 || signed.SignOffs[0].By != "cat" || signed.SignOffs[0].At == nil {
			t.Errorf("sign-offs = %+v", signed.SignOffs)
		}
		e.do("bob", "POST", "/changes/"+s.ID+"/sign-offs", api.SignOffRequest{Role: "laboratory-director"}, http.StatusConflict, nil)
		e.do("cat", "POST", "/changes/"+s.ID+"/sign-offs", api.SignOffRequest{Role: "it-manager"}, http.StatusBadRequest, nil)
		r, _ = e.act("olga", signed, "complete", nil, http.StatusOK)
		if r.State != change.Completed {
			t.Errorf("after sign-off and complete = %s", r.State)
		}
		// A review belongs to emergencies only.
		e.do("ann", "POST", "/changes/"+s.ID+"/review", api.ReviewRequest{Summary: "n/a"}, http.StatusConflict, nil)
		e.do("ann", "POST", "/changes/"+s.ID+"/review", api.ReviewRequest{}, http.StatusBadRequest, nil)
	})
}
