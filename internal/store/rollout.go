package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Rollouts returns the rollout engine's view of the database: rollouts,
// their waves and items, the deployment log, and the asset facts planning
// reads.
func (db *DB) Rollouts() deploy.RolloutStore {
	return rolloutStore{db: db, rolloutReader: rolloutReader{q: db.r, engine: db.engine}}
}

type rolloutStore struct {
	db *DB
	rolloutReader
}

type rolloutReader struct {
	q      querier
	engine Engine
}

type rolloutTx struct {
	*Tx
	rolloutReader
}

func (s rolloutStore) TransactRollout(ctx context.Context, fn func(deploy.RolloutTx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error {
		return fn(rolloutTx{Tx: t, rolloutReader: rolloutReader{q: t.tx, engine: s.db.engine}})
	})
}

// ClaimRollout is one conditional UPDATE: on PostgreSQL a second replica's
// UPDATE waits for the first's row lock and then finds the lease taken; on
// SQLite the single writer runs them one after the other.
func (s rolloutStore) ClaimRollout(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	res, err := s.db.w.ExecContext(ctx, `UPDATE rollouts SET lease_owner = $2, lease_until = $3
		WHERE id = $1 AND (lease_owner = '' OR lease_owner = $2 OR lease_until IS NULL OR lease_until < $4)`,
		id, owner, until.UTC(), now.UTC())
	if err != nil {
		return false, fmt.Errorf("claim rollout %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim rollout %s: %w", id, err)
	}
	return n == 1, nil
}

func (s rolloutStore) RenewRollout(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	res, err := s.db.w.ExecContext(ctx, `UPDATE rollouts SET lease_until = $3 WHERE id = $1 AND lease_owner = $2`, id, owner, until.UTC())
	if err != nil {
		return false, fmt.Errorf("renew the lease of rollout %s: %w", id, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew the lease of rollout %s: %w", id, err)
	}
	return n == 1, nil
}

func (s rolloutStore) ReleaseRollout(ctx context.Context, id, owner string) error {
	if _, err := s.db.w.ExecContext(ctx, `UPDATE rollouts SET lease_owner = '', lease_until = NULL WHERE id = $1 AND lease_owner = $2`, id, owner); err != nil {
		return fmt.Errorf("release rollout %s: %w", id, translate(err))
	}
	return nil
}

const rolloutCols = `id, change_id, change_type, emergency, state, reason, policy_sha, job_seconds, created_by,
	created_at, updated_at, finished_at, revision`

func scanRollout(r rowScanner) (deploy.Rollout, error) {
	var (
		ro       deploy.Rollout
		state    string
		secs     int64
		finished sql.NullTime
	)
	if err := r.Scan(&ro.ID, &ro.ChangeID, &ro.ChangeType, &ro.Emergency, &state, &ro.Reason, &ro.PolicySHA, &secs,
		&ro.CreatedBy, &ro.CreatedAt, &ro.UpdatedAt, &finished, &ro.Revision); err != nil {
		return ro, err
	}
	ro.State, ro.JobDuration = deploy.RolloutState(state), time.Duration(secs)*time.Second
	ro.CreatedAt, ro.UpdatedAt, ro.FinishedAt = ro.CreatedAt.UTC(), ro.UpdatedAt.UTC(), timePtr(finished)
	return ro, nil
}

func (r rolloutReader) GetRollout(ctx context.Context, id string) (deploy.Rollout, error) {
	ro, err := scanRollout(r.q.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id))
	if err != nil {
		return ro, notFound(err, "rollout", id)
	}
	return ro, r.loadWaves(ctx, &ro)
}

