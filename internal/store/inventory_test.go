package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var admin = audit.Actor{Kind: audit.ActorUser, ID: "u1", Name: "admin", Addr: "127.0.0.1"}

func fixedClock() func() time.Time {
	t := time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestInventoryConformance(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc := inventory.NewService(db.Inventory(), fixedClock())
		site, err := svc.CreateSite(ctx, admin, inventory.Site{Name: "Main Clinic", TimeZone: "America/Chicago"})
		if err != nil {
			t.Fatalf("CreateSite: %v", err)
		}
		grp, err := svc.CreateGroup(ctx, admin, inventory.Group{Name: "Lab"})
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		eos := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
		in := inventory.Asset{
			Name: "LIS-01", Type: inventory.TypeServer, Hostname: "lis01.clinic.local", Make: "Dell", Model: "R650",
			Serial: "SN123", OSName: "Debian", OSVersion: "12", IPAddresses: []string{"10.0.20.5"},
			MACAddress: "AA-BB-CC-00-11-22", SiteID: site.ID, Exposure: inventory.ExposureClinicalVLAN,
			HandlesPHI: true, Criticality: inventory.LevelCritical, SafetyImpact: inventory.SafetyHigh,
			SupportStatus: inventory.SupportSupported, EndOfSupport: &eos, Tags: []string{"LIS", "tier1"},
			Groups: []string{grp.ID}, BusinessOwner: "Lab Director",
			Software: []inventory.Software{{Name: "openssl", Version: "3.0.15-1~deb12u1", Ecosystem: "Debian:12", PURL: "pkg:deb/debian/openssl@3.0.15-1~deb12u1"}},
		}
		created, err := svc.CreateAsset(ctx, admin, in)
		if err != nil {
			t.Fatalf("CreateAsset: %v", err)
		}
		got, err := svc.Asset(ctx, created.ID)
		if err != nil {
			t.Fatalf("Asset: %v", err)
		}
		if diff := cmp.Diff(created, got); diff != "" {
			t.Errorf("stored asset differs (-created +got):\n%s", diff)
		}
		if got.MACAddress != "aa:bb:cc:00:11:22" || got.DataClass != inventory.ClassPHI {
			t.Errorf("normalised fields = %q, %q", got.MACAddress, got.DataClass)
		}

		// A second asset to filter against.
		if _, err := svc.CreateAsset(ctx, admin, inventory.Asset{Name: "Front desk PC", Type: inventory.TypeEndpoint, Criticality: inventory.LevelLow}); err != nil {
			t.Fatalf("CreateAsset: %v", err)
		}
		yes := true
		for _, tc := range []struct {
			name string
			f    inventory.Filter
			want []string
		}{
			{"all", inventory.Filter{Limit: 10}, []string{"Front desk PC", "LIS-01"}},
			{"site", inventory.Filter{SiteID: site.ID, Limit: 10}, []string{"LIS-01"}},
			{"type", inventory.Filter{Type: inventory.TypeEndpoint, Limit: 10}, []string{"Front desk PC"}},
			{"phi", inventory.Filter{PHI: &yes, Limit: 10}, []string{"LIS-01"}},
			{"tag", inventory.Filter{Tag: "tier1", Limit: 10}, []string{"LIS-01"}},
			{"group", inventory.Filter{GroupID: grp.ID, Limit: 10}, []string{"LIS-01"}},
			{"owner", inventory.Filter{Owner: "lab director", Limit: 10}, []string{"LIS-01"}},
			{"q", inventory.Filter{Q: "desk", Limit: 10}, []string{"Front desk PC"}},
			{"q like-escape", inventory.Filter{Q: "%", Limit: 10}, nil},
			{"criticality", inventory.Filter{Criticality: inventory.LevelCritical, Limit: 10}, []string{"LIS-01"}},
		} {
			p, err := svc.Assets(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: Assets: %v", tc.name, err)
			}
			var names []string
			for _, a := range p.Assets {
				names = append(names, a.Name)
			}
			if diff := cmp.Diff(tc.want, names, cmpopts.EquateEmpty()); diff != "" || p.Total != len(tc.want) {
				t.Errorf("%s: names (-want +got):\n%s total=%d", tc.name, diff, p.Total)
			}
		}

		// Update with the right revision succeeds; a stale one conflicts.
		upd := got
		upd.Criticality = inventory.LevelHigh
		upd.Software = nil
		after, err := svc.UpdateAsset(ctx, admin, got.ID, upd)
		if err != nil {
			t.Fatalf("UpdateAsset: %v", err)
		}
		if after.Revision != 2 {
			t.Errorf("revision = %d; want 2", after.Revision)
		}
		if _, err := svc.UpdateAsset(ctx, admin, got.ID, upd); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("stale update err = %v; want Conflict", err)
		}
		// Invalid input changes nothing.
		bad := after
		bad.Exposure = "moon"
		if _, err := svc.UpdateAsset(ctx, admin, got.ID, bad); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("invalid update err = %v; want Invalid", err)
		}
		if err := svc.DeleteSite(ctx, admin, site.ID); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("delete used site err = %v; want Conflict", err)
		}
		if err := svc.DeleteAsset(ctx, admin, got.ID, "decommissioned"); err != nil {
			t.Fatalf("DeleteAsset: %v", err)
		}
		if _, err := svc.Asset(ctx, got.ID); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("deleted asset err = %v; want NotFound", err)
		}
		if _, err := svc.CreateSite(ctx, admin, inventory.Site{Name: "Main Clinic"}); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("duplicate site err = %v; want Conflict", err)
		}
	})
}
