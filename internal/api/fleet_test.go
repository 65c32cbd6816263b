package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestFleetRoutes drives the admin side of the agents through the real
// route table, authentication and a real database: token, enrollment,
// listing, jobs queued and cancelled, revocation; and checks who may do
// what: admins everything, operators jobs, viewers reading.
func TestFleetRoutes(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	accounts := auth.NewService(db.Auth(), auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{Log: log})
	a := &API{Log: log}
	routes := a.fleetRoutes(svc)
	tokens := map[auth.Role]string{}
	for _, role := range []auth.Role{auth.RoleAdmin, auth.RoleOperator, auth.RoleViewer} {
		u, err := accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: "u-" + string(role), Role: role, Password: "correct horse battery " + string(role)})
		if err != nil {
			t.Fatal(err)
		}
		if tokens[role], _, err = accounts.CreateToken(ctx, audit.System, u.ID, "t", 0); err != nil {
			t.Fatal(err)
		}
	}
	h := authn.Middleware(accounts, func(w http.ResponseWriter, r *http.Request, err error) { WriteError(w, r, log, err) })(Handler(routes, log))
	do := func(role auth.Role, method, path string, body any, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req := httptest.NewRequest(method, Prefix+path, rd)
		req.Header.Set("Authorization", "Bearer "+tokens[role])
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if out != nil && rec.Code < 300 {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, rec.Body, err)
			}
		}
		return rec.Code
	}

	var created EnrollmentTokenCreated
	if code := do(auth.RoleAdmin, "POST", "/enrollment-tokens", EnrollmentTokenRequest{Name: "ward 3", ExpiresIn: "2h"}, &created); code != 201 {
		t.Fatalf("create token = %d", code)
	}
	if created.Secret == "" || created.Token.State != fleet.TokenActive || created.Token.Hash != nil {
		t.Errorf("created token = %+v", created)
	}
	if code := do(auth.RoleAdmin, "POST", "/enrollment-tokens", EnrollmentTokenRequest{Name: "x", ExpiresIn: "forever"}, nil); code != 400 {
		t.Errorf("create token with a bad duration = %d; want 400", code)
	}
	if code := do(auth.RoleViewer, "POST", "/enrollment-tokens", EnrollmentTokenRequest{Name: "x"}, nil); code != 403 {
		t.Errorf("viewer creating a token = %d; want 403", code)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	ag, err := svc.Enroll(ctx, agentapi.EnrollRequest{Token: created.Secret, PublicKey: pub, Hostname: "ward3-pc",
		Facts: agentapi.Facts{OSID: "windows", OSName: "Windows 11 Pro"}}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	var agents fleet.AgentPage
	if code := do(auth.RoleViewer, "GET", "/agents?revoked=false", nil, &agents); code != 200 || agents.Total != 1 || agents.Agents[0].ID != ag.ID {
		t.Errorf("list agents = %d %+v", code, agents)
	}
	var job fleet.Job
	spec := fleet.JobSpec{AgentID: ag.ID, Kind: agentapi.JobInstall, Emergency: true,
		Packages: []agentapi.JobPackage{{Name: "Mozilla.Firefox", TargetVersion: "133.0.3"}}}
	if code := do(auth.RoleAdmin, "POST", "/agent-jobs", spec, &job); code != 201 || job.State != fleet.JobQueued || !job.Emergency {
		t.Fatalf("create job = %d %+v", code, job)
	}
	if code := do(auth.RoleViewer, "POST", "/agent-jobs", spec, nil); code != 403 {
		t.Errorf("viewer creating a job = %d; want 403", code)
	}
	// Operators queue jobs but do not decide which machines are trusted.
	if code := do(auth.RoleOperator, "POST", "/agent-jobs", spec, nil); code != 201 {
		t.Errorf("operator creating a job = %d; want 201", code)
	}
	if code := do(auth.RoleOperator, "POST", "/enrollment-tokens", EnrollmentTokenRequest{Name: "x"}, nil); code != 403 {
		t.Errorf("operator creating a token = %d; want 403", code)
	}
	var jobs fleet.JobPage
	if code := do(auth.RoleViewer, "GET", "/agent-jobs?state=queued&agent="+ag.ID, nil, &jobs); code != 200 || jobs.Total != 2 {
		t.Errorf("list jobs = %d %+v", code, jobs)
	}
	if code := do(auth.RoleViewer, "GET", "/agent-jobs?state=lost", nil, nil); code != 400 {
		t.Errorf("list jobs with an unknown state = %d; want 400", code)
	}
	if code := do(auth.RoleAdmin, "POST", "/agent-jobs/"+job.ID+"/cancel", ReasonRequest{Reason: "wrong host"}, &job); code != 200 || job.State != fleet.JobCancelled {
		t.Errorf("cancel job = %d %+v", code, job)
	}
	var detail fleet.JobDetail
	if code := do(auth.RoleViewer, "GET", "/agent-jobs/"+job.ID, nil, &detail); code != 200 || detail.Reason != "wrong host" {
		t.Errorf("get job = %d %+v", code, detail)
	}
	var revoked fleet.AgentDetail
	if code := do(auth.RoleAdmin, "POST", "/agents/"+ag.ID+"/revoke", ReasonRequest{Reason: "returned"}, &revoked); code != 200 || revoked.RevokedAt == nil {
		t.Errorf("revoke agent = %d %+v", code, revoked)
	}
	if code := do(auth.RoleAdmin, "POST", "/agents/"+ag.ID+"/revoke", ReasonRequest{}, nil); code != 409 {
		t.Errorf("revoke twice = %d; want 409", code)
	}
	var toks []fleet.EnrollmentToken
	if code := do(auth.RoleAdmin, "GET", "/enrollment-tokens", nil, &toks); code != 200 || len(toks) != 1 || toks[0].State != fleet.TokenUsed {
		t.Errorf("list tokens = %d %+v", code, toks)
	}
	if code := do(auth.RoleAdmin, "DELETE", "/enrollment-tokens/"+toks[0].ID, nil, nil); code != 409 {
		t.Errorf("revoke a used token = %d; want 409", code)
	}

	// The routes render into a valid OpenAPI document.
	b, _ := json.Marshal(OpenAPI(routes, "test"))
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Errorf("OpenAPI document of the fleet routes: %v", err)
	}
}
