package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestServerRefusesOutdatedSchema: an unmigrated database is refused with
// the instruction to migrate; after Migrate it is accepted; migrating again
// applies nothing.
func TestServerRefusesOutdatedSchema(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, storetest.DSN(t, engine), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
				t.Fatalf("CheckSchema on an empty database = %v; want ErrSchemaOutdated", err)
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if err := db.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema after Migrate = %v; want nil", err)
			}
			if applied, err := db.Migrate(ctx); err != nil || len(applied) != 0 {
				t.Errorf("second Migrate = %v, %v; want nothing applied", applied, err)
			}
		})
	}
}
