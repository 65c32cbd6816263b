package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/transparency-dev/merkle/compact"
)

// Problem is what verification found wrong.
type Problem int

// The problems, roughly in the order an entry is checked.
const (
	// ProblemMissing: an entry that must exist is absent (deleted, or the
	// log was truncated).
	ProblemMissing Problem = iota + 1
	// ProblemSequence: an entry's seq is out of order or repeated.
	ProblemSequence
	// ProblemPrevHash: an entry does not link to its predecessor's leaf hash
	// (an entry inserted, removed or moved).
	ProblemPrevHash
	// ProblemLeafHash: an entry's content no longer hashes to its leaf hash.
	ProblemLeafHash
	// ProblemRootHash: the Merkle root stored with an entry is not the root
	// of the tree up to it.
	ProblemRootHash
	// ProblemCheckpointSignature: a stored checkpoint's signed note does not
	// verify with the audit key.
	ProblemCheckpointSignature
	// ProblemCheckpointRow: a stored checkpoint's size or root columns
	// disagree with its signed note.
	ProblemCheckpointRow
	// ProblemCheckpointRoot: the recomputed tree root at a checkpoint's size
	// is not the signed one: entries were rewritten with consistently
	// recomputed hashes, which only a signature can reveal.
	ProblemCheckpointRoot
	// ProblemUnrecorded: an entry exists beyond the size the head records.
	ProblemUnrecorded
	// ProblemHead: the head's hashes do not describe the log.
	ProblemHead
	// ProblemInclusion: an exported entry's inclusion proof does not lead
	// to the checkpoint's root.
	ProblemInclusion
	// ProblemRange: an exported entry lies outside the bundle's time range.
	ProblemRange
)

var problemText = map[Problem]string{
	ProblemMissing:             "entry missing (deleted)",
	ProblemSequence:            "entry out of sequence (reordered or duplicated)",
	ProblemPrevHash:            "previous-hash link broken (entry inserted, deleted or reordered)",
	ProblemLeafHash:            "leaf hash mismatch (content altered)",
	ProblemRootHash:            "stored tree root mismatch (hashes rewritten)",
	ProblemCheckpointSignature: "checkpoint signature invalid (checkpoint forged or altered)",
	ProblemCheckpointRow:       "checkpoint row disagrees with its signed note (altered)",
	ProblemCheckpointRoot:      "tree root does not match the signed checkpoint (entries rewritten and re-hashed)",
	ProblemUnrecorded:          "entry not recorded in the audit head (inserted outside Patchward)",
	ProblemHead:                "audit head does not match the log (altered)",
	ProblemInclusion:           "inclusion proof does not verify against the checkpoint",
	ProblemRange:               "entry outside the exported time range",
}

// String describes the problem and its likely cause in a few words, for
// the "verification FAILED" message.
func (p Problem) String() string {
	if s, ok := problemText[p]; ok {
		return s
	}
	return fmt.Sprintf("problem %d", int(p))
}

// ErrTampered matches every *VerifyError with errors.Is, for callers that
// only need to know that the log failed verification.
var ErrTampered = errors.New("audit log failed verification")

// VerifyError reports the first thing wrong with the log.
type VerifyError struct {
	// Seq is the first bad entry, or -1 when the problem is not in an entry
	// (a checkpoint or the head). For ProblemCheckpointRoot it is the first
	// entry not covered by an earlier valid checkpoint: the rewrite happened
	// in [Seq, Checkpoint), and denser checkpoints narrow that range.
	Seq int64
	// Checkpoint is the size of the checkpoint involved, or 0.
	Checkpoint int64
	Problem    Problem
	// Detail adds specifics, e.g. the seq found where another was expected.
	Detail string
}

// Error reads "entry 41: leaf hash mismatch (content altered)", naming the
// checkpoint instead when no entry is at fault.
func (e *VerifyError) Error() string {
	var b bytes.Buffer
	switch {
	case e.Seq >= 0:
		fmt.Fprintf(&b, "entry %d: %s", e.Seq, e.Problem)
	case e.Checkpoint > 0:
		fmt.Fprintf(&b, "checkpoint at size %d: %s", e.Checkpoint, e.Problem)
	default:
		b.WriteString(e.Problem.String())
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *VerifyError) Is(target error) bool { return target == ErrTampered }

// Result summarises a successful verification.
type Result struct {
	// Entries is how many entries were checked.
	Entries int64 `json:"entries"`
	// Checkpoints is how many signed checkpoints were checked.
	Checkpoints int `json:"checkpoints"`
	// Size and Root describe the verified tree.
	Size int64  `json:"size"`
	Root []byte `json:"root"`
}

// Verify checks the whole log r against the audit key: every entry's seq,
// link, leaf hash and stored root; every stored checkpoint's signature and
// root; and the head. It streams entries, so memory does not grow with the
// log. A failure is a *VerifyError naming the first bad entry; other errors
// are storage failures.
func Verify(ctx context.Context, r Reader, key *Verifier) (Result, error) {
	_, res, err := verifyFrom(ctx, r, key, newChain())
	return res, err
}

// chain is the verified state after a prefix of the log: the compact range
// over its leaves and the last leaf hash. Appending one entry at a time keeps
// the cost of recomputing every root O(log n).
type chain struct {
	rng  *compact.Range
	last []byte
}

func newChain() chain { return chain{rng: rangeFactory.NewEmptyRange(0), last: []byte{}} }

func (c chain) size() int64 { return int64(c.rng.End()) }

func (c chain) clone() chain {
	h := make([][]byte, len(c.rng.Hashes()))
	copy(h, c.rng.Hashes())
	r, err := rangeFactory.NewRange(0, c.rng.End(), h)
	if err != nil {
		// The hashes came from a valid range of the same size.
		panic(fmt.Sprintf("audit: clone compact range: %v", err))
	}
	return chain{rng: r, last: c.last}
}

func (c chain) root() []byte {
	if c.size() == 0 {
		return EmptyRoot
	}
	root, err := c.rng.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("audit: root of compact range: %v", err))
	}
	return root
}

