package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

// handlerTransport sends requests straight to a handler, so the daemon
// loop can run inside a synctest bubble with fake time.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// fakeCollector returns a package list the test can change.
type fakeCollector struct {
	mu   sync.Mutex
	pkgs []agentapi.Package
}

func (c *fakeCollector) set(p []agentapi.Package) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pkgs = p
}

func (c *fakeCollector) Collect(context.Context) (agent.Inventory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pkgs := append([]agentapi.Package(nil), c.pkgs...)
	return agent.Inventory{
		Facts:    agentapi.Facts{Hostname: "lab-pc-01", OSID: "debian", Arch: "amd64", TimeZone: "UTC"},
		Packages: pkgs,
		Hash:     agentapi.InventoryHash(pkgs),
	}, nil
}

type loopFixture struct {
	srv *agenttest.Server
	a   *agent.Agent
	col *fakeCollector
	id  agent.Identity
}

func newLoop(t *testing.T, srv *agenttest.Server, wrap func(http.Handler) http.Handler) *loopFixture {
	t.Helper()
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	hc := &http.Client{Transport: handlerTransport{h}}
	cfg := agent.Defaults()
	cfg.StateDir = t.TempDir()
	st := agent.StateDir{Dir: cfg.StateDir}
	col := &fakeCollector{pkgs: []agentapi.Package{{Name: "openssl", Version: "3.0.11-1", Ecosystem: "Debian:12"}}}
	id, err := agent.Enroll(context.Background(), st, "http://patchward.test", "tok", agentapi.Facts{Hostname: "lab-pc-01"}, hc)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := st.LoadKey()
	client, _ := agent.NewClient("http://patchward.test", id.AgentID, key, hc, nil)
	j, _ := agent.OpenJournal(st.JobsDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := agent.New(cfg, id, client, j, col, agent.Unsupported{Manager: "dnf"}, agent.ExecRunner{}, log)
	if err != nil {
		t.Fatal(err)
	}
	a.Jitter = func() float64 { return 1 }
	return &loopFixture{srv: srv, a: a, col: col, id: id}
}

// TestLoopCadenceAndInventoryDeltas runs the daemon for ten fake minutes:
// it checks in at the server's NextCheckIn, sends the full inventory once,
// again only after it changed or when the server asked.
func TestLoopCadenceAndInventoryDeltas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := agenttest.New("tok")
		srv.NextCheckIn = time.Minute
		f := newLoop(t, srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.a.Run(ctx) }()

		time.Sleep(5*time.Minute + time.Second)
		f.col.set(append(f.col.pkgs, agentapi.Package{Name: "bash", Version: "5.2.15-2+b8", Ecosystem: "Debian:12"}))
		time.Sleep(2 * time.Minute)
		srv.AskInventory()
		time.Sleep(3 * time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		cis := srv.CheckIns()
		var full []int
		for i, c := range cis {
			if c.Inventory != nil {
				full = append(full, i)
			}
		}
		// Check-ins at 0,1,…,10 minutes, plus the immediate resend the
		// server's request for the inventory triggers.
		if len(cis) != 12 {
			t.Errorf("%d check-ins in 10 minutes at a 1-minute interval; want 12", len(cis))
		}
		if len(full) != 3 || full[0] != 0 || full[1] != 6 {
			t.Errorf("full inventories at check-ins %v of %d; want the first, the one after the change (6) and the one the server asked for", full, len(cis))
		}
		if rej := srv.Rejected(); len(rej) != 0 {
			t.Errorf("server refused: %v", rej)
		}
	})
}

// TestLoopBacksOff: a failing server is retried with growing delays and a
// server's Retry-After is honoured.
func TestLoopBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := agenttest.New("tok")
		var mu sync.Mutex
		var attempts []time.Time
		down := false
		f := newLoop(t, srv, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				isDown := down
				if isDown && r.URL.Path == agentapi.PathCheckIn {
					attempts = append(attempts, time.Now())
				}
				mu.Unlock()
				if isDown {
					w.Header().Set("Retry-After", "5")
					http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		mu.Lock()
		down = true
		mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.a.Run(ctx) }()
		time.Sleep(10 * time.Minute)
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) < 4 || len(attempts) > 9 {
			t.Fatalf("%d attempts in 10 minutes against a down server; want a few, backing off", len(attempts))
		}
		for i := 2; i < len(attempts); i++ {
			if gap, prev := attempts[i].Sub(attempts[i-1]), attempts[i-1].Sub(attempts[i-2]); gap < prev {
				t.Errorf("gap %d = %s shrank from %s", i, gap, prev)
			}
		}
	})
}

