package agentsim_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/agentsim"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// BenchmarkSimulatedFleet is the end-to-end load test: the simulator's
// hosts check in over real loopback HTTP against the real handler on a
// file database, each as often as the protocol lets it (one identical
// request per second), and the server counts the heartbeats that carried
// no inventory. It reports their rate once every host has sent its first
// inventory. Client and server share the machine, so the figure is lower
// than BenchmarkCheckIn's, which measures the server alone. Run it with
// -benchtime=1x; PATCHWARD_SIM_HOSTS sets the fleet size (default 3000).
func BenchmarkSimulatedFleet(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(string(engine), func(b *testing.B) {
			for range b.N {
				benchFleet(b, storetest.Open(b, engine, store.Options{}))
			}
		})
	}
}

func benchFleet(b *testing.B, db *store.DB) {
	hosts := 3000
	if s := os.Getenv("PATCHWARD_SIM_HOSTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		hosts = n
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := fleet.NewService(db.Fleet(), fleet.Options{Log: log})
	var (
		mu          sync.Mutex
		first, last time.Time
		beats       atomic.Int64
		inventories atomic.Int64
	)
	h := agentserver.Handler(svc, log)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checkIn := r.URL.Path == agentapi.PathCheckIn
		withInventory := checkIn && r.ContentLength > 4<<10
		h.ServeHTTP(w, r)
		switch {
		case withInventory:
			inventories.Add(1)
		case checkIn && inventories.Load() >= int64(hosts):
			beats.Add(1)
			now := time.Now()
			mu.Lock()
			if first.IsZero() {
				first = now
			}
			last = now
			mu.Unlock()
		}
	})
	srv := httptest.NewServer(counted)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var st agentsim.Stats
	var runErr error
	go func() {
		defer close(done)
		st, runErr = agentsim.Run(ctx, agentsim.Options{Server: srv.URL, Hosts: hosts, CheckInInterval: 10 * time.Millisecond,
			Ramp:         time.Duration(hosts) * 5 * time.Millisecond,
			PackagesFrom: smallStatus(b, 60), Log: log,
			NewToken: func(ctx context.Context) (string, error) {
				s, _, err := svc.CreateEnrollmentToken(ctx, admin, fleet.TokenSpec{Name: "bench"})
				return s, err
			}})
	}()
	// Wait for the fleet to be enrolled and to have sent its inventories,
	// then measure heartbeats for ten seconds.
	deadline := time.Now().Add(10 * time.Minute)
	for inventories.Load() < int64(hosts) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	b.ResetTimer()
	time.Sleep(10 * time.Second)
	cancel()
	<-done
	b.StopTimer()
	if runErr != nil {
		b.Fatal(runErr)
	}
	mu.Lock()
	window := last.Sub(first)
	mu.Unlock()
	if window <= 0 {
		b.Fatalf("no heartbeats measured; stats %+v", st)
	}
	b.ReportMetric(float64(beats.Load())/window.Seconds(), "checkins/s")
	b.ReportMetric(float64(st.Errors), "errors")
}

// smallStatus writes the first n packages of the test dpkg status file:
// the benchmark is about heartbeats, not storing thousands of inventories.
func smallStatus(b *testing.B, n int) string {
	f, err := os.Open("testdata/debian12-dpkg-status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && n > 0 {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "" {
			n--
		}
	}
	p := filepath.Join(b.TempDir(), "status")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}