// add checks e as the next entry and appends it.
func (c *chain) add(e *Entry) *VerifyError {
	n := c.size()
	switch {
	case e.Seq > n:
		return &VerifyError{Seq: n, Problem: ProblemMissing, Detail: fmt.Sprintf("the next stored entry is %d", e.Seq)}
	case e.Seq < n:
		return &VerifyError{Seq: e.Seq, Problem: ProblemSequence, Detail: fmt.Sprintf("found after entry %d", n-1)}
	}
	// The link is checked before the content so that an inserted or moved
	// entry is reported as such rather than as altered content.
	if !bytes.Equal(nonNilBytes(e.PrevHash), c.last) {
		return &VerifyError{Seq: n, Problem: ProblemPrevHash}
	}
	leaf, err := e.ComputeLeafHash()
	if err != nil {
		return &VerifyError{Seq: n, Problem: ProblemLeafHash, Detail: err.Error()}
	}
	if !bytes.Equal(leaf, e.LeafHash) {
		return &VerifyError{Seq: n, Problem: ProblemLeafHash}
	}
	if err := c.rng.Append(leaf, nil); err != nil {
		panic(fmt.Sprintf("audit: append to compact range: %v", err))
	}
	c.last = leaf
	if !bytes.Equal(c.root(), e.RootHash) {
		return &VerifyError{Seq: n, Problem: ProblemRootHash}
	}
	return nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ctxCheckEvery is how many entries pass between checks for cancellation.
const ctxCheckEvery = 4096

// verifyFrom extends the verified prefix c with every entry after it,
// checking the checkpoints larger than c and finally the head. Checkpoints
// are merged in as the recomputed tree reaches their size, so they stream
// too.
func verifyFrom(ctx context.Context, r Reader, key *Verifier, c chain) (chain, Result, error) {
	if key == nil {
		return c, Result{}, errors.New("verify audit log: no verifier key")
	}
	res := Result{}
	head, err := r.Head(ctx)
	if err != nil {
		return c, res, fmt.Errorf("verify audit log: %w", err)
	}
	nextCP, stop := iter.Pull2(r.Checkpoints(ctx, c.size()+1))
	defer stop()
	cp, cpErr, cpOK := nextCP()
	// covered is the size up to which a valid checkpoint (or the trusted
	// starting state) vouches for the log.
	covered := c.size()
	// checkCheckpoints checks every pending checkpoint whose size the
	// recomputed tree has reached; final is set after the last entry.
	checkCheckpoints := func(final bool) error {
		for cpOK {
			if cpErr != nil {
				return fmt.Errorf("verify audit log: read checkpoints: %w", cpErr)
			}
			if cp.Size > c.size() && !final {
				return nil
			}
			size, root, err := key.Open(cp.Note)
			if err != nil {
				return &VerifyError{Seq: -1, Checkpoint: cp.Size, Problem: ProblemCheckpointSignature, Detail: err.Error()}
			}
			if size != cp.Size || !bytes.Equal(root, cp.Root) {
				return &VerifyError{Seq: -1, Checkpoint: cp.Size, Problem: ProblemCheckpointRow,
					Detail: fmt.Sprintf("the signed note is for size %d", size)}
			}
			if cp.Size > c.size() {
				return &VerifyError{Seq: c.size(), Checkpoint: cp.Size, Problem: ProblemMissing,
					Detail: fmt.Sprintf("a signed checkpoint covers %d entries but the log ends at %d (truncated)", cp.Size, c.size())}
			}
			if !bytes.Equal(root, c.root()) {
				return &VerifyError{Seq: covered, Checkpoint: cp.Size, Problem: ProblemCheckpointRoot,
					Detail: fmt.Sprintf("entries %d to %d do not add up to the root signed at size %d", covered, cp.Size-1, cp.Size)}
			}
			covered = cp.Size
			res.Checkpoints++
			cp, cpErr, cpOK = nextCP()
		}
		return nil
	}
	for e, err := range r.Entries(ctx, c.size()) {
		if err != nil {
			return c, res, fmt.Errorf("verify audit log: read entries: %w", err)
		}
		if ve := c.add(&e); ve != nil {
			return c, res, ve
		}
		res.Entries++
		if err := checkCheckpoints(false); err != nil {
			return c, res, err
		}
		if res.Entries%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return c, res, err
			}
		}
	}
	if err := checkCheckpoints(true); err != nil {
		return c, res, err
	}
	n := c.size()
	switch {
	case head.Size > n:
		return c, res, &VerifyError{Seq: n, Problem: ProblemMissing,
			Detail: fmt.Sprintf("the audit head records %d entries but the log ends at %d (truncated)", head.Size, n)}
	case head.Size < n:
		return c, res, &VerifyError{Seq: head.Size, Problem: ProblemUnrecorded,
			Detail: fmt.Sprintf("the audit head records %d entries but the log has %d", head.Size, n)}
	}
	if !bytes.Equal(nonNilBytes(head.LastLeaf), c.last) || !equalHashes(head.Range, c.rng.Hashes()) {
		return c, res, &VerifyError{Seq: -1, Problem: ProblemHead}
	}
	res.Size, res.Root = n, c.root()
	return c, res, nil
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
