package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Audit returns the audit log's view of the database: reads for
// verification, export and listing, and checkpoint storage. Appending stays
// in Tx.AppendAudit, inside each domain transaction.
func (db *DB) Audit() audit.Store {
	return auditStore{db: db, auditReader: auditReader{q: db.r}}
}

type auditStore struct {
	db *DB
	auditReader
}

type auditReader struct{ q querier }

// auditBatch is how many rows one keyset-paginated read fetches. Each batch
// is read completely before it is yielded, so the caller may run other
// queries on the same connection while it iterates.
const auditBatch = 2000

// Snapshot runs fn on a read-only transaction: REPEATABLE READ on
// PostgreSQL, and on SQLite (WAL) a read transaction, which sees one
// snapshot from its first read. Appends made meanwhile stay invisible, so a
// long verification never races with the server.
func (s auditStore) Snapshot(ctx context.Context, fn func(audit.Reader) error) error {
	opt := &sql.TxOptions{ReadOnly: true}
	if s.db.engine == Postgres {
		opt.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.r.BeginTx(ctx, opt)
	if err != nil {
		return fmt.Errorf("begin audit snapshot: %w", translate(err))
	}
	defer tx.Rollback() // read-only: nothing to commit
	return fn(auditReader{q: tx})
}

func (s auditStore) InsertCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	_, err := s.db.w.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, root_hash, note, created_at)
		VALUES ($1, $2, $3, $4)`, cp.Size, cp.Root, cp.Note, cp.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert audit checkpoint: %w", translate(err))
	}
	return nil
}

func (r auditReader) Head(ctx context.Context) (audit.Head, error) {
	var (
		h      audit.Head
		hashes []byte
	)
	err := r.q.QueryRowContext(ctx, `SELECT size, hashes, last_leaf FROM audit_head WHERE id = 1`).
		Scan(&h.Size, &hashes, &h.LastLeaf)
	if err != nil {
		return audit.Head{}, fmt.Errorf("read audit head: %w", translate(err))
	}
	// A damaged head is reported by verification as such, not as a read
	// error, so trailing bytes are kept as a short hash that cannot match.
	for i := 0; i < len(hashes); i += hashSize {
		h.Range = append(h.Range, hashes[i:min(i+hashSize, len(hashes))])
	}
	return h, nil
}

const auditCols = `seq, at_us, actor_kind, actor_id, actor_name, actor_addr, action, object_type,
	object_id, before_json, after_json, reason, prev_hash, leaf_hash, root_hash`

func scanEntry(r rowScanner) (audit.Entry, error) {
	var (
		e             audit.Entry
		at            int64
		before, after sql.NullString
	)
	err := r.Scan(&e.Seq, &at, &e.Actor.Kind, &e.Actor.ID, &e.Actor.Name, &e.Actor.Addr, &e.Action,
		&e.ObjectType, &e.ObjectID, &before, &after, &e.Reason, &e.PrevHash, &e.LeafHash, &e.RootHash)
	if err != nil {
		return e, err
	}
	e.At = time.UnixMicro(at).UTC()
	if before.Valid {
		e.Before = []byte(before.String)
	}
	if after.Valid {
		e.After = []byte(after.String)
	}
	if e.PrevHash == nil {
		e.PrevHash = []byte{}
	}
	return e, nil
}

// batches yields the rows of a keyset-paginated query: page(after) must
// return the rows after the key after, in key order, at most auditBatch of
// them. Each page is read fully before its rows are yielded.
func batches[T any](ctx context.Context, what string, first int64, page func(after int64) (*sql.Rows, error),
	scan func(*sql.Rows) (T, int64, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		after := first
		for {
			rows, err := page(after)
			if err != nil {
				yield(zero, fmt.Errorf("read %s: %w", what, translate(err)))
				return
			}
			buf := make([]T, 0, auditBatch)
			for rows.Next() {
				v, key, err := scan(rows)
				if err != nil {
					rows.Close()
					yield(zero, fmt.Errorf("read %s: %w", what, err))
					return
				}
				buf = append(buf, v)
				after = key
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				yield(zero, fmt.Errorf("read %s: %w", what, translate(err)))
				return
			}
			for _, v := range buf {
				if !yield(v, nil) {
					return
				}
			}
			if len(buf) < auditBatch {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(zero, err)
				return
			}
		}
	}
}

func scanEntryKey(rows *sql.Rows) (audit.Entry, int64, error) {
	e, err := scanEntry(rows)
	return e, e.Seq, err
}

// Entries pages by seq rather than holding one cursor open, so the caller
// can query in between (verification pulls checkpoints as it goes) even on
// the single connection of a PostgreSQL transaction.
func (r auditReader) Entries(ctx context.Context, from int64) iter.Seq2[audit.Entry, error] {
	return batches(ctx, "audit entries", from-1, func(after int64) (*sql.Rows, error) {
		return r.q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_entries
			WHERE seq > $1 ORDER BY seq LIMIT $2`, after, auditBatch)
	}, scanEntryKey)
}

