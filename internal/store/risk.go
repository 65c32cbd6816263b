package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
)

// Risk returns the risk service's view of the database: finding risk
// records and their history, and exceptions with their reviews.
func (db *DB) Risk() risk.Store {
	return riskStore{db: db, riskReader: riskReader{q: db.r, engine: db.engine, now: db.now}}
}

type riskStore struct {
	db *DB
	riskReader
}

type riskReader struct {
	q      querier
	engine Engine
	now    func() time.Time
}

type riskTx struct {
	*Tx
	riskReader
}

func (s riskStore) Transact(ctx context.Context, fn func(risk.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error {
		return fn(riskTx{Tx: t, riskReader: riskReader{q: t.tx, engine: s.db.engine, now: s.db.now}})
	})
}

// Records.

const riskRecordCols = `finding_id, asset_id, vuln_id, status, score, tier, tier_rank, mode, assessment,
	policy_version, first_seen, fix_available_at, clock_start, clock_basis, due_at, due_soon_at,
	due_reason, exception_id, kev, epss, resolved_at, ttr_seconds, met_sla, computed_at`

const riskRecordColCount = 24

// storedAssessment is the assessment column: the assessment's own JSON
// plus the durations it leaves out of its API form, so that a stored
// assessment reads back exactly as it was computed.
type storedAssessment struct {
	risk.Assessment
	TargetDuration  storedDuration `json:"target_duration"`
	DueSoonDuration storedDuration `json:"due_soon_duration"`
}

// storedDuration is policy.Duration spelt out, independent of however the
// policy package chooses to render durations.
type storedDuration struct {
	Days  int           `json:"days,omitempty"`
	Exact time.Duration `json:"exact_ns,omitempty"`
}

func recordArgs(r *risk.Record) ([]any, error) {
	a := r.Assessment
	js, err := json.Marshal(storedAssessment{Assessment: a,
		TargetDuration:  storedDuration{Days: a.Target.Days, Exact: a.Target.Exact},
		DueSoonDuration: storedDuration{Days: a.DueSoon.Days, Exact: a.DueSoon.Exact}})
	if err != nil {
		return nil, fmt.Errorf("finding %s: encode assessment: %w", r.FindingID, err)
	}
	var ttr sql.NullFloat64
	if r.TimeToRemediate != nil {
		ttr = sql.NullFloat64{Float64: r.TimeToRemediate.Seconds(), Valid: true}
	}
	var met sql.NullBool
	if r.MetSLA != nil {
		met = sql.NullBool{Bool: *r.MetSLA, Valid: true}
	}
	return []any{r.FindingID, r.AssetID, r.VulnID, r.Status, a.Score, a.Tier, a.Rank, a.Mode, string(js),
		r.PolicyVersion, r.FirstSeen.UTC(), nullTime(r.FixAvailableAt), zeroNull(r.ClockStart), r.ClockBasis,
		zeroNull(r.DueAt), zeroNull(r.DueSoonAt), r.DueReason, r.ExceptionID, r.KEV, r.EPSS,
		nullTime(r.ResolvedAt), ttr, met, r.ComputedAt.UTC()}, nil
}

