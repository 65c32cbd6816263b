// Package storetest opens fresh, migrated databases on every engine for
// tests, so one suite runs unchanged against SQLite and PostgreSQL.
//
// SQLite always runs, on a real file in t.TempDir(). PostgreSQL runs when
// PATCHWARD_TEST_POSTGRES holds an admin DSN (scripts/pg-start.sh prints
// one); each test gets its own database, dropped afterwards. With CI=true a
// missing DSN fails the test instead of skipping it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // pgx driver for the admin connection

	"github.com/patchward/patchward/internal/store"
)

// EnvPostgres names the environment variable holding the admin DSN.
const EnvPostgres = "PATCHWARD_TEST_POSTGRES"

// Engines lists the engines a test should run on.
func Engines(t testing.TB) []store.Engine {
	t.Helper()
	engines := []store.Engine{store.SQLite}
	if os.Getenv(EnvPostgres) != "" {
		engines = append(engines, store.Postgres)
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s is not set: PostgreSQL tests must run in CI (see scripts/pg-start.sh)", EnvPostgres)
	}
	return engines
}

// DSN returns the DSN of a fresh, empty database on engine, removed when the
// test ends.
func DSN(t testing.TB, engine store.Engine) string {
	t.Helper()
	if engine == store.SQLite {
		return filepath.Join(t.TempDir(), "patchward.db")
	}
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		t.Fatalf("%s is not set", EnvPostgres)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "pwtest_" + hex.EncodeToString(b[:])
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open postgres admin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer adb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open returns a migrated database on engine, closed when the test ends.
func Open(t testing.TB, engine store.Engine, opt store.Options) *store.DB {
	t.Helper()
	return OpenDSN(t, DSN(t, engine), opt)
}

// OpenDSN opens and migrates dsn, closing it when the test ends.
func OpenDSN(t testing.TB, dsn string, opt store.Options) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, opt)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// Each runs fn as a subtest per engine with a fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, e := range Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			fn(t, Open(t, e, store.Options{}))
		})
	}
}
