package feeds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Service syncs feeds into a Store.
type Service struct {
	store        Store
	fetcher      *Fetcher
	now          func() time.Time
	log          *slog.Logger
	beforeCommit func(ctx context.Context, feed string) error

	mu      sync.Mutex
	running map[string]bool
}

// Options tunes NewService.
type Options struct {
	// Fetcher downloads sources; a zero Fetcher if nil.
	Fetcher *Fetcher
	// Now is the clock for stored times; time.Now if nil.
	Now func() time.Time
	// Log receives what a sync cannot return (a failed prune of old
	// versions); slog.Default if nil.
	Log *slog.Logger
	// BeforeCommit, if set, runs inside the swap transaction once every
	// row of the new version is written and before the commit. The
	// crash-safety test uses it to hold a sync there and kill the process.
	BeforeCommit func(ctx context.Context, feed string) error
}

// NewService returns a sync service over s.
func NewService(s Store, opt Options) *Service {
	if opt.Fetcher == nil {
		opt.Fetcher = &Fetcher{}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Service{store: s, fetcher: opt.Fetcher, now: opt.Now, log: opt.Log,
		beforeCommit: opt.BeforeCommit, running: map[string]bool{}}
}

// SyncOptions tunes one sync.
type SyncOptions struct {
	// Force downloads in full, ignoring validators, the content hash and
	// the NVD cursor, stores the result as a fresh version even if it is
	// unchanged, and accepts one that lost more than half the records (see
	// Feed.AllowShrink): the way to rebuild a feed an operator distrusts.
	Force bool
	// SkipIfSucceededWithin skips the sync when the feed's last attempt,
	// by any process, succeeded less than this long ago: replicas sharing
	// a schedule then sync each feed once per interval between them.
	SkipIfSucceededWithin time.Duration
}

// Outcome says what a sync did.
type Outcome string

// Outcomes.
const (
	// Updated: a new version is current.
	Updated Outcome = "updated"
	// Unchanged: the source had not changed; the current version stays.
	Unchanged Outcome = "unchanged"
	// Skipped: another process synced the feed recently.
	Skipped Outcome = "skipped"
)

// Result reports one successful sync.
type Result struct {
	Feed    string  `json:"feed"`
	Outcome Outcome `json:"outcome"`
	// Version and the counts describe the feed's current version after the
	// sync.
	Version     int  `json:"version"`
	Advisories  int  `json:"advisories"`
	KEV         int  `json:"kev"`
	EPSS        int  `json:"epss"`
	Incremental bool `json:"incremental,omitempty"`
	// Duplicates counts records that appeared more than once in the
	// source; the last one read was kept.
	Duplicates int `json:"duplicates,omitempty"`
	// Pruned counts old versions deleted after the swap.
	Pruned int `json:"pruned,omitempty"`
	// State is the feed's status after the sync.
	State Status `json:"-"`
}

// State returns one feed's stored status; NotFound if never synced.
func (s *Service) State(ctx context.Context, feed string) (Status, error) {
	return s.store.State(ctx, feed)
}

// Status lists every synced feed's status.
func (s *Service) Status(ctx context.Context) ([]Status, error) {
	return s.store.FeedStatus(ctx)
}

// Sync brings feed f up to date: fetch (conditionally), parse everything,
// then in one transaction write the new version, make it current and append
// the audit record. Any failure leaves the current version as it was; the
// reason is stored in the feed's status and audited as feed.sync_failed.
func (s *Service) Sync(ctx context.Context, actor audit.Actor, f Feed, opt SyncOptions) (Result, error) {
	if f.MaxBytes <= 0 {
		f.MaxBytes = DefaultMaxBytes
	}
	if !s.claim(f.Name) {
		return Result{}, errs.E(errs.Conflict, "feed %q is already being synced", f.Name)
	}
	defer s.release(f.Name)
	unlock, err := s.store.Lock(ctx, f.Name)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	prev, err := s.store.State(ctx, f.Name)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return Result{}, fmt.Errorf("read feed %s state: %w", f.Name, err)
	}
	if opt.SkipIfSucceededWithin > 0 && prev.LastError == "" && prev.LastSuccessAt != nil &&
		s.now().Sub(*prev.LastSuccessAt) < opt.SkipIfSucceededWithin {
		return Result{Feed: f.Name, Outcome: Skipped, State: prev, Version: prev.Version,
			Advisories: prev.Advisories, KEV: prev.KEV, EPSS: prev.EPSS}, nil
	}
	res, err := s.sync(ctx, actor, f, prev, opt)
	if err != nil {
		return res, s.fail(ctx, actor, f, err)
	}
	return res, nil
}

