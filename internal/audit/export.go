package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/patchward/patchward/internal/errs"
)

// BundleFormat identifies the export bundle's JSON layout, so an auditor's
// tool can refuse a layout it does not know instead of misreading it.
const BundleFormat = "patchward-audit-export/v1"

// Bundle is an audit export that an auditor can verify offline with nothing
// but the installation's public key: each entry carries an RFC 6962
// inclusion proof against one signed checkpoint.
type Bundle struct {
	Format     string    `json:"format"`
	ExportedAt time.Time `json:"exported_at"`
	// From and To are the requested range: From <= At < To.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// VerifierKey is the key the checkpoint verifies with. It is a
	// convenience: the auditor must check the bundle with a key obtained
	// independently, and VerifyBundle compares the two.
	VerifierKey string `json:"verifier_key"`
	// Checkpoint is the signed checkpoint note every proof leads to.
	Checkpoint string        `json:"checkpoint"`
	Entries    []BundleEntry `json:"entries"`
}

// BundleEntry is one exported entry and its inclusion proof.
type BundleEntry struct {
	Entry
	// InclusionProof is the RFC 6962 audit path from the entry's leaf to the
	// checkpoint's root.
	InclusionProof [][]byte `json:"inclusion_proof"`
}

// Export builds a bundle of the entries with from <= At < to, with proofs
// against the latest signed checkpoint. Entries appended after that
// checkpoint are left out because nothing signed covers them yet; sign a
// checkpoint first to include them. It reads every leaf hash up to the
// checkpoint (32 bytes each) to build the proofs, and refuses to export a log
// whose leaves do not add up to the signed root.
func Export(ctx context.Context, r Reader, key *Verifier, from, to, now time.Time) (*Bundle, error) {
	if !to.After(from) {
		return nil, errs.E(errs.Invalid, "the export range must end after it starts")
	}
	cp, err := r.LatestCheckpoint(ctx)
	if errors.Is(err, errs.ErrNotFound) {
		if head, herr := r.Head(ctx); herr == nil && head.Size == 0 {
			return nil, errs.E(errs.Invalid, "the audit log is empty; there is nothing to export")
		}
		return nil, errs.E(errs.Conflict, "no signed audit checkpoint yet; run `patchward audit checkpoint` first")
	}
	if err != nil {
		return nil, fmt.Errorf("export audit log: %w", err)
	}
	size, root, err := key.Open(cp.Note)
	if err != nil {
		return nil, &VerifyError{Seq: -1, Checkpoint: cp.Size, Problem: ProblemCheckpointSignature, Detail: err.Error()}
	}
	leaves, err := r.LeafHashes(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("export audit log: %w", err)
	}
	t := buildTree(leaves)
	if got := t.root(); !bytes.Equal(got, root) {
		return nil, &VerifyError{Seq: -1, Checkpoint: size, Problem: ProblemCheckpointRoot,
			Detail: "the stored leaf hashes do not add up to the latest signed root; run `patchward audit verify`"}
	}
	b := &Bundle{Format: BundleFormat, ExportedAt: now.UTC(), From: from.UTC(), To: to.UTC(),
		VerifierKey: key.Key(), Checkpoint: cp.Note, Entries: []BundleEntry{}}
	for e, err := range r.EntriesBetween(ctx, from, to, size) {
		if err != nil {
			return nil, fmt.Errorf("export audit log: %w", err)
		}
		leaf, err := e.ComputeLeafHash()
		if err != nil {
			return nil, fmt.Errorf("export audit log: %w", err)
		}
		if !bytes.Equal(leaf, t.leaf(e.Seq)) || !bytes.Equal(leaf, e.LeafHash) {
			return nil, &VerifyError{Seq: e.Seq, Problem: ProblemLeafHash,
				Detail: "run `patchward audit verify`"}
		}
		p, err := t.inclusion(uint64(e.Seq), uint64(size))
		if err != nil {
			return nil, fmt.Errorf("export audit log: entry %d: %w", e.Seq, err)
		}
		e.PrevHash = nonNilBytes(e.PrevHash)
		b.Entries = append(b.Entries, BundleEntry{Entry: e, InclusionProof: p})
	}
	return b, nil
}

// tree holds every perfect-subtree hash of a log: levels[k] is the
// concatenated 32-byte hashes of the subtrees of 2^k leaves, left to right.
// Flat byte slices keep a million-leaf tree at about 64 MB.
type tree struct {
	size   uint64
	levels [][]byte
}

const hashLen = 32

func buildTree(leaves []byte) tree {
	t := tree{size: uint64(len(leaves) / hashLen), levels: [][]byte{leaves}}
	for lv := leaves; len(lv) >= 2*hashLen; {
		up := make([]byte, 0, len(lv)/2)
		for i := 0; i+2*hashLen <= len(lv); i += 2 * hashLen {
			up = append(up, rfc6962.DefaultHasher.HashChildren(lv[i:i+hashLen], lv[i+hashLen:i+2*hashLen])...)
		}
		t.levels = append(t.levels, up)
		lv = up
	}
	return t
}

