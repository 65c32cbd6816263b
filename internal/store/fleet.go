package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
)

// Fleet returns the agent fleet's view of the database.
//
// Times compared in SQL (due jobs, heartbeats) are always stored in UTC, so
// on SQLite, where they are text, string order is time order.
//
// The two reads every agent request makes (the agent row, and whether it
// has due jobs) are prepared once per connection: on SQLite, parsing the
// statement again each time costs more than running it.
func (db *DB) Fleet() fleet.Store {
	return &fleetStore{db: db, fleetReader: fleetReader{q: db.r}}
}

type fleetStore struct {
	db *DB
	fleetReader

	mu                  sync.Mutex
	getAgent, hasDueJob *sql.Stmt
}

// prepared returns the hot-path statements, preparing them on first use.
func (s *fleetStore) prepared(ctx context.Context) (getAgent, hasDueJob *sql.Stmt, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getAgent == nil {
		if s.getAgent, err = s.db.r.PrepareContext(ctx, agentSelect+` WHERE g.id = $1`); err != nil {
			s.getAgent = nil
			return nil, nil, fmt.Errorf("prepare agent lookup: %w", translate(err))
		}
	}
	if s.hasDueJob == nil {
		if s.hasDueJob, err = s.db.r.PrepareContext(ctx, hasDueJobsSQL); err != nil {
			s.hasDueJob = nil
			return nil, nil, fmt.Errorf("prepare due-job lookup: %w", translate(err))
		}
	}
	return s.getAgent, s.hasDueJob, nil
}

func (s *fleetStore) GetAgent(ctx context.Context, id string) (fleet.Agent, error) {
	stmt, _, err := s.prepared(ctx)
	if err != nil {
		return fleet.Agent{}, err
	}
	a, err := scanAgent(stmt.QueryRowContext(ctx, id))
	return a, notFoundOrNil(err, "agent", id)
}

func (s *fleetStore) HasDueJobs(ctx context.Context, agentID string, now time.Time) (bool, error) {
	_, stmt, err := s.prepared(ctx)
	if err != nil {
		return false, err
	}
	return hasDue(stmt.QueryRowContext(ctx, agentID, now.UTC()))
}

type fleetReader struct{ q querier }

func (s *fleetStore) Transact(ctx context.Context, fn func(fleet.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error {
		return fn(fleetTx{Tx: t, fleetReader: fleetReader{q: t.tx}, inv: invTx{Tx: t, invReader: invReader{q: t.tx}}})
	})
}