// zeroNull stores a zero time as NULL: a clock that has not started has
// no due date.
func zeroNull(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

func nullZero(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// recordScan receives a record's columns, every one nullable so that the
// same code reads a LEFT JOINed record that is not there.
type recordScan struct {
	findingID, assetID, vulnID, status, tier, mode, assessment sql.NullString
	clockBasis, dueReason, exceptionID                         sql.NullString
	score, epss, ttr                                           sql.NullFloat64
	rank, policyVersion                                        sql.NullInt64
	firstSeen, fixAvail, clockStart, dueAt, dueSoonAt          sql.NullTime
	resolvedAt, computedAt                                     sql.NullTime
	kev, met                                                   sql.NullBool
}

func (s *recordScan) dest() []any {
	return []any{&s.findingID, &s.assetID, &s.vulnID, &s.status, &s.score, &s.tier, &s.rank, &s.mode,
		&s.assessment, &s.policyVersion, &s.firstSeen, &s.fixAvail, &s.clockStart, &s.clockBasis,
		&s.dueAt, &s.dueSoonAt, &s.dueReason, &s.exceptionID, &s.kev, &s.epss, &s.resolvedAt, &s.ttr,
		&s.met, &s.computedAt}
}

// record returns the scanned record, or nil when there was none.
func (s *recordScan) record() (*risk.Record, error) {
	if !s.findingID.Valid {
		return nil, nil
	}
	r := &risk.Record{
		FindingID: s.findingID.String, AssetID: s.assetID.String, VulnID: s.vulnID.String,
		Status: s.status.String, PolicyVersion: int(s.policyVersion.Int64),
		FirstSeen: nullZero(s.firstSeen), FixAvailableAt: timePtr(s.fixAvail),
		ClockStart: nullZero(s.clockStart), ClockBasis: s.clockBasis.String,
		DueAt: nullZero(s.dueAt), DueSoonAt: nullZero(s.dueSoonAt), DueReason: s.dueReason.String,
		ExceptionID: s.exceptionID.String, KEV: s.kev.Bool, EPSS: s.epss.Float64,
		ResolvedAt: timePtr(s.resolvedAt), ComputedAt: nullZero(s.computedAt),
	}
	var sa storedAssessment
	if err := json.Unmarshal([]byte(s.assessment.String), &sa); err != nil {
		return nil, fmt.Errorf("finding %s: assessment: %w", r.FindingID, err)
	}
	r.Assessment = sa.Assessment
	r.Assessment.Target = policy.Duration{Days: sa.TargetDuration.Days, Exact: sa.TargetDuration.Exact}
	r.Assessment.DueSoon = policy.Duration{Days: sa.DueSoonDuration.Days, Exact: sa.DueSoonDuration.Exact}
	if s.ttr.Valid {
		// Stored as seconds; times are kept to the microsecond.
		d := time.Duration(math.Round(s.ttr.Float64*1e6)) * time.Microsecond
		r.TimeToRemediate = &d
	}
	if s.met.Valid {
		met := s.met.Bool
		r.MetSLA = &met
	}
	return r, nil
}

func (r riskReader) GetRecord(ctx context.Context, findingID string) (risk.Record, error) {
	var s recordScan
	err := r.q.QueryRowContext(ctx, `SELECT `+riskRecordCols+` FROM finding_risk WHERE finding_id = $1`, findingID).Scan(s.dest()...)
	if err != nil {
		return risk.Record{}, notFound(err, "risk record for finding", findingID)
	}
	rec, err := s.record()
	if err != nil {
		return risk.Record{}, err
	}
	return *rec, nil
}

// recordBatch bounds the records per upsert: 24 columns × 400 rows stays
// well under both engines' parameter limits (32,766 and 65,535).
const recordBatch = 400

func (t riskTx) PutRecords(ctx context.Context, rs []risk.Record) error {
	// One statement may not touch a row twice (PostgreSQL refuses): the
	// last record given for a finding wins.
	last := make(map[string]int, len(rs))
	for i := range rs {
		last[rs[i].FindingID] = i
	}
	recs := make([]*risk.Record, 0, len(last))
	for i := range rs {
		if last[rs[i].FindingID] == i {
			recs = append(recs, &rs[i])
		}
	}
	cols := strings.Split(riskRecordCols, ",")
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		c = strings.TrimSpace(c)
		sets = append(sets, c+" = excluded."+c)
	}
	upsert := ` ON CONFLICT (finding_id) DO UPDATE SET ` + strings.Join(sets, ", ")
	for start := 0; start < len(recs); start += recordBatch {
		batch := recs[start:min(start+recordBatch, len(recs))]
		args := make([]any, 0, len(batch)*riskRecordColCount)
		for _, r := range batch {
			a, err := recordArgs(r)
			if err != nil {
				return err
			}
			args = append(args, a...)
		}
		q := `INSERT INTO finding_risk (` + riskRecordCols + `) VALUES ` + valuesList(t.db.engine, len(batch), riskRecordColCount) + upsert
		if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store risk records: %w", translate(err))
		}
	}
	return nil
}

