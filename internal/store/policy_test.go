package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

func TestPolicyVersionsConformance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ps := db.Policies()
		if _, err := ps.Current(ctx); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("Current before any apply = %v; want NotFound", err)
		}
		if _, err := ps.GetVersion(ctx, 1); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("GetVersion(1) before any apply = %v; want NotFound", err)
		}
		if vs, err := ps.Versions(ctx); err != nil || len(vs) != 0 {
			t.Fatalf("Versions before any apply = %v, %v; want none", vs, err)
		}

		at := time.Date(2026, 3, 1, 8, 30, 0, 123456000, time.UTC)
		apply := func(v policy.Version) error {
			return ps.Transact(ctx, func(tx policy.Tx) error {
				n, err := tx.Latest(ctx)
				if err != nil {
					return err
				}
				if v.Version == 0 {
					v.Version = n + 1
				}
				if err := tx.Insert(ctx, v); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, audit.Record{Actor: admin, Action: "policy.apply", ObjectType: "policy", ObjectID: "current"})
			})
		}
		v1 := policy.Version{Version: 1, Source: "version: 1\n", SHA256: "aa", AppliedBy: "alice", AppliedAt: at, Comment: "initial"}
		v2 := policy.Version{Version: 2, Source: "version: 1\nsla: {}\n", SHA256: "bb", AppliedBy: "bob", AppliedAt: at.Add(time.Hour)}
		for _, v := range []policy.Version{v1, v2} {
			if err := apply(v); err != nil {
				t.Fatalf("apply version %d: %v", v.Version, err)
			}
		}
		cur, err := ps.Current(ctx)
		if err != nil {
			t.Fatalf("Current: %v", err)
		}
		if diff := cmp.Diff(v2, cur); diff != "" {
			t.Errorf("Current (-want +got):\n%s", diff)
		}
		got1, err := ps.GetVersion(ctx, 1)
		if err != nil {
			t.Fatalf("GetVersion(1): %v", err)
		}
		if diff := cmp.Diff(v1, got1); diff != "" {
			t.Errorf("GetVersion(1) (-want +got):\n%s", diff)
		}
		vs, err := ps.Versions(ctx)
		if err != nil {
			t.Fatalf("Versions: %v", err)
		}
		noSource := func(v policy.Version) policy.Version { v.Source = ""; return v }
		if diff := cmp.Diff([]policy.Version{noSource(v2), noSource(v1)}, vs); diff != "" {
			t.Errorf("Versions (-want +got):\n%s", diff)
		}

		// A version applied meanwhile by another replica: Conflict, and
		// the losing transaction leaves nothing behind (not its audit
		// entry either).
		before := findingAuditActions(t, db)["policy.apply current"]
		err = apply(policy.Version{Version: 2, Source: "x", SHA256: "cc", AppliedBy: "carol", AppliedAt: at.Add(2 * time.Hour)})
		if !errors.Is(err, errs.ErrConflict) {
			t.Fatalf("Insert of an existing version = %v; want Conflict", err)
		}
		if after := findingAuditActions(t, db)["policy.apply current"]; after != before {
			t.Errorf("audit entries after the conflict = %d; want %d", after, before)
		}
		if cur, _ := ps.Current(ctx); cur.SHA256 != "bb" {
			t.Errorf("Current after the conflict = %+v; want version 2 untouched", cur)
		}
		if err := apply(policy.Version{Source: "y", SHA256: "dd", AppliedBy: "carol", AppliedAt: at.Add(3 * time.Hour)}); err != nil {
			t.Fatalf("apply next version: %v", err)
		}
		if cur, _ := ps.Current(ctx); cur.Version != 3 {
			t.Errorf("Current after retry = version %d; want 3", cur.Version)
		}
	})
}
