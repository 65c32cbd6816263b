package agentserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var admin = audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "admin"}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is the agent protocol handler on a real database.
type env struct {
	db    *store.DB
	fleet *fleet.Service
	inv   *inventory.Service
	clock *clock
	h     http.Handler
	logs  *syncBuffer
}

func newEnv(t testing.TB, engine store.Engine) *env {
	t.Helper()
	db := storetest.Open(t, engine, store.Options{})
	return newEnvOn(t, db)
}

func newEnvOn(t testing.TB, db *store.DB) *env {
	t.Helper()
	e := &env{db: db, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	e.fleet = fleet.NewService(db.Fleet(), fleet.Options{Now: e.clock.Now, Log: log})
	e.inv = inventory.NewService(db.Inventory(), e.clock.Now)
	e.h = agentserver.Handler(e.fleet, log)
	return e
}

// agent is a test agent: its identity and key.
type agent struct {
	id, assetID string
	key         ed25519.PrivateKey
}

func (e *env) token(t testing.TB) string {
	t.Helper()
	s, _, err := e.fleet.CreateEnrollmentToken(context.Background(), admin, fleet.TokenSpec{Name: "test"})
	if err != nil {
		t.Fatalf("CreateEnrollmentToken: %v", err)
	}
	return s
}

func (e *env) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) enroll(t testing.TB, host string) agent {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	body := jsonBody(t, agentapi.EnrollRequest{Token: e.token(t), PublicKey: pub, Hostname: host,
		Facts: agentapi.Facts{Hostname: host, OSName: "Debian GNU/Linux", OSVersion: "12", OSID: "debian", Arch: "amd64"}})
	r := httptest.NewRequest("POST", agentapi.PathEnroll, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(agentapi.HeaderProtocol, "1")
	rec := e.do(r)
	if rec.Code != http.StatusOK {
		t.Fatalf("enroll %s = %d %s", host, rec.Code, rec.Body)
	}
	var resp agentapi.EnrollResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return agent{id: resp.AgentID, assetID: resp.AssetID, key: key}
}

// signed builds a request signed by a at the env's clock.
func (e *env) signed(a agent, method, path string, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	agentapi.Sign(r, a.id, a.key, body, e.clock.Now())
	return r
}

// tick moves the clock a second so the next request has a fresh signature.
func (e *env) tick() { e.clock.Add(time.Second) }

var testPackages = []agentapi.Package{
	{Name: "openssl", Version: "3.0.15-1~deb12u1", Arch: "amd64", Ecosystem: "Debian:12", SourceName: "openssl"},
	{Name: "curl", Version: "7.88.1-10+deb12u8", Arch: "amd64", Ecosystem: "Debian:12"},
}

func checkIn(pkgs []agentapi.Package, withInventory bool) agentapi.CheckInRequest {
	c := agentapi.CheckInRequest{Facts: agentapi.Facts{Hostname: "lis01", OSName: "Debian GNU/Linux", OSVersion: "12", OSID: "debian", Arch: "amd64", UptimeSeconds: 100},
		InventoryHash: agentapi.InventoryHash(pkgs)}
	if withInventory {
		c.Inventory = pkgs
	}
	return c
}

func decodeResp[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func TestProtocolRoundTrip(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			e := newEnv(t, engine)
			a := e.enroll(t, "lis01")
			ci := decodeResp[agentapi.CheckInResponse](t, e.do(e.signed(a, "POST", agentapi.PathCheckIn, jsonBody(t, checkIn(testPackages, false)))))
			if !ci.InventoryWanted || ci.JobsAvailable {
				t.Errorf("first check-in = %+v; want inventory wanted", ci)
			}
			e.tick()
			ci = decodeResp[agentapi.CheckInResponse](t, e.do(e.signed(a, "POST", agentapi.PathCheckIn, jsonBody(t, checkIn(testPackages, true)))))
			if ci.InventoryWanted {
				t.Errorf("check-in with inventory = %+v; want it acknowledged", ci)
			}
			asset, err := e.inv.Asset(context.Background(), a.assetID)
			if err != nil || len(asset.Software) != 2 {
				t.Fatalf("asset software = %v, %v", asset.Software, err)
			}
			job, err := e.fleet.CreateJob(context.Background(), admin, fleet.JobSpec{AgentID: a.id, Kind: agentapi.JobInstall,
				Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.16-1~deb12u1"}}})
			if err != nil {
				t.Fatal(err)
			}
			e.tick()
			ci = decodeResp[agentapi.CheckInResponse](t, e.do(e.signed(a, "POST", agentapi.PathCheckIn, jsonBody(t, checkIn(testPackages, false)))))
			if !ci.JobsAvailable {
				t.Error("check-in does not announce the queued job")
			}
			e.tick()
			jobs := decodeResp[agentapi.JobsResponse](t, e.do(e.signed(a, "GET", agentapi.PathJobs, nil)))
			if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != job.ID || jobs.Jobs[0].Packages[0].TargetVersion != "3.0.16-1~deb12u1" {
				t.Fatalf("jobs = %+v", jobs)
			}
			res := agentapi.JobResult{JobID: job.ID, Attempt: 1, Status: agentapi.StatusSucceeded,
				Steps: []agentapi.Step{{Name: "install", Command: []string{"apt-get", "install", "openssl=3.0.16-1~deb12u1"}, OK: true}}}
			path := strings.Replace(agentapi.PathJobResult, "{id}", job.ID, 1)
			for i, wantDup := range []bool{false, true} {
				e.tick()
				ack := decodeResp[agentapi.ResultResponse](t, e.do(e.signed(a, "POST", path, jsonBody(t, res))))
				if ack.Duplicate != wantDup {
					t.Errorf("result %d: duplicate = %v; want %v", i+1, ack.Duplicate, wantDup)
				}
			}
			res.Attempt = 2
			e.tick()
			if rec := e.do(e.signed(a, "POST", path, jsonBody(t, res))); rec.Code != http.StatusConflict {
				t.Errorf("result with a new attempt for a finished job = %d; want 409", rec.Code)
			}
		})
	}
}

// snapshot is everything an agent request could change.
type snapshot struct {
	Agent  fleet.AgentDetail
	Asset  inventory.Asset
	Jobs   []fleet.JobDetail
	Audit  int
	Tokens []fleet.EnrollmentToken
	Agents int
	Assets int
}

func (e *env) snapshot(t testing.TB, a agent) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Agent, err = e.fleet.Agent(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	if s.Asset, err = e.inv.Asset(ctx, a.assetID); err != nil {
		t.Fatal(err)
	}
	page, err := e.fleet.Jobs(ctx, fleet.JobFilter{Limit: 20}) // the newest: fuzzing adds one per run
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		d, err := e.fleet.Job(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.Jobs = append(s.Jobs, d)
	}
	ap, err := e.db.Audit().List(ctx, audit.Query{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Audit = ap.Total
	if s.Tokens, err = e.fleet.EnrollmentTokens(ctx); err != nil {
		t.Fatal(err)
	}
	agents, err := e.fleet.Agents(ctx, fleet.AgentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	s.Agents = agents.Total
	assets, err := e.inv.Assets(ctx, inventory.Filter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Assets = assets.Total
	return s
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, store.SQLite)
	a := e.enroll(t, "lis01")
	revoked := e.enroll(t, "old")
	if err := e.fleet.RevokeAgent(context.Background(), admin, revoked.id, "test"); err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	body := jsonBody(t, checkIn(testPackages, false))
	replayed := e.signed(a, "POST", agentapi.PathCheckIn, body)
	if rec := e.do(replayed); rec.Code != http.StatusOK {
		t.Fatalf("first check-in = %d %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"no protocol", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r.Header.Del(agentapi.HeaderProtocol)
			return r
		}, 400},
		{"protocol 2", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r.Header.Set(agentapi.HeaderProtocol, "2")
			return r
		}, 400},
		{"no signature", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r.Header.Del(agentapi.HeaderSignature)
			return r
		}, 401},
		{"wrong key", func() *http.Request {
			return e.signed(agent{id: a.id, key: otherKey}, "POST", agentapi.PathCheckIn, body)
		}, 401},
		{"unknown agent", func() *http.Request {
			return e.signed(agent{id: "0193a1b2-0000-7000-8000-000000000001", key: a.key}, "POST", agentapi.PathCheckIn, body)
		}, 401},
		{"altered body", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("100"), []byte("101"), 1)))
			return r
		}, 401},
		{"signed for another path", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r2 := httptest.NewRequest("POST", "/agent/v1/jobs/x/result", bytes.NewReader(body))
			r2.Header = r.Header
			return r2
		}, 401},
		{"clock skew", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			ts := e.clock.Now().Add(-agentapi.MaxClockSkew - time.Minute)
			sig := ed25519.Sign(a.key, []byte(agentapi.SigningString("POST", agentapi.PathCheckIn, ts, body)))
			r.Header.Set(agentapi.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
			r.Header.Set(agentapi.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
			return r
		}, 401},
		{"replay", func() *http.Request { return e.signed(a, "POST", agentapi.PathCheckIn, body) }, 401},
		{"revoked", func() *http.Request { return e.signed(revoked, "POST", agentapi.PathCheckIn, body) }, 403},
		{"too large", func() *http.Request {
			big := bytes.Repeat([]byte(" "), agentapi.MaxCheckInBody+1)
			return e.signed(a, "POST", agentapi.PathCheckIn, big)
		}, 413},
		{"not json", func() *http.Request {
			r := e.signed(a, "POST", agentapi.PathCheckIn, body)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415},
		{"jobs with a body", func() *http.Request { return e.signed(a, "GET", agentapi.PathJobs, []byte("{}")) }, 413},
		{"unknown route", func() *http.Request { return e.signed(a, "POST", "/agent/v1/nope", body) }, 404},
		{"enroll without protocol", func() *http.Request {
			return httptest.NewRequest("POST", agentapi.PathEnroll, strings.NewReader("{}"))
		}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := e.do(tc.req()); rec.Code != tc.want {
				t.Errorf("status = %d (%s); want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
			}
		})
	}
	if !strings.Contains(e.logs.String(), "agent_id="+revoked.id) {
		t.Error("refusals are not logged with the agent's ID")
	}
}