// valuesList renders rows placeholder tuples of cols each: ($1,$2),($3,$4)
// on PostgreSQL, (?,?),(?,?) on SQLite. SQLite files every $N parameter in a
// list it searches linearly when parsing and again when binding, so
// thousands of them cost quadratic time (most of a 10,000-record upsert);
// anonymous ? parameters are not listed.
func valuesList(engine Engine, rows, cols int) string {
	var sb strings.Builder
	sb.Grow(rows * cols * 6)
	n := 0
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for j := range cols {
			if j > 0 {
				sb.WriteByte(',')
			}
			n++
			if engine == SQLite {
				sb.WriteByte('?')
			} else {
				sb.WriteByte('$')
				sb.WriteString(strconv.Itoa(n))
			}
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// History.

const riskEventCols = `finding_id, at, tier, score, due_at, status, reason, policy_version`

const riskEventColCount = 8

func (r riskReader) History(ctx context.Context, findingID string) ([]risk.Event, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+riskEventCols+` FROM finding_risk_events WHERE finding_id = $1 ORDER BY at, id`, findingID)
	if err != nil {
		return nil, fmt.Errorf("risk history: %w", translate(err))
	}
	defer rows.Close()
	out := []risk.Event{}
	for rows.Next() {
		var (
			e   risk.Event
			due sql.NullTime
		)
		if err := rows.Scan(&e.FindingID, &e.At, &e.Tier, &e.Score, &due, &e.Status, &e.Reason, &e.PolicyVersion); err != nil {
			return nil, fmt.Errorf("scan risk event: %w", err)
		}
		e.At, e.DueAt = e.At.UTC(), nullZero(due)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("risk history: %w", translate(err))
	}
	return out, nil
}

// eventBatch bounds the events per insert.
const eventBatch = 1000

func (t riskTx) AddEvents(ctx context.Context, es []risk.Event) error {
	for start := 0; start < len(es); start += eventBatch {
		batch := es[start:min(start+eventBatch, len(es))]
		args := make([]any, 0, len(batch)*riskEventColCount)
		for _, e := range batch {
			args = append(args, e.FindingID, e.At.UTC(), e.Tier, e.Score, zeroNull(e.DueAt), e.Status, e.Reason, e.PolicyVersion)
		}
		q := `INSERT INTO finding_risk_events (` + riskEventCols + `) VALUES ` + valuesList(t.db.engine, len(batch), riskEventColCount)
		if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store risk events: %w", translate(err))
		}
	}
	return nil
}

// Subjects.

// subjectAssetCols are the asset facts policies are evaluated on.
const subjectAssetCols = `a.id, a.name, a.type, COALESCE(a.site_id, ''), a.network_zone, a.exposure,
	a.criticality, a.safety_impact, a.data_class, a.handles_phi, a.regulated_device, a.restriction,
	a.os_name, a.make, a.model`

