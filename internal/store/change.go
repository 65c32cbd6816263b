package store

import (
	"context"
	"database/sql"
	"encoding/json"

	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Changes returns the change-control view of the database: change records,
// approvals, transitions, test runs and content-addressed evidence.
func (db *DB) Changes() change.Store {
	return changeStore{db: db, changeReader: changeReader{q: db.r, engine: db.engine}}
}

type changeStore struct {
	db *DB
	changeReader
}

type changeReader struct {
	q      querier
	engine Engine
}

type changeTx struct {
	*Tx
	changeReader
}

func (s changeStore) Transact(ctx context.Context, fn func(change.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error {
		return fn(changeTx{Tx: t, changeReader: changeReader{q: t.tx, engine: s.db.engine}})
	})
}

// Change records.

const changeCols = `id, title, type, state, requested_by, requested_by_id, risk_tier, risk_rank, risk_score,
	go_no_go_by, doc, revision, created_at, updated_at`

const changeColCount = 14

func changeArgs(c *change.Change) ([]any, error) {
	doc, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("change %s: encode: %w", c.ID, err)
	}
	var gonogo sql.NullTime
	if c.Emergency != nil {
		gonogo = zeroNull(c.Emergency.GoNoGoBy)
	}
	return []any{c.ID, c.Title, string(c.Type), string(c.State), c.RequestedBy, c.RequestedByID, c.Risk.Tier,
		c.Risk.Rank, c.Risk.Score, gonogo, string(doc), c.Revision, c.CreatedAt.UTC(), c.UpdatedAt.UTC()}, nil
}

// scanChange reads a row; the columns, not the document, are authoritative
// for what they hold, so a listing filter and the record always agree.
func scanChange(r rowScanner) (change.Change, error) {
	var (
		c                          change.Change
		id, title, typ, state, doc string
		by, byID, tier             string
		rank, rev                  int
		score                      float64
		gonogo                     sql.NullTime
		created, updated           time.Time
	)
	if err := r.Scan(&id, &title, &typ, &state, &by, &byID, &tier, &rank, &score, &gonogo, &doc, &rev, &created, &updated); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return c, fmt.Errorf("change %s: decode: %w", id, err)
	}
	c.ID, c.Title, c.Type, c.State = id, title, change.Type(typ), change.State(state)
	c.RequestedBy, c.RequestedByID, c.Revision = by, byID, rev
	c.CreatedAt, c.UpdatedAt = created.UTC(), updated.UTC()
	return c, nil
}

func (r changeReader) Get(ctx context.Context, id string) (change.Change, error) {
	c, err := scanChange(r.q.QueryRowContext(ctx, `SELECT `+changeCols+` FROM changes WHERE id = $1`, id))
	if err != nil {
		return c, notFound(err, "change", id)
	}
	return c, nil
}

// Lock reads a change and, on PostgreSQL, locks its row until the
// transaction ends, so two approvers (or an approver and an editor) on
// different replicas queue instead of both deciding on the same state.
// SQLite's single writer already serialises write transactions.
func (t changeTx) Lock(ctx context.Context, id string) (change.Change, error) {
	q := `SELECT ` + changeCols + ` FROM changes WHERE id = $1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE`
	}
	c, err := scanChange(t.tx.QueryRowContext(ctx, q, id))
	if err != nil {
		return c, notFound(err, "change", id)
	}
	return c, nil
}

func (r changeReader) List(ctx context.Context, f change.Filter) ([]change.Change, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, vs ...any) {
		for _, v := range vs {
			args = append(args, v)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.State != "" {
		add(`state = ?`, string(f.State))
	}
	if f.Type != "" {
		add(`type = ?`, string(f.Type))
	}
	if f.Asset != "" {
		add(`id IN (SELECT change_id FROM change_targets WHERE kind = 'asset' AND target_id = ?
			UNION SELECT t.change_id FROM change_targets t JOIN asset_group_members m ON m.group_id = t.target_id
			WHERE t.kind = 'group' AND m.asset_id = ?)`, f.Asset, f.Asset)
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit, max(f.Offset, 0))
	q := fmt.Sprintf(`SELECT %s FROM changes%s ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`,
		changeCols, where, len(args)-1, len(args))
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", translate(err))
	}
	defer rows.Close()
	out := []change.Change{}
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, fmt.Errorf("scan change: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list changes: %w", translate(err))
	}
	return out, nil
}

