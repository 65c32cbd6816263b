package fleet

import (
	"sync"
	"time"
)

// bucket is a server-wide token bucket over check-ins. It never refuses a
// check-in (the agent has already paid for the request); instead, the debt
// below zero measures overload, and the interval handed back grows with it
// so the fleet spreads out until the rate fits. Each replica keeps its own
// bucket: a replica under load slows the agents that reach it.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take removes one token at now and returns the overload factor, 1 when the
// rate is within bounds and growing with the debt, capped at limit.
func (b *bucket) take(now time.Time, limit float64) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = now
	}
	// The debt is floored so a past storm is forgotten within seconds
	// once the rate drops, rather than punishing agents for minutes.
	b.tokens = max(b.tokens-1, -b.burst*(limit-1))
	if b.tokens >= 0 {
		return 1
	}
	return min(limit, 1-b.tokens/b.burst)
}

// nextCheckIn is the interval to hand an agent now: the base interval,
// stretched by the current overload and jittered by ±Jitter.
func (s *Service) nextCheckIn(now time.Time) time.Duration {
	factor := s.load.take(now, s.opt.MaxBackoff)
	jitter := 1 + s.opt.Jitter*(2*s.opt.Rand()-1)
	return time.Duration(float64(s.opt.CheckInInterval) * factor * jitter).Round(time.Millisecond)
}