// qualify prefixes each column of a column list with a table alias.
func qualify(cols, alias string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// EachSubject reads findings joined with their asset, the asset's tags and
// groups (aggregated once per asset, not looked up per finding), the site's
// time zone and the stored record, in one streamed query: memory stays flat
// however many findings there are. Findings whose asset was deleted are
// left out; without the asset there is nothing to assess them on. Groups
// are group IDs, as exceptions of group scope name them. Subjects come in
// no particular order; those of one asset may share their Tags and Groups
// slices, which fn must not modify.
func (r riskReader) EachSubject(ctx context.Context, assetID string, fn func(risk.Subject) error) error {
	agg := `json_group_array(%[1]s ORDER BY %[1]s)`
	if r.engine == Postgres {
		agg = `json_agg(%[1]s ORDER BY %[1]s)::text`
	}
	var (
		args       []any
		aggWhere   string
		assetWhere string
	)
	if assetID != "" {
		args = append(args, assetID)
		aggWhere = ` WHERE asset_id = $1`
		assetWhere = ` AND f.asset_id = $1`
	}
	q := `SELECT ` + qualify(findingCols, "f") + `, ` + subjectAssetCols + `,
		COALESCE(tg.tags, '[]'), COALESCE(gr.grps, '[]'), COALESCE(s.time_zone, ''), ` + qualify(riskRecordCols, "r") + `
	FROM findings f
	JOIN assets a ON a.id = f.asset_id
	LEFT JOIN sites s ON s.id = a.site_id
	LEFT JOIN (SELECT asset_id, ` + fmt.Sprintf(agg, "tag") + ` AS tags FROM asset_tags` + aggWhere + ` GROUP BY asset_id) tg ON tg.asset_id = f.asset_id
	LEFT JOIN (SELECT asset_id, ` + fmt.Sprintf(agg, "group_id") + ` AS grps FROM asset_group_members` + aggWhere + ` GROUP BY asset_id) gr ON gr.asset_id = f.asset_id
	LEFT JOIN finding_risk r ON r.finding_id = f.id
	WHERE (f.state = 'open' OR r.finding_id IS NULL OR r.status IN ('open', 'excepted'))` + assetWhere
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read findings to assess: %w", translate(err))
	}
	defer rows.Close()
	// One entry per asset: a hospital group's assets, not its findings.
	members := map[string]assetMembers{}
	// The scan targets are reused row after row; each subject gets copies.
	var (
		a                 policy.AssetFacts
		tags, groups, tzn string
		rec               recordScan
	)
	scan := &withExtra{r: rows, extra: append([]any{&a.ID, &a.Name, &a.Type, &a.Site, &a.NetworkZone, &a.Exposure,
		&a.Criticality, &a.SafetyImpact, &a.DataClass, &a.PHI, &a.RegulatedDevice, &a.Restriction, &a.OSName,
		&a.Make, &a.Model, &tags, &groups, &tzn}, rec.dest()...)}
	for rows.Next() {
		f, err := scanFinding(scan)
		if err != nil {
			return fmt.Errorf("scan finding to assess: %w", err)
		}
		// Decode each asset's tags and groups once, not once per finding.
		m, ok := members[a.ID]
		if !ok || m.tagsJSON != tags || m.groupsJSON != groups {
			m = assetMembers{tagsJSON: tags, groupsJSON: groups}
			if m.tags, err = jsonStrings(tags); err != nil {
				return fmt.Errorf("asset %s: tags: %w", a.ID, err)
			}
			if m.groups, err = jsonStrings(groups); err != nil {
				return fmt.Errorf("asset %s: groups: %w", a.ID, err)
			}
			members[a.ID] = m
		}
		a.Tags, a.Groups = m.tags, m.groups
		sub := risk.Subject{Finding: f, Asset: a, TimeZone: tzn}
		if sub.Record, err = rec.record(); err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read findings to assess: %w", translate(err))
	}
	return nil
}

// assetMembers is an asset's aggregated tags and groups, as read and as
// decoded.
type assetMembers struct {
	tagsJSON, groupsJSON string
	tags, groups         []string
}

// withExtra scans a row into the destinations its caller asks for followed
// by extra ones, so one row can feed scanFinding and more.
type withExtra struct {
	r     rowScanner
	extra []any
	buf   []any
}

func (w *withExtra) Scan(dest ...any) error {
	w.buf = append(append(w.buf[:0], dest...), w.extra...)
	return w.r.Scan(w.buf...)
}

