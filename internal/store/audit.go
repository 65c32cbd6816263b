package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"github.com/patchward/patchward/internal/audit"
)

const hashSize = 32

// AppendAudit appends rec to the audit log inside the transaction. The head
// row is locked first so concurrent writers on PostgreSQL replicas append one
// at a time; on SQLite the writer connection already serialises them.
func (t *Tx) AppendAudit(ctx context.Context, rec audit.Record) error {
	if t.head == nil {
		head, err := t.readAuditHead(ctx)
		if err != nil {
			return err
		}
		t.head = &head
	}
	e, next, err := audit.Next(*t.head, rec, t.db.now())
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO audit_entries
		(seq, at_us, actor_kind, actor_id, actor_name, actor_addr, action, object_type, object_id,
		 before_json, after_json, reason, prev_hash, leaf_hash, root_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		e.Seq, e.At.UnixMicro(), e.Actor.Kind, e.Actor.ID, e.Actor.Name, e.Actor.Addr, e.Action,
		e.ObjectType, e.ObjectID, nullJSON(e.Before), nullJSON(e.After), e.Reason, e.PrevHash,
		e.LeafHash, e.RootHash)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", translate(err))
	}
	t.head = &next
	return nil
}

// readAuditHead reads the head; on PostgreSQL it locks the row until the
// transaction ends, so appends from concurrent transactions queue.
func (t *Tx) readAuditHead(ctx context.Context) (audit.Head, error) {
	q := `SELECT size, hashes, last_leaf FROM audit_head WHERE id = 1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE`
	}
	var (
		head   audit.Head
		hashes []byte
	)
	if err := t.tx.QueryRowContext(ctx, q).Scan(&head.Size, &hashes, &head.LastLeaf); err != nil {
		return head, fmt.Errorf("read audit head: %w", translate(err))
	}
	if len(hashes)%hashSize != 0 {
		return head, fmt.Errorf("audit head: stored range has %d bytes, not a multiple of %d", len(hashes), hashSize)
	}
	for i := 0; i < len(hashes); i += hashSize {
		head.Range = append(head.Range, hashes[i:i+hashSize])
	}
	if len(head.LastLeaf) == 0 {
		head.LastLeaf = nil
	}
	return head, nil
}

// writeAuditHead stores the head the transaction's appends reached, if it
// appended anything.
func (t *Tx) writeAuditHead(ctx context.Context) error {
	if t.head == nil {
		return nil
	}
	_, err := t.tx.ExecContext(ctx, `UPDATE audit_head SET size = $1, hashes = $2, last_leaf = $3 WHERE id = 1`,
		t.head.Size, bytes.Join(t.head.Range, nil), t.head.LastLeaf)
	if err != nil {
		return fmt.Errorf("advance audit head: %w", translate(err))
	}
	return nil
}

func nullJSON(b []byte) sql.NullString {
	if b == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}
