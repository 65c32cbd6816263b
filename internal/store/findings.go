package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/match"
)

// Findings returns the matcher's view of the database.
func (db *DB) Findings() match.FindingsStore {
	return findStore{db: db, findReader: findReader{q: db.r}}
}

type findStore struct {
	db *DB
	findReader
}

type findReader struct{ q querier }

type findTx struct {
	*Tx
	findReader
}

func (s findStore) Transact(ctx context.Context, fn func(match.FindingsTx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error { return fn(findTx{Tx: t, findReader: findReader{q: t.tx}}) })
}

const softwareMatchCols = `name, version, arch, ecosystem, purl, source_name, source_version`

func scanPackage(r rowScanner, extra ...any) (match.Package, error) {
	var p match.Package
	err := r.Scan(append(extra, &p.Name, &p.Version, &p.Arch, &p.Ecosystem, &p.PURL, &p.SourceName, &p.SourceVersion)...)
	return p, err
}

// assetIdentity fills what matching needs from an asset row besides its
// software: the OS/firmware CPE and make/model/firmware for CSAF products.
func assetIdentity(id, cpe, make_, model, firmware string) match.HostInventory {
	h := match.HostInventory{AssetID: id}
	if cpe != "" {
		h.CPEs = []string{cpe}
	}
	if make_ != "" && model != "" {
		h.Products = []match.Product{{Vendor: make_, Name: model, Version: firmware}}
	}
	return h
}

