package audit_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/audit"
)

// recordOf turns a stored entry back into the record that produced it.
func recordOf(e audit.Entry) audit.Record {
	rec := audit.Record{Actor: e.Actor, Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, Reason: e.Reason}
	if len(e.Before) > 0 {
		rec.Before = e.Before
	}
	if len(e.After) > 0 {
		rec.After = e.After
	}
	return rec
}

// rehash recomputes every hash and the head from the stored contents, as an
// attacker who knows the format would after editing an entry.
func (m *memStore) rehash(t testing.TB) {
	t.Helper()
	var head audit.Head
	for i, e := range m.entries {
		ne, next, err := audit.Next(head, recordOf(e), e.At)
		if err != nil {
			t.Fatalf("rehash %d: %v", i, err)
		}
		m.entries[i], head = ne, next
	}
	m.head = head
}

// fixture is a log of 10 entries with checkpoints at sizes 4 and 8.
func fixture(t *testing.T, s *audit.Signer) *memStore {
	m := newMemStore()
	m.append(t, 4)
	m.checkpoint(t, s)
	m.append(t, 4)
	m.checkpoint(t, s)
	m.append(t, 2)
	return m
}

func TestVerifyUntouched(t *testing.T) {
	s := newSigner(t)
	m := fixture(t, s)
	res, err := audit.Verify(context.Background(), m, s.Verifier())
	if err != nil {
		t.Fatalf("Verify() = %v; want nil", err)
	}
	root, _ := m.head.Root()
	if res.Entries != 10 || res.Checkpoints != 2 || res.Size != 10 || string(res.Root) != string(root) {
		t.Errorf("Verify() = %+v; want 10 entries, 2 checkpoints, size 10, root %x", res, root)
	}
}

func TestVerifyEmpty(t *testing.T) {
	s := newSigner(t)
	res, err := audit.Verify(context.Background(), newMemStore(), s.Verifier())
	if err != nil || res.Size != 0 || string(res.Root) != string(audit.EmptyRoot) {
		t.Errorf("Verify(empty) = %+v, %v; want size 0, empty root, nil", res, err)
	}
}

func TestVerifyTampered(t *testing.T) {
	other := newSigner(t)
	tests := []struct {
		name   string
		tamper func(t *testing.T, m *memStore, s *audit.Signer)
		want   audit.VerifyError // Detail is not compared
	}{
		{"alter after", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[5].After = json.RawMessage(`{"rev":99}`)
		}, audit.VerifyError{Seq: 5, Problem: audit.ProblemLeafHash}},
		{"alter actor", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[0].Actor.Name = "mallory"
		}, audit.VerifyError{Seq: 0, Problem: audit.ProblemLeafHash}},
		{"alter prev hash", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[3].PrevHash = m.entries[1].LeafHash
		}, audit.VerifyError{Seq: 3, Problem: audit.ProblemPrevHash}},
		{"alter stored root", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[7].RootHash = m.entries[6].RootHash
		}, audit.VerifyError{Seq: 7, Problem: audit.ProblemRootHash}},
		{"delete", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries = append(m.entries[:3], m.entries[4:]...)
		}, audit.VerifyError{Seq: 3, Problem: audit.ProblemMissing}},
		{"duplicate", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries = append(m.entries[:3], append([]audit.Entry{m.entries[2]}, m.entries[3:]...)...)
		}, audit.VerifyError{Seq: 2, Problem: audit.ProblemSequence}},
		{"reorder", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[2], m.entries[6] = m.entries[6], m.entries[2]
			m.entries[2].Seq, m.entries[6].Seq = 2, 6
		}, audit.VerifyError{Seq: 2, Problem: audit.ProblemPrevHash}},
		{"rewrite and rehash", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries[5].After = json.RawMessage(`{"rev":99}`)
			m.rehash(t)
		}, audit.VerifyError{Seq: 4, Checkpoint: 8, Problem: audit.ProblemCheckpointRoot}},
		{"truncate signed entries", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries = m.entries[:6]
			m.rehash(t)
		}, audit.VerifyError{Seq: 6, Checkpoint: 8, Problem: audit.ProblemMissing}},
		{"truncate without head", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.entries = m.entries[:9]
		}, audit.VerifyError{Seq: 9, Problem: audit.ProblemMissing}},
		{"append unrecorded", func(t *testing.T, m *memStore, _ *audit.Signer) {
			head := m.head
			m.append(t, 1)
			m.head = head
		}, audit.VerifyError{Seq: 10, Problem: audit.ProblemUnrecorded}},
		{"head last leaf", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.head.LastLeaf = m.entries[3].LeafHash
		}, audit.VerifyError{Seq: -1, Problem: audit.ProblemHead}},
		{"checkpoint note", func(t *testing.T, m *memStore, _ *audit.Signer) {
			old := base64.StdEncoding.EncodeToString(m.cps[0].Root)
			m.cps[0].Note = strings.Replace(m.cps[0].Note, old, base64.StdEncoding.EncodeToString(m.entries[2].RootHash), 1)
		}, audit.VerifyError{Seq: -1, Checkpoint: 4, Problem: audit.ProblemCheckpointSignature}},
		{"checkpoint root column", func(t *testing.T, m *memStore, _ *audit.Signer) {
			m.cps[1].Root = m.entries[2].RootHash
		}, audit.VerifyError{Seq: -1, Checkpoint: 8, Problem: audit.ProblemCheckpointRow}},
		{"checkpoint from another key", func(t *testing.T, m *memStore, _ *audit.Signer) {
			note, err := other.Sign(m.cps[1].Size, m.cps[1].Root)
			if err != nil {
				t.Fatal(err)
			}
			m.cps[1].Note = note
		}, audit.VerifyError{Seq: -1, Checkpoint: 8, Problem: audit.ProblemCheckpointSignature}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSigner(t)
			m := fixture(t, s)
			tt.tamper(t, m, s)
			_, err := audit.Verify(context.Background(), m, s.Verifier())
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify() = %v; want a *VerifyError", err)
			}
			if !errors.Is(err, audit.ErrTampered) {
				t.Errorf("errors.Is(Verify(), ErrTampered) = false; want true")
			}
			if ve.Seq != tt.want.Seq || ve.Checkpoint != tt.want.Checkpoint || ve.Problem != tt.want.Problem {
				t.Errorf("Verify() = seq %d, checkpoint %d, %v (%v); want seq %d, checkpoint %d, %v",
					ve.Seq, ve.Checkpoint, ve.Problem, err, tt.want.Seq, tt.want.Checkpoint, tt.want.Problem)
			}
		})
	}
}

func TestVerifyErrorMessage(t *testing.T) {
	tests := []struct {
		err  audit.VerifyError
		want string
	}{
		{audit.VerifyError{Seq: 41, Problem: audit.ProblemLeafHash}, "entry 41: leaf hash mismatch (content altered)"},
		{audit.VerifyError{Seq: -1, Checkpoint: 8, Problem: audit.ProblemCheckpointRow, Detail: "x"}, "checkpoint at size 8: checkpoint row disagrees with its signed note (altered): x"},
		{audit.VerifyError{Seq: -1, Problem: audit.ProblemHead}, "audit head does not match the log (altered)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.err, got, tt.want)
		}
	}
}

func TestVerifyNeedsKey(t *testing.T) {
	if _, err := audit.Verify(context.Background(), newMemStore(), nil); err == nil || errors.Is(err, audit.ErrTampered) {
		t.Errorf("Verify(nil key) = %v; want a non-tamper error", err)
	}
}
