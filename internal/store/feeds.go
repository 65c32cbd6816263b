package store

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
)

// Feeds returns the feed store: the sync service's storage, and the reader
// the matching engine and API consume (CurrentAdvisories, KEV, EPSS,
// Advisory, SearchAdvisories, FeedStatus).
func (db *DB) Feeds() feeds.Store {
	return feedStore{db: db, feedReader: feedReader{q: db.r}}
}

type feedStore struct {
	db *DB
	feedReader
}

type feedReader struct{ q querier }

func (s feedStore) Transact(ctx context.Context, fn func(feeds.Tx) error) error {
	return s.db.Transact(ctx, func(t *Tx) error { return fn(feedTx{Tx: t}) })
}

type feedTx struct{ *Tx }

// Lock takes a session-level PostgreSQL advisory lock on a dedicated
// connection for the whole sync (fetch, parse and swap), so two replicas do
// not download the same feed at once. SQLite needs none: it has one writer,
// and the swap re-checks the current version under its write lock anyway.
func (s feedStore) Lock(ctx context.Context, feed string) (func(), error) {
	if s.db.engine != Postgres {
		return func() {}, nil
	}
	conn, err := s.db.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock feed %s: %w", feed, translate(err))
	}
	key := "patchward.feed:" + feed
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock feed %s: %w", feed, translate(err))
	}
	if !ok {
		conn.Close()
		return nil, errs.E(errs.Conflict, "feed %q is being synced by another Patchward process", feed)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); err != nil {
			// A session lock outlives the connection's return to the pool:
			// if it cannot be released, the connection must not be reused.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}

const statusCols = `f.name, f.kind, f.source, f.last_attempt_at, f.last_success_at, f.last_error,
	v.id, v.version, v.fetched_at, v.etag, v.last_modified, v.sha256, v.cursor, v.advisories, v.kev, v.epss, v.meta`

func scanStatus(r rowScanner) (feeds.Status, error) {
	var (
		st                        feeds.Status
		kind                      string
		attempt, success, fetched sql.NullTime
		id                        sql.NullInt64
		version, adv, kev, epss   sql.NullInt64
		etag, lm, sum, cur, meta  sql.NullString
	)
	err := r.Scan(&st.Feed, &kind, &st.Source, &attempt, &success, &st.LastError,
		&id, &version, &fetched, &etag, &lm, &sum, &cur, &adv, &kev, &epss, &meta)
	if err != nil {
		return st, err
	}
	st.Kind = feeds.Kind(kind)
	st.LastAttemptAt, st.LastSuccessAt, st.FetchedAt = utcPtr(attempt), utcPtr(success), utcPtr(fetched)
	st.VersionID, st.Version = id.Int64, int(version.Int64)
	st.ETag, st.LastModified, st.SHA256, st.Cursor = etag.String, lm.String, sum.String, cur.String
	st.Advisories, st.KEV, st.EPSS = int(adv.Int64), int(kev.Int64), int(epss.Int64)
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &st.Meta); err != nil {
			return st, fmt.Errorf("feed %s: version meta: %w", st.Feed, err)
		}
	}
	return st, nil
}

func utcPtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func (r feedReader) State(ctx context.Context, feed string) (feeds.Status, error) {
	st, err := scanStatus(r.q.QueryRowContext(ctx, `SELECT `+statusCols+`
		FROM feeds f LEFT JOIN feed_versions v ON v.id = f.current_version_id WHERE f.name = $1`, feed))
	if err != nil {
		return st, notFound(err, "feed", feed)
	}
	return st, nil
}