func (r rolloutReader) RolloutByChange(ctx context.Context, changeID string) (deploy.Rollout, error) {
	ro, err := scanRollout(r.q.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE change_id = $1`, changeID))
	if err != nil {
		return ro, notFound(err, "rollout of change", changeID)
	}
	return ro, r.loadWaves(ctx, &ro)
}

// LockRollout reads a rollout and, on PostgreSQL, locks its row until the
// transaction ends, so an operator's action and the engine's write queue.
func (t rolloutTx) LockRollout(ctx context.Context, id string) (deploy.Rollout, error) {
	q := `SELECT ` + rolloutCols + ` FROM rollouts WHERE id = $1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE`
	}
	ro, err := scanRollout(t.tx.QueryRowContext(ctx, q, id))
	if err != nil {
		return ro, notFound(err, "rollout", id)
	}
	return ro, t.loadWaves(ctx, &ro)
}

func (r rolloutReader) ListRollouts(ctx context.Context, f deploy.RolloutFilter) ([]deploy.Rollout, error) {
	var (
		conds []string
		args  []any
	)
	if f.ChangeID != "" {
		args = append(args, f.ChangeID)
		conds = append(conds, fmt.Sprintf(`change_id = $%d`, len(args)))
	}
	if len(f.States) > 0 {
		ss := make([]string, len(f.States))
		for i, s := range f.States {
			ss[i] = string(s)
		}
		conds = append(conds, `state IN (`+placeholders(&args, ss)+`)`)
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	args = append(args, limit, max(f.Offset, 0))
	rows, err := r.q.QueryContext(ctx, `SELECT `+rolloutCols+` FROM rollouts`+where+
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", translate(err))
	}
	defer rows.Close()
	var out []deploy.Rollout
	for rows.Next() {
		ro, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("scan rollout: %w", err)
		}
		out = append(out, ro)
	}
	return out, translate(rows.Err())
}

const waveCols = `idx, ring, state, verdict, reason, decided_at, wait_until, planned_start, planned_end, started_at, finished_at`

const itemCols = `id, rollout_id, wave, seq, asset_id, asset_name, site_id, kind, agent_id, packages, previous, task, owner, due,
	planned_start, planned_end, slot_end, job_id, attempts, state, outcome, note, recorded_by, started_at, finished_at,
	rollback_job_id, rollback_state, converged_at`

func (r rolloutReader) loadWaves(ctx context.Context, ro *deploy.Rollout) error {
	rows, err := r.q.QueryContext(ctx, `SELECT `+waveCols+` FROM rollout_waves WHERE rollout_id = $1 ORDER BY idx`, ro.ID)
	if err != nil {
		return fmt.Errorf("read waves: %w", translate(err))
	}
	ro.Waves = nil
	for rows.Next() {
		var (
			w                                        deploy.Wave
			state, verdict                           string
			decided, until, pStart, pEnd, start, fin sql.NullTime
		)
		if err := rows.Scan(&w.Index, &w.Ring, &state, &verdict, &w.Reason, &decided, &until, &pStart, &pEnd, &start, &fin); err != nil {
			rows.Close()
			return fmt.Errorf("scan wave: %w", err)
		}
		w.State, w.Verdict = deploy.WaveState(state), deploy.Verdict(verdict)
		w.DecidedAt, w.WaitUntil, w.PlannedStart, w.PlannedEnd = timePtr(decided), timePtr(until), timePtr(pStart), timePtr(pEnd)
		w.StartedAt, w.FinishedAt = timePtr(start), timePtr(fin)
		w.Items = []deploy.Item{}
		ro.Waves = append(ro.Waves, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read waves: %w", translate(err))
	}
	rows, err = r.q.QueryContext(ctx, `SELECT `+itemCols+` FROM rollout_items WHERE rollout_id = $1 ORDER BY wave, seq`, ro.ID)
	if err != nil {
		return fmt.Errorf("read rollout items: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return err
		}
		if it.Wave < 0 || it.Wave >= len(ro.Waves) {
			return errs.E(errs.Internal, "rollout %s: item %s names wave %d", ro.ID, it.ID, it.Wave)
		}
		ro.Waves[it.Wave].Items = append(ro.Waves[it.Wave].Items, it)
	}
	return translate(rows.Err())
}

func scanItem(r rowScanner) (deploy.Item, error) {
	var (
		it                                                deploy.Item
		kind, state, rbState, pkgs, prev                  string
		due, pStart, pEnd, slotEnd, start, fin, converged sql.NullTime
	)
	if err := r.Scan(&it.ID, &it.RolloutID, &it.Wave, &it.Seq, &it.AssetID, &it.AssetName, &it.SiteID, &kind, &it.AgentID,
		&pkgs, &prev, &it.Task, &it.Owner, &due, &pStart, &pEnd, &slotEnd, &it.JobID, &it.Attempts, &state, &it.Outcome,
		&it.Note, &it.RecordedBy, &start, &fin, &it.RollbackJobID, &rbState, &converged); err != nil {
		return it, fmt.Errorf("scan rollout item: %w", err)
	}
	if err := json.Unmarshal([]byte(pkgs), &it.Packages); err != nil {
		return it, fmt.Errorf("rollout item %s: packages: %w", it.ID, err)
	}
	if err := json.Unmarshal([]byte(prev), &it.Previous); err != nil {
		return it, fmt.Errorf("rollout item %s: previous versions: %w", it.ID, err)
	}
	if len(it.Packages) == 0 {
		it.Packages = nil
	}
	it.Kind, it.State, it.RollbackState = deploy.ItemKind(kind), deploy.ItemState(state), deploy.RollbackState(rbState)
	it.Due, it.PlannedStart, it.PlannedEnd, it.SlotEnd = timePtr(due), timePtr(pStart), timePtr(pEnd), timePtr(slotEnd)
	it.StartedAt, it.FinishedAt, it.ConvergedAt = timePtr(start), timePtr(fin), timePtr(converged)
	return it, nil
}

func (t rolloutTx) InsertRollout(ctx context.Context, ro deploy.Rollout) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO rollouts (`+rolloutCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		ro.ID, ro.ChangeID, ro.ChangeType, ro.Emergency, string(ro.State), ro.Reason, ro.PolicySHA, int64(ro.JobDuration/time.Second),
		ro.CreatedBy, ro.CreatedAt.UTC(), ro.UpdatedAt.UTC(), nullTime(ro.FinishedAt), ro.Revision)
	if err != nil {
		return fmt.Errorf("insert rollout: %w", translate(err))
	}
	for _, w := range ro.Waves {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO rollout_waves (rollout_id, `+waveCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			append([]any{ro.ID, w.Index, w.Ring}, waveArgs(w)...)...); err != nil {
			return fmt.Errorf("insert wave %d: %w", w.Index, translate(err))
		}
		for _, it := range w.Items {
			args, err := itemArgs(it)
			if err != nil {
				return err
			}
			if _, err := t.tx.ExecContext(ctx, `INSERT INTO rollout_items (`+itemCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
				$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)`, args...); err != nil {
				return fmt.Errorf("insert rollout item: %w", translate(err))
			}
		}
	}
	return nil
}

