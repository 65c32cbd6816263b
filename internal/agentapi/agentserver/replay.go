package agentserver

import (
	"crypto/ed25519"
	"sync"

	"github.com/patchward/patchward/internal/errs"
)

// replayTolerance is how far out of order an agent's requests may arrive
// (in signed seconds). Timestamps have one-second resolution and an agent
// may have a check-in and a result upload in flight at once, so strictly
// increasing timestamps would refuse honest agents; a window of remembered
// signatures does not.
const replayTolerance = 60

// replayGuard refuses a signed request this replica has already accepted.
// Per agent it keeps the newest timestamp seen and the signatures of the
// last replayTolerance seconds: a request older than that window is
// refused outright, one inside it is refused if its signature was seen.
// Together with the clock-skew bound this refuses every replay the replica
// could recognise, using memory proportional to the number of agents (only
// requests whose signature verified are remembered).
//
// The state is per replica and in memory. After a restart, or on another
// replica, a captured request could be accepted once more within
// agentapi.MaxClockSkew; every agent endpoint is idempotent (results by
// job and attempt, job pulls and heartbeats by nature), so a replay cannot
// cause anything the original did not, and TLS keeps requests from being
// captured in the first place.
type replayGuard struct {
	mu        sync.Mutex
	tolerance int64
	agents    map[string]*agentSeen
}

type agentSeen struct {
	newest int64
	sigs   map[[ed25519.SignatureSize]byte]int64
}

func newReplayGuard(tolerance int64) *replayGuard {
	return &replayGuard{tolerance: tolerance, agents: map[string]*agentSeen{}}
}

// check records the request (agentID, ts, sig) or refuses it as a replay.
func (g *replayGuard) check(agentID string, ts int64, sig []byte) error {
	var key [ed25519.SignatureSize]byte
	copy(key[:], sig)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.agents[agentID]
	if s == nil {
		s = &agentSeen{newest: ts, sigs: map[[ed25519.SignatureSize]byte]int64{}}
		g.agents[agentID] = s
	}
	if ts < s.newest-g.tolerance {
		return errs.E(errs.Unauthorized, "request is older than this agent's recent requests (replayed?); sign it again with the current time")
	}
	if _, dup := s.sigs[key]; dup {
		return errs.E(errs.Unauthorized, "request was already received (replayed?); sign it again")
	}
	s.sigs[key] = ts
	if ts > s.newest {
		s.newest = ts
		for k, t := range s.sigs {
			if t < ts-g.tolerance {
				delete(s.sigs, k)
			}
		}
	}
	return nil
}
