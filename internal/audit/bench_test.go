package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// genLog is a large valid log kept compactly: entry content is regenerated
// from its seq on every read and only the hashes are stored, so a million
// entries fit in about 64 MB and the benchmark measures verification, not
// memory traffic.
type genLog struct {
	n              int64
	leaves, roots  []byte
	head           audit.Head
	cps            []audit.Checkpoint
	checkpointStep int64
}

var genBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func genRecord(i int64) (audit.Record, time.Time) {
	id := strconv.FormatInt(i%5000, 10)
	return audit.Record{
		Actor:  audit.Actor{Kind: audit.ActorUser, ID: "u" + strconv.FormatInt(i%17, 10), Name: "user", Addr: "10.1.2.3"},
		Action: "asset.update", ObjectType: "asset", ObjectID: "asset-" + id,
		Before: json.RawMessage(`{"id":"asset-` + id + `","criticality":"high","rev":` + strconv.FormatInt(i, 10) + `}`),
		After:  json.RawMessage(`{"id":"asset-` + id + `","criticality":"critical","rev":` + strconv.FormatInt(i+1, 10) + `}`),
	}, genBase.Add(time.Duration(i) * time.Millisecond)
}

func newGenLog(tb testing.TB, n, checkpointStep int64, s *audit.Signer) *genLog {
	tb.Helper()
	g := &genLog{n: n, leaves: make([]byte, 0, n*32), roots: make([]byte, 0, n*32), checkpointStep: checkpointStep}
	for i := range n {
		rec, at := genRecord(i)
		e, next, err := audit.Next(g.head, rec, at)
		if err != nil {
			tb.Fatal(err)
		}
		g.leaves = append(g.leaves, e.LeafHash...)
		g.roots = append(g.roots, e.RootHash...)
		g.head = next
		if (i+1)%checkpointStep == 0 {
			note, err := s.Sign(i+1, e.RootHash)
			if err != nil {
				tb.Fatal(err)
			}
			g.cps = append(g.cps, audit.Checkpoint{Size: i + 1, Root: e.RootHash, Note: note})
		}
	}
	return g
}

func (g *genLog) entry(i int64) audit.Entry {
	rec, at := genRecord(i)
	e := audit.Entry{Seq: i, At: at, Actor: rec.Actor, Action: rec.Action, ObjectType: rec.ObjectType,
		ObjectID: rec.ObjectID, Before: rec.Before.(json.RawMessage), After: rec.After.(json.RawMessage),
		PrevHash: []byte{}, LeafHash: g.leaves[i*32 : i*32+32], RootHash: g.roots[i*32 : i*32+32]}
	if i > 0 {
		e.PrevHash = g.leaves[(i-1)*32 : i*32]
	}
	return e
}

func (g *genLog) Head(context.Context) (audit.Head, error) { return g.head, nil }

func (g *genLog) Entries(_ context.Context, from int64) iter.Seq2[audit.Entry, error] {
	return func(yield func(audit.Entry, error) bool) {
		for i := from; i < g.n; i++ {
			if !yield(g.entry(i), nil) {
				return
			}
		}
	}
}

func (g *genLog) EntriesBetween(context.Context, time.Time, time.Time, int64) iter.Seq2[audit.Entry, error] {
	panic("not used")
}

func (g *genLog) LeafHashes(context.Context, int64) ([]byte, error) { panic("not used") }

func (g *genLog) Checkpoints(_ context.Context, minSize int64) iter.Seq2[audit.Checkpoint, error] {
	return func(yield func(audit.Checkpoint, error) bool) {
		for _, cp := range g.cps {
			if cp.Size >= minSize && !yield(cp, nil) {
				return
			}
		}
	}
}

func (g *genLog) LatestCheckpoint(context.Context) (audit.Checkpoint, error) {
	if len(g.cps) == 0 {
		return audit.Checkpoint{}, errs.E(errs.NotFound, "none")
	}
	return g.cps[len(g.cps)-1], nil
}

func (g *genLog) List(context.Context, audit.Query) (audit.Page, error) { panic("not used") }

// BenchmarkVerify verifies a log of a million entries, held in memory, with
// a signed checkpoint every thousand entries: the cost of `audit verify`
// without the database.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int64{1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s := newSigner(b)
			start := time.Now()
			g := newGenLog(b, n, 1000, s)
			b.Logf("generated %d entries in %v", n, time.Since(start))
			ctx := context.Background()
			for b.Loop() {
				res, err := audit.Verify(ctx, g, s.Verifier())
				if err != nil || res.Entries != n {
					b.Fatalf("Verify() = %+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkNext is the in-memory cost of building one entry (hashing and
// advancing the compact range), the CPU part of every append.
func BenchmarkNext(b *testing.B) {
	var head audit.Head
	var i int64
	for b.Loop() {
		rec, at := genRecord(i)
		_, next, err := audit.Next(head, rec, at)
		if err != nil {
			b.Fatal(err)
		}
		head = next
		i++
	}
}