// waveArgs are the mutable wave columns from state on, in waveCols order.
func waveArgs(w deploy.Wave) []any {
	return []any{string(w.State), string(w.Verdict), w.Reason, nullTime(w.DecidedAt), nullTime(w.WaitUntil),
		nullTime(w.PlannedStart), nullTime(w.PlannedEnd), nullTime(w.StartedAt), nullTime(w.FinishedAt)}
}

func itemArgs(it deploy.Item) ([]any, error) {
	pkgs := it.Packages
	if pkgs == nil {
		pkgs = []agentapi.JobPackage{}
	}
	prev := it.Previous
	if prev == nil {
		prev = map[string]string{}
	}
	pj, err := json.Marshal(pkgs)
	if err != nil {
		return nil, fmt.Errorf("rollout item %s: %w", it.ID, err)
	}
	vj, err := json.Marshal(prev)
	if err != nil {
		return nil, fmt.Errorf("rollout item %s: %w", it.ID, err)
	}
	return []any{it.ID, it.RolloutID, it.Wave, it.Seq, it.AssetID, it.AssetName, it.SiteID, string(it.Kind), it.AgentID,
		string(pj), string(vj), it.Task, it.Owner, nullTime(it.Due), nullTime(it.PlannedStart), nullTime(it.PlannedEnd),
		nullTime(it.SlotEnd), it.JobID, it.Attempts, string(it.State), it.Outcome, it.Note, it.RecordedBy,
		nullTime(it.StartedAt), nullTime(it.FinishedAt), it.RollbackJobID, string(it.RollbackState), nullTime(it.ConvergedAt)}, nil
}

