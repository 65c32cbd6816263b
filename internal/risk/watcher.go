package risk

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Watcher keeps scores and clocks current in the background: it re-scores
// assets whose findings changed (new inventory, feed change) as they are
// reported, and the whole estate at start, on every Notify("") (a policy
// applied, a group exception decided) and periodically — which is also when
// exceptions that ran out expire.
type Watcher struct {
	svc *Service
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]bool
	all     bool
	kick    chan struct{}
	// lastInputs and lastFull describe the last full pass, so a periodic
	// tick re-scores the estate only when what every record depends on
	// changed, or once a day (rules may read a finding's age).
	lastInputs string
	lastFull   time.Time
}

// fullEvery is the longest the watcher goes without re-scoring the estate.
const fullEvery = 24 * time.Hour

// NewWatcher returns a Watcher for svc.
func NewWatcher(svc *Service, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{svc: svc, log: log, pending: map[string]bool{}, all: true, kick: make(chan struct{}, 1)}
}

// Notify asks for assetID to be re-scored ("" for every asset). It never
// blocks: requests made while a pass runs are coalesced into the next.
func (w *Watcher) Notify(assetID string) {
	w.mu.Lock()
	if assetID == "" {
		w.all = true
	} else {
		w.pending[assetID] = true
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Pass runs what has been asked for since the last pass.
func (w *Watcher) Pass(ctx context.Context) (Summary, error) {
	w.mu.Lock()
	all, pending := w.all, w.pending
	w.all, w.pending = false, map[string]bool{}
	w.mu.Unlock()
	var total Summary
	add := func(s Summary) {
		total.Assessed += s.Assessed
		total.Changed += s.Changed
		total.Events += s.Events
		total.Reprioritized += s.Reprioritized
		total.ExceptionsExpired += s.ExceptionsExpired
		total.Skipped = total.Skipped || s.Skipped
	}
	requeue := func() {
		w.mu.Lock()
		w.all = w.all || all
		for id := range pending {
			w.pending[id] = true
		}
		w.mu.Unlock()
	}
	if all {
		inputs, ierr := w.svc.Inputs(ctx)
		s, err := w.svc.Recompute(ctx, "")
		if err == nil && ierr == nil && !s.Skipped {
			w.lastInputs, w.lastFull = inputs, w.svc.now()
		}
		add(s)
		if err != nil || s.Skipped {
			requeue()
			return total, err
		}
		return total, nil
	}
	for id := range pending {
		s, err := w.svc.Recompute(ctx, id)
		add(s)
		if err != nil || s.Skipped {
			requeue()
			return total, err
		}
	}
	return total, nil
}

// Run passes on every Notify and every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		sum, err := w.Pass(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			w.log.Error("re-scoring findings failed", "err", err)
		case sum.Changed > 0 || sum.ExceptionsExpired > 0:
			w.log.Info("findings re-scored", "assessed", sum.Assessed, "changed", sum.Changed,
				"reprioritized", sum.Reprioritized, "exceptions_expired", sum.ExceptionsExpired, "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case <-t.C:
			w.Tick(ctx)
		}
	}
}

// Tick decides what a periodic tick re-scores: the estate when the policy or
// the advisory index moved since the last full pass, when an exception
// expired, or once a day; otherwise nothing (assets whose findings or
// attributes change are notified as they change).
func (w *Watcher) Tick(ctx context.Context) {
	inputs, err := w.svc.Inputs(ctx)
	if err != nil || inputs != w.lastInputs || w.svc.now().Sub(w.lastFull) >= fullEvery {
		w.Notify("")
		return
	}
	n, err := w.svc.ExpireDue(ctx)
	if err != nil {
		w.log.Error("expiring exceptions failed", "err", err)
		return
	}
	if n > 0 {
		w.Notify("")
	}
}