// jsonStrings decodes an aggregated JSON array; empty is nil.
func jsonStrings(s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Worklist.

// worklistAll is the worklist status that lists every status.
const worklistAll = "all"

// Worklist limits.
const (
	worklistDefaultLimit = 50
	worklistMaxLimit     = 1000
)

// slaCondition is risk.SLAState as SQL over finding_risk r, with ? for the
// time judged at (or, for met and missed, the met_sla value). It names its
// own status, so the default status filter does not apply. A clock that
// has not started (basis awaiting_fix) has no due date, so due_at alone
// tells running clocks apart, from the (status, due_at) index.
func slaCondition(sla string) (string, bool) {
	switch sla {
	case risk.SLABreached:
		return `r.status = 'open' AND r.due_at < ?`, true
	case risk.SLADueSoon:
		return `r.status = 'open' AND r.due_at >= ? AND (r.due_soon_at IS NULL OR r.due_soon_at <= ?)`, true
	case risk.SLAOnTrack:
		return `r.status = 'open' AND r.due_at IS NOT NULL AND r.due_soon_at > ?`, true
	case risk.SLAAwaitingFix:
		return `r.status = 'open' AND r.due_at IS NULL`, true
	case risk.SLAExcepted:
		return `r.status = 'excepted'`, true
	case risk.SLAMet, risk.SLAMissed:
		return `r.status = 'fixed' AND r.met_sla = ?`, true
	}
	return "", false
}

func (r riskReader) Worklist(ctx context.Context, f risk.WorklistFilter) (risk.WorklistPage, error) {
	now := f.Now
	if now.IsZero() {
		now = r.now()
	}
	now = now.UTC()
	var (
		conds []string
		args  []any
	)
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		conds = append(conds, cond)
	}
	switch f.Status {
	case "":
		if f.SLA == "" {
			add(`r.status = ?`, risk.StatusOpen)
		}
	case worklistAll:
	default:
		add(`r.status = ?`, f.Status)
	}
	if f.SLA != "" {
		cond, ok := slaCondition(f.SLA)
		if !ok {
			return risk.WorklistPage{}, errs.E(errs.Invalid, "unknown SLA state %q", f.SLA)
		}
		var vals []any
		for range strings.Count(cond, "?") {
			vals = append(vals, now)
		}
		switch f.SLA {
		case risk.SLAMet:
			vals = []any{true}
		case risk.SLAMissed:
			vals = []any{false}
		}
		add(cond, vals...)
	}
	if f.Tier != "" {
		add(`r.tier = ?`, f.Tier)
	}
	if f.AssetID != "" {
		add(`r.asset_id = ?`, f.AssetID)
	}
	if f.SiteID != "" {
		add(`r.asset_id IN (SELECT id FROM assets WHERE site_id = ?)`, f.SiteID)
	}
	if f.VulnID != "" {
		add(`r.vuln_id = ?`, f.VulnID)
	}
	// SQLite cannot put NULLs last through an index; its indexes order by
	// (due_at IS NULL) first, and so do its queries.
	dueOrder := `r.due_at ASC NULLS LAST`
	if r.engine == SQLite {
		dueOrder = `(r.due_at IS NULL), r.due_at`
	}
	var order string
	switch f.Sort {
	case "", "score":
		order = `r.score DESC, ` + dueOrder + `, r.finding_id`
	case "due":
		order = dueOrder + `, r.score DESC, r.finding_id`
	default:
		return risk.WorklistPage{}, errs.E(errs.Invalid, "unknown worklist order %q (want score or due)", f.Sort)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = worklistDefaultLimit
	}
	limit = min(limit, worklistMaxLimit)
	page := risk.WorklistPage{Items: []risk.WorklistItem{}, Limit: limit, Offset: max(f.Offset, 0)}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM finding_risk r`+where, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("count worklist: %w", translate(err))
	}
	if page.Total <= page.Offset {
		return page, nil
	}
	// The page's IDs first, from the indexes alone; then only those rows
	// are read whole and joined, rather than sorting wide rows.
	n := len(args)
	q := fmt.Sprintf(`SELECT %s, COALESCE(f.ecosystem, ''), COALESCE(f.package, ''), COALESCE(f.version, ''),
		COALESCE(f.fixed_version, ''), COALESCE(f.fix_note, ''), COALESCE(a.name, ''), COALESCE(a.site_id, '')
	FROM (SELECT r.finding_id FROM finding_risk r%s ORDER BY %s LIMIT $%d OFFSET $%d) p
	JOIN finding_risk r ON r.finding_id = p.finding_id
	LEFT JOIN findings f ON f.id = r.finding_id
	LEFT JOIN assets a ON a.id = r.asset_id
	ORDER BY %s`, qualify(riskRecordCols, "r"), where, order, n+1, n+2, order)
	rows, err := r.q.QueryContext(ctx, q, append(args, limit, page.Offset)...)
	if err != nil {
		return page, fmt.Errorf("list worklist: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s  recordScan
			it risk.WorklistItem
		)
		dest := append(s.dest(), &it.Ecosystem, &it.Package, &it.Version, &it.FixedVersion, &it.FixNote, &it.AssetName, &it.SiteID)
		if err := rows.Scan(dest...); err != nil {
			return page, fmt.Errorf("scan worklist: %w", err)
		}
		rec, err := s.record()
		if err != nil {
			return page, err
		}
		it.Record = *rec
		it.SLA = risk.SLAState(it.Record, now)
		page.Items = append(page.Items, it)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list worklist: %w", translate(err))
	}
	return page, nil
}

// Exceptions.

const exceptionCols = `id, scope, target, vuln_id, decision, reason, controls, owner, state,
	requested_by, requested_at, decided_by, decided_at, decision_note, expires_at, next_review_at,
	last_reviewed_at, ended_at, ended_by, end_note, revision, updated_at`

const exceptionColCount = 22

func exceptionArgs(e *risk.Exception) ([]any, error) {
	controls := e.Controls
	if controls == nil {
		controls = []risk.Control{}
	}
	js, err := json.Marshal(controls)
	if err != nil {
		return nil, fmt.Errorf("exception %s: encode controls: %w", e.ID, err)
	}
	return []any{e.ID, e.Scope, e.Target, e.VulnID, e.Decision, e.Reason, string(js), e.Owner, e.State,
		e.RequestedBy, e.RequestedAt.UTC(), e.DecidedBy, nullTime(e.DecidedAt), e.DecisionNote,
		zeroNull(e.ExpiresAt), zeroNull(e.NextReviewAt), nullTime(e.LastReviewedAt), nullTime(e.EndedAt),
		e.EndedBy, e.EndNote, e.Revision, e.UpdatedAt.UTC()}, nil
}

func scanException(r rowScanner) (risk.Exception, error) {
	var (
		e                                    risk.Exception
		controls                             string
		decided, expires, review, last, ends sql.NullTime
	)
	err := r.Scan(&e.ID, &e.Scope, &e.Target, &e.VulnID, &e.Decision, &e.Reason, &controls, &e.Owner, &e.State,
		&e.RequestedBy, &e.RequestedAt, &e.DecidedBy, &decided, &e.DecisionNote, &expires, &review,
		&last, &ends, &e.EndedBy, &e.EndNote, &e.Revision, &e.UpdatedAt)
	if err != nil {
		return e, err
	}
	e.RequestedAt, e.UpdatedAt = e.RequestedAt.UTC(), e.UpdatedAt.UTC()
	e.DecidedAt, e.LastReviewedAt, e.EndedAt = timePtr(decided), timePtr(last), timePtr(ends)
	e.ExpiresAt, e.NextReviewAt = nullZero(expires), nullZero(review)
	if err := json.Unmarshal([]byte(controls), &e.Controls); err != nil {
		return e, fmt.Errorf("exception %s: controls: %w", e.ID, err)
	}
	if len(e.Controls) == 0 {
		e.Controls = nil
	}
	return e, nil
}

func (r riskReader) GetException(ctx context.Context, id string) (risk.Exception, error) {
	e, err := scanException(r.q.QueryRowContext(ctx, `SELECT `+exceptionCols+` FROM risk_exceptions WHERE id = $1`, id))
	if err != nil {
		return e, notFound(err, "exception", id)
	}
	return e, nil
}

func (r riskReader) Exceptions(ctx context.Context, f risk.ExceptionFilter) ([]risk.Exception, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1))
	}
	if f.State != "" {
		add(`state = ?`, f.State)
	}
	if f.Scope != "" {
		add(`scope = ?`, f.Scope)
	}
	if f.Target != "" {
		add(`target = ?`, f.Target)
	}
	if f.ReviewDueBy != nil || f.ExpiringBy != nil {
		add(`state = ?`, risk.ExceptionApproved)
	}
	if f.ReviewDueBy != nil {
		add(`next_review_at <= ?`, f.ReviewDueBy.UTC())
	}
	if f.ExpiringBy != nil {
		add(`expires_at <= ?`, f.ExpiringBy.UTC())
	}
	where := ""
	if len(conds) > 0 {
		where = ` WHERE ` + strings.Join(conds, ` AND `)
	}
	rows, err := r.q.QueryContext(ctx, `SELECT `+exceptionCols+` FROM risk_exceptions`+where+` ORDER BY requested_at DESC, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", translate(err))
	}
	defer rows.Close()
	out := []risk.Exception{}
	for rows.Next() {
		e, err := scanException(rows)
		if err != nil {
			return nil, fmt.Errorf("scan exception: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list exceptions: %w", translate(err))
	}
	return out, nil
}

