package feeds

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Syncer is what the Scheduler drives; *Service implements it.
type Syncer interface {
	State(ctx context.Context, feed string) (Status, error)
	Sync(ctx context.Context, actor audit.Actor, f Feed, opt SyncOptions) (Result, error)
}

// Scheduler syncs each configured feed on its interval while `serve` runs.
// Several replicas may run one each: on PostgreSQL a sync takes a per-feed
// advisory lock, and a replica skips a feed another replica synced recently,
// so each feed is fetched about once per interval across the group.
type Scheduler struct {
	syncer Syncer
	feeds  []Feed
	now    func() time.Time
	log    *slog.Logger
	// RetryAfterFailure is how soon a failed feed is tried again, if
	// sooner than its interval (default 15 minutes).
	RetryAfterFailure time.Duration
}

// NewScheduler returns a scheduler for feeds. now is the clock (time.Now if
// nil); log receives sync failures, the one place they are logged.
func NewScheduler(s Syncer, feeds []Feed, now func() time.Time, log *slog.Logger) *Scheduler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Scheduler{syncer: s, feeds: feeds, now: now, log: log, RetryAfterFailure: 15 * time.Minute}
}

// Run syncs feeds when they fall due until ctx ends, and returns ctx's
// error. A feed never synced, or last synced more than an interval ago, is
// due at once; one synced recently (perhaps by another replica or the CLI)
// waits for the rest of its interval.
func (s *Scheduler) Run(ctx context.Context) error {
	if len(s.feeds) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	due := make([]time.Time, len(s.feeds))
	for i, f := range s.feeds {
		st, err := s.syncer.State(ctx, f.Name)
		switch {
		case err == nil:
			due[i] = s.nextAfter(f, st)
		case errors.Is(err, errs.ErrNotFound):
			due[i] = s.now()
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("cannot read feed state; syncing it now", "feed", f.Name, "err", err)
			due[i] = s.now()
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := 0
		for i := range due {
			if due[i].Before(due[next]) {
				next = i
			}
		}
		if wait := due[next].Sub(s.now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		f := s.feeds[next]
		// Skip when another replica succeeded within half an interval: it
		// synced this round, and the next round is computed from its time.
		res, err := s.syncer.Sync(ctx, audit.System, f, SyncOptions{SkipIfSucceededWithin: f.Interval / 2})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if errs.KindOf(err) == errs.Conflict {
				s.log.Info("feed sync skipped", "feed", f.Name, "reason", errs.Public(err))
			} else {
				s.log.Warn("feed sync failed; the current version is kept", "feed", f.Name, "err", err)
			}
			due[next] = s.now().Add(min(f.Interval, s.RetryAfterFailure))
		case res.Outcome == Skipped:
			// Never sooner than a minute, whatever the other replica's
			// clock says, so a skew cannot make this loop spin.
			due[next] = maxTime(s.nextAfter(f, res.State), s.now().Add(time.Minute))
		default:
			s.log.Info("feed synced", "feed", f.Name, "outcome", res.Outcome, "version", res.Version,
				"advisories", res.Advisories, "kev", res.KEV, "epss", res.EPSS)
			due[next] = s.now().Add(f.Interval)
		}
	}
}

// nextAfter is when f is next due given its stored state.
func (s *Scheduler) nextAfter(f Feed, st Status) time.Time {
	switch {
	case st.LastAttemptAt == nil:
		return s.now()
	case st.LastError != "":
		return st.LastAttemptAt.Add(min(f.Interval, s.RetryAfterFailure))
	}
	return st.LastAttemptAt.Add(f.Interval)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
