package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

func TestCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t)
	m := newMemStore()
	c := audit.NewCheckpointer(m, s, m.now, nil)

	if _, made, err := c.Checkpoint(ctx); err != nil || made {
		t.Fatalf("Checkpoint(empty log) = %v, %v; want false, nil", made, err)
	}
	m.append(t, 3)
	cp, made, err := c.Checkpoint(ctx)
	if err != nil || !made || cp.Size != 3 {
		t.Fatalf("Checkpoint() = size %d, %v, %v; want 3, true, nil", cp.Size, made, err)
	}
	if size, root, err := s.Verifier().Open(cp.Note); err != nil || size != 3 || !bytes.Equal(root, cp.Root) {
		t.Errorf("Open(checkpoint note) = %d, %x, %v; want 3, %x, nil", size, root, err, cp.Root)
	}
	if _, made, err := c.Checkpoint(ctx); err != nil || made {
		t.Errorf("Checkpoint(unchanged) = %v, %v; want false, nil", made, err)
	}
	m.append(t, 2)
	if cp, made, err := c.Checkpoint(ctx); err != nil || !made || cp.Size != 5 {
		t.Errorf("Checkpoint(grown) = size %d, %v, %v; want 5, true, nil", cp.Size, made, err)
	}
	if _, err := audit.Verify(ctx, m, s.Verifier()); err != nil {
		t.Errorf("Verify() after checkpoints = %v; want nil", err)
	}

	// Another replica signing the same size first is not an error.
	m.append(t, 1)
	m.failInsert = errs.E(errs.Conflict, "exists")
	if _, made, err := c.Checkpoint(ctx); err != nil || made {
		t.Errorf("Checkpoint(conflict) = %v, %v; want false, nil", made, err)
	}
}

// TestCheckpointRefusesTampered checks that neither a fresh Checkpointer (full
// verification) nor a running one (incremental) signs a tampered head.
func TestCheckpointRefusesTampered(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		warm   bool // a checkpoint was made before the tampering
		tamper func(t *testing.T, m *memStore)
	}{
		{"fresh, old entry altered", false, func(t *testing.T, m *memStore) {
			m.entries[1].After = json.RawMessage(`{"rev":42}`)
			m.rehash(t)
		}},
		{"running, new entry altered", true, func(t *testing.T, m *memStore) {
			m.append(t, 2)
			m.entries[len(m.entries)-1].Action = "asset.delete"
		}},
		{"running, unrecorded append", true, func(t *testing.T, m *memStore) {
			head := m.head
			m.append(t, 1)
			m.head = head
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSigner(t)
			m := newMemStore()
			m.append(t, 4)
			m.checkpoint(t, s) // signed by an earlier process
			m.append(t, 2)
			c := audit.NewCheckpointer(m, s, m.now, nil)
			if tt.warm {
				if _, _, err := c.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := len(m.cps)
			tt.tamper(t, m)
			_, made, err := c.Checkpoint(ctx)
			if !errors.Is(err, audit.ErrTampered) || made {
				t.Errorf("Checkpoint(tampered) = %v, %v; want false, ErrTampered", made, err)
			}
			if len(m.cps) != before {
				t.Errorf("checkpoints stored = %d; want %d", len(m.cps), before)
			}
		})
	}
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSigner(t)
		m := newMemStore()
		m.now = time.Now // the bubble's fake clock
		c := audit.NewCheckpointer(m, s, nil, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		m.append(t, 2)
		go func() { done <- c.Run(ctx, time.Minute) }()

		synctest.Wait()
		if got := len(m.stored()); got != 1 {
			t.Fatalf("checkpoints after start = %d; want 1", got)
		}
		m.append(t, 3)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if got := len(m.stored()); got != 1 {
			t.Errorf("checkpoints before the minute = %d; want 1", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(m.stored()); got != 2 || m.stored()[1].Size != 5 {
			t.Errorf("checkpoints after the minute = %d; want 2, the last of size 5", got)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if got := len(m.stored()); got != 2 {
			t.Errorf("checkpoints with no appends = %d; want still 2", got)
		}
		// Entries from the last interval are signed on shutdown.
		m.append(t, 1)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v; want nil after cancel", err)
		}
		if cps := m.stored(); cps[len(cps)-1].Size != 6 {
			t.Errorf("last checkpoint after shutdown = size %d; want 6", cps[len(cps)-1].Size)
		}
	})
}

func TestRunRejectsBadInterval(t *testing.T) {
	c := audit.NewCheckpointer(newMemStore(), newSigner(t), nil, nil)
	if err := c.Run(t.Context(), 0); err == nil {
		t.Errorf("Run(every 0) = nil; want an error")
	}
}
