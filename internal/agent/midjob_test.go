package agent_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchward/patchward/internal/agent/agenttest"
	"github.com/patchward/patchward/internal/agentapi"
)

// blockingPM is a package manager whose Apply leaves the host halfway
// through a job (the package gone from the collector's list, as from
// dpkg's status while it is unpacked) until the test releases it. Bash
// stays installed throughout.
type blockingPM struct {
	col     *fakeCollector
	started chan struct{}
	release chan struct{}

	mu       sync.Mutex
	versions map[string]string
}

func (p *blockingPM) Name() string                         { return "fake" }
func (p *blockingPM) Supported() error                     { return nil }
func (p *blockingPM) ValidatePackage(string, string) error { return nil }
func (p *blockingPM) Refresh(context.Context) agentapi.Step {
	return agentapi.Step{Name: "refresh package lists", OK: true}
}
func (p *blockingPM) LockHolder() (bool, string, error) { return false, "", nil }

func (p *blockingPM) Installed(_ context.Context, names []string) (map[string]string, agentapi.Step, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, n := range names {
		out[n] = p.versions[n]
	}
	return out, agentapi.Step{Name: "query installed versions", OK: true}, nil
}

func (p *blockingPM) Apply(_ context.Context, want []agentapi.JobPackage) agentapi.Step {
	p.col.set([]agentapi.Package{{Name: "bash", Version: "5.2.15-2+b8", Ecosystem: "Debian:12"}})
	close(p.started)
	<-p.release
	p.mu.Lock()
	defer p.mu.Unlock()
	pkgs := []agentapi.Package{{Name: "bash", Version: "5.2.15-2+b8", Ecosystem: "Debian:12"}}
	for _, w := range want {
		p.versions[w.Name] = w.TargetVersion
		pkgs = append(pkgs, agentapi.Package{Name: w.Name, Version: w.TargetVersion, Ecosystem: "Debian:12"})
	}
	p.col.set(pkgs)
	return agentapi.Step{Name: "install", OK: true}
}

// TestNoInventoryMidJob: while a job changes packages the agent keeps
// checking in but sends no inventory — a list read halfway through would
// make the server close or open findings on a state that lasts seconds —
// and sends the settled one at the first check-in after the job.
func TestNoInventoryMidJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := agenttest.New("tok")
		srv.NextCheckIn = time.Minute
		f := newLoop(t, srv, nil)
		f.a.Cfg.MinFreeMiB = 1
		f.a.Executor.Cfg.MinFreeMiB = 1
		pm := &blockingPM{col: f.col, started: make(chan struct{}), release: make(chan struct{}),
			versions: map[string]string{"openssl": "3.0.11-1"}}
		f.a.Executor.PM = pm
		srv.AddJob(f.id.AgentID, agentapi.Job{ID: "job-1", Kind: agentapi.JobInstall, Emergency: true,
			Packages: []agentapi.JobPackage{{Name: "openssl", TargetVersion: "3.0.15-1"}}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.a.Run(ctx) }()

		<-pm.started
		before := len(srv.CheckIns())
		// Release between two check-ins (they come on the minute), so the
		// next one is the one the job's end triggers.
		time.Sleep(5*time.Minute + 30*time.Second)
		mid := srv.CheckIns()[before:]
		close(pm.release)
		synctest.Wait()
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(mid) < 4 {
			t.Fatalf("%d check-ins in 5.5 minutes of a running job; want the agent to keep checking in", len(mid))
		}
		for i, c := range mid {
			if c.Inventory != nil {
				t.Errorf("check-in %d during the job sent an inventory of %d packages; want none", i, len(c.Inventory))
			}
		}
		rs := srv.Results()
		if len(rs) != 1 || rs[0].Status != agentapi.StatusSucceeded {
			t.Fatalf("results = %+v; want the job succeeded", rs)
		}
		after := srv.CheckIns()[before+len(mid):]
		if len(after) == 0 || !slices.ContainsFunc(after[0].Inventory, func(p agentapi.Package) bool { return p.Name == "openssl" && p.Version == "3.0.15-1" }) {
			t.Errorf("first check-in after the job = %+v; want the inventory with openssl 3.0.15-1", after)
		}
	})
}