func (s *Service) claim(feed string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[feed] {
		return false
	}
	s.running[feed] = true
	return true
}

func (s *Service) release(feed string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, feed)
}

func (s *Service) sync(ctx context.Context, actor audit.Actor, f Feed, prev Status, opt SyncOptions) (Result, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fetchCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	base := prev
	if opt.Force {
		// Forget validators and the cursor so the source is read in full.
		base = Status{}
	}
	c := newContent(f)
	got, err := s.fetcher.fetch(fetchCtx, f, base, c.want, c.add)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return Result{}, errs.E(errs.Invalid, "fetching and parsing took longer than the feed's timeout of %s", timeout)
		}
		return Result{}, err
	}
	now := s.now().UTC()
	if got.notModified {
		return s.unchanged(ctx, actor, f, prev, got, now)
	}
	c.meta.Incremental = got.incremental
	if err := s.check(f, prev, c, got, opt); err != nil {
		return Result{}, err
	}

	v := &Version{Feed: f.Name, FetchedAt: now, Source: f.Source(), ETag: got.etag, LastModified: got.lastModified,
		SHA256: got.sha256, Cursor: got.cursor, Advisories: len(c.recs), KEV: len(c.kev), EPSS: len(c.epss), Meta: c.meta}
	if got.incremental {
		v.BaseID = prev.VersionID
	}
	err = s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.UpsertFeed(ctx, f.Name, f.Kind, f.Source()); err != nil {
			return err
		}
		cur, err := tx.CurrentVersionID(ctx, f.Name)
		if err != nil {
			return err
		}
		if cur != prev.VersionID {
			return errs.E(errs.Conflict, "feed %q was updated by another process during this sync; nothing changed, sync again", f.Name)
		}
		if err := tx.InsertVersion(ctx, v); err != nil {
			return err
		}
		if err := tx.InsertAdvisories(ctx, v.ID, c.recs); err != nil {
			return err
		}
		if v.BaseID != 0 {
			n, err := tx.CopyAdvisories(ctx, v.BaseID, v.ID)
			if err != nil {
				return err
			}
			v.Advisories += n
		}
		if err := tx.InsertKEV(ctx, v.ID, c.kev); err != nil {
			return err
		}
		if err := tx.InsertEPSS(ctx, v.ID, c.epss); err != nil {
			return err
		}
		if err := tx.Activate(ctx, v); err != nil {
			return err
		}
		if err := tx.RecordAttempt(ctx, f.Name, now, ""); err != nil {
			return err
		}
		rec := audit.Record{Actor: actor, Action: "feed.sync", ObjectType: "feed", ObjectID: f.Name,
			After: versionSummary(v, Updated, c.dups)}
		if prev.VersionID != 0 {
			rec.Before = statusSummary(prev)
		}
		if err := tx.AppendAudit(ctx, rec); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			return s.beforeCommit(ctx, f.Name)
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{Feed: f.Name, Outcome: Updated, Version: v.Number, Advisories: v.Advisories, KEV: v.KEV,
		EPSS: v.EPSS, Incremental: v.BaseID != 0, Duplicates: c.dups}
	// Pruning is its own transaction: the swap is already durable, and a
	// crash here only leaves an extra old version for the next sync to drop.
	if n, err := s.store.Prune(ctx, f.Name); err != nil {
		s.log.Warn("could not prune old feed versions", "feed", f.Name, "err", err)
	} else {
		res.Pruned = n
	}
	if st, err := s.store.State(ctx, f.Name); err == nil {
		res.State = st
	}
	return res, nil
}

// check refuses content that parses but cannot be a complete feed: nothing
// at all, or (for a full download) less than half of what the current
// version holds, which is what a download cut at a line boundary looks like.
func (s *Service) check(f Feed, prev Status, c *content, got fetched, opt SyncOptions) error {
	n := c.total()
	if n == 0 && !got.incremental {
		return errs.E(errs.Invalid, "%s holds no %s records; the current version is kept", f.Source(), f.Kind)
	}
	if got.incremental || f.AllowShrink || opt.Force {
		return nil
	}
	had := prev.Advisories + prev.KEV + prev.EPSS
	if had >= 10 && n*2 < had {
		return errs.E(errs.Invalid, "the new version has %d records where the current one has %d; refusing a drop of more than half (truncated download?). If the source really shrank, sync with --force or set allow_shrink: true", n, had)
	}
	return nil
}

