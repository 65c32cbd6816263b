package audit_test

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// memStore is a hand-written in-memory audit.Store. Tests tamper with its
// fields directly, as a database administrator would with SQL.
type memStore struct {
	mu      sync.Mutex
	entries []audit.Entry // in seq order, as a query ORDER BY seq returns them
	head    audit.Head
	cps     []audit.Checkpoint // in size order
	now     func() time.Time
	// failInsert, when set, is returned by InsertCheckpoint.
	failInsert error
}

func newMemStore() *memStore {
	t := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return &memStore{now: func() time.Time { t = t.Add(time.Minute); return t }}
}

// append logs n records the way a domain transaction would.
func (m *memStore) append(t testing.TB, n int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for range n {
		i := len(m.entries)
		rec := audit.Record{Actor: audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "alice", Addr: "10.0.0.7"},
			Action: "asset.update", ObjectType: "asset", ObjectID: fmt.Sprintf("a%d", i%7),
			Before: map[string]any{"rev": i}, After: map[string]any{"rev": i + 1}}
		e, next, err := audit.Next(m.head, rec, m.now())
		if err != nil {
			t.Fatalf("Next(%d): %v", i, err)
		}
		m.entries = append(m.entries, e)
		m.head = next
	}
}

func (m *memStore) Snapshot(ctx context.Context, fn func(audit.Reader) error) error { return fn(m) }

func (m *memStore) InsertCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failInsert != nil {
		return m.failInsert
	}
	for _, c := range m.cps {
		if c.Size == cp.Size {
			return errs.E(errs.Conflict, "checkpoint exists")
		}
	}
	m.cps = append(m.cps, cp)
	slices.SortFunc(m.cps, func(a, b audit.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return nil
}

// stored returns the stored checkpoints, safely while a Checkpointer runs.
func (m *memStore) stored() []audit.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cps)
}

func (m *memStore) Head(ctx context.Context) (audit.Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.head, nil
}

func (m *memStore) snapshotEntries() []audit.Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.entries)
}

func (m *memStore) Entries(ctx context.Context, from int64) iter.Seq2[audit.Entry, error] {
	es := m.snapshotEntries()
	return func(yield func(audit.Entry, error) bool) {
		for _, e := range es {
			if e.Seq >= from && !yield(e, nil) {
				return
			}
		}
	}
}

func (m *memStore) EntriesBetween(ctx context.Context, from, to time.Time, below int64) iter.Seq2[audit.Entry, error] {
	es := m.snapshotEntries()
	return func(yield func(audit.Entry, error) bool) {
		for _, e := range es {
			if e.Seq < below && !e.At.Before(from) && e.At.Before(to) && !yield(e, nil) {
				return
			}
		}
	}
}

func (m *memStore) LeafHashes(ctx context.Context, size int64) ([]byte, error) {
	var out []byte
	for i, e := range m.snapshotEntries() {
		if int64(i) == size {
			break
		}
		if e.Seq != int64(i) {
			return nil, errs.E(errs.Conflict, "damaged at %d", i)
		}
		out = append(out, e.LeafHash...)
	}
	return out, nil
}

func (m *memStore) Checkpoints(ctx context.Context, minSize int64) iter.Seq2[audit.Checkpoint, error] {
	m.mu.Lock()
	cps := slices.Clone(m.cps)
	m.mu.Unlock()
	return func(yield func(audit.Checkpoint, error) bool) {
		for _, cp := range cps {
			if cp.Size >= minSize && !yield(cp, nil) {
				return
			}
		}
	}
}

func (m *memStore) LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cps) == 0 {
		return audit.Checkpoint{}, errs.E(errs.NotFound, "no checkpoint")
	}
	return m.cps[len(m.cps)-1], nil
}

func (m *memStore) List(ctx context.Context, q audit.Query) (audit.Page, error) {
	var match []audit.Entry
	for _, e := range slices.Backward(m.snapshotEntries()) {
		if q.ObjectID == "" || e.ObjectID == q.ObjectID {
			match = append(match, e)
		}
	}
	p := audit.Page{Total: len(match), Limit: q.Limit, Offset: q.Offset}
	p.Entries = match[min(q.Offset, len(match)):min(q.Offset+q.Limit, len(match))]
	return p, nil
}

// newSigner returns a signer on a fresh key.
func newSigner(t testing.TB) *audit.Signer {
	t.Helper()
	skey, err := audit.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

// checkpoint signs the store's current head directly.
func (m *memStore) checkpoint(t testing.TB, s *audit.Signer) {
	t.Helper()
	root, err := m.head.Root()
	if err != nil {
		t.Fatal(err)
	}
	note, err := s.Sign(m.head.Size, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InsertCheckpoint(context.Background(), audit.Checkpoint{Size: m.head.Size, Root: root, Note: note, CreatedAt: m.now()}); err != nil {
		t.Fatal(err)
	}
}
