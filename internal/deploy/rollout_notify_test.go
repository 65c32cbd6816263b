package deploy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/fleet"
)

// fakeNotifier records what it was asked to send, or fails.
type fakeNotifier struct {
	mu       sync.Mutex
	subjects []string
	bodies   []string
	fail     bool
}

func (f *fakeNotifier) Notify(_ context.Context, subject, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subjects, f.bodies = append(f.subjects, subject), append(f.bodies, body)
	if f.fail {
		return errors.New("relay down")
	}
	return nil
}

// TestGateHaltNotifies: a gate halt tells people at once, saying why and
// what happens next; a relay that is down changes nothing else.
func TestGateHaltNotifies(t *testing.T) {
	for _, down := range []bool{false, true} {
		w, ro := pilotOf(t, pilotRing(2, 0.6, 0.3), 4)
		n := &fakeNotifier{fail: down}
		w.eng = NewRollouts(w.store, w.changes, fleetAs{w.fleet, "A"}, fakePolicies{w.pol},
			RolloutOptions{Now: w.clk.now, JobDuration: 30 * time.Minute, Owner: "replica-A", LeaseTTL: 3 * time.Minute, Notifier: n})
		w.tick()
		if len(n.subjects) != 0 {
			t.Fatalf("notified %v before anything went wrong", n.subjects)
		}
		w.report("p1", agentapi.JobInstall, fleet.JobSucceeded)
		w.report("p2", agentapi.JobInstall, fleet.JobFailed)
		w.report("p3", agentapi.JobInstall, fleet.JobFailed)
		w.clk.add(time.Minute)
		w.tick()
		if got := w.get(ro.ID); got.State != RolloutRollingBack && got.State != RolloutHalted {
			t.Fatalf("relay down=%v: rollout %s; want halted and rolling back", down, got.State)
		}
		if len(n.subjects) != 1 || !strings.Contains(n.subjects[0], "halted") ||
			!strings.Contains(n.bodies[0], "2 of 4 jobs failed") || !strings.Contains(n.bodies[0], "Rollback jobs") {
			t.Errorf("relay down=%v: notifications %q / %q; want one naming the halt, the failures and the rollback", down, n.subjects, n.bodies)
		}
	}
}