func (t changeTx) Insert(ctx context.Context, c change.Change) error {
	if c.Revision != 1 {
		return errs.E(errs.Internal, "change %s: a new change has revision 1, not %d", c.ID, c.Revision)
	}
	args, err := changeArgs(&c)
	if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO changes (`+changeCols+`) VALUES `+valuesList(t.db.engine, 1, changeColCount), args...); err != nil {
		return fmt.Errorf("store change %s: %w", c.ID, translate(err))
	}
	return t.putTargets(ctx, c)
}

// errChangeChanged is an optimistic-lock miss on a change.
var errChangeChanged = errs.E(errs.Conflict, "the change was changed by someone else; reload and retry")

func (t changeTx) Update(ctx context.Context, c change.Change) error {
	args, err := changeArgs(&c)
	if err != nil {
		return err
	}
	cols := strings.Split(changeCols, ",")
	sets := make([]string, 0, len(cols)-1)
	for i, col := range cols[1:] {
		sets = append(sets, fmt.Sprintf("%s = $%d", strings.TrimSpace(col), i+2))
	}
	res, err := t.tx.ExecContext(ctx, fmt.Sprintf(`UPDATE changes SET %s WHERE id = $1 AND revision = $%d`,
		strings.Join(sets, ", "), changeColCount+1), append(args, c.Revision-1)...)
	if err != nil {
		return fmt.Errorf("store change %s: %w", c.ID, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store change %s: %w", c.ID, translate(err))
	}
	if n != 1 {
		return fmt.Errorf("store change %s: %w", c.ID, errChangeChanged)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM change_targets WHERE change_id = $1`, c.ID); err != nil {
		return fmt.Errorf("store change %s targets: %w", c.ID, translate(err))
	}
	return t.putTargets(ctx, c)
}

func (t changeTx) putTargets(ctx context.Context, c change.Change) error {
	var args []any
	for _, a := range c.Targets.Assets {
		args = append(args, c.ID, "asset", a)
	}
	for _, g := range c.Targets.Groups {
		args = append(args, c.ID, "group", g)
	}
	if len(args) == 0 {
		return nil
	}
	q := `INSERT INTO change_targets (change_id, kind, target_id) VALUES ` + valuesList(t.db.engine, len(args)/3, 3) + ` ON CONFLICT DO NOTHING`
	if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store change %s targets: %w", c.ID, translate(err))
	}
	return nil
}

// Approvals.

const approvalCols = `change_id, approver, approver_id, role, grant_role, decision, note, at, change_revision, expired_at, expired_why`

func (r changeReader) Approvals(ctx context.Context, changeID string) ([]change.Approval, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+approvalCols+` FROM change_approvals WHERE change_id = $1 ORDER BY id`, changeID)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", translate(err))
	}
	defer rows.Close()
	out := []change.Approval{}
	for rows.Next() {
		var (
			a       change.Approval
			expired sql.NullTime
		)
		if err := rows.Scan(&a.ChangeID, &a.By, &a.ByID, &a.Role, &a.Grant, &a.Decision, &a.Note, &a.At,
			&a.ChangeRevision, &expired, &a.ExpiredWhy); err != nil {
			return nil, fmt.Errorf("scan approval: %w", err)
		}
		a.At, a.ExpiredAt = a.At.UTC(), timePtr(expired)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", translate(err))
	}
	return out, nil
}

func (t changeTx) AddApproval(ctx context.Context, a change.Approval) error {
	// ON CONFLICT DO NOTHING rather than a unique violation, which would
	// abort the whole transaction on PostgreSQL.
	res, err := t.tx.ExecContext(ctx, `INSERT INTO change_approvals (`+approvalCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
		a.ChangeID, a.By, a.ByID, a.Role, a.Grant, a.Decision, a.Note, a.At.UTC(), a.ChangeRevision,
		nullTime(a.ExpiredAt), a.ExpiredWhy)
	if err != nil {
		return fmt.Errorf("store approval: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store approval: %w", translate(err))
	} else if n != 1 {
		return errs.E(errs.Conflict, "%s already decided on revision %d of change %s", a.By, a.ChangeRevision, a.ChangeID)
	}
	return nil
}

func (t changeTx) ExpireApprovals(ctx context.Context, changeID string, at time.Time, why string) (int, error) {
	res, err := t.tx.ExecContext(ctx, `UPDATE change_approvals SET expired_at = $2, expired_why = $3
		WHERE change_id = $1 AND expired_at IS NULL`, changeID, at.UTC(), why)
	if err != nil {
		return 0, fmt.Errorf("expire approvals: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expire approvals: %w", translate(err))
	}
	return int(n), nil
}