func (r findReader) HostInventory(ctx context.Context, assetID string) (match.HostInventory, error) {
	var id, cpe, make_, model, fw string
	err := r.q.QueryRowContext(ctx, `SELECT id, cpe, make, model, firmware_version FROM assets WHERE id = $1`, assetID).
		Scan(&id, &cpe, &make_, &model, &fw)
	if err != nil {
		return match.HostInventory{}, notFound(err, "asset", assetID)
	}
	h := assetIdentity(id, cpe, make_, model, fw)
	rows, err := r.q.QueryContext(ctx, `SELECT `+softwareMatchCols+` FROM asset_software WHERE asset_id = $1 ORDER BY ord`, assetID)
	if err != nil {
		return h, fmt.Errorf("load software: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanPackage(rows)
		if err != nil {
			return h, fmt.Errorf("scan software: %w", err)
		}
		h.Packages = append(h.Packages, p)
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("load software: %w", translate(err))
	}
	return h, nil
}

func (r findReader) EachAsset(ctx context.Context, fn func(match.HostInventory) error) error {
	rows, err := r.q.QueryContext(ctx, `SELECT id, cpe, make, model, firmware_version FROM assets ORDER BY id`)
	if err != nil {
		return fmt.Errorf("list assets: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id, cpe, make_, model, fw string
		if err := rows.Scan(&id, &cpe, &make_, &model, &fw); err != nil {
			return fmt.Errorf("scan asset: %w", err)
		}
		if err := fn(assetIdentity(id, cpe, make_, model, fw)); err != nil {
			return err
		}
	}
	return translate(rows.Err())
}

// EachSoftware streams the software table once, in primary-key order, so
// that neither engine sorts twenty million rows.
func (r findReader) EachSoftware(ctx context.Context, fn func(string, match.Package) error) error {
	rows, err := r.q.QueryContext(ctx, `SELECT asset_id, `+softwareMatchCols+` FROM asset_software ORDER BY asset_id, ord`)
	if err != nil {
		return fmt.Errorf("stream software: %w", translate(err))
	}
	defer rows.Close()
	var id string
	for rows.Next() {
		p, err := scanPackage(rows, &id)
		if err != nil {
			return fmt.Errorf("scan software: %w", err)
		}
		if err := fn(id, p); err != nil {
			return err
		}
	}
	return translate(rows.Err())
}

// keyBatch bounds the (family, package) pairs per statement.
const keyBatch = 400

func (r findReader) AssetsWithFindings(ctx context.Context, keys []match.Key) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for start := 0; start < len(keys); start += keyBatch {
		batch := keys[start:min(start+keyBatch, len(keys))]
		var (
			conds []string
			args  []any
		)
		for _, k := range batch {
			args = append(args, k.Family, k.Name)
			conds = append(conds, fmt.Sprintf("(family = $%d AND package = $%d)", len(args)-1, len(args)))
		}
		rows, err := r.q.QueryContext(ctx, `SELECT DISTINCT asset_id FROM findings WHERE state <> 'fixed' AND (`+
			strings.Join(conds, " OR ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("assets with findings: %w", translate(err))
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("assets with findings: %w", err)
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("assets with findings: %w", translate(err))
		}
	}
	return out, nil
}

const findingCols = `id, asset_id, family, ecosystem, package, version, binaries, vuln_id, advisory_ids,
	fixed_version, source, state, first_seen, last_seen, fixed_at, reopened_at, reopen_count,
	vex_status, vex_justification, vex_impact, vex_document, kev, epss, fix_note`

const findingColCount = 24

func findingArgs(f *match.Finding) []any {
	var vex match.VEX
	if f.VEX != nil {
		vex = *f.VEX
	}
	return []any{f.ID, f.AssetID, f.Key().Family, f.Ecosystem, f.Package, f.Version, jsonList(f.Binaries),
		f.VulnID, jsonList(f.AdvisoryIDs), f.FixedVersion, f.Source, string(f.State), f.FirstSeen.UTC(),
		f.LastSeen.UTC(), nullTime(f.FixedAt), nullTime(f.ReopenedAt), f.ReopenCount, string(vex.Status),
		vex.Justification, vex.Impact, vex.Document, f.KEV, f.EPSS, f.FixNote}
}

func jsonList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func scanFinding(r rowScanner) (match.Finding, error) {
	var (
		f                   match.Finding
		family, state       string
		bins, ids           string
		fixedAt, reopenedAt sql.NullTime
		vex                 match.VEX
		vexStatus           string
		firstSeen, lastSeen time.Time
	)
	err := r.Scan(&f.ID, &f.AssetID, &family, &f.Ecosystem, &f.Package, &f.Version, &bins, &f.VulnID, &ids,
		&f.FixedVersion, &f.Source, &state, &firstSeen, &lastSeen, &fixedAt, &reopenedAt, &f.ReopenCount,
		&vexStatus, &vex.Justification, &vex.Impact, &vex.Document, &f.KEV, &f.EPSS, &f.FixNote)
	if err != nil {
		return f, err
	}
	f.State = match.State(state)
	f.FirstSeen, f.LastSeen = firstSeen.UTC(), lastSeen.UTC()
	f.FixedAt, f.ReopenedAt = timePtr(fixedAt), timePtr(reopenedAt)
	if vexStatus != "" {
		vex.Status = advisory.VEXStatus(vexStatus)
		f.VEX = &vex
	}
	if err := json.Unmarshal([]byte(bins), &f.Binaries); err != nil {
		return f, fmt.Errorf("finding %s: binaries: %w", f.ID, err)
	}
	if err := json.Unmarshal([]byte(ids), &f.AdvisoryIDs); err != nil {
		return f, fmt.Errorf("finding %s: advisory_ids: %w", f.ID, err)
	}
	if len(f.Binaries) == 0 {
		f.Binaries = nil
	}
	if len(f.AdvisoryIDs) == 0 {
		f.AdvisoryIDs = nil
	}
	return f, nil
}

func (r findReader) queryFindings(ctx context.Context, q string, args ...any) ([]match.Finding, error) {
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list findings: %w", translate(err))
	}
	defer rows.Close()
	var out []match.Finding
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, fmt.Errorf("scan finding: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list findings: %w", translate(err))
	}
	return out, nil
}

func (r findReader) GetFinding(ctx context.Context, id string) (match.Finding, error) {
	f, err := scanFinding(r.q.QueryRowContext(ctx, `SELECT `+findingCols+` FROM findings WHERE id = $1`, id))
	if err != nil {
		return f, notFound(err, "finding", id)
	}
	return f, nil
}

