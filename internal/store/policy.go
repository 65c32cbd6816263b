package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Policies returns the policy versions' view of the database.
func (db *DB) Policies() policy.Store {
	return policyStore{db: db, policyReader: policyReader{q: db.r}}
}

type policyStore struct {
	db *DB
	policyReader
}

type policyReader struct{ q querier }

type policyTx struct {
	*Tx
	policyReader
}

func (s policyStore) Transact(ctx context.Context, fn func(policy.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error { return fn(policyTx{Tx: t, policyReader: policyReader{q: t.tx}}) })
}

const policyVersionCols = `version, source, sha256, applied_by, applied_at, comment`

func scanPolicyVersion(r rowScanner) (policy.Version, error) {
	var v policy.Version
	err := r.Scan(&v.Version, &v.Source, &v.SHA256, &v.AppliedBy, &v.AppliedAt, &v.Comment)
	v.AppliedAt = v.AppliedAt.UTC()
	return v, err
}

func (r policyReader) Current(ctx context.Context) (policy.Version, error) {
	v, err := scanPolicyVersion(r.q.QueryRowContext(ctx,
		`SELECT `+policyVersionCols+` FROM policy_versions ORDER BY version DESC LIMIT 1`))
	if err != nil {
		return v, notFound(err, "policy version", "current")
	}
	return v, nil
}

func (r policyReader) GetVersion(ctx context.Context, n int) (policy.Version, error) {
	v, err := scanPolicyVersion(r.q.QueryRowContext(ctx,
		`SELECT `+policyVersionCols+` FROM policy_versions WHERE version = $1`, n))
	if err != nil {
		return v, notFound(err, "policy version", fmt.Sprint(n))
	}
	return v, nil
}

// Versions leaves out each version's source: the list is the history page,
// and a source is tens of kilobytes.
func (r policyReader) Versions(ctx context.Context) ([]policy.Version, error) {
	rows, err := r.q.QueryContext(ctx,
		`SELECT version, '', sha256, applied_by, applied_at, comment FROM policy_versions ORDER BY version DESC`)
	if err != nil {
		return nil, fmt.Errorf("list policy versions: %w", translate(err))
	}
	defer rows.Close()
	out := []policy.Version{}
	for rows.Next() {
		v, err := scanPolicyVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("scan policy version: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policy versions: %w", translate(err))
	}
	return out, nil
}

func (t policyTx) Insert(ctx context.Context, v policy.Version) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO policy_versions (`+policyVersionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		v.Version, v.Source, v.SHA256, v.AppliedBy, v.AppliedAt.UTC(), v.Comment)
	if err != nil {
		err = translate(err)
		if errors.Is(err, errs.ErrConflict) {
			return errs.Wrap(errs.Conflict, err, "policy version %d was applied by someone else meanwhile", v.Version)
		}
		return fmt.Errorf("insert policy version %d: %w", v.Version, err)
	}
	return nil
}

func (t policyTx) Latest(ctx context.Context) (int, error) {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM policy_versions`).Scan(&n); err != nil {
		return 0, fmt.Errorf("latest policy version: %w", translate(err))
	}
	return n, nil
}