func (t rolloutTx) UpdateRollout(ctx context.Context, ro deploy.Rollout) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE rollouts SET state = $2, reason = $3, updated_at = $4, finished_at = $5, revision = $6
		WHERE id = $1 AND revision = $7`, ro.ID, string(ro.State), ro.Reason, ro.UpdatedAt.UTC(), nullTime(ro.FinishedAt),
		ro.Revision, ro.Revision-1)
	if err != nil {
		return fmt.Errorf("update rollout: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update rollout: %w", err)
	} else if n != 1 {
		return conflictOrMissing
	}
	return nil
}

func (t rolloutTx) UpdateWave(ctx context.Context, rolloutID string, w deploy.Wave) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE rollout_waves SET state = $3, verdict = $4, reason = $5, decided_at = $6,
		wait_until = $7, planned_start = $8, planned_end = $9, started_at = $10, finished_at = $11
		WHERE rollout_id = $1 AND idx = $2`, append([]any{rolloutID, w.Index}, waveArgs(w)...)...)
	if err != nil {
		return fmt.Errorf("update wave: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.NotFound, "rollout %s has no wave %d", rolloutID, w.Index)
	}
	return nil
}

func (t rolloutTx) UpdateItem(ctx context.Context, it deploy.Item) error {
	args, err := itemArgs(it)
	if err != nil {
		return err
	}
	// Identity columns (rollout, wave, seq, asset, kind) never change.
	res, err := t.tx.ExecContext(ctx, `UPDATE rollout_items SET agent_id = $9, packages = $10, previous = $11, task = $12,
		owner = $13, due = $14, planned_start = $15, planned_end = $16, slot_end = $17, job_id = $18, attempts = $19,
		state = $20, outcome = $21, note = $22, recorded_by = $23, started_at = $24, finished_at = $25,
		rollback_job_id = $26, rollback_state = $27, converged_at = $28
		WHERE id = $1 AND rollout_id = $2 AND wave = $3 AND seq = $4 AND asset_id = $5 AND asset_name = $6
		AND site_id = $7 AND kind = $8`, args...)
	if err != nil {
		return fmt.Errorf("update rollout item: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.NotFound, "rollout item %s not found", it.ID)
	}
	return nil
}

func (t rolloutTx) AddLog(ctx context.Context, e deploy.LogEntry) error {
	pkgs, err := json.Marshal(orEmpty(e.Packages))
	if err != nil {
		return err
	}
	steps, err := json.Marshal(orEmpty(e.Steps))
	if err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `INSERT INTO rollout_log (rollout_id, change_id, item_id, asset_id, at, actor, event,
		job_id, packages, steps, deviation, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		e.RolloutID, e.ChangeID, e.ItemID, e.AssetID, e.At.UTC(), e.Actor, e.Event, e.JobID, string(pkgs), string(steps),
		e.Deviation, e.Detail); err != nil {
		return fmt.Errorf("add deployment log entry: %w", translate(err))
	}
	return nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (r rolloutReader) DeploymentLog(ctx context.Context, changeID, assetID string) ([]deploy.LogEntry, error) {
	q := `SELECT id, rollout_id, change_id, item_id, asset_id, at, actor, event, job_id, packages, steps, deviation, detail
		FROM rollout_log WHERE change_id = $1`
	args := []any{changeID}
	if assetID != "" {
		q += ` AND asset_id = $2`
		args = append(args, assetID)
	}
	rows, err := r.q.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read deployment log: %w", translate(err))
	}
	defer rows.Close()
	out := []deploy.LogEntry{}
	for rows.Next() {
		var (
			e           deploy.LogEntry
			pkgs, steps string
		)
		if err := rows.Scan(&e.ID, &e.RolloutID, &e.ChangeID, &e.ItemID, &e.AssetID, &e.At, &e.Actor, &e.Event, &e.JobID,
			&pkgs, &steps, &e.Deviation, &e.Detail); err != nil {
			return nil, fmt.Errorf("scan deployment log: %w", err)
		}
		e.At = e.At.UTC()
		if err := json.Unmarshal([]byte(pkgs), &e.Packages); err != nil {
			return nil, fmt.Errorf("deployment log %d: %w", e.ID, err)
		}
		if err := json.Unmarshal([]byte(steps), &e.Steps); err != nil {
			return nil, fmt.Errorf("deployment log %d: %w", e.ID, err)
		}
		if len(e.Packages) == 0 {
			e.Packages = nil
		}
		if len(e.Steps) == 0 {
			e.Steps = nil
		}
		out = append(out, e)
	}
	return out, translate(rows.Err())
}

// AssetInfo joins each asset with its site's zone and its active agent
// (the newest enrolled, not revoked).
func (r rolloutReader) AssetInfo(ctx context.Context, ids []string) ([]deploy.AssetInfo, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var args []any
	rows, err := r.q.QueryContext(ctx, `SELECT a.id, a.name, COALESCE(a.site_id, ''), COALESCE(s.time_zone, ''), a.maintenance_window,
		a.technical_owner, a.updated_at,
		COALESCE((SELECT g.id FROM agents g WHERE g.asset_id = a.id AND g.revoked_at IS NULL ORDER BY g.enrolled_at DESC, g.id LIMIT 1), ''),
		(SELECT g.inventory_at FROM agents g WHERE g.asset_id = a.id AND g.revoked_at IS NULL ORDER BY g.enrolled_at DESC, g.id LIMIT 1)
		FROM assets a LEFT JOIN sites s ON s.id = a.site_id WHERE a.id IN (`+placeholders(&args, ids)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read rollout assets: %w", translate(err))
	}
	defer rows.Close()
	got := map[string]deploy.AssetInfo{}
	for rows.Next() {
		var (
			a     deploy.AssetInfo
			invAt sql.NullTime
		)
		if err := rows.Scan(&a.ID, &a.Name, &a.SiteID, &a.TimeZone, &a.Window, &a.Owner, &a.UpdatedAt, &a.AgentID, &invAt); err != nil {
			return nil, fmt.Errorf("scan rollout asset: %w", err)
		}
		a.UpdatedAt, a.InventoryAt = a.UpdatedAt.UTC(), timePtr(invAt)
		got[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollout assets: %w", translate(err))
	}
	out := make([]deploy.AssetInfo, 0, len(ids))
	for _, id := range ids {
		a, ok := got[id]
		if !ok {
			return nil, errs.E(errs.NotFound, "asset %q not found", id)
		}
		out = append(out, a)
	}
	return out, nil
}

func (r rolloutReader) Installed(ctx context.Context, assetIDs, names []string) (map[string]map[string]deploy.InstalledPackage, error) {
	out := map[string]map[string]deploy.InstalledPackage{}
	if len(names) == 0 {
		return out, nil
	}
	// In chunks: one statement per few hundred assets keeps SQLite's parse
	// cheap and PostgreSQL under its parameter limit.
	for len(assetIDs) > 0 {
		chunk := assetIDs[:min(len(assetIDs), 500)]
		assetIDs = assetIDs[len(chunk):]
		var args []any
		ids := placeholders(&args, chunk)
		rows, err := r.q.QueryContext(ctx, `SELECT asset_id, name, version, ecosystem FROM asset_software WHERE asset_id IN (`+ids+
			`) AND name IN (`+placeholders(&args, names)+`) ORDER BY asset_id, ord`, args...)
		if err != nil {
			return nil, fmt.Errorf("read installed versions: %w", translate(err))
		}
		for rows.Next() {
			var (
				id, n string
				p     deploy.InstalledPackage
			)
			if err := rows.Scan(&id, &n, &p.Version, &p.Ecosystem); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan installed version: %w", err)
			}
			if out[id] == nil {
				out[id] = map[string]deploy.InstalledPackage{}
			}
			if _, seen := out[id][n]; !seen {
				out[id][n] = p
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read installed versions: %w", translate(err))
		}
	}
	return out, nil
}

func (r rolloutReader) TargetFacts(ctx context.Context, t change.Targets) ([]policy.AssetFacts, error) {
	return changeReader{q: r.q, engine: r.engine}.TargetFacts(ctx, t)
}
