package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// exportFixture returns a log of n entries (one a minute from 08:01) with a
// checkpoint over all of them, and a bundle of entries [from, to).
func exportFixture(t testing.TB, n int, from, to time.Time) (*audit.Signer, *memStore, *audit.Bundle) {
	t.Helper()
	s := newSigner(t)
	m := newMemStore()
	m.append(t, n)
	m.checkpoint(t, s)
	b, err := audit.Export(context.Background(), m, s.Verifier(), from, to, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("Export() = %v", err)
	}
	return s, m, b
}

var day = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestExportRoundTrip(t *testing.T) {
	// Every range within a tree of each size, so proofs cover left, right
	// and perfect subtrees.
	for _, n := range []int{1, 2, 3, 7, 8, 13} {
		for lo := 0; lo < n; lo++ {
			from := day.Add(8*time.Hour + time.Duration(lo+1)*time.Minute)
			s, _, b := exportFixture(t, n, from, day.Add(24*time.Hour))
			if len(b.Entries) != n-lo || b.Entries[0].Seq != int64(lo) {
				t.Fatalf("Export(n=%d, from entry %d) = %d entries; want %d starting at %d", n, lo, len(b.Entries), n-lo, lo)
			}
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(b); err != nil {
				t.Fatal(err)
			}
			parsed, err := audit.ParseBundle(&buf)
			if err != nil {
				t.Fatalf("ParseBundle(n=%d) = %v", n, err)
			}
			res, err := audit.VerifyBundle(parsed, s.Verifier())
			if err != nil || res.Entries != n-lo || res.CheckpointSize != int64(n) || res.Gaps != 0 || res.First != int64(lo) || res.Last != int64(n-1) {
				t.Errorf("VerifyBundle(n=%d, lo=%d) = %+v, %v; want %d entries %d to %d, size %d, no gaps", n, lo, res, err, n-lo, lo, n-1, n)
			}
		}
	}
}

func TestExportSkipsUnsigned(t *testing.T) {
	s := newSigner(t)
	m := newMemStore()
	m.append(t, 3)
	m.checkpoint(t, s)
	m.append(t, 2)
	b, err := audit.Export(context.Background(), m, s.Verifier(), day, day.Add(24*time.Hour), day)
	if err != nil || len(b.Entries) != 3 {
		t.Fatalf("Export() = %v entries, %v; want the 3 signed entries", len(b.Entries), err)
	}
}

func TestExportErrors(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t)
	m := newMemStore()
	m.append(t, 3)
	if _, err := audit.Export(ctx, m, s.Verifier(), day, day.Add(time.Hour*24), day); errs.KindOf(err) != errs.Conflict {
		t.Errorf("Export(no checkpoint) = %v; want a Conflict error", err)
	}
	m.checkpoint(t, s)
	if _, err := audit.Export(ctx, m, s.Verifier(), day, day, day); errs.KindOf(err) != errs.Invalid {
		t.Errorf("Export(empty range) = %v; want an Invalid error", err)
	}
	m.entries[1].Reason = "edited"
	if _, err := audit.Export(ctx, m, s.Verifier(), day, day.Add(time.Hour*24), day); !errors.Is(err, audit.ErrTampered) {
		t.Errorf("Export(tampered) = %v; want ErrTampered", err)
	}
}