// Touch writes both heartbeat columns in one short transaction, and only
// forwards: a slower replica never moves a time back.
func (s *fleetStore) Touch(ctx context.Context, agentID, assetID string, at time.Time) error {
	at = at.UTC()
	return s.db.Transact(ctx, func(t *Tx) error {
		if _, err := t.tx.ExecContext(ctx, `UPDATE agents SET last_checkin = $2 WHERE id = $1 AND (last_checkin IS NULL OR last_checkin < $2)`, agentID, at); err != nil {
			return fmt.Errorf("record agent check-in: %w", translate(err))
		}
		if assetID == "" {
			return nil
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE assets SET last_seen_at = $2 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)`, assetID, at); err != nil {
			return fmt.Errorf("record asset last seen: %w", translate(err))
		}
		return nil
	})
}

type fleetTx struct {
	*Tx
	fleetReader
	inv invTx
}

// forUpdate adds a row lock on PostgreSQL; SQLite's single writer
// connection already serialises write transactions.
func (t fleetTx) forUpdate(q string) string {
	if t.db.engine == Postgres {
		return q + ` FOR UPDATE`
	}
	return q
}

// ---- enrollment tokens ----

const enrollCols = `id, name, token_hash, site_id, groups_json, maintenance_window, created_by, created_at, expires_at, used_at, agent_id, revoked_at`

func scanEnrollToken(r rowScanner) (fleet.EnrollmentToken, error) {
	var (
		t                fleet.EnrollmentToken
		site             sql.NullString
		groups           string
		used, revoked    sql.NullTime
		created, expires time.Time
	)
	if err := r.Scan(&t.ID, &t.Name, &t.Hash, &site, &groups, &t.MaintenanceWindow, &t.CreatedBy, &created, &expires, &used, &t.AgentID, &revoked); err != nil {
		return t, err
	}
	t.SiteID, t.CreatedAt, t.ExpiresAt, t.UsedAt, t.RevokedAt = site.String, created.UTC(), expires.UTC(), timePtr(used), timePtr(revoked)
	if err := json.Unmarshal([]byte(groups), &t.Groups); err != nil {
		return t, fmt.Errorf("enrollment token %s: groups: %w", t.ID, err)
	}
	if len(t.Groups) == 0 {
		t.Groups = nil
	}
	return t, nil
}

func (r fleetReader) GetToken(ctx context.Context, id string) (fleet.EnrollmentToken, error) {
	t, err := scanEnrollToken(r.q.QueryRowContext(ctx, `SELECT `+enrollCols+` FROM enrollment_tokens WHERE id = $1`, id))
	return t, notFoundOrNil(err, "enrollment token", id)
}

func (r fleetReader) ListTokens(ctx context.Context) ([]fleet.EnrollmentToken, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+enrollCols+` FROM enrollment_tokens ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list enrollment tokens: %w", translate(err))
	}
	defer rows.Close()
	out := []fleet.EnrollmentToken{}
	for rows.Next() {
		t, err := scanEnrollToken(rows)
		if err != nil {
			return nil, fmt.Errorf("scan enrollment token: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (t fleetTx) TokenByHash(ctx context.Context, hash []byte) (fleet.EnrollmentToken, error) {
	tok, err := scanEnrollToken(t.tx.QueryRowContext(ctx, t.forUpdate(`SELECT `+enrollCols+` FROM enrollment_tokens WHERE token_hash = $1`), hash))
	return tok, notFoundOrNil(err, "enrollment token", "(secret)")
}

func (t fleetTx) InsertToken(ctx context.Context, tok *fleet.EnrollmentToken) error {
	groups, _ := json.Marshal(nonNil(tok.Groups))
	_, err := t.tx.ExecContext(ctx, `INSERT INTO enrollment_tokens (`+enrollCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		tok.ID, tok.Name, tok.Hash, nullStr(tok.SiteID), string(groups), tok.MaintenanceWindow, tok.CreatedBy,
		tok.CreatedAt.UTC(), tok.ExpiresAt.UTC(), nullTime(tok.UsedAt), tok.AgentID, nullTime(tok.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert enrollment token: %w", translate(err))
	}
	return nil
}

func (t fleetTx) UpdateToken(ctx context.Context, tok *fleet.EnrollmentToken) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE enrollment_tokens SET used_at = $2, agent_id = $3, revoked_at = $4 WHERE id = $1`,
		tok.ID, nullTime(tok.UsedAt), tok.AgentID, nullTime(tok.RevokedAt))
	if err != nil {
		return fmt.Errorf("update enrollment token: %w", translate(err))
	}
	return oneRow(res, "enrollment token", tok.ID)
}

func oneRow(res sql.Result, what, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return notFound(sql.ErrNoRows, what, id)
	}
	return nil
}

// ---- agents ----

const agentCols = `id, asset_id, public_key, hostname, os_id, agent_version, protocol_version, token_id,
	enrolled_at, last_checkin, inventory_hash, inventory_at, facts_hash, asset_revision, revoked_at, revoke_reason`

// agentSelect reads agents with their asset's current revision, so a
// change someone else made to the asset is noticed on the same read.
var agentSelect = `SELECT ` + prefixCols("g.", agentCols) + `, COALESCE(s.revision, 0) FROM agents g LEFT JOIN assets s ON s.id = g.asset_id`

func scanAgent(r rowScanner, extra ...any) (fleet.Agent, error) {
	var (
		a                         fleet.Agent
		asset                     sql.NullString
		checkin, invAt, revokedAt sql.NullTime
		current                   int
	)
	dest := append([]any{&a.ID, &asset, &a.PublicKey, &a.Hostname, &a.OSID, &a.AgentVersion, &a.ProtocolVersion,
		&a.TokenID, &a.EnrolledAt, &checkin, &a.InventoryHash, &invAt, &a.FactsHash, &a.AssetRevision, &revokedAt,
		&a.RevokeReason, &current}, extra...)
	if err := r.Scan(dest...); err != nil {
		return a, err
	}
	a.AssetID, a.EnrolledAt = asset.String, a.EnrolledAt.UTC()
	a.LastCheckIn, a.InventoryAt, a.RevokedAt = timePtr(checkin), timePtr(invAt), timePtr(revokedAt)
	a.AssetChanged = a.AssetID != "" && current != a.AssetRevision
	return a, nil
}

func (r fleetReader) GetAgent(ctx context.Context, id string) (fleet.Agent, error) {
	a, err := scanAgent(r.q.QueryRowContext(ctx, agentSelect+` WHERE g.id = $1`, id))
	return a, notFoundOrNil(err, "agent", id)
}

func (r fleetReader) GetAgentDetail(ctx context.Context, id string) (fleet.AgentDetail, error) {
	var (
		facts, pending sql.NullString
		at             sql.NullTime
	)
	q := `SELECT ` + prefixCols("g.", agentCols) + `, COALESCE(s.revision, 0), f.facts_json, f.pending_json, f.reported_at
		FROM agents g LEFT JOIN assets s ON s.id = g.asset_id LEFT JOIN agent_facts f ON f.agent_id = g.id WHERE g.id = $1`
	a, err := scanAgent(r.q.QueryRowContext(ctx, q, id), &facts, &pending, &at)
	if err != nil {
		return fleet.AgentDetail{}, notFound(err, "agent", id)
	}
	d := fleet.AgentDetail{Agent: a, FactsAt: timePtr(at)}
	if facts.Valid {
		d.Facts = new(agentapi.Facts)
		if err := json.Unmarshal([]byte(facts.String), d.Facts); err != nil {
			return d, fmt.Errorf("agent %s: facts: %w", id, err)
		}
	}
	if pending.Valid {
		if err := json.Unmarshal([]byte(pending.String), &d.Pending); err != nil {
			return d, fmt.Errorf("agent %s: pending updates: %w", id, err)
		}
		if len(d.Pending) == 0 {
			d.Pending = nil
		}
	}
	return d, nil
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func (r fleetReader) ListAgents(ctx context.Context, f fleet.AgentFilter) (fleet.AgentPage, error) {
	var (
		conds []string
		args  []any
	)
	if f.AssetID != "" {
		args = append(args, f.AssetID)
		conds = append(conds, fmt.Sprintf("g.asset_id = $%d", len(args)))
	}
	if f.Revoked != nil {
		if *f.Revoked {
			conds = append(conds, "g.revoked_at IS NOT NULL")
		} else {
			conds = append(conds, "g.revoked_at IS NULL")
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	page := fleet.AgentPage{Agents: []fleet.Agent{}, Limit: f.Limit, Offset: f.Offset}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM agents g`+where, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("count agents: %w", translate(err))
	}
	n := len(args)
	rows, err := r.q.QueryContext(ctx, fmt.Sprintf(`%s%s ORDER BY g.enrolled_at DESC, g.id DESC LIMIT $%d OFFSET $%d`, agentSelect, where, n+1, n+2),
		append(args, f.Limit, f.Offset)...)
	if err != nil {
		return page, fmt.Errorf("list agents: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return page, fmt.Errorf("scan agent: %w", err)
		}
		page.Agents = append(page.Agents, a)
	}
	return page, rows.Err()
}

func (t fleetTx) LockAgent(ctx context.Context, id string) (fleet.Agent, error) {
	q := agentSelect + ` WHERE g.id = $1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE OF g` // not the asset: it is only compared
	}
	a, err := scanAgent(t.tx.QueryRowContext(ctx, q, id))
	return a, notFoundOrNil(err, "agent", id)
}

func agentArgs(a *fleet.Agent) []any {
	return []any{a.ID, nullStr(a.AssetID), a.PublicKey, a.Hostname, a.OSID, a.AgentVersion, a.ProtocolVersion,
		a.TokenID, a.EnrolledAt.UTC(), nullTime(a.LastCheckIn), a.InventoryHash, nullTime(a.InventoryAt),
		a.FactsHash, a.AssetRevision, nullTime(a.RevokedAt), a.RevokeReason}
}

func (t fleetTx) InsertAgent(ctx context.Context, a *fleet.Agent) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO agents (`+agentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, agentArgs(a)...)
	if err != nil {
		return fmt.Errorf("insert agent: %w", translate(err))
	}
	return nil
}

// UpdateAgent leaves last_checkin alone: only Touch moves it, forwards.
func (t fleetTx) UpdateAgent(ctx context.Context, a *fleet.Agent) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE agents SET asset_id = $2, hostname = $3, os_id = $4, agent_version = $5,
		protocol_version = $6, inventory_hash = $7, inventory_at = $8, facts_hash = $9, asset_revision = $10,
		revoked_at = $11, revoke_reason = $12
		WHERE id = $1`, a.ID, nullStr(a.AssetID), a.Hostname, a.OSID, a.AgentVersion, a.ProtocolVersion,
		a.InventoryHash, nullTime(a.InventoryAt), a.FactsHash, a.AssetRevision, nullTime(a.RevokedAt), a.RevokeReason)
	if err != nil {
		return fmt.Errorf("update agent: %w", translate(err))
	}
	return oneRow(res, "agent", a.ID)
}

func (t fleetTx) SetAgentFacts(ctx context.Context, agentID string, f agentapi.Facts, pending []agentapi.PendingUpdate, at time.Time) error {
	fj, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode facts: %w", err)
	}
	if pending == nil {
		pending = []agentapi.PendingUpdate{}
	}
	pj, err := json.Marshal(pending)
	if err != nil {
		return fmt.Errorf("encode pending updates: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO agent_facts (agent_id, facts_json, pending_json, reported_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (agent_id) DO UPDATE SET facts_json = excluded.facts_json, pending_json = excluded.pending_json, reported_at = excluded.reported_at`,
		agentID, string(fj), string(pj), at.UTC())
	if err != nil {
		return fmt.Errorf("store agent facts: %w", translate(err))
	}
	return nil
}

// ---- assets, as agents see them ----

func (t fleetTx) GetSite(ctx context.Context, id string) (inventory.Site, error) {
	return t.inv.GetSite(ctx, id)
}

func (t fleetTx) GetGroup(ctx context.Context, id string) (inventory.Group, error) {
	return t.inv.GetGroup(ctx, id)
}

func (t fleetTx) InsertAsset(ctx context.Context, a *inventory.Asset) error {
	return t.inv.InsertAsset(ctx, a)
}

func (t fleetTx) Candidates(ctx context.Context, hostnames []string, serial string) ([]fleet.Candidate, error) {
	var full, short string
	switch len(hostnames) {
	case 0:
	case 1:
		full, short = hostnames[0], hostnames[0]
	default:
		full, short = hostnames[0], hostnames[1]
	}
	if full == "" && serial == "" {
		return nil, nil
	}
	like := "\x00" // matches nothing when there is no host name
	if short != "" {
		like = likeEscape(short) + ".%"
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT a.id, a.hostname, a.serial,
			EXISTS (SELECT 1 FROM agents g WHERE g.asset_id = a.id AND g.revoked_at IS NULL)
		FROM assets a
		WHERE (a.hostname <> '' AND (lower(a.hostname) IN ($1, $2) OR lower(a.hostname) LIKE $3 ESCAPE '\'))
		   OR (a.serial <> '' AND lower(a.serial) = lower($4))
		ORDER BY a.id LIMIT 50`, full, short, like, serial)
	if err != nil {
		return nil, fmt.Errorf("find assets for agent: %w", translate(err))
	}
	defer rows.Close()
	var out []fleet.Candidate
	for rows.Next() {
		var c fleet.Candidate
		if err := rows.Scan(&c.AssetID, &c.Hostname, &c.Serial, &c.AgentOwned); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (t fleetTx) GetAssetRecord(ctx context.Context, id string) (inventory.Asset, error) {
	a, err := scanAsset(t.tx.QueryRowContext(ctx, `SELECT `+assetCols+` FROM assets WHERE id = $1`, id))
	return a, notFoundOrNil(err, "asset", id)
}

func (t fleetTx) UpdateAssetObserved(ctx context.Context, a *inventory.Asset) error {
	ips, _ := json.Marshal(nonNil(a.IPAddresses))
	res, err := t.tx.ExecContext(ctx, `UPDATE assets SET os_name = $2, os_version = $3, firmware_version = $4,
		ip_addresses = $5, mac_address = $6, make = $7, model = $8, serial = $9, hostname = $10,
		pending_updates = $11, last_seen_at = $12, last_patched_at = $13, updated_at = $14, revision = $15,
		search_text = $16
		WHERE id = $1 AND revision = $17`,
		a.ID, a.OSName, a.OSVersion, a.FirmwareVersion, string(ips), a.MACAddress, a.Make, a.Model, a.Serial,
		a.Hostname, a.PendingUpdates, nullTime(a.LastSeenAt), nullTime(a.LastPatchedAt), a.UpdatedAt.UTC(),
		a.Revision, searchText(a), a.Revision-1)
	if err != nil {
		return fmt.Errorf("update asset from agent: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("update asset %s: %w", a.ID, conflictOrMissing)
	}
	return nil
}

func (t fleetTx) AssetSoftware(ctx context.Context, assetID string) ([]inventory.Software, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT name, version, arch, ecosystem, purl, source_name, source_version FROM asset_software WHERE asset_id = $1 ORDER BY ord`, assetID)
	if err != nil {
		return nil, fmt.Errorf("load software: %w", translate(err))
	}
	defer rows.Close()
	var out []inventory.Software
	for rows.Next() {
		var s inventory.Software
		if err := rows.Scan(&s.Name, &s.Version, &s.Arch, &s.Ecosystem, &s.PURL, &s.SourceName, &s.SourceVersion); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (t fleetTx) ReplaceAssetSoftware(ctx context.Context, assetID string, sw []inventory.Software) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM asset_software WHERE asset_id = $1`, assetID); err != nil {
		return fmt.Errorf("replace software: %w", translate(err))
	}
	return t.inv.insertSoftware(ctx, assetID, sw)
}

// ---- jobs ----

const jobCols = `id, agent_id, asset_id, change_id, kind, emergency, allow_reboot, spec_json, not_before, deadline,
	state, created_by, created_at, updated_at, delivered_at, started_at, finished_at, attempt, reason`

// jobSpec is the JSON stored in spec_json: what the agent is to do.
type jobSpec struct {
	Packages   []agentapi.JobPackage `json:"packages"`
	PreChecks  []agentapi.Check      `json:"pre_checks,omitempty"`
	PostChecks []agentapi.Check      `json:"post_checks,omitempty"`
}

func scanJob(r rowScanner) (fleet.Job, error) {
	var (
		j                            fleet.Job
		spec, state                  string
		delivered, started, finished sql.NullTime
	)
	err := r.Scan(&j.ID, &j.AgentID, &j.AssetID, &j.ChangeID, &j.Kind, &j.Emergency, &j.AllowReboot, &spec,
		&j.NotBefore, &j.Deadline, &state, &j.CreatedBy, &j.CreatedAt, &j.UpdatedAt, &delivered, &started,
		&finished, &j.Attempt, &j.Reason)
	if err != nil {
		return j, err
	}
	j.State = fleet.JobState(state)
	j.NotBefore, j.Deadline, j.CreatedAt, j.UpdatedAt = j.NotBefore.UTC(), j.Deadline.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	j.DeliveredAt, j.StartedAt, j.FinishedAt = timePtr(delivered), timePtr(started), timePtr(finished)
	var s jobSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return j, fmt.Errorf("job %s: spec: %w", j.ID, err)
	}
	j.Packages, j.PreChecks, j.PostChecks = s.Packages, s.PreChecks, s.PostChecks
	if j.Packages == nil {
		j.Packages = []agentapi.JobPackage{}
	}
	return j, nil
}

func (r fleetReader) GetJob(ctx context.Context, id string) (fleet.Job, error) {
	j, err := scanJob(r.q.QueryRowContext(ctx, `SELECT `+jobCols+` FROM agent_jobs WHERE id = $1`, id))
	return j, notFoundOrNil(err, "job", id)
}

func (t fleetTx) LockJob(ctx context.Context, id string) (fleet.Job, error) {
	j, err := scanJob(t.tx.QueryRowContext(ctx, t.forUpdate(`SELECT `+jobCols+` FROM agent_jobs WHERE id = $1`), id))
	return j, notFoundOrNil(err, "job", id)
}

func (r fleetReader) queryJobs(ctx context.Context, q string, args ...any) ([]fleet.Job, error) {
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", translate(err))
	}
	defer rows.Close()
	out := []fleet.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("scan job: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (r fleetReader) ListJobs(ctx context.Context, f fleet.JobFilter) (fleet.JobPage, error) {
	var (
		conds []string
		args  []any
	)
	for _, c := range []struct{ col, val string }{{"agent_id", f.AgentID}, {"asset_id", f.AssetID}, {"change_id", f.ChangeID}, {"state", string(f.State)}} {
		if c.val != "" {
			args = append(args, c.val)
			conds = append(conds, fmt.Sprintf("%s = $%d", c.col, len(args)))
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	page := fleet.JobPage{Limit: f.Limit, Offset: f.Offset}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM agent_jobs`+where, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("count jobs: %w", translate(err))
	}
	n := len(args)
	jobs, err := r.queryJobs(ctx, fmt.Sprintf(`SELECT %s FROM agent_jobs%s ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, jobCols, where, n+1, n+2),
		append(args, f.Limit, f.Offset)...)
	page.Jobs = jobs
	return page, err
}

func (r fleetReader) JobStatuses(ctx context.Context, changeID string) ([]fleet.JobStatus, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT id, agent_id, asset_id, kind, state, not_before FROM agent_jobs
		WHERE change_id = $1 ORDER BY created_at, id`, changeID)
	if err != nil {
		return nil, fmt.Errorf("job statuses: %w", translate(err))
	}
	defer rows.Close()
	out := []fleet.JobStatus{}
	for rows.Next() {
		var (
			j     fleet.JobStatus
			state string
		)
		if err := rows.Scan(&j.ID, &j.AgentID, &j.AssetID, &j.Kind, &state, &j.NotBefore); err != nil {
			return nil, fmt.Errorf("scan job status: %w", err)
		}
		j.State, j.NotBefore = fleet.JobState(state), j.NotBefore.UTC()
		out = append(out, j)
	}
	return out, rows.Err()
}

// The state list must read exactly as in the partial index agent_jobs_due,
// or SQLite will not use it.
const openJobs = `state IN ('queued', 'delivered')`

func (r fleetReader) DueJobs(ctx context.Context, agentID string, now time.Time, limit int) ([]fleet.Job, error) {
	now = now.UTC()
	return r.queryJobs(ctx, `SELECT `+jobCols+` FROM agent_jobs WHERE agent_id = $1 AND `+openJobs+`
		AND not_before <= $2 AND deadline > $2 ORDER BY not_before, id LIMIT $3`, agentID, now, limit)
}

const hasDueJobsSQL = `SELECT id FROM agent_jobs WHERE agent_id = $1 AND ` + openJobs + `
	AND not_before <= $2 AND deadline > $2 LIMIT 1`

func (r fleetReader) HasDueJobs(ctx context.Context, agentID string, now time.Time) (bool, error) {
	return hasDue(r.q.QueryRowContext(ctx, hasDueJobsSQL, agentID, now.UTC()))
}

func hasDue(row *sql.Row) (bool, error) {
	var id string
	err := row.Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for due jobs: %w", translate(err))
	}
	return true, nil
}

func (t fleetTx) InsertJob(ctx context.Context, j *fleet.Job) error {
	spec, err := json.Marshal(jobSpec{Packages: j.Packages, PreChecks: j.PreChecks, PostChecks: j.PostChecks})
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO agent_jobs (`+jobCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		j.ID, j.AgentID, j.AssetID, j.ChangeID, j.Kind, j.Emergency, j.AllowReboot, string(spec), j.NotBefore.UTC(),
		j.Deadline.UTC(), string(j.State), j.CreatedBy, j.CreatedAt.UTC(), j.UpdatedAt.UTC(), nullTime(j.DeliveredAt),
		nullTime(j.StartedAt), nullTime(j.FinishedAt), j.Attempt, j.Reason)
	if err != nil {
		return fmt.Errorf("insert job: %w", translate(err))
	}
	return nil
}

func (t fleetTx) UpdateJob(ctx context.Context, j *fleet.Job) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE agent_jobs SET state = $2, updated_at = $3, delivered_at = $4, started_at = $5,
		finished_at = $6, attempt = $7, reason = $8 WHERE id = $1`, j.ID, string(j.State), j.UpdatedAt.UTC(),
		nullTime(j.DeliveredAt), nullTime(j.StartedAt), nullTime(j.FinishedAt), j.Attempt, j.Reason)
	if err != nil {
		return fmt.Errorf("update job: %w", translate(err))
	}
	return oneRow(res, "job", j.ID)
}

// ---- results ----

const resultCols = `job_id, attempt, agent_id, status, reason, steps_json, installed_json, received_at`

func scanResult(r rowScanner) (fleet.Result, error) {
	var (
		res              fleet.Result
		steps, installed string
	)
	if err := r.Scan(&res.JobID, &res.Attempt, &res.AgentID, &res.Status, &res.Reason, &steps, &installed, &res.ReceivedAt); err != nil {
		return res, err
	}
	res.ReceivedAt = res.ReceivedAt.UTC()
	if err := json.Unmarshal([]byte(steps), &res.Steps); err != nil {
		return res, fmt.Errorf("job %s result %d: steps: %w", res.JobID, res.Attempt, err)
	}
	if err := json.Unmarshal([]byte(installed), &res.Installed); err != nil {
		return res, fmt.Errorf("job %s result %d: installed: %w", res.JobID, res.Attempt, err)
	}
	if len(res.Installed) == 0 {
		res.Installed = nil
	}
	return res, nil
}

func (r fleetReader) JobResults(ctx context.Context, jobID string) ([]fleet.Result, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+resultCols+` FROM agent_job_results WHERE job_id = $1 ORDER BY attempt`, jobID)
	if err != nil {
		return nil, fmt.Errorf("list job results: %w", translate(err))
	}
	defer rows.Close()
	out := []fleet.Result{}
	for rows.Next() {
		res, err := scanResult(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, rows.Err()
}

func (t fleetTx) GetResult(ctx context.Context, jobID string, attempt int) (fleet.Result, error) {
	res, err := scanResult(t.tx.QueryRowContext(ctx, `SELECT `+resultCols+` FROM agent_job_results WHERE job_id = $1 AND attempt = $2`, jobID, attempt))
	if errors.Is(err, sql.ErrNoRows) {
		return res, errs.E(errs.NotFound, "no result %d for job %q", attempt, jobID)
	}
	return res, translate(err)
}

func (t fleetTx) InsertResult(ctx context.Context, r *fleet.Result) error {
	steps, err := json.Marshal(r.Steps)
	if err != nil {
		return fmt.Errorf("encode steps: %w", err)
	}
	installed := []byte("{}")
	if len(r.Installed) > 0 {
		if installed, err = json.Marshal(r.Installed); err != nil {
			return fmt.Errorf("encode installed versions: %w", err)
		}
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO agent_job_results (`+resultCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.JobID, r.Attempt, r.AgentID, r.Status, r.Reason, string(steps), string(installed), r.ReceivedAt.UTC())
	if err != nil {
		return fmt.Errorf("insert job result: %w", translate(err))
	}
	return nil
}