// TestClientSignatureCoversBody: the fake server verifies signatures as
// wire.go specifies; the same request with one body byte changed, or
// signed by another key, is refused.
func TestClientSignatureCoversBody(t *testing.T) {
	srv := agenttest.New("tok")
	tamper := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == agentapi.PathCheckIn {
				b, _ := io.ReadAll(r.Body)
				b[len(b)-3] ^= 1
				r.Body = io.NopCloser(bytes.NewReader(b))
			}
			h.ServeHTTP(w, r)
		})
	}
	honest := &http.Client{Transport: handlerTransport{srv.Handler()}}
	mitm := &http.Client{Transport: handlerTransport{tamper(srv.Handler())}}
	st := agent.StateDir{Dir: t.TempDir()}
	id, err := agent.Enroll(context.Background(), st, "http://patchward.test", "tok", agentapi.Facts{Hostname: "lab-pc-01"}, honest)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := st.LoadKey()
	req := agentapi.CheckInRequest{InventoryHash: agentapi.InventoryHash(nil)}
	good, _ := agent.NewClient("http://patchward.test", id.AgentID, key, honest, nil)
	if _, err := good.CheckIn(context.Background(), req); err != nil {
		t.Fatalf("honest check-in: %v", err)
	}
	bad, _ := agent.NewClient("http://patchward.test", id.AgentID, key, mitm, nil)
	if _, err := bad.CheckIn(context.Background(), req); err == nil {
		t.Fatal("check-in with an altered body was accepted")
	}
	_, other, _ := ed25519.GenerateKey(nil)
	forged, _ := agent.NewClient("http://patchward.test", id.AgentID, other, honest, nil)
	if _, err := forged.CheckIn(context.Background(), req); err == nil {
		t.Fatal("check-in signed with another key was accepted")
	}
	if got := srv.Rejected(); len(got) != 2 || got[0] != "bad signature" {
		t.Errorf("server refusals = %q; want two bad signatures", got)
	}
}

// TestIdenticalRequestsGetDistinctSignatures: the server refuses a
// signature it has already seen, so two identical requests within one
// second must still be signed differently.
func TestIdenticalRequestsGetDistinctSignatures(t *testing.T) {
	var sigs []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sigs = append(sigs, r.Header.Get(agentapi.HeaderSignature))
		w.Write([]byte(`{"jobs":[]}`))
	})
	_, key, _ := ed25519.GenerateKey(nil)
	fixed := time.Unix(1_800_000_000, 0)
	c, _ := agent.NewClient("http://patchward.test", "agent-1", key, &http.Client{Transport: handlerTransport{h}}, func() time.Time { return fixed })
	for range 3 {
		if _, err := c.Jobs(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if sigs[0] == sigs[1] || sigs[1] == sigs[2] || sigs[0] == sigs[2] {
		t.Fatalf("identical requests in one second were signed identically: %q", sigs)
	}
}

// TestResultSurvivesServerOutage: a result whose upload fails while the
// server is down stays in the journal and arrives once it is back.
func TestResultSurvivesServerOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := agenttest.New("tok")
		srv.NextCheckIn = time.Minute
		var mu sync.Mutex
		resultsDown := true
		f := newLoop(t, srv, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				down := resultsDown && strings.HasSuffix(r.URL.Path, "/result")
				mu.Unlock()
				if down {
					http.Error(w, "restarting", http.StatusBadGateway)
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		srv.AddJob(f.id.AgentID, agentapi.Job{ID: "job-inv", Kind: agentapi.JobInventory})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.a.Run(ctx) }()
		time.Sleep(5 * time.Minute)
		if n := len(srv.Results()); n != 0 {
			t.Fatalf("%d results while uploads fail", n)
		}
		mu.Lock()
		resultsDown = false
		mu.Unlock()
		time.Sleep(3 * time.Minute)
		cancel()
		<-done
		rs := srv.Results()
		if len(rs) != 1 || rs[0].JobID != "job-inv" || rs[0].Status != agentapi.StatusSucceeded {
			t.Fatalf("results after the outage = %+v; want the one inventory job, succeeded", rs)
		}
	})
}

