package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// cheap keeps argon2id fast in tests; production uses auth.DefaultParams.
var cheap = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// newAPI builds the API on a real SQLite database with one real user and
// API token per role; tokens maps each role to its bearer token.
func newAPI(t *testing.T) (a *api.API, h http.Handler, tokens map[auth.Role]string) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	accounts := auth.NewService(db.Auth(), auth.Options{Params: cheap})
	findings := match.NewService(db.Findings(), nil)
	skey, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	a = &api.API{Inventory: inventory.NewService(db.Inventory(), nil), Accounts: accounts,
		Audit:    audit.NewService(db.Audit(), signer.Verifier(), nil),
		Findings: findings, Advisories: db.Feeds(), Evaluator: findings,
		Fleet: fleet.NewService(db.Fleet(), fleet.Options{}),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"}
	a.Policies = policy.NewService(db.Policies(), nil)
	a.Risk = risk.NewService(db.Risk(), a.Policies, fakeIntel{}, risk.Options{Log: a.Log})
	a.Changes = change.NewService(db.Changes(), a.Policies, db.Risk(), nil)
	a.Rollouts = deploy.NewRollouts(db.Rollouts(), a.Changes, a.Fleet, a.Policies, deploy.RolloutOptions{})
	a.Calendar = &api.PolicyCalendar{Policies: a.Policies, Inventory: a.Inventory, Changes: a.Changes, Rollouts: a.Rollouts}
	a.Proposals = change.NewProposals(db.Proposals(), a.Policies)
	tokens = map[auth.Role]string{}
	for _, role := range auth.Roles {
		u, err := accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: "user-" + string(role), Role: role, Password: "correct horse battery " + string(role)})
		if err != nil {
			t.Fatalf("CreateUser(%s): %v", role, err)
		}
		secret, _, err := accounts.CreateToken(ctx, audit.System, u.ID, "matrix", 0)
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", role, err)
		}
		tokens[role] = secret
	}
	onErr := func(w http.ResponseWriter, r *http.Request, err error) { api.WriteError(w, r, a.Log, err) }
	return a, authn.Middleware(accounts, onErr)(api.Handler(a.Routes(), a.Log)), tokens
}

var wildcardRE = regexp.MustCompile(`\{[a-zA-Z_.]+\}`)

// TestRouteRoleMatrix proves every route's role check: for every route and
// every role, the request is refused with 403 exactly when the role lacks
// the route's permission, and every non-public route refuses anonymous
// callers with 401.
func TestRouteRoleMatrix(t *testing.T) {
	a, h, tokens := newAPI(t)
	for _, rt := range a.Routes() {
		path := api.Prefix + wildcardRE.ReplaceAllString(rt.Path, "00000000-0000-0000-0000-000000000000")
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			if rt.Perm == api.PermPublic {
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(rt.Method, path, nil))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s = %d; want 401", rt.Method, path, rec.Code)
			}
			for _, role := range auth.Roles {
				req := httptest.NewRequest(rt.Method, path, strings.NewReader("{}"))
				req.Header.Set("Authorization", "Bearer "+tokens[role])
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				denied := rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized
				if allowed := role.Can(rt.Perm); allowed == denied {
					t.Errorf("%s %s as %s = %d (%s); role may = %v", rt.Method, path, role, rec.Code, strings.TrimSpace(rec.Body.String()), allowed)
				}
			}
		})
	}
}

// TestOpenAPIMatchesRoutes checks the served document is valid OpenAPI 3
// and describes exactly the registered routes with their permissions.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	a, h, tokens := newAPI(t)
	req := httptest.NewRequest("GET", api.Prefix+"/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleViewer])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET openapi.json = %d; want 200", rec.Code)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("OpenAPI document invalid: %v", err)
	}
	want := map[string]api.Route{}
	for _, rt := range a.Routes() {
		want[rt.Method+" "+api.Prefix+rt.Path] = rt
	}
	got := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			got[key] = true
			rt, ok := want[key]
			if !ok {
				t.Errorf("document has %s, which no route serves", key)
				continue
			}
			if perm := fmt.Sprint(op.Extensions["x-permission"]); perm != string(rt.Perm) {
				t.Errorf("%s x-permission = %q; want %q", key, perm, rt.Perm)
			}
			for _, m := range wildcardRE.FindAllString(rt.Path, -1) {
				name := strings.Trim(m, "{}.")
				if op.Parameters.GetByInAndName("path", name) == nil && item.Parameters.GetByInAndName("path", name) == nil {
					t.Errorf("%s does not declare path parameter %s", key, name)
				}
			}
		}
	}
	for key := range want {
		if !got[key] {
			t.Errorf("route %s is missing from the document", key)
		}
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	_, h, tokens := newAPI(t)
	do := func(method, path, ctype, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, api.Prefix+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokens[auth.RoleAdmin])
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		name, ctype, body string
		want              int
		msg               string
	}{
		{"wrong content type", "text/plain", `{"name":"x"}`, 415, "Content-Type must be application/json"},
		{"malformed", "application/json", `{"name":`, 400, "malformed JSON"},
		{"unknown field", "application/json", `{"name":"x","colour":"red"}`, 400, `unknown field "colour"`},
		{"invalid enum", "application/json", `{"name":"x","type":"toaster"}`, 400, `type: "toaster" is not one of`},
		{"wrong type", "application/json", `{"name":7}`, 400, `field "name" must be string`},
		{"two objects", "application/json", `{"name":"a"}{"name":"b"}`, 400, "single JSON object"},
		{"empty", "application/json", ``, 400, "empty"},
		{"oversized", "application/json", `{"name":"` + strings.Repeat("a", api.MaxJSONBody) + `"}`, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do("POST", "/assets", tc.ctype, tc.body)
			var body api.ErrorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tc.want || !strings.Contains(body.Error, tc.msg) {
				t.Errorf("POST /assets = %d %q; want %d containing %q", rec.Code, body.Error, tc.want, tc.msg)
			}
		})
	}
	rec := do("GET", "/assets", "", "")
	var page inventory.Page
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.Total != 0 {
		t.Errorf("after bad requests: total = %d, err %v; want 0 assets", page.Total, err)
	}
	if rec := do("GET", "/assets?type=toaster", "", ""); rec.Code != 400 {
		t.Errorf("GET /assets?type=toaster = %d; want 400", rec.Code)
	}
	if rec := do("GET", "/nope", "", ""); rec.Code != 404 {
		t.Errorf("GET /nope = %d; want 404", rec.Code)
	}
}