// unchanged records a successful check that found nothing new.
func (s *Service) unchanged(ctx context.Context, actor audit.Actor, f Feed, prev Status, got fetched, now time.Time) (Result, error) {
	err := s.store.Transact(ctx, func(tx Tx) error {
		if err := tx.UpsertFeed(ctx, f.Name, f.Kind, f.Source()); err != nil {
			return err
		}
		if prev.VersionID != 0 && (got.etag != prev.ETag || got.lastModified != prev.LastModified) && got.etag+got.lastModified != "" {
			if err := tx.TouchVersion(ctx, prev.VersionID, got.etag, got.lastModified); err != nil {
				return err
			}
		}
		if err := tx.RecordAttempt(ctx, f.Name, now, ""); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "feed.sync", ObjectType: "feed",
			ObjectID: f.Name, After: map[string]any{"outcome": Unchanged, "version": prev.Version}})
	})
	if err != nil {
		return Result{}, err
	}
	res := Result{Feed: f.Name, Outcome: Unchanged, Version: prev.Version, Advisories: prev.Advisories, KEV: prev.KEV, EPSS: prev.EPSS}
	if st, err := s.store.State(ctx, f.Name); err == nil {
		res.State = st
	}
	return res, nil
}

// fail stores and audits a failed attempt and returns the error to report.
// It writes with a context that outlives cancellation, so a sync stopped by
// shutdown still says so in the feed's status.
func (s *Service) fail(ctx context.Context, actor audit.Actor, f Feed, cause error) error {
	msg := PublicMessage(cause)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := s.store.Transact(wctx, func(tx Tx) error {
		if err := tx.UpsertFeed(wctx, f.Name, f.Kind, f.Source()); err != nil {
			return err
		}
		if err := tx.RecordAttempt(wctx, f.Name, s.now().UTC(), msg); err != nil {
			return err
		}
		return tx.AppendAudit(wctx, audit.Record{Actor: actor, Action: "feed.sync_failed", ObjectType: "feed",
			ObjectID: f.Name, Reason: msg})
	})
	out := &SyncError{Feed: f.Name, Message: msg, Err: cause}
	if err != nil {
		return errors.Join(out, fmt.Errorf("record the failure of feed %s: %w", f.Name, err))
	}
	return out
}

// SyncError is a failed sync. Message is safe to show; Err is the cause,
// whose errs kind (Invalid for a broken feed, TooLarge, Conflict…) it keeps.
type SyncError struct {
	Feed    string
	Message string
	Err     error
}

func (e *SyncError) Error() string { return "feed " + e.Feed + ": " + e.Message }

func (e *SyncError) Unwrap() error { return e.Err }

// PublicMessage is the text an operator sees for a sync failure: the
// parse, validation or download problem as is, but never a raw database
// error, which stays in the log.
func PublicMessage(err error) string {
	var (
		se *SyncError
		fe *FetchError
	)
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.As(err, &fe):
		return fe.Error()
	case errs.KindOf(err) != errs.Internal:
		return errs.Public(err)
	case errors.Is(err, context.Canceled):
		return "the sync was interrupted; the current version is kept"
	case errors.Is(err, context.DeadlineExceeded):
		return "the sync timed out; the current version is kept"
	}
	return errs.Public(err)
}

type summary struct {
	Outcome     Outcome `json:"outcome,omitempty"`
	Version     int     `json:"version"`
	Source      string  `json:"source,omitempty"`
	SHA256      string  `json:"sha256,omitempty"`
	Advisories  int     `json:"advisories"`
	KEV         int     `json:"kev"`
	EPSS        int     `json:"epss"`
	Incremental bool    `json:"incremental,omitempty"`
	Duplicates  int     `json:"duplicates,omitempty"`
}

func versionSummary(v *Version, o Outcome, dups int) summary {
	return summary{Outcome: o, Version: v.Number, Source: v.Source, SHA256: v.SHA256, Advisories: v.Advisories,
		KEV: v.KEV, EPSS: v.EPSS, Incremental: v.BaseID != 0, Duplicates: dups}
}

func statusSummary(s Status) summary {
	return summary{Version: s.Version, Source: s.Source, SHA256: s.SHA256, Advisories: s.Advisories, KEV: s.KEV, EPSS: s.EPSS}
}