// TestEnrollOverTLSWithClinicCA: the agent trusts a server certificate
// signed by the CA in ca_file, and refuses it without.
func TestEnrollOverTLSWithClinicCA(t *testing.T) {
	srv := agenttest.New("tok")
	hs := httptest.NewTLSServer(srv.Handler())
	defer hs.Close()
	cfg := agent.Defaults()
	plain, _ := agent.HTTPClient(cfg)
	if _, err := agent.Enroll(context.Background(), agent.StateDir{Dir: t.TempDir()}, hs.URL, "tok", agentapi.Facts{Hostname: "h"}, plain); err == nil {
		t.Fatal("enrolled with a server whose CA is not trusted")
	}
	cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(cfg.CAFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	trusting, err := agent.HTTPClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Enroll(context.Background(), agent.StateDir{Dir: t.TempDir()}, hs.URL, "tok", agentapi.Facts{Hostname: "h"}, trusting); err != nil {
		t.Fatalf("enroll with ca_file: %v", err)
	}
}

// recordingRunner records commands and succeeds.
type recordingRunner struct {
	mu  sync.Mutex
	ran [][]string
}

func (r *recordingRunner) Run(_ context.Context, c agent.Command) agentapi.Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, c.Argv)
	return agentapi.Step{Name: c.Name, Command: c.Argv, OK: true}
}

// TestRebootOnceAfterReporting: a job that asked for a reboot is reported
// first, then the reboot command runs exactly once, recorded beforehand so
// the host coming back up does not reboot again.
func TestRebootOnceAfterReporting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := agenttest.New("tok")
		srv.NextCheckIn = time.Minute
		hc := &http.Client{Transport: handlerTransport{srv.Handler()}}
		cfg := agent.Defaults()
		cfg.StateDir = t.TempDir()
		cfg.RebootCommand = []string{"reboot-now"}
		cfg.Window = &agent.WindowConfig{Name: "always", TimeZone: "UTC"}
		for d := range 7 {
			cfg.Window.Slots = append(cfg.Window.Slots, agent.SlotConfig{Day: d, Start: "00:00", End: "00:00"})
		}
		st := agent.StateDir{Dir: cfg.StateDir}
		id, err := agent.Enroll(context.Background(), st, "http://patchward.test", "tok", agentapi.Facts{Hostname: "h"}, hc)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := st.LoadKey()
		client, _ := agent.NewClient("http://patchward.test", id.AgentID, key, hc, nil)
		j, _ := agent.OpenJournal(st.JobsDir())
		res := agentapi.JobResult{JobID: "job-kernel", Attempt: 1, Status: agentapi.StatusSucceeded}
		if err := j.Put(agent.Entry{Job: agentapi.Job{ID: "job-kernel", Kind: agentapi.JobInstall, AllowReboot: true},
			State: agent.JobFinished, Attempt: 1, Result: &res, RebootPending: true, Received: time.Now(), Updated: time.Now()}); err != nil {
			t.Fatal(err)
		}
		run := &recordingRunner{}
		col := &fakeCollector{}
		a, err := agent.New(cfg, id, client, j, col, agent.Unsupported{Manager: "dnf"}, run, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(5 * time.Minute)
		cancel()
		<-done
		if len(srv.Results()) != 1 {
			t.Fatalf("%d results; want the job reported once", len(srv.Results()))
		}
		if len(run.ran) != 1 || run.ran[0][0] != "reboot-now" {
			t.Fatalf("commands run: %v; want the reboot command once", run.ran)
		}
		e, _ := j.Get("job-kernel")
		if !e.RebootDone || !e.Reported {
			t.Errorf("journal after reboot: done=%v reported=%v", e.RebootDone, e.Reported)
		}
	})
}
