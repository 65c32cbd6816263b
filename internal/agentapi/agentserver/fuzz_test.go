package agentserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
)

// The fuzz tests feed arbitrary bodies through the real handler on a real
// SQLite database, correctly signed by an enrolled agent, so the fuzzer
// reaches the decoding, validation and storage code rather than bouncing
// off the signature check. Every answer must be 200 or a 4xx, never a 5xx,
// and a refused request must leave the stored state exactly as it was.
//
// The database code is linked and so coverage-instrumented too, which
// makes each execution slow and the target's state drift make many inputs
// look new; run the fuzzer without minimisation:
//
//	go test ./internal/agentapi/agentserver -run '^$' -fuzz '^FuzzCheckIn$' -fuzzminimizetime 0

// checkAnswer asserts the status rules and, on refusal, unchanged state.
func checkAnswer(t *testing.T, e *env, a agent, before snapshot, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 || (rec.Code != http.StatusOK && rec.Code < 400) {
		t.Fatalf("status %d (%s); want 200 or 4xx", rec.Code, truncate(rec.Body.String(), 300))
	}
	if rec.Code != http.StatusOK {
		if diff := cmp.Diff(before, e.snapshot(t, a)); diff != "" {
			t.Fatalf("refused request (%d) changed stored state (-before +after):\n%s", rec.Code, diff)
		}
	}
}

func FuzzCheckIn(f *testing.F) {
	f.Add(mustJSON(checkIn(testPackages, false)))
	f.Add(mustJSON(checkIn(testPackages, true)))
	f.Add(mustJSON(agentapi.CheckInRequest{Facts: agentapi.Facts{IPAddresses: []string{"::1"}, MACAddress: "aa-bb-cc-dd-ee-ff"},
		InventoryHash: agentapi.InventoryHash(nil), Inventory: []agentapi.Package{}, Pending: []agentapi.PendingUpdate{{Name: "a", AvailableVersion: "2"}},
		Running: []string{"0193a1b2-0000-7000-8000-000000000001"}}))
	f.Add([]byte(`{"facts":{"hostname":"\u0000"},"inventory_hash":"` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`{"inventory":[{"name":"a","version":"1","ecosystem":"e","purl":"pkg:"}]}`))
	f.Add([]byte(`[]`))
	e := newEnv(f, store.SQLite)
	a := e.enroll(f, "lis01")
	f.Fuzz(func(t *testing.T, body []byte) {
		e.tick()
		before := e.snapshot(t, a)
		checkAnswer(t, e, a, before, e.do(e.signed(a, "POST", agentapi.PathCheckIn, body)))
	})
}

func FuzzJobResult(f *testing.F) {
	f.Add(mustJSON(agentapi.JobResult{JobID: "@JOB@", Attempt: 1, Status: "succeeded", Steps: []agentapi.Step{{Name: "install", OK: true}}}))
	f.Add(mustJSON(agentapi.JobResult{JobID: "@JOB@", Attempt: 2, Status: "rolled_back", Reason: "post-check failed",
		Steps:     []agentapi.Step{{Name: "install", Command: []string{"apt-get", "install", "-y", "x=1"}, ExitCode: 100, Output: "E: \u0000"}},
		Installed: map[string]string{"x": "0.9"}}))
	f.Add([]byte(`{"job_id":"@JOB@","attempt":1,"status":"failed","steps":[{"name":"x","started":"0001-01-01T00:00:00Z","ended":"9999-12-31T23:59:59Z"}]}`))
	f.Add([]byte(`{"job_id":"@JOB@","attempt":-1,"status":"refused"}`))
	e := newEnv(f, store.SQLite)
	a := e.enroll(f, "lis01")
	f.Fuzz(func(t *testing.T, body []byte) {
		job, err := e.fleet.CreateJob(context.Background(), admin, fleet.JobSpec{AgentID: a.id, Kind: agentapi.JobInventory})
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.ReplaceAll(body, []byte("@JOB@"), []byte(job.ID))
		e.tick()
		before := e.snapshot(t, a)
		path := strings.Replace(agentapi.PathJobResult, "{id}", job.ID, 1)
		checkAnswer(t, e, a, before, e.do(e.signed(a, "POST", path, body)))
	})
}

func FuzzEnroll(f *testing.F) {
	f.Add([]byte(`{"token":"@TOKEN@","public_key":"@KEY@","hostname":"lis01","facts":{"os_id":"debian","os_name":"Debian GNU/Linux","serial":"SN1"}}`))
	f.Add([]byte(`{"token":"@TOKEN@","public_key":"@KEY@","hostname":"ws-1.clinic.local","facts":{"hostname":"ws-1","ip_addresses":["10.0.0.1"],"mac_address":"AA:BB:CC:DD:EE:FF","make":"QEMU"}}`))
	f.Add([]byte(`{"token":"@TOKEN@","public_key":"AAAA","hostname":"x","facts":{}}`))
	f.Add([]byte(`{"token":"pwe_x","public_key":"@KEY@","hostname":"x","facts":{}}`))
	e := newEnv(f, store.SQLite)
	a := e.enroll(f, "lis01")
	f.Fuzz(func(t *testing.T, body []byte) {
		tok := e.token(t)
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		body = bytes.ReplaceAll(body, []byte("@TOKEN@"), []byte(tok))
		body = bytes.ReplaceAll(body, []byte("@KEY@"), []byte(base64.StdEncoding.EncodeToString(pub)))
		before := e.snapshot(t, a)
		r := httptest.NewRequest("POST", agentapi.PathEnroll, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(agentapi.HeaderProtocol, "1")
		checkAnswer(t, e, a, before, e.do(r))
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