// Transitions.

func (t changeTx) AddTransition(ctx context.Context, tr change.Transition) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO change_transitions (change_id, from_state, to_state, action, actor, why, at, revision)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tr.ChangeID, string(tr.From), string(tr.To), string(tr.Action),
		tr.By, tr.Why, tr.At.UTC(), tr.Revision)
	if err != nil {
		return fmt.Errorf("store transition: %w", translate(err))
	}
	return nil
}

func (r changeReader) Transitions(ctx context.Context, changeID string) ([]change.Transition, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT change_id, from_state, to_state, action, actor, why, at, revision
		FROM change_transitions WHERE change_id = $1 ORDER BY id`, changeID)
	if err != nil {
		return nil, fmt.Errorf("change history: %w", translate(err))
	}
	defer rows.Close()
	out := []change.Transition{}
	for rows.Next() {
		var tr change.Transition
		if err := rows.Scan(&tr.ChangeID, &tr.From, &tr.To, &tr.Action, &tr.By, &tr.Why, &tr.At, &tr.Revision); err != nil {
			return nil, fmt.Errorf("scan transition: %w", err)
		}
		tr.At = tr.At.UTC()
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("change history: %w", translate(err))
	}
	return out, nil
}

// Test runs.

func (t changeTx) AddTestRun(ctx context.Context, run change.TestRun) error {
	js, err := json.Marshal(run.Results)
	if err != nil {
		return fmt.Errorf("test run %s: encode results: %w", run.ID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO change_test_runs (id, change_id, run_by, at, results) VALUES ($1, $2, $3, $4, $5)`,
		run.ID, run.ChangeID, run.RunBy, run.At.UTC(), string(js))
	if err != nil {
		return fmt.Errorf("store test run: %w", translate(err))
	}
	return nil
}

