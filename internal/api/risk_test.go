package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// fakeIntel is what the feeds say about each vulnerability; ready from
// the start, so the engine scores at once.
type fakeIntel map[string]match.Intel

func (f fakeIntel) Intel(id string, _ []string) (match.Intel, bool) { return f[id], true }

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// targets confirms exception targets the way the server does.
type targets struct {
	inv      *inventory.Service
	findings *match.Service
}

func (t targets) CheckTarget(ctx context.Context, scope, id string) error {
	var err error
	switch scope {
	case risk.ScopeFinding:
		_, err = t.findings.Finding(ctx, id)
	case risk.ScopeAsset:
		_, err = t.inv.Asset(ctx, id)
	case risk.ScopeGroup:
		_, err = t.inv.Group(ctx, id)
	default:
		err = errs.E(errs.Invalid, "scope must be finding, asset or group")
	}
	return err
}

// riskEnv is the API on a real database with the policy and risk services,
// a small estate with findings, and one user per name below.
type riskEnv struct {
	t      *testing.T
	db     *store.DB
	a      *api.API
	h      http.Handler
	clock  *testClock
	tokens map[string]string
	lis    inventory.Asset
	pump   inventory.Asset
	// kev, ssl and low are the LIS's KEV-listed finding, a high-CVSS one
	// and a low one; pumpF is the pump's.
	kev, ssl, low, pumpF match.Finding
}

// users are the test's people: two approvers so that one may decide what
// the other requested.
var users = map[string]auth.Role{
	"root": auth.RoleAdmin, "ann": auth.RoleApprover, "bob": auth.RoleApprover,
	"olga": auth.RoleOperator, "aud": auth.RoleAuditor, "vic": auth.RoleViewer,
}

// heldRoles are the policy roles the test's people hold; approving as one
// takes holding it.
var heldRoles = map[string][]string{
	"root": {"it-manager"}, "ann": {"security-officer"}, "bob": {"security-officer", "system-owner"},
	"cat": {"system-owner", "laboratory-director"}, "olga": {"it-technician"},
}

func newRiskEnv(t *testing.T, db *store.DB) *riskEnv {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)}
	policies := policy.NewService(db.Policies(), clock.Now)
	accounts := auth.NewService(db.Auth(), auth.Options{Params: cheap, PolicyGrants: policies.Grants})
	inv := inventory.NewService(db.Inventory(), nil)
	findings := match.NewService(db.Findings(), nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &api.API{Inventory: inv, Accounts: accounts, Findings: findings, Advisories: db.Feeds(), Log: log, Version: "test"}
	a.Policies = policies
	intel := fakeIntel{
		"CVE-2024-0001": {CVSS: &advisory.Severity{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8},
			KEV: &advisory.KEV{CVE: "CVE-2024-0001", DateAdded: clock.t.AddDate(0, 0, -3), DueDate: clock.t.AddDate(0, 0, 18)}},
		"CVE-2024-0002": {CVSS: &advisory.Severity{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N", Score: 9.1}},
		"CVE-2024-0003": {CVSS: &advisory.Severity{Type: "CVSS_V3", Vector: "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", Score: 1.8}},
	}
	a.Risk = risk.NewService(db.Risk(), a.Policies, intel, risk.Options{Targets: risk.Targets{Findings: findings, Inventory: inv}, Now: clock.Now, Log: log})
	e := &riskEnv{t: t, db: db, a: a, clock: clock, tokens: map[string]string{}}
	for name, role := range users {
		u, err := accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: name, Role: role, Password: "correct horse battery " + name, PolicyRoles: heldRoles[name]})
		if err != nil {
			t.Fatalf("CreateUser(%s): %v", name, err)
		}
		if e.tokens[name], _, err = accounts.CreateToken(ctx, audit.System, u.ID, "t", 0); err != nil {
			t.Fatal(err)
		}
	}
	onErr := func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, log, err) }
	e.h = authn.Middleware(accounts, onErr)(api.Handler(a.Routes(), log))

	var err error
	if e.lis, err = inv.CreateAsset(ctx, audit.System, inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer,
		Exposure: inventory.ExposureInternal, Criticality: inventory.LevelCritical, HandlesPHI: true}); err != nil {
		t.Fatal(err)
	}
	if e.pump, err = inv.CreateAsset(ctx, audit.System, inventory.Asset{Name: "Pump-7", Type: inventory.TypeIoMT,
		Exposure: inventory.ExposureClinicalVLAN, Criticality: inventory.LevelHigh}); err != nil {
		t.Fatal(err)
	}
	e.kev = e.finding(e.lis.ID, "openssl", "CVE-2024-0001")
	e.ssl = e.finding(e.lis.ID, "libxml2", "CVE-2024-0002")
	e.low = e.finding(e.lis.ID, "less", "CVE-2024-0003")
	e.pumpF = e.finding(e.pump.ID, "busybox", "CVE-2024-0003")
	var c match.Changes
	for _, f := range []match.Finding{e.kev, e.ssl, e.low, e.pumpF} {
		c.Changes = append(c.Changes, match.Change{Kind: match.ChangeOpen, After: f})
	}
	if err := db.Findings().Transact(ctx, func(tx match.FindingsTx) error { return tx.ApplyChanges(ctx, c) }); err != nil {
		t.Fatalf("store findings: %v", err)
	}
	return e
}

