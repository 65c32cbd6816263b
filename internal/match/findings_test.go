package match

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/advisory"
)

// apply folds a reconciliation into the stored set, as the store would.
func apply(stored []Finding, c Changes) []Finding {
	byID := map[string]int{}
	for i, f := range stored {
		byID[f.ID] = i
	}
	for _, ch := range c.Changes {
		if i, ok := byID[ch.After.ID]; ok {
			stored[i] = ch.After
		} else {
			byID[ch.After.ID] = len(stored)
			stored = append(stored, ch.After)
		}
	}
	for _, id := range c.Seen {
		stored[byID[id]].LastSeen = c.Now
	}
	return stored
}

func TestReconcileLifecycle(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	ptr := func(t time.Time) *time.Time { return &t }
	sope := Match{AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", AdvisoryID: "CVE-2025-53603",
		Aliases: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV}
	vex := &VEX{Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_present", Document: "ACME-SA-1 Acme"}
	sopeVEX := sope
	sopeVEX.VEX = vex
	other := Match{AssetID: "a2", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", AdvisoryID: "CVE-2025-53603", Source: SourceOSV}
	id := FindingID("a1", Key{"debian", "sope"}, "CVE-2025-53603")
	host := Scope{AssetID: "a1"}

	type step struct {
		name    string
		matches []Match
		scope   Scope
		kinds   []ChangeKind
		seen    int
		want    Finding
	}
	steps := []step{
		{name: "new match opens", matches: []Match{sope}, scope: host, kinds: []ChangeKind{ChangeOpen},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(0)}},
		{name: "still present moves last_seen", matches: []Match{sope}, scope: host, seen: 1,
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(1)}},
		{name: "another host's evaluation does not touch it", matches: []Match{other}, scope: Scope{AssetID: "a2"}, kinds: []ChangeKind{ChangeOpen},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(1)}},
		{name: "a feed change under another key does not touch it", matches: nil, scope: Scope{AssetID: "a1", Keys: ChangedKeys{{"debian", "openssl"}: {}}},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(1)}},
		{name: "gone after a newer inventory: fixed", matches: nil, scope: host, kinds: []ChangeKind{ChangeFixed},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateFixed,
				FirstSeen: at(0), LastSeen: at(1), FixedAt: ptr(at(4))}},
		{name: "fixed stays fixed, untouched", matches: nil, scope: host,
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateFixed,
				FirstSeen: at(0), LastSeen: at(1), FixedAt: ptr(at(4))}},
		{name: "seen again: reopened", matches: []Match{sope}, scope: host, kinds: []ChangeKind{ChangeReopen},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(6), FixedAt: ptr(at(4)), ReopenedAt: ptr(at(6)), ReopenCount: 1}},
		{name: "vendor VEX not_affected suppresses, keeps it", matches: []Match{sopeVEX}, scope: host, kinds: []ChangeKind{ChangeNotAffected},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateNotAffected,
				FirstSeen: at(0), LastSeen: at(7), FixedAt: ptr(at(4)), ReopenedAt: ptr(at(6)), ReopenCount: 1, VEX: vex}},
		{name: "VEX withdrawn: open again", matches: []Match{sope}, scope: host, kinds: []ChangeKind{ChangeVEXWithdrawn},
			want: Finding{ID: id, AssetID: "a1", Ecosystem: "Debian:12", Package: "sope", Version: "5.8.0-1", VulnID: "CVE-2025-53603",
				AdvisoryIDs: []string{"DSA-5970-1"}, FixedVersion: "5.8.0-1+deb12u1", Source: SourceOSV, State: StateOpen,
				FirstSeen: at(0), LastSeen: at(8), FixedAt: ptr(at(4)), ReopenedAt: ptr(at(6)), ReopenCount: 1}},
	}
	var stored []Finding
	for i, s := range steps {
		c := Reconcile(stored, s.matches, s.scope, at(i))
		var kinds []ChangeKind
		for _, ch := range c.Changes {
			kinds = append(kinds, ch.Kind)
		}
		if diff := cmp.Diff(s.kinds, kinds); diff != "" {
			t.Fatalf("step %d %q: change kinds (-want +got):\n%s", i, s.name, diff)
		}
		if len(c.Seen) != s.seen {
			t.Fatalf("step %d %q: seen = %d; want %d", i, s.name, len(c.Seen), s.seen)
		}
		stored = apply(stored, c)
		var got Finding
		for _, f := range stored {
			if f.ID == id {
				got = f
			}
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("step %d %q: finding (-want +got):\n%s", i, s.name, diff)
		}
	}
}

func TestReconcileDuplicateMatchesInOneBatch(t *testing.T) {
	m := Match{AssetID: "a", Ecosystem: "Debian:12", Package: "p", Version: "1", AdvisoryID: "CVE-1", Source: SourceOSV}
	c := Reconcile(nil, []Match{m, m}, Scope{AssetID: "a"}, time.Now())
	if len(c.Changes) != 1 {
		t.Errorf("Reconcile(two identical matches) = %d changes; want 1", len(c.Changes))
	}
}