func (r auditReader) EntriesBetween(ctx context.Context, from, to time.Time, below int64) iter.Seq2[audit.Entry, error] {
	return batches(ctx, "audit entries", -1, func(after int64) (*sql.Rows, error) {
		return r.q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_entries
			WHERE seq > $1 AND seq < $2 AND at_us >= $3 AND at_us < $4 ORDER BY seq LIMIT $5`,
			after, below, from.UnixMicro(), to.UnixMicro(), auditBatch)
	}, scanEntryKey)
}

func (r auditReader) LeafHashes(ctx context.Context, size int64) ([]byte, error) {
	// One streamed query: proofs need every leaf, and 32 bytes a row is
	// cheap next to the entries themselves.
	rows, err := r.q.QueryContext(ctx, `SELECT seq, leaf_hash FROM audit_entries WHERE seq < $1 ORDER BY seq`, size)
	if err != nil {
		return nil, fmt.Errorf("read audit leaf hashes: %w", translate(err))
	}
	defer rows.Close()
	out := make([]byte, 0, size*hashSize)
	var (
		next int64
		seq  int64
		leaf []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &leaf); err != nil {
			return nil, fmt.Errorf("read audit leaf hashes: %w", err)
		}
		if seq != next || len(leaf) != hashSize {
			return nil, errs.E(errs.Conflict, "the audit log is damaged at entry %d; run `patchward audit verify`", next)
		}
		out = append(out, leaf...)
		next++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit leaf hashes: %w", translate(err))
	}
	if next != size {
		return nil, errs.E(errs.Conflict, "the audit log is damaged at entry %d; run `patchward audit verify`", next)
	}
	return out, nil
}

const checkpointCols = `size, root_hash, note, created_at`

func scanCheckpoint(r rowScanner) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	if err := r.Scan(&cp.Size, &cp.Root, &cp.Note, &cp.CreatedAt); err != nil {
		return cp, err
	}
	cp.CreatedAt = cp.CreatedAt.UTC()
	return cp, nil
}

func (r auditReader) Checkpoints(ctx context.Context, minSize int64) iter.Seq2[audit.Checkpoint, error] {
	return batches(ctx, "audit checkpoints", minSize-1, func(after int64) (*sql.Rows, error) {
		return r.q.QueryContext(ctx, `SELECT `+checkpointCols+` FROM audit_checkpoints
			WHERE size > $1 ORDER BY size LIMIT $2`, after, auditBatch)
	}, func(rows *sql.Rows) (audit.Checkpoint, int64, error) {
		cp, err := scanCheckpoint(rows)
		return cp, cp.Size, err
	})
}

func (r auditReader) LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	cp, err := scanCheckpoint(r.q.QueryRowContext(ctx, `SELECT `+checkpointCols+` FROM audit_checkpoints
		ORDER BY size DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Checkpoint{}, errs.E(errs.NotFound, "no audit checkpoint yet")
	}
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("read latest audit checkpoint: %w", translate(err))
	}
	return cp, nil
}

// objectIDs is every object a query asks about.
func objectIDs(q audit.Query) []string {
	ids := slices.Clone(q.ObjectIDs)
	if q.ObjectID != "" {
		ids = append(ids, q.ObjectID)
	}
	return ids
}

// List counts and pages in two statements; the filters are the columns the
// UI offers, newest first by seq because times can tie.
func (r auditReader) List(ctx context.Context, q audit.Query) (audit.Page, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if !q.From.IsZero() {
		add("at_us >= ?", q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		add("at_us < ?", q.To.UnixMicro())
	}
	if q.ObjectType != "" {
		add("object_type = ?", q.ObjectType)
	}
	if ids := objectIDs(q); len(ids) > 0 {
		marks := make([]string, len(ids))
		for i, id := range ids {
			args = append(args, id)
			marks[i] = fmt.Sprintf("$%d", len(args))
		}
		where = append(where, "object_id IN ("+strings.Join(marks, ", ")+")")
	}
	if q.Actor != "" {
		add("(actor_id = ? OR actor_name = ?)", q.Actor)
	}
	if q.Action != "" {
		add("action = ?", q.Action)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	p := audit.Page{Limit: q.Limit, Offset: q.Offset, Entries: []audit.Entry{}}
	if err := r.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_entries`+cond, args...).Scan(&p.Total); err != nil {
		return audit.Page{}, fmt.Errorf("count audit entries: %w", translate(err))
	}
	n := len(args)
	rows, err := r.q.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_entries`+cond+
		fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d OFFSET $%d`, n+1, n+2), append(args, q.Limit, q.Offset)...)
	if err != nil {
		return audit.Page{}, fmt.Errorf("list audit entries: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return audit.Page{}, fmt.Errorf("list audit entries: %w", err)
		}
		p.Entries = append(p.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return audit.Page{}, fmt.Errorf("list audit entries: %w", translate(err))
	}
	return p, nil
}

// ExecRaw runs one statement directly on the writer connection, outside any
// transaction and past every domain rule. It exists for tests and tooling
// (the tamper suite plays a hostile database administrator with it); the
// application never calls it.
func (db *DB) ExecRaw(ctx context.Context, q string, args ...any) error {
	if _, err := db.w.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("exec raw: %w", err)
	}
	return nil
}
