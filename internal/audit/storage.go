package audit

import (
	"context"
	"iter"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Checkpoint is a signed statement that the log had Size entries with the
// Merkle root Root. Note is the signed note itself and the only part that is
// trusted on verification; Size and Root are stored beside it for queries.
type Checkpoint struct {
	Size      int64     `json:"size"`
	Root      []byte    `json:"root"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// Reader reads the audit log. Verification and export use one Reader for
// the whole run, obtained from Store.Snapshot, so concurrent appends cannot
// make a consistent log look inconsistent halfway through.
type Reader interface {
	// Head returns the stored append state (size, compact range, last leaf).
	Head(ctx context.Context) (Head, error)
	// Entries yields every stored entry with seq >= from in seq order. It
	// streams (the log may hold millions of entries) and stops at the first
	// error, which it yields.
	Entries(ctx context.Context, from int64) iter.Seq2[Entry, error]
	// EntriesBetween yields, in seq order, the entries with from <= At < to
	// and seq < below.
	EntriesBetween(ctx context.Context, from, to time.Time, below int64) iter.Seq2[Entry, error]
	// LeafHashes returns the leaf hashes of entries [0, size) concatenated,
	// 32 bytes each, for building inclusion proofs. It fails if any seq in
	// the range is missing.
	LeafHashes(ctx context.Context, size int64) ([]byte, error)
	// Checkpoints yields stored checkpoints with Size >= minSize in size
	// order.
	Checkpoints(ctx context.Context, minSize int64) iter.Seq2[Checkpoint, error]
	// LatestCheckpoint returns the checkpoint with the largest size, or a
	// NotFound error when there is none.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// List returns one page of entries matching q, newest first.
	List(ctx context.Context, q Query) (Page, error)
}

// Store is the audit package's storage. Appending is not here: it happens
// through Appender inside each domain transaction.
type Store interface {
	Reader
	// Snapshot runs fn with a Reader that sees one consistent state of the
	// log for its whole duration.
	Snapshot(ctx context.Context, fn func(Reader) error) error
	// InsertCheckpoint stores cp; a Conflict error means a checkpoint of that
	// size exists already (another replica signed it first).
	InsertCheckpoint(ctx context.Context, cp Checkpoint) error
}

// Query filters an audit listing. Zero fields do not filter.
type Query struct {
	// From and To bound At: From <= At < To.
	From, To   time.Time
	ObjectType string
	ObjectID   string
	// ObjectIDs matches entries about any of these objects (a change and
	// its rollout, say); with ObjectID, about any of them all.
	ObjectIDs []string
	// Actor matches the actor's ID or name exactly.
	Actor  string
	Action string
	Limit  int
	Offset int
}

// MaxPage is the largest page a listing returns.
const MaxPage = 1000

// Page is one page of an audit listing plus the total that matched.
type Page struct {
	Entries []Entry `json:"entries"`
	Total   int     `json:"total"`
	Limit   int     `json:"limit"`
	Offset  int     `json:"offset"`
}

// ParseTime reads a time bound given by a person: an RFC 3339 time, or a
// date (YYYY-MM-DD) meaning the start of that day in UTC — or, with
// endOfDay, the start of the next, so a "to" date includes the whole day.
func ParseTime(s string, endOfDay bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, errs.E(errs.Invalid, "%q is neither an RFC 3339 time nor a date (YYYY-MM-DD)", s)
	}
	if endOfDay {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}
