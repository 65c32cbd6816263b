package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Checkpointer signs the log's head periodically. A signed checkpoint is
// what makes a rewrite detectable even when the rewriter recomputed every
// hash: they cannot produce the signature without the key, which lives
// outside the database.
//
// It only ever signs a head it has verified: the first Checkpoint verifies
// the whole log, later ones only the entries appended since (the verified
// state is kept in memory), so a tampered log is never blessed with a fresh
// signature.
type Checkpointer struct {
	store  Store
	signer *Signer
	now    func() time.Time
	log    *slog.Logger

	mu sync.Mutex
	// verified is the state after the prefix of the log already verified,
	// nil until the first successful Checkpoint.
	verified *chain
}

// NewCheckpointer returns a Checkpointer that signs with signer. now is the
// clock for CreatedAt (time.Now if nil); logger receives the errors Run
// cannot return (slog.Default if nil).
func NewCheckpointer(store Store, signer *Signer, now func() time.Time, logger *slog.Logger) *Checkpointer {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Checkpointer{store: store, signer: signer, now: now, log: logger}
}

// Checkpoint verifies the entries appended since the last call and, if the
// log grew past the latest stored checkpoint, signs and stores a checkpoint
// of the current head. It returns the latest checkpoint and whether it made
// it. A *VerifyError means the log is damaged and nothing was signed.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var (
		out    Checkpoint
		signed bool
		next   chain
	)
	err := c.store.Snapshot(ctx, func(r Reader) error {
		start := newChain()
		if c.verified != nil {
			start = c.verified.clone()
		}
		var err error
		if next, _, err = verifyFrom(ctx, r, c.signer.Verifier(), start); err != nil {
			return err
		}
		latest, err := r.LatestCheckpoint(ctx)
		if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return fmt.Errorf("read latest checkpoint: %w", err)
		}
		out = latest
		size := next.size()
		if size == 0 || size <= latest.Size {
			return nil
		}
		root := next.root()
		note, err := c.signer.Sign(size, root)
		if err != nil {
			return err
		}
		out = Checkpoint{Size: size, Root: root, Note: note, CreatedAt: c.now().UTC()}
		signed = true
		return nil
	})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("audit checkpoint: %w", err)
	}
	c.verified = &next
	if !signed {
		return out, false, nil
	}
	if err := c.store.InsertCheckpoint(ctx, out); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			// Another replica signed the same size first; its checkpoint
			// says the same thing.
			return out, false, nil
		}
		return Checkpoint{}, false, fmt.Errorf("store audit checkpoint: %w", err)
	}
	return out, true, nil
}

// Run calls Checkpoint at once and then every interval until ctx is done,
// logging failures (a damaged log is logged every time, loudly, rather than
// stopping the loop). On shutdown it signs once more, with a short grace
// period, so entries from the last interval are covered. It returns nil
// when ctx ends.
func (c *Checkpointer) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("audit checkpoint interval must be positive, got %v", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.runOnce(ctx)
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			c.runOnce(final)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

func (c *Checkpointer) runOnce(ctx context.Context) {
	cp, made, err := c.Checkpoint(ctx)
	switch {
	case errors.Is(err, ErrTampered):
		c.log.Error("AUDIT LOG FAILED VERIFICATION; not signing", "err", err)
	case err != nil:
		if ctx.Err() == nil {
			c.log.Error("audit checkpoint", "err", err)
		}
	case made:
		// Logged at info so the signed roots also reach the log collector:
		// a copy outside the database that a later verification can be
		// compared with, should someone delete checkpoints and rewrite.
		c.log.Info("audit checkpoint signed", "size", cp.Size, "root", base64.StdEncoding.EncodeToString(cp.Root))
	}
}