func (r findReader) ListFindings(ctx context.Context, f match.FindingFilter) (match.FindingPage, error) {
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
	if f.AssetID != "" {
		add("asset_id = ?", f.AssetID)
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.KEV != nil {
		add("kev = ?", *f.KEV)
	}
	if f.Package != "" {
		add("package = ?", f.Package)
	}
	if f.VulnID != "" {
		// Advisory IDs are stored as a JSON list; the quotes make the LIKE
		// match whole IDs only.
		add(`(vuln_id = ? OR advisory_ids LIKE ? ESCAPE '\')`, f.VulnID, `%"`+likeEscape(f.VulnID)+`"%`)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	page := match.FindingPage{Limit: f.Limit, Offset: f.Offset, Findings: []match.Finding{}}
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM findings`+where, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("count findings: %w", translate(err))
	}
	if page.Total == 0 || f.Limit == 0 {
		return page, nil
	}
	n := len(args)
	q := fmt.Sprintf(`SELECT %s FROM findings%s ORDER BY first_seen DESC, id LIMIT $%d OFFSET $%d`, findingCols, where, n+1, n+2)
	fs, err := r.queryFindings(ctx, q, append(args, f.Limit, f.Offset)...)
	if err != nil {
		return page, err
	}
	if fs != nil {
		page.Findings = fs
	}
	return page, nil
}

// LockAsset takes a transaction-scoped advisory lock on PostgreSQL so two
// replicas evaluating one asset queue instead of racing to insert the same
// finding. SQLite has one writer already.
func (t findTx) LockAsset(ctx context.Context, assetID string) error {
	if t.db.engine != Postgres {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`, "finding:"+assetID); err != nil {
		return fmt.Errorf("lock asset %s: %w", assetID, translate(err))
	}
	return nil
}

func (t findTx) FindingsInScope(ctx context.Context, scope match.Scope) ([]match.Finding, error) {
	if scope.AssetID == "" {
		return nil, errs.E(errs.Internal, "findings are loaded one asset at a time")
	}
	all, err := t.queryFindings(ctx, `SELECT `+findingCols+` FROM findings WHERE asset_id = $1`, scope.AssetID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, f := range all {
		if scope.Contains(f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// insertBatch keeps multi-row inserts under SQLite's parameter limit.
const insertBatch = 999 / findingColCount

// seenBatch bounds the IDs per last_seen update.
const seenBatch = 500

func (t findTx) ApplyChanges(ctx context.Context, c match.Changes) error {
	var inserts []*match.Finding
	for i := range c.Changes {
		ch := &c.Changes[i]
		if ch.Before == nil {
			inserts = append(inserts, &ch.After)
			continue
		}
		if err := t.updateFinding(ctx, &ch.After); err != nil {
			return err
		}
	}
	for start := 0; start < len(inserts); start += insertBatch {
		batch := inserts[start:min(start+insertBatch, len(inserts))]
		var (
			sb   strings.Builder
			args = make([]any, 0, len(batch)*findingColCount)
		)
		sb.WriteString(`INSERT INTO findings (` + findingCols + `) VALUES `)
		for i, f := range batch {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j := range findingColCount {
				if j > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, "$%d", len(args)+j+1)
			}
			sb.WriteByte(')')
			args = append(args, findingArgs(f)...)
		}
		if _, err := t.tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("store findings: %w", translate(err))
		}
	}
	for start := 0; start < len(c.Seen); start += seenBatch {
		batch := c.Seen[start:min(start+seenBatch, len(c.Seen))]
		args := []any{c.Now.UTC()}
		ph := make([]string, len(batch))
		for i, id := range batch {
			args = append(args, id)
			ph[i] = fmt.Sprintf("$%d", i+2)
		}
		if _, err := t.tx.ExecContext(ctx, `UPDATE findings SET last_seen = $1 WHERE id IN (`+strings.Join(ph, ",")+`)`, args...); err != nil {
			return fmt.Errorf("mark findings seen: %w", translate(err))
		}
	}
	return nil
}

func (t findTx) updateFinding(ctx context.Context, f *match.Finding) error {
	args := findingArgs(f)
	cols := strings.Split(findingCols, ",")
	sets := make([]string, 0, len(cols)-1)
	for i, c := range cols[1:] {
		sets = append(sets, fmt.Sprintf("%s = $%d", strings.TrimSpace(c), i+2))
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE findings SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...)
	if err != nil {
		return fmt.Errorf("update finding: %w", translate(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("update finding %s: %w", f.ID, conflictOrMissing)
	}
	return nil
}