// LockException reads an exception and, on PostgreSQL, locks its row until
// the transaction ends, so two replicas deciding it queue. SQLite's single
// writer already serialises write transactions.
func (t riskTx) LockException(ctx context.Context, id string) (risk.Exception, error) {
	q := `SELECT ` + exceptionCols + ` FROM risk_exceptions WHERE id = $1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE`
	}
	e, err := scanException(t.tx.QueryRowContext(ctx, q, id))
	if err != nil {
		return e, notFound(err, "exception", id)
	}
	return e, nil
}

// errExceptionChanged is an optimistic-lock miss on an exception.
var errExceptionChanged = errs.E(errs.Conflict, "exception was changed by someone else; reload and retry")

func (t riskTx) PutException(ctx context.Context, e risk.Exception) error {
	if e.Revision < 1 {
		return errs.E(errs.Invalid, "exception %s: revision %d; want 1 or more", e.ID, e.Revision)
	}
	args, err := exceptionArgs(&e)
	if err != nil {
		return err
	}
	var res sql.Result
	if e.Revision == 1 {
		// ON CONFLICT DO NOTHING rather than a unique violation, which
		// would abort the whole transaction on PostgreSQL.
		res, err = t.tx.ExecContext(ctx, `INSERT INTO risk_exceptions (`+exceptionCols+`) VALUES `+
			valuesList(t.db.engine, 1, exceptionColCount)+` ON CONFLICT (id) DO NOTHING`, args...)
	} else {
		cols := strings.Split(exceptionCols, ",")
		sets := make([]string, 0, len(cols)-1)
		for i, c := range cols[1:] {
			sets = append(sets, fmt.Sprintf("%s = $%d", strings.TrimSpace(c), i+2))
		}
		res, err = t.tx.ExecContext(ctx, fmt.Sprintf(`UPDATE risk_exceptions SET %s WHERE id = $1 AND revision = $%d`,
			strings.Join(sets, ", "), exceptionColCount+1), append(args, e.Revision-1)...)
	}
	if err != nil {
		return fmt.Errorf("store exception %s: %w", e.ID, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store exception %s: %w", e.ID, translate(err))
	}
	if n != 1 {
		return fmt.Errorf("store exception %s: %w", e.ID, errExceptionChanged)
	}
	return nil
}

func (t riskTx) AddReview(ctx context.Context, rv risk.Review) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO risk_exception_reviews (exception_id, at, reviewer, outcome, note)
		VALUES ($1, $2, $3, $4, $5)`, rv.ExceptionID, rv.At.UTC(), rv.By, rv.Outcome, rv.Note)
	if err != nil {
		err = translate(err)
		if errors.Is(err, errs.ErrConflict) {
			return errs.Wrap(errs.NotFound, err, "exception %q not found", rv.ExceptionID)
		}
		return fmt.Errorf("store exception review: %w", err)
	}
	return nil
}

func (r riskReader) Reviews(ctx context.Context, exceptionID string) ([]risk.Review, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT exception_id, at, reviewer, outcome, note FROM risk_exception_reviews
		WHERE exception_id = $1 ORDER BY at, id`, exceptionID)
	if err != nil {
		return nil, fmt.Errorf("list exception reviews: %w", translate(err))
	}
	defer rows.Close()
	out := []risk.Review{}
	for rows.Next() {
		var rv risk.Review
		if err := rows.Scan(&rv.ExceptionID, &rv.At, &rv.By, &rv.Outcome, &rv.Note); err != nil {
			return nil, fmt.Errorf("scan exception review: %w", err)
		}
		rv.At = rv.At.UTC()
		out = append(out, rv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list exception reviews: %w", translate(err))
	}
	return out, nil
}