func (e *riskEnv) finding(assetID, pkg, vuln string) match.Finding {
	f := match.Finding{AssetID: assetID, Ecosystem: "Debian:12", Package: pkg, Version: "1.0-1", VulnID: vuln,
		FixedVersion: "1.0-2", Source: match.SourceOSV, State: match.StateOpen,
		FirstSeen: e.clock.t.AddDate(0, 0, -2), LastSeen: e.clock.t}
	f.ID = match.FindingID(assetID, f.Key(), vuln)
	return f
}

// call sends a request as user (none when ""): body is JSON unless it is a
// string, sent as is with ctype.
func (e *riskEnv) call(user, method, path, ctype string, body any, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req := httptest.NewRequest(method, api.Prefix+path, rd)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// do is call with a JSON body, checking the status and decoding the answer.
func (e *riskEnv) do(user, method, path string, body any, want int, out any) api.ErrorBody {
	e.t.Helper()
	rec := e.call(user, method, path, "", body)
	return e.check(rec, method+" "+path+" as "+user, want, out)
}

func (e *riskEnv) check(rec *httptest.ResponseRecorder, what string, want int, out any) api.ErrorBody {
	e.t.Helper()
	var eb api.ErrorBody
	if rec.Code != want {
		e.t.Fatalf("%s = %d; want %d\n%s", what, rec.Code, want, rec.Body)
	}
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			e.t.Fatalf("%s: error body %q: %v", what, rec.Body, err)
		}
		return eb
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s: decode %s: %v", what, rec.Body, err)
		}
	}
	return eb
}

// ids lists the finding IDs of a worklist page in order.
func ids(p risk.WorklistPage) []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.FindingID)
	}
	return out
}

func TestWorklistRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRiskEnv(t, db)
		// Nothing is scored until the engine runs.
		var page risk.WorklistPage
		e.do("vic", "GET", "/worklist", nil, 200, &page)
		if page.Total != 0 {
			t.Fatalf("worklist before any recompute: total %d; want 0", page.Total)
		}
		// Re-scoring the estate is an admin's, like applying a policy.
		e.do("olga", "POST", "/risk/recompute", nil, 403, nil)
		e.do("ann", "POST", "/risk/recompute", nil, 403, nil)
		e.do("root", "POST", "/risk/recompute?asset=nope", nil, 404, nil)
		var sum risk.Summary
		e.do("root", "POST", "/risk/recompute", nil, 200, &sum)
		if sum.Assessed != 4 || sum.Changed != 4 {
			t.Errorf("recompute = %+v; want 4 assessed and written", sum)
		}
		e.do("root", "POST", "/risk/recompute?asset="+e.lis.ID, nil, 200, &sum)
		if sum.Assessed != 3 || sum.Changed != 0 {
			t.Errorf("recompute of the LIS again = %+v; want 3 assessed, nothing changed", sum)
		}

		// Most urgent first: the KEV-listed critical, then by score.
		e.do("vic", "GET", "/worklist", nil, 200, &page)
		if page.Total != 4 || page.Limit != 50 || len(page.Items) != 4 {
			t.Fatalf("worklist = total %d, limit %d, %d items; want 4, 50, 4", page.Total, page.Limit, len(page.Items))
		}
		if page.Items[0].FindingID != e.kev.ID {
			t.Errorf("worklist[0] = %s (%s); want the KEV finding %s", page.Items[0].FindingID, page.Items[0].VulnID, e.kev.ID)
		}
		for i := 1; i < len(page.Items); i++ {
			if a, b := page.Items[i-1].Assessment.Score, page.Items[i].Assessment.Score; a < b {
				t.Errorf("worklist scores not descending at %d: %v then %v", i, a, b)
			}
		}
		top := page.Items[0]
		if top.AssetName != "LIS-01" || top.Package != "openssl" || top.SLA == "" || top.DueAt.IsZero() || top.Assessment.Tier == "" {
			t.Errorf("worklist[0] = %+v; want asset name, package, SLA state, due date and tier", top)
		}

		// Filters.
		e.do("vic", "GET", "/worklist?asset="+e.pump.ID, nil, 200, &page)
		if diff := cmp.Diff([]string{e.pumpF.ID}, ids(page)); diff != "" {
			t.Errorf("worklist?asset=pump (-want +got):\n%s", diff)
		}
		e.do("vic", "GET", "/worklist?vuln=CVE-2024-0003&sort=due", nil, 200, &page)
		if page.Total != 2 {
			t.Errorf("worklist?vuln=CVE-2024-0003 total = %d; want 2", page.Total)
		}
		e.do("vic", "GET", "/worklist?tier="+top.Assessment.Tier, nil, 200, &page)
		if page.Total < 1 || page.Items[0].FindingID != e.kev.ID {
			t.Errorf("worklist?tier=%s = %v; want the KEV finding first", top.Assessment.Tier, ids(page))
		}
		e.do("vic", "GET", "/worklist?limit=1&offset=1", nil, 200, &page)
		if page.Total != 4 || len(page.Items) != 1 || page.Items[0].FindingID == e.kev.ID {
			t.Errorf("worklist?limit=1&offset=1 = total %d, %v; want the second of 4", page.Total, ids(page))
		}
		e.do("vic", "GET", "/worklist?sla=excepted", nil, 200, &page)
		if page.Total != 0 {
			t.Errorf("worklist?sla=excepted total = %d; want 0", page.Total)
		}
		for _, tc := range []struct{ query, msg string }{
			{"tier=urgentish", `tier "urgentish" is not a tier of the policy in force; its tiers are critical`},
			{"sla=late", `sla: "late" is not one of: breached, due_soon`},
			{"sort=name", `sort: "name" is not one of: score, due`},
			{"status=closed", `status: "closed" is not one of`},
			{"limit=-1", "limit must be a non-negative integer"},
			{"offset=x", "offset must be a non-negative integer"},
		} {
			eb := e.do("vic", "GET", "/worklist?"+tc.query, nil, 400, nil)
			if !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("GET /worklist?%s = %q; want it to contain %q", tc.query, eb.Error, tc.msg)
			}
		}

		// The reasons behind a priority.
		var ex risk.Explanation
		e.do("aud", "GET", "/findings/"+e.kev.ID+"/risk", nil, 200, &ex)
		if ex.Record.FindingID != e.kev.ID || len(ex.Record.Assessment.Factors) == 0 || ex.SLA == "" || len(ex.History) != 1 ||
			ex.Record.DueReason == "" {
			t.Errorf("explanation = %+v; want factors, SLA state, a due reason and one history event", ex)
		}
		var kevFactor bool
		for _, f := range ex.Record.Assessment.Factors {
			kevFactor = kevFactor || strings.Contains(strings.ToLower(f.Name), "kev") && f.Points > 0
		}
		if !kevFactor {
			t.Errorf("explanation factors = %+v; want a KEV factor that added points", ex.Record.Assessment.Factors)
		}
		e.do("vic", "GET", "/findings/no-such-finding/risk", nil, 404, nil)
		e.do("", "GET", "/findings/"+e.kev.ID+"/risk", nil, 401, nil)
	})
}

func TestExceptionRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRiskEnv(t, db)
		e.do("root", "POST", "/risk/recompute", nil, 200, nil)
		expires := e.clock.Now().AddDate(0, 0, 200).Format(time.RFC3339)
		req := api.ExceptionRequest{Scope: "finding", Target: e.ssl.ID, Decision: "mitigate",
			Reason: "the LIS vendor has not validated the libxml2 update", Owner: "lab manager",
			Controls: []api.ControlRequest{{Kind: "segmentation", Description: "LIS VLAN, no internet"}}, ExpiresAt: expires}

		// Hostile and wrong requests change nothing.
		for _, tc := range []struct {
			name string
			user string
			body any
			want int
			msg  string
		}{
			{"viewer", "vic", req, 403, ""},
			{"auditor", "aud", req, 403, ""},
			{"a state of its own", "ann", map[string]any{"scope": "finding", "target": e.ssl.ID, "state": "approved"}, 400, `unknown field "state"`},
			{"verified controls", "ann", map[string]any{"controls": []map[string]any{{"kind": "other", "description": "x", "verified_by": "me"}}}, 400, `unknown field "verified_by"`},
			{"expiry not a time", "ann", func() api.ExceptionRequest { r := req; r.ExpiresAt = "next spring"; return r }(), 400, "expires_at"},
			{"everything missing", "ann", api.ExceptionRequest{}, 400, "scope: required"},
			{"no such finding", "ann", func() api.ExceptionRequest { r := req; r.Target = "no-such-finding"; return r }(), 404, ""},
			{"controls required", "ann", func() api.ExceptionRequest { r := req; r.Controls = nil; return r }(), 400, "requires at least one compensating control"},
			{"too long", "ann", func() api.ExceptionRequest {
				r := req
				r.ExpiresAt = e.clock.Now().AddDate(3, 0, 0).Format(time.RFC3339)
				return r
			}(), 400, "must be no later than"},
			{"oversized", "ann", map[string]any{"reason": strings.Repeat("a", api.MaxJSONBody)}, 413, "larger than"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				eb := e.do(tc.user, "POST", "/exceptions", tc.body, tc.want, nil)
				if !strings.Contains(eb.Error, tc.msg) {
					t.Errorf("POST /exceptions = %q; want it to contain %q", eb.Error, tc.msg)
				}
			})
		}
		var list []risk.Exception
		e.do("vic", "GET", "/exceptions", nil, 200, &list)
		if len(list) != 0 {
			t.Fatalf("exceptions after refused requests = %d; want 0", len(list))
		}

		// Ann requests; the answer says where it lives.
		rec := e.call("ann", "POST", "/exceptions", "", req)
		var exc risk.Exception
		e.check(rec, "POST /exceptions as ann", 201, &exc)
		if exc.State != risk.ExceptionRequested || exc.RequestedBy != "ann" || exc.Revision != 1 || exc.Controls[0].VerifiedAt != nil {
			t.Errorf("requested exception = %+v", exc)
		}
		if loc := rec.Header().Get("Location"); loc != api.Prefix+"/exceptions/"+exc.ID {
			t.Errorf("Location = %q", loc)
		}
		var detail api.ExceptionDetail
		e.do("vic", "GET", "/exceptions/"+exc.ID, nil, 200, &detail)
		if detail.ID != exc.ID || detail.Reviews == nil || len(detail.Reviews) != 0 {
			t.Errorf("exception detail = %+v; want the exception with an empty review list", detail)
		}
		e.do("vic", "GET", "/exceptions/exc_0000000000000000", nil, 404, nil)

		// Who may decide: not an operator (no permission), not the admin
		// (not an approver role in the policy), not Ann (her own request).
		approve := api.DecisionRequest{Action: "approve", Note: "segmentation verified", Revision: 1}
		e.do("olga", "POST", "/exceptions/"+exc.ID+"/decision", approve, 403, nil)
		if eb := e.do("root", "POST", "/exceptions/"+exc.ID+"/decision", approve, 403, nil); !strings.Contains(eb.Error, `role "admin" may not approve`) {
			t.Errorf("admin approving = %q; want the policy's approver rule", eb.Error)
		}
		if eb := e.do("ann", "POST", "/exceptions/"+exc.ID+"/decision", approve, 403, nil); !strings.Contains(eb.Error, "separation of duties") {
			t.Errorf("requester approving = %q; want separation of duties", eb.Error)
		}
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "approve", Revision: 7}, 409, nil)
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", map[string]any{"action": "approve", "by": "ann"}, 400, nil)
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "nuke"}, 400, nil)
		e.do("bob", "POST", "/exceptions/exc_0000000000000000/decision", approve, 404, nil)
		e.do("vic", "GET", "/exceptions/"+exc.ID, nil, 200, &detail)
		if detail.State != risk.ExceptionRequested || detail.Revision != 1 {
			t.Fatalf("after refused decisions: %s revision %d; want requested revision 1", detail.State, detail.Revision)
		}
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", approve, 200, &exc)
		if exc.State != risk.ExceptionApproved || exc.DecidedBy != "bob" || exc.Revision != 2 {
			t.Errorf("approved exception = %+v", exc)
		}
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "approve"}, 409, nil)

		// The finding is excepted on the worklist at once.
		var page risk.WorklistPage
		e.do("vic", "GET", "/worklist?status=excepted", nil, 200, &page)
		if diff := cmp.Diff([]string{e.ssl.ID}, ids(page)); diff != "" || page.Items[0].SLA != risk.SLAExcepted || page.Items[0].ExceptionID != exc.ID {
			t.Errorf("excepted worklist = %+v (-want +got):\n%s", page.Items, diff)
		}
		e.do("vic", "GET", "/worklist", nil, 200, &page)
		if page.Total != 3 {
			t.Errorf("open worklist total = %d; want 3", page.Total)
		}

		// Olga (operator) asks for an asset-wide acceptance; Bob rejects
		// it, and a rejection must say why.
		opReq := api.ExceptionRequest{Scope: "asset", Target: e.pump.ID, Decision: "accept", Reason: "vendor-managed pump",
			Owner: "biomed", ExpiresAt: e.clock.Now().AddDate(0, 0, 20).Format(time.RFC3339)}
		var opExc risk.Exception
		e.do("olga", "POST", "/exceptions", opReq, 201, &opExc)
		e.do("bob", "POST", "/exceptions/"+opExc.ID+"/decision", api.DecisionRequest{Action: "reject"}, 400, nil)
		e.do("bob", "POST", "/exceptions/"+opExc.ID+"/decision", api.DecisionRequest{Action: "reject", Note: "ask the vendor first"}, 200, &opExc)
		if opExc.State != risk.ExceptionRejected {
			t.Errorf("rejected = %s", opExc.State)
		}

		// Listing and its filters.
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{exc.ID, opExc.ID}},
			{"state=approved", []string{exc.ID}},
			{"scope=asset", []string{opExc.ID}},
			{"target=" + e.ssl.ID, []string{exc.ID}},
			{"expiring_within=30", []string{}},
			{"expiring_within=201", []string{exc.ID}},
			{"review_due=true", []string{}},
			{"review_due=false", []string{exc.ID, opExc.ID}},
		} {
			e.do("aud", "GET", "/exceptions?"+tc.query, nil, 200, &list)
			got := []string{}
			for _, x := range list {
				got = append(got, x.ID)
			}
			if diff := cmp.Diff(tc.want, got, cmpSorted); diff != "" {
				t.Errorf("GET /exceptions?%s (-want +got):\n%s", tc.query, diff)
			}
		}
		for _, q := range []string{"state=pending", "scope=site", "review_due=soon", "expiring_within=-3", "expiring_within=99999"} {
			e.do("aud", "GET", "/exceptions?"+q, nil, 400, nil)
		}

		// Ninety days on, its review is due; Bob confirms the controls.
		e.clock.Advance(91 * 24 * time.Hour)
		e.do("aud", "GET", "/exceptions?review_due=true", nil, 200, &list)
		if len(list) != 1 || list[0].ID != exc.ID {
			t.Errorf("review due after 91 days = %v; want the approved exception", list)
		}
		var aging risk.AgingReport
		e.do("vic", "GET", "/exceptions/aging", nil, 200, &aging)
		if len(aging.DueForReview) != 1 || len(aging.States) == 0 {
			t.Errorf("aging = %+v; want one review due", aging)
		}
		e.do("olga", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "review", Outcome: "continue"}, 403, nil)
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "review", Outcome: "maybe"}, 400, nil)
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "review", Outcome: "continue", Note: "VLAN ACLs checked", Revision: exc.Revision}, 200, &exc)
		if exc.Controls[0].VerifiedBy != "bob" || !exc.NextReviewAt.After(e.clock.Now()) {
			t.Errorf("reviewed exception = %+v; want controls verified by bob and the next review ahead", exc)
		}
		e.do("vic", "GET", "/exceptions/"+exc.ID, nil, 200, &detail)
		if len(detail.Reviews) != 1 || detail.Reviews[0].By != "bob" || detail.Reviews[0].Outcome != "continue" {
			t.Errorf("reviews = %+v", detail.Reviews)
		}

		// Revoked, the finding is open again.
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "revoke"}, 400, nil)
		e.do("bob", "POST", "/exceptions/"+exc.ID+"/decision", api.DecisionRequest{Action: "revoke", Note: "LIS replaced"}, 200, &exc)
		if exc.State != risk.ExceptionRevoked || exc.EndedBy != "bob" {
			t.Errorf("revoked = %+v", exc)
		}
		e.do("vic", "GET", "/worklist?status=excepted", nil, 200, &page)
		if page.Total != 0 {
			t.Errorf("excepted after revocation = %v; want none", ids(page))
		}
	})
}

// cmpSorted compares string lists without regard to order.
var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
})