func (t tree) node(id compact.NodeID) []byte {
	if int(id.Level) >= len(t.levels) {
		return nil
	}
	lv := t.levels[id.Level]
	off := id.Index * hashLen
	if off+hashLen > uint64(len(lv)) {
		return nil
	}
	return lv[off : off+hashLen]
}

func (t tree) leaf(seq int64) []byte { return t.node(compact.NewNodeID(0, uint64(seq))) }

func (t tree) root() []byte {
	if t.size == 0 {
		return EmptyRoot
	}
	ids := compact.RangeNodes(0, t.size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		hashes[i] = t.node(id)
	}
	r, err := rangeFactory.NewRange(0, t.size, hashes)
	if err != nil {
		panic(fmt.Sprintf("audit: compact range of tree: %v", err))
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("audit: root of tree: %v", err))
	}
	return root
}

// inclusion returns the inclusion proof for leaf index in the tree of size.
func (t tree) inclusion(index, size uint64) ([][]byte, error) {
	if size > t.size {
		return nil, fmt.Errorf("tree has %d leaves, not %d", t.size, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if hashes[i] = t.node(id); hashes[i] == nil {
			return nil, fmt.Errorf("missing node %+v", id)
		}
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// MaxBundleBytes bounds what ParseBundle reads, so a hostile file cannot
// exhaust memory.
const MaxBundleBytes = 1 << 30

// ParseBundle decodes an export bundle strictly: unknown fields, trailing
// data and a foreign format are errors, because the input comes from
// outside and a lenient parse could hide an edit.
func ParseBundle(r io.Reader) (*Bundle, error) {
	lr := &io.LimitedReader{R: r, N: MaxBundleBytes + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var b Bundle
	err := dec.Decode(&b)
	if lr.N <= 0 {
		return nil, errs.E(errs.TooLarge, "audit export bundle is larger than %d bytes", MaxBundleBytes)
	}
	if err != nil {
		// The decoder's message is about the auditor's own file, so it is
		// safe and useful to show.
		return nil, errs.E(errs.Invalid, "not a valid audit export bundle: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errs.E(errs.Invalid, "not a valid audit export bundle: data after the bundle")
	}
	if b.Format != BundleFormat {
		return nil, errs.E(errs.Invalid, "unknown audit export format %q (want %q)", b.Format, BundleFormat)
	}
	return &b, nil
}

// BundleResult summarises a verified bundle.
type BundleResult struct {
	Entries        int    `json:"entries"`
	CheckpointSize int64  `json:"checkpoint_size"`
	Root           []byte `json:"root"`
	// First and Last are the lowest and highest seq in the bundle.
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Gaps counts places where consecutive bundle entries skip seqs. Entries
	// are stamped in seq order, so a time range normally maps to a run of
	// consecutive seqs: a gap means entries were left out of the bundle,
	// which the proofs alone cannot reveal.
	Gaps int `json:"gaps"`
}

// VerifyBundle checks b offline with key, an independently obtained public
// key: the checkpoint's signature, each entry's leaf hash recomputed from its
// content, its inclusion proof against the signed root, the time range,
// strictly increasing seqs and, between consecutive seqs, the hash link.
func VerifyBundle(b *Bundle, key *Verifier) (BundleResult, error) {
	if b.VerifierKey != key.Key() {
		return BundleResult{}, errs.E(errs.Invalid, "the bundle names verifier key %q, not the one given", b.VerifierKey)
	}
	size, root, err := key.Open(b.Checkpoint)
	if err != nil {
		return BundleResult{}, &VerifyError{Seq: -1, Problem: ProblemCheckpointSignature, Detail: err.Error()}
	}
	var (
		prev *BundleEntry
		gaps int
	)
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Seq < 0 || e.Seq >= size {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemInclusion,
				Detail: fmt.Sprintf("not within the checkpoint's %d entries", size)}
		}
		if prev != nil && e.Seq <= prev.Seq {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemSequence, Detail: fmt.Sprintf("found after entry %d", prev.Seq)}
		}
		if e.At.Before(b.From) || !e.At.Before(b.To) {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemRange}
		}
		if prev != nil && e.Seq == prev.Seq+1 && !bytes.Equal(nonNilBytes(e.PrevHash), prev.LeafHash) {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemPrevHash}
		}
		if prev != nil && e.Seq != prev.Seq+1 {
			gaps++
		}
		leaf, err := e.ComputeLeafHash()
		if err != nil || !bytes.Equal(leaf, e.LeafHash) {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemLeafHash}
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Seq), uint64(size), leaf, e.InclusionProof, root); err != nil {
			return BundleResult{}, &VerifyError{Seq: e.Seq, Problem: ProblemInclusion, Detail: err.Error()}
		}
		prev = e
	}
	res := BundleResult{Entries: len(b.Entries), CheckpointSize: size, Root: root, Gaps: gaps}
	if len(b.Entries) > 0 {
		res.First, res.Last = b.Entries[0].Seq, b.Entries[len(b.Entries)-1].Seq
	}
	return res, nil
}
