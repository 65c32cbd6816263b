package agentserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// BenchmarkCheckIn measures the hot path: heartbeats with an unchanged
// inventory from many enrolled agents, each a correctly signed request
// through the real handler on a file database. Requests are signed before
// the timer starts, so the figure is the server's cost (decode, signature
// verification, agent lookup, due-job lookup, back-off) and not the
// agents'. It reports requests per second of wall time, with as many
// concurrent requests as the benchmark's parallelism.
func BenchmarkCheckIn(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			benchCheckIn(b, storetest.Open(b, engine, store.Options{}))
		})
	}
}

const benchAgents = 300

func benchCheckIn(b *testing.B, db *store.DB) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{Log: log})
	h := agentserver.Handler(svc, log)
	// An inventory of realistic size per agent.
	var pkgs []agentapi.Package
	for i := range 200 {
		pkgs = append(pkgs, agentapi.Package{Name: fmt.Sprintf("lib%03d", i), Version: fmt.Sprintf("1.%d.0-1+deb12u1", i), Arch: "amd64", Ecosystem: "Debian:12"})
	}
	type benchAgent struct {
		id  string
		key ed25519.PrivateKey
		req agentapi.CheckInRequest
	}
	agents := make([]benchAgent, benchAgents)
	for i := range agents {
		secret, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		pub, key, _ := ed25519.GenerateKey(rand.Reader)
		host := fmt.Sprintf("bench-%04d", i)
		f := agentapi.Facts{Hostname: host, OSName: "Debian GNU/Linux", OSVersion: "12", OSID: "debian", Arch: "amd64",
			IPAddresses: []string{fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}, AgentVersion: "0.1.0"}
		ag, err := svc.Enroll(ctx, agentapi.EnrollRequest{Token: secret, PublicKey: pub, Hostname: host, Facts: f}, 1, "")
		if err != nil {
			b.Fatal(err)
		}
		req := agentapi.CheckInRequest{Facts: f, InventoryHash: agentapi.InventoryHash(pkgs), Inventory: pkgs}
		if _, err := svc.CheckIn(ctx, ag, 1, "", req); err != nil {
			b.Fatal(err)
		}
		req.Inventory = nil
		agents[i] = benchAgent{id: ag.ID, key: key, req: req}
	}
	if err := db.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	// Sign b.N distinct heartbeats (uptime moves, as on a real host).
	type signed struct {
		body    []byte
		headers http.Header
	}
	reqs := make([]signed, b.N)
	now := time.Now()
	for i := range reqs {
		a := &agents[i%len(agents)]
		a.req.Facts.UptimeSeconds++
		body := mustJSON(a.req)
		r := httptest.NewRequest("POST", agentapi.PathCheckIn, nil)
		r.Header.Set("Content-Type", "application/json")
		agentapi.Sign(r, a.id, a.key, body, now)
		reqs[i] = signed{body: body, headers: r.Header}
	}
	var next, failed atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := reqs[next.Add(1)-1]
			r := httptest.NewRequest("POST", agentapi.PathCheckIn, bytes.NewReader(s.body))
			r.Header = s.headers
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"inventory_wanted": true`)) {
				if failed.Add(1) == 1 {
					b.Errorf("check-in = %d %s", rec.Code, rec.Body)
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checkins/s")
}
