package demo_test

import (
	"context"
	"github.com/patchward/patchward/internal/deploy"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/demo"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

func TestSeed(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	inv := inventory.NewService(db.Inventory(), nil)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	n, err := demo.Seed(ctx, inv, now)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if n < 20 {
		t.Errorf("Seed created %d assets; want at least 20", n)
	}
	// Every maintenance window the demo names is one the scheduler and the
	// agents can use: a weekly form or a window of the default policy.
	all, err := inv.Assets(ctx, inventory.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all.Assets {
		if a.MaintenanceWindow == "" {
			continue
		}
		if _, err := deploy.ParseWeeklyWindow(a.MaintenanceWindow); err == nil {
			continue
		}
		if _, ok := policy.Default().Window(a.MaintenanceWindow); !ok {
			t.Errorf("%s: maintenance window %q is neither weekly nor a policy window", a.Name, a.MaintenanceWindow)
		}
	}
	// The demo must cover every kind of device the product talks about.
	for _, typ := range []inventory.Type{inventory.TypeServer, inventory.TypeEndpoint, inventory.TypeMobile,
		inventory.TypeNetworkDevice, inventory.TypeAnalyzer, inventory.TypeInstrumentController,
		inventory.TypeClinicalSystem, inventory.TypeImaging, inventory.TypeIoMT, inventory.TypeUnknown} {
		p, err := inv.Assets(ctx, inventory.Filter{Type: typ, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total == 0 {
			t.Errorf("demo has no %s", typ)
		}
	}
	// The pumps the demo's risk acceptance covers are one group.
	gs, err := inv.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name != demo.PumpGroup {
			continue
		}
		p, err := inv.Assets(ctx, inventory.Filter{GroupID: g.ID, Limit: 10})
		if err != nil || p.Total != 2 {
			t.Errorf("group %q holds %d assets (%v); want the 2 infusion pumps", g.Name, p.Total, err)
		}
	}
	// The "Pilot ring" group is what the policy's pilot ring selects, so a
	// demo rollout starts with a pilot wave.
	for _, g := range gs {
		if g.Name != "Pilot ring" {
			continue
		}
		p, err := inv.Assets(ctx, inventory.Filter{GroupID: g.ID, Limit: 10})
		if err != nil || p.Total == 0 {
			t.Fatalf("pilot group: %d assets, %v", p.Total, err)
		}
		for _, a := range p.Assets {
			ring, _, err := policy.Default().RingOf(policy.AssetFacts{ID: a.ID, Name: a.Name, Type: string(a.Type), Tags: a.Tags,
				Criticality: string(a.Criticality), SafetyImpact: string(a.SafetyImpact), Groups: a.Groups})
			if err != nil || ring.Name != "pilot" {
				t.Errorf("%s is in the Pilot ring group but the policy puts it in ring %q (%v)", a.Name, ring.Name, err)
			}
		}
	}
	again, err := demo.Seed(ctx, inv, now)
	if err != nil || again != 0 {
		t.Errorf("second Seed = %d, %v; want 0, nil (idempotent)", again, err)
	}
}

// TestFeeds: every demo file is the feed format it is imported as, and the
// trimmed KEV catalog holds exactly the entries for CVEs the demo's
// advisories name.
func TestFeeds(t *testing.T) {
	fs, err := demo.Feeds()
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	var kev []advisory.KEV
	for _, f := range fs {
		p, err := advisory.ParseAny(f.File, f.Data)
		if err != nil {
			t.Fatalf("%s: %v", f.File, err)
		}
		if string(p.Format) != f.Kind {
			t.Errorf("%s detected as %s; imported as %s", f.File, p.Format, f.Kind)
		}
		for _, a := range p.Advisories {
			for _, id := range slices.Concat([]string{a.ID}, a.Aliases, a.Upstream) {
				if strings.HasPrefix(id, "CVE-") {
					named[id] = true
				}
			}
		}
		if p.KEV != nil {
			kev = append(kev, p.KEV.Entries...)
		}
	}
	if len(kev) == 0 {
		t.Fatal("no KEV catalog among the demo feeds")
	}
	ransomware := false
	for _, k := range kev {
		if !named[k.CVE] {
			t.Errorf("KEV entry %s names no CVE of the demo's advisories", k.CVE)
		}
		ransomware = ransomware || k.KnownRansomware
	}
	if !ransomware {
		t.Errorf("no KEV entry with known ransomware use")
	}
}

// TestPumpException: the demo's risk acceptance is one the default policy
// accepts, with segmentation and monitoring among its controls.
func TestPumpException(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e, err := risk.NewException(demo.PumpException("group-1", now), "admin", policy.Default(), now)
	if err != nil {
		t.Fatalf("NewException(PumpException) = %v", err)
	}
	var kinds []string
	for _, c := range e.Controls {
		kinds = append(kinds, c.Kind)
	}
	for _, k := range []string{policy.ControlSegmentation, policy.ControlMonitoring} {
		if !slices.Contains(kinds, k) {
			t.Errorf("controls = %v; want %s", kinds, k)
		}
	}
	if e.Scope != risk.ScopeGroup || e.Target != "group-1" || e.State != risk.ExceptionRequested {
		t.Errorf("exception = %s %s %s; want a requested group exception for group-1", e.Scope, e.Target, e.State)
	}
}
