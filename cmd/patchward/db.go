package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/store"
)

// openDB opens the --db database and checks its schema is current.
func (g *globals) openDB(ctx context.Context) (*store.DB, error) {
	db, err := store.Open(ctx, g.db, store.Options{})
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// auditKeyPath is where the audit signing key lives: the --audit-key flag,
// or beside a SQLite database file.
func (g *globals) auditKeyPath() (string, error) {
	if g.auditKey != "" {
		return g.auditKey, nil
	}
	if store.EngineOf(g.db) == store.SQLite {
		path, _, _ := strings.Cut(strings.TrimPrefix(g.db, "file:"), "?")
		return filepath.Join(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+"-audit.key"), nil
	}
	return "", fmt.Errorf("--audit-key (or PATCHWARD_AUDIT_KEY) is required with PostgreSQL, so every replica signs with the same key")
}

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := store.Open(ctx, g.db, store.Options{})
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := db.Migrate(ctx)
			if err != nil {
				return err
			}
			cur, _, err := db.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d migrations; schema version %d (%s)\n", len(applied), cur, db.Engine())
			return nil
		},
	}
}