func (r changeReader) TestRuns(ctx context.Context, changeID string) ([]change.TestRun, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT id, change_id, run_by, at, results FROM change_test_runs
		WHERE change_id = $1 ORDER BY at, id`, changeID)
	if err != nil {
		return nil, fmt.Errorf("list test runs: %w", translate(err))
	}
	defer rows.Close()
	out := []change.TestRun{}
	for rows.Next() {
		var (
			run change.TestRun
			js  string
		)
		if err := rows.Scan(&run.ID, &run.ChangeID, &run.RunBy, &run.At, &js); err != nil {
			return nil, fmt.Errorf("scan test run: %w", err)
		}
		run.At = run.At.UTC()
		if err := json.Unmarshal([]byte(js), &run.Results); err != nil {
			return nil, fmt.Errorf("test run %s: results: %w", run.ID, err)
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list test runs: %w", translate(err))
	}
	return out, nil
}

// Evidence.

const evidenceCols = `change_id, sha256, name, media_type, size, uploaded_by, at`

func scanEvidence(r rowScanner, extra ...any) (change.Evidence, error) {
	var e change.Evidence
	err := r.Scan(append([]any{&e.ChangeID, &e.SHA256, &e.Name, &e.MediaType, &e.Size, &e.UploadedBy, &e.At}, extra...)...)
	e.At = e.At.UTC()
	return e, err
}

func (t changeTx) PutEvidence(ctx context.Context, e change.Evidence, content []byte) error {
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO evidence_blobs (sha256, size, content) VALUES ($1, $2, $3)
		ON CONFLICT (sha256) DO NOTHING`, e.SHA256, len(content), content); err != nil {
		return fmt.Errorf("store evidence bytes: %w", translate(err))
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO change_evidence (`+evidenceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.ChangeID, e.SHA256, e.Name, e.MediaType, e.Size, e.UploadedBy, e.At.UTC())
	if err != nil {
		return fmt.Errorf("store evidence: %w", translate(err))
	}
	return nil
}

func (r changeReader) EvidenceList(ctx context.Context, changeID string) ([]change.Evidence, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+evidenceCols+` FROM change_evidence WHERE change_id = $1 ORDER BY at, sha256`, changeID)
	if err != nil {
		return nil, fmt.Errorf("list evidence: %w", translate(err))
	}
	defer rows.Close()
	out := []change.Evidence{}
	for rows.Next() {
		e, err := scanEvidence(rows)
		if err != nil {
			return nil, fmt.Errorf("scan evidence: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list evidence: %w", translate(err))
	}
	return out, nil
}

func (r changeReader) Evidence(ctx context.Context, changeID, sum string) (change.Evidence, []byte, error) {
	var content []byte
	e, err := scanEvidence(r.q.QueryRowContext(ctx, `SELECT `+qualify(evidenceCols, "e")+`, b.content
		FROM change_evidence e JOIN evidence_blobs b ON b.sha256 = e.sha256
		WHERE e.change_id = $1 AND e.sha256 = $2`, changeID, sum), &content)
	if err != nil {
		return change.Evidence{}, nil, notFound(err, "evidence", sum)
	}
	return e, content, nil
}

// Targets.

// TargetFacts reads the facts of every asset the targets reach: the assets
// named and the members of the groups named, each once.
func (r changeReader) TargetFacts(ctx context.Context, t change.Targets) ([]policy.AssetFacts, error) {
	if t.Empty() {
		return nil, nil
	}
	if err := r.checkExist(ctx, "assets", "assets", t.Assets); err != nil {
		return nil, err
	}
	if err := r.checkExist(ctx, "asset_groups", "groups", t.Groups); err != nil {
		return nil, err
	}
	var (
		args  []any
		conds []string
	)
	if len(t.Assets) > 0 {
		conds = append(conds, `a.id IN (`+placeholders(&args, t.Assets)+`)`)
	}
	if len(t.Groups) > 0 {
		conds = append(conds, `a.id IN (SELECT asset_id FROM asset_group_members WHERE group_id IN (`+placeholders(&args, t.Groups)+`))`)
	}
	where := strings.Join(conds, ` OR `)
	rows, err := r.q.QueryContext(ctx, `SELECT `+subjectAssetCols+` FROM assets a WHERE `+where+` ORDER BY a.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read target assets: %w", translate(err))
	}
	var out []policy.AssetFacts
	idx := map[string]int{}
	for rows.Next() {
		var a policy.AssetFacts
		if err := rows.Scan(&a.ID, &a.Name, &a.Type, &a.Site, &a.NetworkZone, &a.Exposure, &a.Criticality, &a.SafetyImpact,
			&a.DataClass, &a.PHI, &a.RegulatedDevice, &a.Restriction, &a.OSName, &a.Make, &a.Model); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan target asset: %w", err)
		}
		idx[a.ID] = len(out)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read target assets: %w", translate(err))
	}
	if len(out) == 0 {
		return out, nil
	}
	// Tags and groups of the same assets, selected by the same condition
	// rather than by a list of every ID found: a group of ten thousand
	// assets stays one small statement.
	for _, m := range []struct {
		q   string
		set func(a *policy.AssetFacts, v string)
	}{
		{`SELECT asset_id, tag FROM asset_tags WHERE asset_id IN (SELECT a.id FROM assets a WHERE %s) ORDER BY asset_id, tag`,
			func(a *policy.AssetFacts, v string) { a.Tags = append(a.Tags, v) }},
		{`SELECT asset_id, group_id FROM asset_group_members WHERE asset_id IN (SELECT a.id FROM assets a WHERE %s) ORDER BY asset_id, group_id`,
			func(a *policy.AssetFacts, v string) { a.Groups = append(a.Groups, v) }},
	} {
		rows, err := r.q.QueryContext(ctx, fmt.Sprintf(m.q, where), args...)
		if err != nil {
			return nil, fmt.Errorf("read target assets: %w", translate(err))
		}
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan target asset: %w", err)
			}
			if i, ok := idx[id]; ok {
				m.set(&out[i], v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read target assets: %w", translate(err))
		}
	}
	return out, nil
}

// checkExist refuses IDs that name no row of table, naming them.
func (r changeReader) checkExist(ctx context.Context, table, field string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var args []any
	rows, err := r.q.QueryContext(ctx, `SELECT id FROM `+table+` WHERE id IN (`+placeholders(&args, ids)+`)`, args...)
	if err != nil {
		return fmt.Errorf("check %s: %w", table, translate(err))
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("check %s: %w", table, err)
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check %s: %w", table, translate(err))
	}
	var missing []string
	for _, id := range ids {
		if !found[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		var v errs.Validation
		v.Add("targets."+field, "no such %s: %s", strings.TrimSuffix(field, "s"), strings.Join(missing, ", "))
		return v.Err("invalid targets")
	}
	return nil
}

// placeholders appends vs to args and returns their $N placeholders.
func placeholders(args *[]any, vs []string) string {
	ph := make([]string, len(vs))
	for i, v := range vs {
		*args = append(*args, v)
		ph[i] = fmt.Sprintf("$%d", len(*args))
	}
	return strings.Join(ph, ", ")
}