func TestVerifyBundleTampered(t *testing.T) {
	other := newSigner(t)
	tests := []struct {
		name   string
		tamper func(b *audit.Bundle)
		want   audit.Problem // 0: any non-tamper error
		seq    int64
	}{
		{"content", func(b *audit.Bundle) { b.Entries[2].ObjectID = "other" }, audit.ProblemLeafHash, 2},
		{"content and leaf hash", func(b *audit.Bundle) {
			b.Entries[2].ObjectID = "other"
			b.Entries[2].LeafHash, _ = b.Entries[2].ComputeLeafHash()
		}, audit.ProblemInclusion, 2},
		{"proof", func(b *audit.Bundle) { b.Entries[1].InclusionProof[0] = b.Entries[1].LeafHash }, audit.ProblemInclusion, 1},
		{"seq", func(b *audit.Bundle) { b.Entries[3].Seq = 99 }, audit.ProblemInclusion, 99},
		{"reorder", func(b *audit.Bundle) { b.Entries[0], b.Entries[1] = b.Entries[1], b.Entries[0] }, audit.ProblemSequence, 0},
		{"drop and relink", func(b *audit.Bundle) { b.Entries[2].PrevHash = b.Entries[0].LeafHash }, audit.ProblemPrevHash, 2},
		{"outside range", func(b *audit.Bundle) { b.To = b.Entries[4].At }, audit.ProblemRange, 4},
		{"checkpoint", func(b *audit.Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n8\n", "\n9\n", 1) }, audit.ProblemCheckpointSignature, -1},
		{"other key", func(b *audit.Bundle) { b.VerifierKey = other.Verifier().Key() }, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, b := exportFixture(t, 8, day, day.Add(24*time.Hour))
			tt.tamper(b)
			_, err := audit.VerifyBundle(b, s.Verifier())
			var ve *audit.VerifyError
			switch {
			case err == nil:
				t.Fatalf("VerifyBundle() = nil; want an error")
			case tt.want == 0:
				if errors.As(err, &ve) {
					t.Errorf("VerifyBundle() = %v; want a plain error", err)
				}
			case !errors.As(err, &ve):
				t.Errorf("VerifyBundle() = %v; want a *VerifyError", err)
			case ve.Problem != tt.want || ve.Seq != tt.seq:
				t.Errorf("VerifyBundle() = seq %d, %v; want seq %d, %v", ve.Seq, ve.Problem, tt.seq, tt.want)
			}
		})
	}
}

// TestVerifyBundleGaps: leaving entries out keeps every proof valid, so it
// is reported as gaps rather than as a failure.
func TestVerifyBundleGaps(t *testing.T) {
	s, _, b := exportFixture(t, 8, day, day.Add(24*time.Hour))
	b.Entries = append(b.Entries[:2], b.Entries[4:]...)
	res, err := audit.VerifyBundle(b, s.Verifier())
	if err != nil || res.Gaps != 1 || res.Entries != 6 {
		t.Errorf("VerifyBundle(entries 2-3 dropped) = %+v, %v; want 6 entries, 1 gap, nil", res, err)
	}
}

func TestParseBundleStrict(t *testing.T) {
	_, _, b := exportFixture(t, 2, day, day.Add(24*time.Hour))
	good, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"unknown field": strings.Replace(string(good), `"format"`, `"extra":1,"format"`, 1),
		"trailing data": string(good) + "{}",
		"wrong format":  strings.Replace(string(good), audit.BundleFormat, "other/v9", 1),
		"not json":      "checkpoint",
		"empty":         "",
	}
	for name, in := range tests {
		if _, err := audit.ParseBundle(strings.NewReader(in)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseBundle(%s) = %v; want an Invalid error", name, err)
		}
	}
}

// FuzzParseBundle feeds arbitrary bytes through the offline verifier, which
// reads files an auditor received from elsewhere: it must reject or accept,
// never panic, and never accept an entry whose content does not hash to an
// included leaf.
func FuzzParseBundle(f *testing.F) {
	s, _, b := exportFixture(f, 5, day, day.Add(24*time.Hour))
	good, err := json.Marshal(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"` + audit.BundleFormat + `","entries":[{"seq":-1}]}`))
	f.Add([]byte(`{"format":"` + audit.BundleFormat + `","checkpoint":"patchward audit log\n18446744073709551615\nAAAA\n\n— x AAAAAAAA\n"}`))
	key := s.Verifier()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := audit.ParseBundle(bytes.NewReader(data))
		if err != nil {
			return
		}
		if _, err := audit.VerifyBundle(b, key); err != nil {
			return
		}
		for _, e := range b.Entries {
			leaf, err := e.ComputeLeafHash()
			if err != nil || !bytes.Equal(leaf, e.LeafHash) {
				t.Fatalf("VerifyBundle accepted entry %d whose content does not hash to its leaf", e.Seq)
			}
		}
	})
}