func (r feedReader) FeedStatus(ctx context.Context) ([]feeds.Status, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+statusCols+`
		FROM feeds f LEFT JOIN feed_versions v ON v.id = f.current_version_id ORDER BY f.name`)
	if err != nil {
		return nil, fmt.Errorf("feed status: %w", translate(err))
	}
	defer rows.Close()
	out := []feeds.Status{}
	for rows.Next() {
		st, err := scanStatus(rows)
		if err != nil {
			return nil, fmt.Errorf("feed status: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("feed status: %w", translate(err))
	}
	return out, nil
}

// CurrentAdvisories streams from one statement, which both engines answer
// from one snapshot even if a swap commits meanwhile.
func (r feedReader) CurrentAdvisories(ctx context.Context, fn func(advisory.Advisory) error) error {
	rows, err := r.q.QueryContext(ctx, `SELECT a.data FROM feeds f
		JOIN feed_advisories a ON a.version_id = f.current_version_id ORDER BY f.name, a.key`)
	if err != nil {
		return fmt.Errorf("read advisories: %w", translate(err))
	}
	defer rows.Close()
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return fmt.Errorf("read advisories: %w", translate(err))
		}
		var a advisory.Advisory
		if err := json.Unmarshal(data, &a); err != nil {
			return fmt.Errorf("decode stored advisory: %w", err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read advisories: %w", translate(err))
	}
	return nil
}

// KEV merges every KEV feed's current version; with several, the entry of
// the feed first by name wins.
func (r feedReader) KEV(ctx context.Context) (map[string]advisory.KEV, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT k.cve, k.data FROM feeds f
		JOIN feed_kev k ON k.version_id = f.current_version_id ORDER BY f.name`)
	if err != nil {
		return nil, fmt.Errorf("read KEV: %w", translate(err))
	}
	defer rows.Close()
	out := map[string]advisory.KEV{}
	var (
		cve  string
		data []byte
	)
	for rows.Next() {
		if err := rows.Scan(&cve, &data); err != nil {
			return nil, fmt.Errorf("read KEV: %w", translate(err))
		}
		if _, ok := out[cve]; ok {
			continue
		}
		var k advisory.KEV
		if err := json.Unmarshal(data, &k); err != nil {
			return nil, fmt.Errorf("decode stored KEV entry %s: %w", cve, err)
		}
		out[cve] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read KEV: %w", translate(err))
	}
	return out, nil
}

// EPSS merges every EPSS feed's current version; with several, the score
// of the feed first by name wins.
func (r feedReader) EPSS(ctx context.Context) (map[string]advisory.EPSS, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT e.cve, e.score, e.percentile FROM feeds f
		JOIN feed_epss e ON e.version_id = f.current_version_id ORDER BY f.name`)
	if err != nil {
		return nil, fmt.Errorf("read EPSS: %w", translate(err))
	}
	defer rows.Close()
	out := map[string]advisory.EPSS{}
	for rows.Next() {
		var e advisory.EPSS
		if err := rows.Scan(&e.CVE, &e.Score, &e.Percentile); err != nil {
			return nil, fmt.Errorf("read EPSS: %w", translate(err))
		}
		if _, ok := out[e.CVE]; !ok {
			out[e.CVE] = e
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read EPSS: %w", translate(err))
	}
	return out, nil
}

func (r feedReader) Advisory(ctx context.Context, id string) (advisory.Advisory, error) {
	var (
		a    advisory.Advisory
		data []byte
	)
	ident := strings.ToUpper(strings.TrimSpace(id))
	err := r.q.QueryRowContext(ctx, `SELECT a.data FROM feed_advisory_idents i
		JOIN feeds f ON f.current_version_id = i.version_id
		JOIN feed_advisories a ON a.version_id = i.version_id AND a.key = i.key
		WHERE i.ident = $1
		ORDER BY CASE WHEN upper(a.id) = $1 THEN 0 ELSE 1 END, f.name, a.key LIMIT 1`, ident).Scan(&data)
	if err != nil {
		return a, notFound(err, "advisory", id)
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("decode stored advisory %s: %w", id, err)
	}
	return a, nil
}

// prefixEnd is the smallest string above every string starting with p:
// U+10FFFF encodes to bytes above any other UTF-8 sequence, so byte-wise
// (SQLite BINARY, PostgreSQL "C") ranges [p, p+U+10FFFF) are prefix scans.
func prefixEnd(p string) string { return p + "\U0010FFFF" }

func (r feedReader) SearchAdvisories(ctx context.Context, q feeds.Query, limit, offset int) (feeds.Page, error) {
	page := feeds.Page{Limit: limit, Offset: offset, Hits: []feeds.Hit{}}
	if limit < 0 || offset < 0 {
		return page, errs.E(errs.Invalid, "limit and offset must not be negative")
	}
	var (
		sets []string
		args []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if id := strings.ToUpper(strings.TrimSpace(q.ID)); id != "" {
		sets = append(sets, fmt.Sprintf(`SELECT DISTINCT version_id, key FROM feed_advisory_idents WHERE ident >= %s AND ident < %s`,
			arg(id), arg(prefixEnd(id))))
	}
	eco := ""
	if q.Ecosystem != "" {
		// "Debian" also matches "Debian:12": ':' sorts just below ';'.
		eco = fmt.Sprintf(`(ecosystem = %s OR (ecosystem >= %s AND ecosystem < %s))`,
			arg(q.Ecosystem), arg(q.Ecosystem+":"), arg(q.Ecosystem+";"))
	}
	switch {
	case q.Package != "" && eco != "":
		sets = append(sets, fmt.Sprintf(`SELECT DISTINCT version_id, key FROM feed_advisory_packages WHERE package = %s AND %s`, arg(q.Package), eco))
	case q.Package != "":
		sets = append(sets, fmt.Sprintf(`SELECT DISTINCT version_id, key FROM feed_advisory_packages WHERE package = %s`, arg(q.Package)))
	case eco != "":
		sets = append(sets, `SELECT DISTINCT version_id, key FROM feed_advisory_packages WHERE `+eco)
	}
	if len(sets) == 0 {
		sets = append(sets, `SELECT version_id, key FROM feed_advisories`)
	}
	from := `(` + strings.Join(sets, ` INTERSECT `) + `) m JOIN feeds f ON f.current_version_id = m.version_id`
	if err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM `+from, args...).Scan(&page.Total); err != nil {
		return page, fmt.Errorf("search advisories: %w", translate(err))
	}
	if page.Total == 0 || limit == 0 {
		return page, nil
	}
	query := `SELECT f.name, a.data FROM ` + from + ` JOIN feed_advisories a ON a.version_id = m.version_id AND a.key = m.key
		ORDER BY a.id, f.name, a.key LIMIT ` + arg(limit) + ` OFFSET ` + arg(offset)
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return page, fmt.Errorf("search advisories: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			h    feeds.Hit
			data []byte
		)
		if err := rows.Scan(&h.Feed, &data); err != nil {
			return page, fmt.Errorf("search advisories: %w", translate(err))
		}
		if err := json.Unmarshal(data, &h.Advisory); err != nil {
			return page, fmt.Errorf("decode stored advisory: %w", err)
		}
		page.Hits = append(page.Hits, h)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("search advisories: %w", translate(err))
	}
	return page, nil
}

func (t feedTx) UpsertFeed(ctx context.Context, feed string, kind feeds.Kind, source string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO feeds (name, kind, source) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, source = excluded.source`, feed, string(kind), source)
	if err != nil {
		return fmt.Errorf("store feed %s: %w", feed, translate(err))
	}
	return nil
}

// CurrentVersionID locks the feed's row on PostgreSQL (FOR UPDATE) so two
// swaps of one feed serialise; SQLite's write transaction is already
// exclusive.
func (t feedTx) CurrentVersionID(ctx context.Context, feed string) (int64, error) {
	q := `SELECT current_version_id FROM feeds WHERE name = $1`
	if t.db.engine == Postgres {
		q += ` FOR UPDATE`
	}
	var id sql.NullInt64
	if err := t.tx.QueryRowContext(ctx, q, feed).Scan(&id); err != nil {
		return 0, notFound(err, "feed", feed)
	}
	return id.Int64, nil
}

func (t feedTx) InsertVersion(ctx context.Context, v *feeds.Version) error {
	meta, err := json.Marshal(v.Meta)
	if err != nil {
		return fmt.Errorf("encode feed version meta: %w", err)
	}
	err = t.tx.QueryRowContext(ctx, `INSERT INTO feed_versions
		(feed, version, base_version_id, fetched_at, source, etag, last_modified, sha256, cursor, advisories, kev, epss, meta)
		VALUES ($1, (SELECT coalesce(max(version), 0) + 1 FROM feed_versions WHERE feed = $1),
		        $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING id, version`,
		v.Feed, sql.NullInt64{Int64: v.BaseID, Valid: v.BaseID != 0}, v.FetchedAt.UTC(), v.Source, v.ETag,
		v.LastModified, v.SHA256, v.Cursor, v.Advisories, v.KEV, v.EPSS, string(meta)).Scan(&v.ID, &v.Number)
	if err != nil {
		return fmt.Errorf("store feed version: %w", translate(err))
	}
	return nil
}

// insertChunk is how many rows one bulk INSERT carries.
const insertChunk = 20_000

// insertRows writes n rows of len(cols) values in bulk, written twice on
// purpose. Per-row or multi-row VALUES statements are slow here on both
// engines (SQLite's pure-Go driver re-prepares every execution, PostgreSQL
// pays a round trip and a parse per statement), so each chunk goes as one
// statement: on SQLite one JSON array of rows unpacked by json_each, on
// PostgreSQL one typed array per column unpacked by unnest. A 300,000-row
// EPSS file is then fifteen statements.
func (t feedTx) insertRows(ctx context.Context, table string, cols []string, n int, row func(i int, args []any) []any) error {
	for start := 0; start < n; start += insertChunk {
		end := min(start+insertChunk, n)
		var err error
		if t.db.engine == Postgres {
			err = t.insertUnnest(ctx, table, cols, start, end, row)
		} else {
			err = t.insertJSON(ctx, table, cols, start, end, row)
		}
		if err != nil {
			return fmt.Errorf("store %s: %w", table, err)
		}
	}
	return nil
}

func (t feedTx) insertJSON(ctx context.Context, table string, cols []string, start, end int, row func(i int, args []any) []any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	buf.WriteByte('[')
	args := make([]any, 0, len(cols))
	for i := start; i < end; i++ {
		if i > start {
			buf.WriteByte(',')
		}
		args = row(i, args[:0])
		if err := enc.Encode(args); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	sel := make([]string, len(cols))
	for c := range cols {
		sel[c] = fmt.Sprintf("value ->> %d", c)
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) SELECT `+
		strings.Join(sel, ", ")+` FROM json_each($1)`, buf.String())
	return translate(err)
}

func (t feedTx) insertUnnest(ctx context.Context, table string, cols []string, start, end int, row func(i int, args []any) []any) error {
	arrays := make([]any, len(cols))
	types := make([]string, len(cols))
	args := make([]any, 0, len(cols))
	for i := start; i < end; i++ {
		args = row(i, args[:0])
		for c, v := range args {
			switch v := v.(type) {
			case int64:
				a, _ := arrays[c].([]int64)
				arrays[c], types[c] = append(a, v), "bigint[]"
			case int:
				a, _ := arrays[c].([]int64)
				arrays[c], types[c] = append(a, int64(v)), "bigint[]"
			case string:
				a, _ := arrays[c].([]string)
				arrays[c], types[c] = append(a, v), "text[]"
			case float64:
				a, _ := arrays[c].([]float64)
				arrays[c], types[c] = append(a, v), "float8[]"
			case bool:
				a, _ := arrays[c].([]bool)
				arrays[c], types[c] = append(a, v), "boolean[]"
			default:
				return fmt.Errorf("column %s: unsupported bulk type %T", cols[c], v)
			}
		}
	}
	ph := make([]string, len(cols))
	for c := range cols {
		ph[c] = fmt.Sprintf("$%d::%s", c+1, types[c])
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) SELECT * FROM unnest(`+
		strings.Join(ph, ", ")+`)`, arrays...)
	return translate(err)
}

func (t feedTx) InsertAdvisories(ctx context.Context, versionID int64, recs []feeds.Record) error {
	err := t.insertRows(ctx, "feed_advisories", []string{"version_id", "key", "id", "data"}, len(recs),
		func(i int, args []any) []any {
			return append(args, versionID, recs[i].Key, recs[i].ID, string(recs[i].Data))
		})
	if err != nil {
		return err
	}
	type ident struct{ ident, key string }
	var ids []ident
	type pkg struct {
		pkg feeds.Package
		key string
	}
	var pkgs []pkg
	for _, r := range recs {
		for _, id := range r.Idents {
			ids = append(ids, ident{id, r.Key})
		}
		for _, p := range r.Packages {
			pkgs = append(pkgs, pkg{p, r.Key})
		}
	}
	err = t.insertRows(ctx, "feed_advisory_idents", []string{"ident", "version_id", "key"}, len(ids),
		func(i int, args []any) []any { return append(args, ids[i].ident, versionID, ids[i].key) })
	if err != nil {
		return err
	}
	return t.insertRows(ctx, "feed_advisory_packages", []string{"package", "ecosystem", "version_id", "key"}, len(pkgs),
		func(i int, args []any) []any {
			return append(args, pkgs[i].pkg.Name, pkgs[i].pkg.Ecosystem, versionID, pkgs[i].key)
		})
}

// CopyAdvisories builds an incremental version inside the database: rows
// are copied, never round-tripped through the application.
func (t feedTx) CopyAdvisories(ctx context.Context, from, to int64) (int, error) {
	// The lookup rows go first, while "not yet in the new version" still
	// tells the copied advisories from the new ones.
	for _, q := range []string{
		`INSERT INTO feed_advisory_idents (ident, version_id, key)
		 SELECT o.ident, $2, o.key FROM feed_advisory_idents o
		 WHERE o.version_id = $1 AND NOT EXISTS (SELECT 1 FROM feed_advisories n WHERE n.version_id = $2 AND n.key = o.key)`,
		`INSERT INTO feed_advisory_packages (package, ecosystem, version_id, key)
		 SELECT o.package, o.ecosystem, $2, o.key FROM feed_advisory_packages o
		 WHERE o.version_id = $1 AND NOT EXISTS (SELECT 1 FROM feed_advisories n WHERE n.version_id = $2 AND n.key = o.key)`,
	} {
		if _, err := t.tx.ExecContext(ctx, q, from, to); err != nil {
			return 0, fmt.Errorf("copy advisories: %w", translate(err))
		}
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO feed_advisories (version_id, key, id, data)
		SELECT $2, o.key, o.id, o.data FROM feed_advisories o
		WHERE o.version_id = $1 AND NOT EXISTS (SELECT 1 FROM feed_advisories n WHERE n.version_id = $2 AND n.key = o.key)`, from, to)
	if err != nil {
		return 0, fmt.Errorf("copy advisories: %w", translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("copy advisories: %w", translate(err))
	}
	return int(n), nil
}

func (t feedTx) InsertKEV(ctx context.Context, versionID int64, kev []advisory.KEV) error {
	data := make([]string, len(kev))
	for i, k := range kev {
		b, err := json.Marshal(k)
		if err != nil {
			return fmt.Errorf("encode KEV entry %s: %w", k.CVE, err)
		}
		data[i] = string(b)
	}
	return t.insertRows(ctx, "feed_kev", []string{"version_id", "cve", "date_added", "known_ransomware", "data"}, len(kev),
		func(i int, args []any) []any {
			return append(args, versionID, kev[i].CVE, kev[i].DateAdded.UTC().Format(time.DateOnly), kev[i].KnownRansomware, data[i])
		})
}

func (t feedTx) InsertEPSS(ctx context.Context, versionID int64, scores []advisory.EPSS) error {
	return t.insertRows(ctx, "feed_epss", []string{"version_id", "cve", "score", "percentile"}, len(scores),
		func(i int, args []any) []any {
			return append(args, versionID, scores[i].CVE, scores[i].Score, scores[i].Percentile)
		})
}

// Activate flips the pointer. Both engines evaluate every right-hand side of
// an UPDATE against the old row, so previous_version_id receives the
// version being replaced.
func (t feedTx) Activate(ctx context.Context, v *feeds.Version) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE feed_versions SET advisories = $2, kev = $3, epss = $4 WHERE id = $1`,
		v.ID, v.Advisories, v.KEV, v.EPSS); err != nil {
		return fmt.Errorf("activate feed version: %w", translate(err))
	}
	res, err := t.tx.ExecContext(ctx, `UPDATE feeds SET previous_version_id = current_version_id, current_version_id = $2
		WHERE name = $1`, v.Feed, v.ID)
	if err != nil {
		return fmt.Errorf("activate feed version: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.NotFound, "feed %q not found", v.Feed)
	}
	return nil
}

func (t feedTx) TouchVersion(ctx context.Context, versionID int64, etag, lastModified string) error {
	if _, err := t.tx.ExecContext(ctx, `UPDATE feed_versions SET etag = $2, last_modified = $3 WHERE id = $1`,
		versionID, etag, lastModified); err != nil {
		return fmt.Errorf("update feed version: %w", translate(err))
	}
	return nil
}

func (t feedTx) RecordAttempt(ctx context.Context, feed string, at time.Time, errText string) error {
	q := `UPDATE feeds SET last_attempt_at = $2, last_success_at = $2, last_error = '' WHERE name = $1`
	args := []any{feed, at.UTC()}
	if errText != "" {
		q = `UPDATE feeds SET last_attempt_at = $2, last_error = $3 WHERE name = $1`
		args = append(args, errText)
	}
	if _, err := t.tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("record feed attempt: %w", translate(err))
	}
	return nil
}

// Prune deletes old versions child table by child table, which is much
// faster than row-by-row cascades for a 300,000-row EPSS version.
func (s feedStore) Prune(ctx context.Context, feed string) (int, error) {
	n := 0
	err := s.db.Transact(ctx, func(t *Tx) error {
		rows, err := t.tx.QueryContext(ctx, `SELECT v.id FROM feed_versions v JOIN feeds f ON f.name = v.feed
			WHERE v.feed = $1
			  AND v.id <> coalesce(f.current_version_id, 0) AND v.id <> coalesce(f.previous_version_id, 0)`, feed)
		if err != nil {
			return fmt.Errorf("prune feed %s: %w", feed, translate(err))
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("prune feed %s: %w", feed, translate(err))
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("prune feed %s: %w", feed, translate(err))
		}
		for _, id := range ids {
			for _, table := range []string{"feed_epss", "feed_kev", "feed_advisory_packages", "feed_advisory_idents", "feed_advisories", "feed_versions"} {
				col := "version_id"
				if table == "feed_versions" {
					col = "id"
				}
				if _, err := t.tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+col+` = $1`, id); err != nil {
					return fmt.Errorf("prune feed %s: %w", feed, translate(err))
				}
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}