// TestRejectedPayloadsChangeNothing sends malformed and oversized payloads
// from a real agent with valid signatures: each is refused with a 4xx,
// logged with the agent's ID, and the stored state is exactly as before.
func TestRejectedPayloadsChangeNothing(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			e := newEnv(t, engine)
			a := e.enroll(t, "lis01")
			other := e.enroll(t, "lis02")
			if rec := e.do(e.signed(a, "POST", agentapi.PathCheckIn, jsonBody(t, checkIn(testPackages, true)))); rec.Code != 200 {
				t.Fatalf("check-in = %d %s", rec.Code, rec.Body)
			}
			otherJob, err := e.fleet.CreateJob(context.Background(), admin, fleet.JobSpec{AgentID: other.id, Kind: agentapi.JobInventory})
			if err != nil {
				t.Fatal(err)
			}
			ownJob, err := e.fleet.CreateJob(context.Background(), admin, fleet.JobSpec{AgentID: a.id, Kind: agentapi.JobInventory})
			if err != nil {
				t.Fatal(err)
			}
			before := e.snapshot(t, a)
			changed := checkIn(append([]agentapi.Package{{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Ecosystem: "Debian:12"}}, testPackages...), true)
			hashMismatch := changed
			hashMismatch.InventoryHash = agentapi.InventoryHash(testPackages[:1])
			badPkg := changed
			badPkg.Inventory = append([]agentapi.Package{{Name: "evil\u0000pkg", Version: "1", Ecosystem: "Debian:12"}}, testPackages...)
			badPkg.InventoryHash = agentapi.InventoryHash(badPkg.Inventory)
			resultPath := func(id string) string { return strings.Replace(agentapi.PathJobResult, "{id}", id, 1) }
			for _, tc := range []struct {
				name, method, path string
				body               []byte
				want               int
			}{
				{"unknown field", "POST", agentapi.PathCheckIn, []byte(`{"facts":{},"inventory_hash":"` + changed.InventoryHash + `","admin":true}`), 400},
				{"wrong type", "POST", agentapi.PathCheckIn, []byte(`{"facts":{"uptime_seconds":"long"},"inventory_hash":""}`), 400},
				{"trailing data", "POST", agentapi.PathCheckIn, append(jsonBody(t, changed), []byte(`{}`)...), 400},
				{"truncated", "POST", agentapi.PathCheckIn, jsonBody(t, changed)[:50], 400},
				{"empty", "POST", agentapi.PathCheckIn, []byte{}, 400},
				{"null", "POST", agentapi.PathCheckIn, []byte(`null`), 400},
				{"hash mismatch", "POST", agentapi.PathCheckIn, jsonBody(t, hashMismatch), 400},
				{"control character", "POST", agentapi.PathCheckIn, jsonBody(t, badPkg), 400},
				{"too many packages", "POST", agentapi.PathCheckIn, []byte(`{"inventory_hash":"` + changed.InventoryHash + `","facts":{},"inventory":[` +
					strings.Repeat(`{"name":"a","version":"1","ecosystem":"e"},`, agentapi.MaxPackages) + `{"name":"a","version":"1","ecosystem":"e"}]}`), 400},
				{"oversized", "POST", agentapi.PathCheckIn, append([]byte(`{"inventory_hash":"`), bytes.Repeat([]byte("a"), agentapi.MaxCheckInBody)...), 413},
				{"other agent's job", "POST", resultPath(otherJob.ID), jsonBody(t, agentapi.JobResult{JobID: otherJob.ID, Attempt: 1, Status: "succeeded"}), 404},
				{"result path mismatch", "POST", resultPath(ownJob.ID), jsonBody(t, agentapi.JobResult{JobID: otherJob.ID, Attempt: 1, Status: "succeeded"}), 400},
				{"bad status", "POST", resultPath(ownJob.ID), jsonBody(t, agentapi.JobResult{JobID: ownJob.ID, Attempt: 1, Status: "done"}), 400},
				{"huge output", "POST", resultPath(ownJob.ID), jsonBody(t, agentapi.JobResult{JobID: ownJob.ID, Attempt: 1, Status: "failed",
					Steps: []agentapi.Step{{Name: "x", Output: strings.Repeat("x", agentapi.MaxStepOutput+1)}}}), 400},
				{"year 10000", "POST", resultPath(ownJob.ID), []byte(`{"job_id":"` + ownJob.ID + `","attempt":1,"status":"failed","steps":[{"name":"x","started":"10000-01-01T00:00:00Z"}]}`), 400},
				{"attempt overflow", "POST", resultPath(ownJob.ID), []byte(`{"job_id":"` + ownJob.ID + `","attempt":99999999999999999999,"status":"failed","steps":[]}`), 400},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e.tick()
					rec := e.do(e.signed(a, tc.method, tc.path, tc.body))
					if rec.Code != tc.want {
						t.Errorf("status = %d (%s); want %d", rec.Code, truncate(rec.Body.String(), 300), tc.want)
					}
					if diff := cmp.Diff(before, e.snapshot(t, a)); diff != "" {
						t.Errorf("refused request changed stored state (-before +after):\n%s", diff)
					}
				})
			}
			if n := strings.Count(e.logs.String(), "agent_id="+a.id); n < 16 {
				t.Errorf("%d refusals logged with the agent's ID; want 16", n)
			}
		})
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func TestEnrollOverHTTP(t *testing.T) {
	e := newEnv(t, store.SQLite)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	tok := e.token(t)
	post := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", agentapi.PathEnroll, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(agentapi.HeaderProtocol, "1")
		return e.do(r)
	}
	key := base64.StdEncoding.EncodeToString(pub)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"short key", fmt.Sprintf(`{"token":%q,"public_key":"AAAA","hostname":"h1","facts":{}}`, tok), 400},
		{"bad hostname", fmt.Sprintf(`{"token":%q,"public_key":%q,"hostname":"h 1","facts":{}}`, tok, key), 400},
		{"unknown token", fmt.Sprintf(`{"token":"pwe_nope","public_key":%q,"hostname":"h1","facts":{}}`, key), 401},
		{"unknown field", fmt.Sprintf(`{"token":%q,"public_key":%q,"hostname":"h1","facts":{},"role":"admin"}`, tok, key), 400},
		{"ok", fmt.Sprintf(`{"token":%q,"public_key":%q,"hostname":"h1","facts":{"os_id":"debian"}}`, tok, key), 200},
		{"token reused", fmt.Sprintf(`{"token":%q,"public_key":%q,"hostname":"h2","facts":{}}`, tok, key), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := post(tc.body); rec.Code != tc.want {
				t.Errorf("enroll = %d %s; want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
	// The same public key cannot enroll twice.
	if rec := post(fmt.Sprintf(`{"token":%q,"public_key":%q,"hostname":"h3","facts":{}}`, e.token(t), key)); rec.Code != http.StatusConflict {
		t.Errorf("enroll with an enrolled key = %d %s; want 409", rec.Code, rec.Body)
	}
}
