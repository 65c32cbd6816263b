// Package store is Patchward's SQL storage for both engines: embedded SQLite
// (the default, zero set-up) and PostgreSQL (for hospital groups running
// several replicas). Statements are written once with $N placeholders, which
// both engines accept, and twice on purpose where the engines differ (row
// locks). Each domain package declares the narrow interface it needs; this
// package implements them, and storetest holds them all to one suite.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Engine names a supported database engine.
type Engine string

// Supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

//go:embed migrations
var migrations embed.FS

// DB is an open Patchward database.
type DB struct {
	engine Engine
	// w is the writer pool. On SQLite it has one connection and starts
	// transactions IMMEDIATE, so writers queue instead of failing with
	// SQLITE_BUSY; reads go to r so they never wait behind a writer.
	w   *sql.DB
	r   *sql.DB
	now func() time.Time
}

// Options tunes Open.
type Options struct {
	// Now is the clock used for stored timestamps; time.Now if nil.
	Now func() time.Time
	// MaxConns caps the PostgreSQL pool (default 10).
	MaxConns int
}

// EngineOf reports which engine a --db value names: a postgres:// or
// postgresql:// URL is PostgreSQL, anything else is a SQLite path or DSN.
func EngineOf(dsn string) Engine {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// Open connects to dsn without migrating. Callers use Migrate or
// CheckSchema next.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	db := &DB{engine: EngineOf(dsn), now: opt.Now}
	var err error
	switch db.engine {
	case Postgres:
		if db.w, err = sql.Open("pgx", dsn); err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		if opt.MaxConns <= 0 {
			opt.MaxConns = 10
		}
		db.w.SetMaxOpenConns(opt.MaxConns)
		db.w.SetMaxIdleConns(opt.MaxConns)
		db.r = db.w
	default:
		wdsn, rdsn, err := sqliteDSNs(dsn)
		if err != nil {
			return nil, err
		}
		if db.w, err = sql.Open("sqlite", wdsn); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		db.w.SetMaxOpenConns(1)
		if db.r, err = sql.Open("sqlite", rdsn); err != nil {
			db.w.Close()
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		db.r.SetMaxOpenConns(4)
	}
	if err := db.w.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", db.engine, err)
	}
	return db, nil
}

// sqliteDSNs builds writer and reader DSNs from a path or file: URI, with the
// pragmas every pooled connection needs.
func sqliteDSNs(dsn string) (w, r string, err error) {
	path, query, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if path == "" {
		return "", "", errs.E(errs.Invalid, "empty SQLite database path")
	}
	if path != ":memory:" {
		if path, err = filepath.Abs(path); err != nil {
			return "", "", fmt.Errorf("sqlite path: %w", err)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", errs.Wrap(errs.Invalid, err, "bad SQLite DSN options")
	}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)",
		// 16 MiB of page cache per connection instead of 2: fleet-scale
		// scans and upserts otherwise re-read pages with a syscall each.
		"cache_size(-16384)"} {
		q.Add("_pragma", p)
	}
	q.Set("_time_format", "sqlite")
	base := "file:" + path + "?"
	wq := cloneValues(q)
	wq.Set("_txlock", "immediate")
	rq := cloneValues(q)
	rq.Add("_pragma", "query_only(1)")
	return base + wq.Encode(), base + rq.Encode(), nil
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Engine reports the database engine.
func (db *DB) Engine() Engine { return db.engine }

// Close closes both pools.
func (db *DB) Close() error {
	var err error
	if db.w != nil {
		err = db.w.Close()
	}
	if db.r != nil && db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// Ping checks that the database answers; /healthz uses it.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.engine))
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	if db.engine == Postgres {
		dialect = goose.DialectPostgres
	}
	return goose.NewProvider(dialect, db.w, sub)
}

// Migrate applies every pending migration, each in its own transaction, and
// returns the versions applied.
func (db *DB) Migrate(ctx context.Context) ([]int64, error) {
	p, err := db.provider()
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s database: %w", db.engine, err)
	}
	var applied []int64
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// SchemaVersion returns the database's schema version and the newest this
// binary knows.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := db.provider()
	if err != nil {
		return 0, 0, fmt.Errorf("load migrations: %w", err)
	}
	current, latest, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, latest, nil
}

// ErrSchemaOutdated is returned by CheckSchema when migrations are pending.
var ErrSchemaOutdated = errors.New("database schema is outdated; run `patchward migrate`")

// CheckSchema refuses a database whose schema is older (or newer) than this
// binary expects, so a server never runs against tables it does not know.
func (db *DB) CheckSchema(ctx context.Context) error {
	cur, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case cur < latest:
		return fmt.Errorf("%w (schema version %d, this binary needs %d)", ErrSchemaOutdated, cur, latest)
	case cur > latest:
		return fmt.Errorf("database schema version %d is newer than this binary supports (%d); upgrade patchward", cur, latest)
	}
	return nil
}

// Tx is one read-write transaction. It implements each domain package's Tx
// interface through the adapters in this package.
type Tx struct {
	db *DB
	tx *sql.Tx
	// head is the audit log's head as this transaction's appends left it,
	// read (and on PostgreSQL locked) at the first append and written back
	// once before commit: a batch of appends costs one read and one write
	// of the head, not one each.
	head *audit.Head
}

// Transact runs fn in a transaction, committing if fn returns nil and rolling
// back on error or panic.
func (db *DB) Transact(ctx context.Context, fn func(*Tx) error) (err error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", translate(err))
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	t := &Tx{db: db, tx: tx}
	if err := fn(t); err != nil {
		return err
	}
	if err := t.writeAuditHead(ctx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", translate(err))
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer, so read code is written
// once for use inside and outside transactions.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// translate maps driver errors to error kinds by code, never by text.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return errs.Wrap(errs.Conflict, err, "already exists")
		case "23503":
			return errs.Wrap(errs.Conflict, err, "refers to a record that does not exist or is still referenced")
		case "23514", "23502", "22001":
			return errs.Wrap(errs.Invalid, err, "violates a data constraint")
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return errs.Wrap(errs.Conflict, err, "already exists")
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errs.Wrap(errs.Conflict, err, "refers to a record that does not exist or is still referenced")
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			return errs.Wrap(errs.Invalid, err, "violates a data constraint")
		}
	}
	return err
}

// notFound turns sql.ErrNoRows into a NotFound error naming what was sought.
func notFound(err error, what, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return errs.E(errs.NotFound, "%s %q not found", what, id)
	}
	return translate(err)
}

// conflictOrMissing reports an optimistic-lock miss: the row changed or went
// away between read and write.
var conflictOrMissing = errs.E(errs.Conflict, "the record was changed or removed by someone else; reload and retry")

// Optimize refreshes the query planner's statistics so filters pick the
// right index as the inventory grows (SQLite's recommended PRAGMA optimize;
// ANALYZE on PostgreSQL, where autovacuum usually does this already).
func (db *DB) Optimize(ctx context.Context) error {
	q := `PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002`
	if db.engine == Postgres {
		q = `ANALYZE`
	}
	if _, err := db.w.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("optimize %s database: %w", db.engine, err)
	}
	return nil
}
