package match

import (
	"context"
	"log/slog"
	"time"
)

// Watcher keeps the matcher in step with the feed store. Feeds can change
// behind a server's back — another replica's scheduler or a `patchward
// feeds sync` from cron in an air-gapped clinic — so it polls a cheap
// fingerprint of the current feed versions and, when it moves, rebuilds the
// index and re-evaluates only what changed. A local sync kicks it at once.
type Watcher struct {
	svc         *Service
	src         AdvisorySource
	fingerprint func(ctx context.Context) (string, error)
	log         *slog.Logger
	kick        chan struct{}
	last        string
	// evaluated reports each evaluation; tests observe it.
	evaluated func(Summary)
}

// NewWatcher returns a Watcher; fingerprint must change whenever any feed's
// current version does.
func NewWatcher(svc *Service, src AdvisorySource, fingerprint func(ctx context.Context) (string, error), log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{svc: svc, src: src, fingerprint: fingerprint, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks for a check now, as after a feed sync in this process.
func (w *Watcher) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Check rebuilds the index and re-evaluates if the feeds changed since the
// last check (the first check always builds and evaluates, so findings
// catch up with feed changes made while the server was down).
func (w *Watcher) Check(ctx context.Context) (Summary, bool, error) {
	fp, err := w.fingerprint(ctx)
	if err != nil {
		return Summary{}, false, err
	}
	if fp == w.last && w.svc.Index() != nil {
		return Summary{}, false, nil
	}
	old, ix, err := w.svc.Refresh(ctx, w.src)
	if err != nil {
		return Summary{}, false, err
	}
	sum, err := w.svc.EvaluateChanged(ctx, old, ix)
	if err != nil {
		return sum, true, err
	}
	w.last = fp
	if w.evaluated != nil {
		w.evaluated(sum)
	}
	return sum, true, nil
}

// Run checks at start, every interval and on every Kick until ctx ends.
func (w *Watcher) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		if sum, ran, err := w.Check(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Error("re-evaluating findings after a feed change failed", "err", err)
		} else if ran {
			w.log.Info("findings re-evaluated against current feeds", "hosts", sum.Hosts, "opened", sum.Opened,
				"fixed", sum.Fixed, "reopened", sum.Reopened, "not_affected", sum.NotAffected, "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.kick:
		}
	}
}
