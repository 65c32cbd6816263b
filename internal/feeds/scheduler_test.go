package feeds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// fakeSyncer records when each feed was synced and answers with scripted
// outcomes; it stands in for the Service so the test is about timing only.
type fakeSyncer struct {
	mu     sync.Mutex
	start  time.Time
	states map[string]Status
	// fail makes a feed's syncs fail while it returns true.
	fail  func(feed string, n int) bool
	calls map[string][]time.Duration
	// updates records the syncs that did the work (not skipped).
	updates map[string][]time.Duration
}

func (f *fakeSyncer) State(ctx context.Context, feed string) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.states[feed]
	if !ok {
		return Status{}, errs.E(errs.NotFound, "feed %q not found", feed)
	}
	return st, nil
}

func (f *fakeSyncer) Sync(ctx context.Context, actor audit.Actor, fd Feed, opt SyncOptions) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.calls[fd.Name] = append(f.calls[fd.Name], now.Sub(f.start))
	st := f.states[fd.Name]
	if opt.SkipIfSucceededWithin > 0 && st.LastError == "" && st.LastSuccessAt != nil && now.Sub(*st.LastSuccessAt) < opt.SkipIfSucceededWithin {
		return Result{Feed: fd.Name, Outcome: Skipped, State: st}, nil
	}
	st.LastAttemptAt = &now
	if f.fail != nil && f.fail(fd.Name, len(f.calls[fd.Name])) {
		st.LastError = "boom"
		f.states[fd.Name] = st
		return Result{}, errors.New("boom")
	}
	st.LastError, st.LastSuccessAt = "", &now
	f.states[fd.Name] = st
	if f.updates == nil {
		f.updates = map[string][]time.Duration{}
	}
	f.updates[fd.Name] = append(f.updates[fd.Name], now.Sub(f.start))
	return Result{Feed: fd.Name, Outcome: Updated, State: st}, nil
}

func TestSchedulerIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		recent := start.Add(-30 * time.Minute)
		fs := &fakeSyncer{start: start, calls: map[string][]time.Duration{}, states: map[string]Status{
			// Synced 30 minutes ago by another replica or the CLI: due
			// after the rest of its hour, not at once.
			"kev": {LastAttemptAt: &recent, LastSuccessAt: &recent},
		}}
		fs.fail = func(feed string, n int) bool { return feed == "flaky" && n <= 2 }
		feeds := []Feed{
			{Name: "epss", Interval: 3 * time.Hour},
			{Name: "kev", Interval: time.Hour},
			{Name: "flaky", Interval: 6 * time.Hour},
		}
		s := NewScheduler(fs, feeds, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s.RetryAfterFailure = 15 * time.Minute
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(6*time.Hour + time.Minute)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v; want context.Canceled", err)
		}
		want := map[string][]time.Duration{
			"epss":  {0, 3 * time.Hour, 6 * time.Hour},
			"kev":   {30 * time.Minute, 90 * time.Minute, 150 * time.Minute, 210 * time.Minute, 270 * time.Minute, 330 * time.Minute},
			"flaky": {0, 15 * time.Minute, 30 * time.Minute},
		}
		if diff := cmp.Diff(want, fs.calls); diff != "" {
			t.Errorf("sync times (-want +got):\n%s", diff)
		}
	})
}

// TestSchedulerReplicas runs two schedulers on one shared state, as two
// replicas on one PostgreSQL database would: each feed is synced once per
// interval between them, the other replica skipping.
func TestSchedulerReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSyncer{start: time.Now(), calls: map[string][]time.Duration{}, states: map[string]Status{}}
		feeds := []Feed{{Name: "kev", Interval: time.Hour}}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _ = NewScheduler(fs, feeds, nil, log).Run(ctx) })
		}
		time.Sleep(3*time.Hour + time.Minute)
		cancel()
		wg.Wait()
		// Both replicas call Sync each round; the second finds the feed
		// synced moments ago and skips, so the work is done once an hour.
		if diff := cmp.Diff([]time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour}, fs.updates["kev"]); diff != "" {
			t.Errorf("syncs that did the work (-want +got):\n%s", diff)
		}
		// A replica that starts after the other's first sync finds the
		// feed fresh and never calls at time zero: 7 or 8 calls.
		if n := len(fs.calls["kev"]); n < 7 || n > 8 {
			t.Errorf("Sync called %d times; want 7 or 8 (two replicas, four rounds)", n)
		}
	})
}

func TestSchedulerNoFeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- NewScheduler(&fakeSyncer{}, nil, nil, nil).Run(ctx) }()
		time.Sleep(24 * time.Hour)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v; want context.Canceled", err)
		}
	})
}
