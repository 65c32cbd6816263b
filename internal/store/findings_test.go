package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// findClock is a settable test findClock.
type findClock struct{ t time.Time }

func (c *findClock) now() time.Time { return c.t }

// findingsFeed is a small feed shaped like the real ones: a DSA and the
// tracker's record of the same CVE for the sope source package, an NVD CPE
// range, a vendor VEX statement and an ICSMA-style product-name advisory.
func findingsFeed(withVEX bool) []advisory.Advisory {
	sope := []advisory.Affected{{Ecosystem: "Debian:12", Package: "sope",
		Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "5.8.0-1+deb12u1"}}}}
	cpeAff := func(r advisory.Range) []advisory.Affected {
		return []advisory.Affected{{Ecosystem: advisory.EcosystemCPE, CPE: "cpe:2.3:o:acme:infusion_os:*:*:*:*:*:*:*:*", Vulnerable: true, Ranges: []advisory.Range{r}}}
	}
	feed := []advisory.Advisory{
		{ID: "DSA-5970-1", Source: "osv", Aliases: []string{"CVE-2025-53603"}, Affected: sope},
		{ID: "DEBIAN-CVE-2025-53603", Source: "osv", Aliases: []string{"CVE-2025-53603"}, Affected: sope},
		{ID: "CVE-2024-0001", Source: "nvd", Affected: cpeAff(advisory.Range{Type: "CPE", Introduced: "2.0", Fixed: "2.4.1"})},
		{ID: "CVE-2024-0002", Source: "nvd", Affected: cpeAff(advisory.Range{Type: "CPE", LastAffected: "2.3.9"})},
		{ID: "ICSMA-17-082-01:CVE-2017-6773", Source: "csaf", Aliases: []string{"CVE-2017-6773"},
			Document: &advisory.Document{Tracking: "ICSMA-17-082-01", Publisher: "CISA"},
			Affected: []advisory.Affected{{Ecosystem: advisory.EcosystemCSAF, Vendor: "BD", Package: "PerformA",
				Status: advisory.StatusKnownAffected, Ranges: []advisory.Range{{LastAffected: "2.0.14.0"}}}}},
	}
	if withVEX {
		feed = append(feed, advisory.Advisory{ID: "ACME-SA-7:CVE-2024-0002", Source: "csaf", Aliases: []string{"CVE-2024-0002"},
			Document: &advisory.Document{Tracking: "ACME-SA-7", Publisher: "Acme Medical"},
			Affected: []advisory.Affected{{Ecosystem: advisory.EcosystemCSAF, CPE: "cpe:2.3:o:acme:infusion_os:2.3.0:*:*:*:*:*:*:*",
				Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_in_execute_path"}}})
	}
	return feed
}

// fakeSource is an in-memory feeds pipeline.
type fakeSource struct {
	advs []advisory.Advisory
	kev  map[string]advisory.KEV
}

func (f fakeSource) CurrentAdvisories(ctx context.Context, fn func(advisory.Advisory) error) error {
	for _, a := range f.advs {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}
func (f fakeSource) KEV(context.Context) (map[string]advisory.KEV, error)   { return f.kev, nil }
func (f fakeSource) EPSS(context.Context) (map[string]advisory.EPSS, error) { return nil, nil }

func TestFindingsLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := &findClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
		inv := inventory.NewService(db.Inventory(), clk.now)
		mk := func(a inventory.Asset) inventory.Asset {
			a.Type, a.Criticality = inventory.TypeServer, inventory.LevelHigh
			got, err := inv.CreateAsset(ctx, admin, a)
			if err != nil {
				t.Fatalf("CreateAsset(%s): %v", a.Name, err)
			}
			return got
		}
		lis := mk(inventory.Asset{Name: "LIS-01", Software: []inventory.Software{
			{Name: "sope", Version: "5.8.0-1", Ecosystem: "Debian:12"},
			{Name: "coreutils", Version: "9.1-1", Ecosystem: "Debian:12"},
		}})
		pump := mk(inventory.Asset{Name: "Pump-7", CPE: "cpe:2.3:o:acme:infusion_os:2.3.0:*:*:*:*:*:*:*"})
		lab := mk(inventory.Asset{Name: "Lab analyser", Make: "BD", Model: "PerformA", FirmwareVersion: "2.0.9.1"})

		svc := match.NewService(db.Findings(), clk.now)
		if _, err := svc.EvaluateAll(ctx); err == nil {
			t.Fatalf("EvaluateAll before any feed: want an error")
		}
		src := fakeSource{advs: findingsFeed(true), kev: map[string]advisory.KEV{"CVE-2025-53603": {CVE: "CVE-2025-53603"}}}
		if _, _, err := svc.Refresh(ctx, src); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		sum, err := svc.EvaluateAll(ctx)
		if err != nil {
			t.Fatalf("EvaluateAll: %v", err)
		}
		if want := (match.Summary{Hosts: 3, Opened: 3, NotAffected: 1}); sum != want {
			t.Errorf("EvaluateAll = %+v; want %+v", sum, want)
		}
		t0 := clk.t

		list := func(f match.FindingFilter) []string {
			t.Helper()
			p, err := svc.Findings(ctx, f)
			if err != nil {
				t.Fatalf("Findings(%+v): %v", f, err)
			}
			var out []string
			for _, x := range p.Findings {
				out = append(out, x.VulnID+" "+string(x.State))
			}
			slices.Sort(out)
			return out
		}
		yes := true
		for _, tc := range []struct {
			name string
			f    match.FindingFilter
			want []string
		}{
			{"estate", match.FindingFilter{}, []string{"CVE-2017-6773 open", "CVE-2024-0001 open", "CVE-2024-0002 not_affected", "CVE-2025-53603 open"}},
			{"one asset", match.FindingFilter{AssetID: pump.ID}, []string{"CVE-2024-0001 open", "CVE-2024-0002 not_affected"}},
			{"state", match.FindingFilter{State: match.StateNotAffected}, []string{"CVE-2024-0002 not_affected"}},
			{"kev", match.FindingFilter{KEV: &yes}, []string{"CVE-2025-53603 open"}},
			{"by alias", match.FindingFilter{VulnID: "dsa-5970-1"}, []string{"CVE-2025-53603 open"}},
			{"package", match.FindingFilter{Package: "sope"}, []string{"CVE-2025-53603 open"}},
		} {
			if diff := cmp.Diff(tc.want, list(tc.f)); diff != "" {
				t.Errorf("Findings %s (-want +got):\n%s", tc.name, diff)
			}
		}
		if p, _ := svc.Findings(ctx, match.FindingFilter{Limit: 1, Offset: 1}); p.Total != 4 || len(p.Findings) != 1 {
			t.Errorf("paged Findings = total %d, %d rows; want 4, 1", p.Total, len(p.Findings))
		}

		// The DSA and the CVE record are one finding.
		sopeID := match.FindingID(lis.ID, match.Key{Family: "debian", Name: "sope"}, "CVE-2025-53603")
		f, err := svc.Finding(ctx, sopeID)
		if err != nil {
			t.Fatalf("Finding: %v", err)
		}
		want := match.Finding{ID: sopeID, AssetID: lis.ID, Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1",
			VulnID: "CVE-2025-53603", AdvisoryIDs: []string{"DEBIAN-CVE-2025-53603", "DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1",
			Source: match.SourceOSV, State: match.StateOpen, FirstSeen: t0, LastSeen: t0, KEV: true}
		if diff := cmp.Diff(want, f); diff != "" {
			t.Errorf("sope finding (-want +got):\n%s", diff)
		}

		// The vendor's statement is kept on the suppressed finding and
		// audited on its own.
		vexID := match.FindingID(pump.ID, match.Key{Family: "cpe", Name: "acme:infusion_os"}, "CVE-2024-0002")
		vf, err := svc.Finding(ctx, vexID)
		if err != nil {
			t.Fatalf("Finding(VEX): %v", err)
		}
		wantVEX := &match.VEX{Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_in_execute_path", Document: "ACME-SA-7 Acme Medical"}
		if vf.State != match.StateNotAffected || !cmp.Equal(vf.VEX, wantVEX) {
			t.Errorf("VEX finding = %s %+v; want not_affected %+v", vf.State, vf.VEX, wantVEX)
		}
		actions := findingAuditActions(t, db)
		if got := actions["finding.not_affected "+vexID]; got != 1 {
			t.Errorf("audit finding.not_affected for %s = %d entries; want 1 (all: %v)", vexID, got, actions)
		}
		for _, a := range []string{lis.ID, pump.ID, lab.ID} {
			if actions["finding.open "+a] != 1 {
				t.Errorf("audit finding.open summary for asset %s missing (all: %v)", a, actions)
			}
		}

		// A newer inventory without the vulnerable version: fixed.
		clk.t = t0.Add(24 * time.Hour)
		setSope := func(v string) {
			t.Helper()
			a, err := inv.Asset(ctx, lis.ID)
			if err != nil {
				t.Fatal(err)
			}
			a.Software[0].Version = v
			if _, err := inv.UpdateAsset(ctx, admin, lis.ID, a); err != nil {
				t.Fatalf("UpdateAsset: %v", err)
			}
		}
		setSope("5.8.0-1+deb12u1")
		if sum, err := svc.EvaluateHost(ctx, lis.ID); err != nil || sum.Fixed != 1 {
			t.Fatalf("EvaluateHost after upgrade = %+v, %v; want 1 fixed", sum, err)
		}
		f, _ = svc.Finding(ctx, sopeID)
		if f.State != match.StateFixed || f.FixedAt == nil || !f.FixedAt.Equal(clk.t) || !f.FirstSeen.Equal(t0) {
			t.Errorf("after upgrade: %s fixed_at %v first_seen %v; want fixed at %v, first seen %v", f.State, f.FixedAt, f.FirstSeen, clk.t, t0)
		}

		// Rolled back to the vulnerable version: reopened.
		clk.t = t0.Add(48 * time.Hour)
		setSope("5.8.0-1")
		if sum, err := svc.EvaluateHost(ctx, lis.ID); err != nil || sum.Reopened != 1 {
			t.Fatalf("EvaluateHost after rollback = %+v, %v; want 1 reopened", sum, err)
		}
		f, _ = svc.Finding(ctx, sopeID)
		if f.State != match.StateOpen || f.ReopenCount != 1 || f.ReopenedAt == nil || !f.ReopenedAt.Equal(clk.t) || !f.FirstSeen.Equal(t0) {
			t.Errorf("after rollback: %+v; want open, reopened once at %v, first seen %v", f, clk.t, t0)
		}
		if actions := findingAuditActions(t, db); actions["finding.reopen "+sopeID] != 1 || actions["finding.fixed "+lis.ID] != 1 {
			t.Errorf("audit after rollback: %v; want one finding.fixed for the asset and one finding.reopen", actions)
		}

		// A new feed version withdraws the VEX statement: only the CPE key
		// is re-matched; the finding opens again, others are not touched.
		clk.t = t0.Add(72 * time.Hour)
		src.advs = findingsFeed(false)
		old, nw, err := svc.Refresh(ctx, src)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		sum, err = svc.EvaluateChanged(ctx, old, nw)
		if err != nil {
			t.Fatalf("EvaluateChanged: %v", err)
		}
		if want := (match.Summary{Hosts: 1, Updated: 1, Seen: 1}); sum != want {
			t.Errorf("EvaluateChanged = %+v; want %+v", sum, want)
		}
		vf, _ = svc.Finding(ctx, vexID)
		if vf.State != match.StateOpen || vf.VEX != nil {
			t.Errorf("after VEX withdrawn: %s %+v; want open without VEX", vf.State, vf.VEX)
		}
		if f2, _ := svc.Finding(ctx, sopeID); !f2.LastSeen.Equal(t0.Add(48 * time.Hour)) {
			t.Errorf("sope last_seen = %v; want untouched %v", f2.LastSeen, t0.Add(48*time.Hour))
		}
		if actions := findingAuditActions(t, db); actions["finding.open "+vexID] != 1 {
			t.Errorf("audit: VEX withdrawal not logged: %v", actions)
		}

		// sope is removed from the host but no inventory evaluation ran; a
		// feed change under sope's key still closes the finding, found
		// through the findings table rather than the inventory.
		a, err := inv.Asset(ctx, lis.ID)
		if err != nil {
			t.Fatal(err)
		}
		a.Software = a.Software[1:]
		if _, err := inv.UpdateAsset(ctx, admin, lis.ID, a); err != nil {
			t.Fatalf("UpdateAsset: %v", err)
		}
		clk.t = t0.Add(96 * time.Hour)
		src.advs = findingsFeed(false)
		src.advs[0].Affected[0].Ranges[0].Fixed = "5.8.0-1+deb12u2"
		old, nw, err = svc.Refresh(ctx, src)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if sum, err := svc.EvaluateChanged(ctx, old, nw); err != nil || sum.Fixed != 1 || sum.Hosts != 1 {
			t.Errorf("EvaluateChanged after package removal = %+v, %v; want one host, one fixed", sum, err)
		}
		if f, _ := svc.Finding(ctx, sopeID); f.State != match.StateFixed {
			t.Errorf("sope finding after removal and feed change: %s; want fixed", f.State)
		}

		// The estate read used for matching sees every asset.
		var ids []string
		if err := db.Findings().EachAsset(ctx, func(h match.HostInventory) error { ids = append(ids, h.AssetID); return nil }); err != nil {
			t.Fatal(err)
		}
		rows := 0
		if err := db.Findings().EachSoftware(ctx, func(string, match.Package) error { rows++; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(ids) != 3 || rows != 1 {
			t.Errorf("estate read: %d assets, %d software rows; want 3, 1", len(ids), rows)
		}
	})
}

// findingAuditActions counts audit entries by "action object_id".
func findingAuditActions(t *testing.T, db *store.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := db.Audit().Snapshot(context.Background(), func(r audit.Reader) error {
		for e, err := range r.Entries(context.Background(), 0) {
			if err != nil {
				return err
			}
			out[e.Action+" "+e.ObjectID]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read audit: %v", err)
	}
	return out
}
