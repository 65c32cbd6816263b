package match

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
)

// State is where a finding is in its lifecycle.
type State string

// Finding states. A finding is never deleted: first_seen and fixed_at feed
// SLA and mean-time-to-remediate reporting for as long as the data is kept.
const (
	StateOpen        State = "open"
	StateFixed       State = "fixed"
	StateNotAffected State = "not_affected"
)

// States lists every state.
var States = []State{StateOpen, StateFixed, StateNotAffected}

// Finding is one vulnerability on one package of one asset, with its
// history. Its identity is (AssetID, key family, Package, VulnID).
type Finding struct {
	ID        string `json:"id"`
	AssetID   string `json:"asset_id"`
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package"`
	Version   string `json:"version"`
	// Binaries are the installed binary packages built from Package when it
	// is a Debian/Ubuntu source package.
	Binaries []string `json:"binaries,omitempty"`
	// VulnID is canonical: the CVE when any ID of the vulnerability is one,
	// else the advisory's ID. AdvisoryIDs are the other IDs (DSA, USN, GHSA).
	VulnID       string   `json:"vuln_id"`
	AdvisoryIDs  []string `json:"advisory_ids,omitempty"`
	FixedVersion string   `json:"fixed_version,omitempty"`
	// FixNote is the vendor's statement that a fix exists when it names no
	// fixed version (a CSAF vendor_fix remediation: "update to 21.12").
	FixNote string `json:"fix_note,omitempty"`
	Source  string `json:"source"`
	State   State  `json:"state"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// FixedAt is when the finding last went away; it is kept when the
	// finding reopens, so the previous remediation stays on record.
	FixedAt     *time.Time `json:"fixed_at,omitempty"`
	ReopenedAt  *time.Time `json:"reopened_at,omitempty"`
	ReopenCount int        `json:"reopen_count"`

	// VEX is the vendor statement in force, if any: who said what.
	VEX  *VEX    `json:"vex,omitempty"`
	KEV  bool    `json:"kev"`
	EPSS float64 `json:"epss"`
}

// Key returns the (ecosystem family, package) key the finding is filed
// under; a feed change re-examines findings by key.
func (f Finding) Key() Key { return KeyOf(f.Ecosystem, f.Package) }

// FindingID derives a finding's ID from its identity, so re-running a
// match (or two replicas running it) names the same finding the same way.
func FindingID(assetID string, k Key, vulnID string) string {
	h := sha256.Sum256([]byte(assetID + "\x00" + k.Family + "\x00" + k.Name + "\x00" + vulnID))
	return hex.EncodeToString(h[:16])
}

// Scope says which findings an evaluation speaks for: findings outside it
// are left alone, so a host re-evaluation never closes another host's
// findings and a feed change never touches keys it did not change.
type Scope struct {
	// AssetID limits the scope to one asset; "" means every asset.
	AssetID string
	// Keys limits the scope to findings under these keys; nil means all.
	Keys ChangedKeys
}

// Contains reports whether f is in scope.
func (s Scope) Contains(f Finding) bool {
	return (s.AssetID == "" || f.AssetID == s.AssetID) && (s.Keys == nil || s.Keys.Has(f.Key()))
}

// containsMatch reports whether m is in scope.
func (s Scope) containsMatch(m Match) bool {
	return (s.AssetID == "" || m.AssetID == s.AssetID) && (s.Keys == nil || s.Keys.Has(m.Key()))
}

// ChangeKind is what happened to a finding in a reconciliation.
type ChangeKind string

// Change kinds. Open, Fixed, Reopen, NotAffected and VEXWithdrawn change the
// state and are audited; Update and Seen do not change the state.
const (
	ChangeOpen         ChangeKind = "open"
	ChangeFixed        ChangeKind = "fixed"
	ChangeReopen       ChangeKind = "reopen"
	ChangeNotAffected  ChangeKind = "not_affected"
	ChangeVEXWithdrawn ChangeKind = "vex_withdrawn"
	// ChangeUpdate: still present, but version, fix, aliases, binaries, KEV
	// or EPSS changed.
	ChangeUpdate ChangeKind = "update"
)

// StateChange reports whether kind changes a finding's state.
func (k ChangeKind) StateChange() bool { return k != ChangeUpdate }

// Change is one finding to write. Before is nil for a new finding.
type Change struct {
	Kind   ChangeKind
	Before *Finding
	After  Finding
}

// Changes is the outcome of a reconciliation.
type Changes struct {
	// Changes are findings whose stored row must be written.
	Changes []Change
	// Seen are the IDs of findings still present and otherwise unchanged:
	// only their last_seen moves to Now, in one bulk update.
	Seen []string
	Now  time.Time
}

// Count returns how many changes of kind there are.
func (c Changes) Count(kind ChangeKind) int {
	n := 0
	for _, ch := range c.Changes {
		if ch.Kind == kind {
			n++
		}
	}
	return n
}

// Reconcile compares the stored findings in scope with fresh matches and
// returns what to write. It is pure: the service runs it inside the
// transaction that loaded existing.
//
//   - a match without a finding opens one (first_seen = now), or records it
//     as not_affected when a vendor VEX says so;
//   - a match with an open finding moves last_seen (and updates version,
//     fix and enrichment if they changed);
//   - an open or not_affected finding in scope without a match is fixed
//     (fixed_at = now): the newer inventory or advisory set no longer has it;
//   - a fixed finding matched again reopens (reopened_at = now, count+1);
//   - VEX known_not_affected turns a finding not_affected with the vendor's
//     statement; when the statement goes away the finding opens again.
//
// Findings and matches outside scope are ignored.
func Reconcile(existing []Finding, matches []Match, scope Scope, now time.Time) Changes {
	now = now.UTC().Truncate(time.Microsecond)
	out := Changes{Now: now}
	type ident struct {
		asset string
		k     Key
		vuln  string
	}
	byIdent := make(map[ident]int, len(existing))
	for i, f := range existing {
		if scope.Contains(f) {
			byIdent[ident{f.AssetID, f.Key(), f.VulnID}] = i
		}
	}
	matched := make([]bool, len(existing))
	for _, m := range matches {
		if !scope.containsMatch(m) {
			continue
		}
		k := m.Key()
		id := ident{m.AssetID, k, m.AdvisoryID}
		i, ok := byIdent[id]
		if !ok {
			f := findingFromMatch(m, k, now)
			f.FirstSeen = now
			kind := ChangeOpen
			if f.State == StateNotAffected {
				kind = ChangeNotAffected
			}
			out.Changes = append(out.Changes, Change{Kind: kind, After: f})
			// A second match with the same identity in one batch is a
			// duplicate; the first one wins.
			byIdent[id] = -1
			continue
		}
		if i < 0 || matched[i] {
			continue
		}
		matched[i] = true
		before := existing[i]
		after := findingFromMatch(m, k, now)
		after.ID, after.FirstSeen = before.ID, before.FirstSeen
		after.FixedAt, after.ReopenedAt, after.ReopenCount = before.FixedAt, before.ReopenedAt, before.ReopenCount
		var kind ChangeKind
		switch {
		case before.State == StateFixed:
			kind = ChangeReopen
			after.ReopenedAt = &now
			after.ReopenCount++
		case after.State == StateNotAffected && before.State != StateNotAffected:
			kind = ChangeNotAffected
		case after.State == StateOpen && before.State == StateNotAffected:
			kind = ChangeVEXWithdrawn
		case sameContent(before, after):
			out.Seen = append(out.Seen, before.ID)
			continue
		default:
			kind = ChangeUpdate
		}
		b := before
		out.Changes = append(out.Changes, Change{Kind: kind, Before: &b, After: after})
	}
	for i, f := range existing {
		if matched[i] || !scope.Contains(f) || f.State == StateFixed {
			continue
		}
		after := f
		after.State = StateFixed
		after.FixedAt = &now
		b := f
		out.Changes = append(out.Changes, Change{Kind: ChangeFixed, Before: &b, After: after})
	}
	return out
}

func findingFromMatch(m Match, k Key, now time.Time) Finding {
	f := Finding{
		ID: FindingID(m.AssetID, k, m.AdvisoryID), AssetID: m.AssetID, Ecosystem: m.Ecosystem,
		Package: m.Package, Version: m.Version, Binaries: m.Binaries, VulnID: m.AdvisoryID,
		AdvisoryIDs: m.Aliases, FixedVersion: m.FixedVersion, FixNote: m.FixNote, Source: m.Source, State: StateOpen,
		LastSeen: now, KEV: m.KEV, EPSS: m.EPSS,
	}
	if m.VEX != nil {
		v := *m.VEX
		f.VEX = &v
		if v.Status == advisory.StatusKnownNotAffected {
			f.State = StateNotAffected
		}
	}
	return f
}

// sameContent reports whether two findings differ only in last_seen.
func sameContent(a, b Finding) bool {
	return a.State == b.State && a.Ecosystem == b.Ecosystem && a.Version == b.Version &&
		a.FixedVersion == b.FixedVersion && a.FixNote == b.FixNote && a.Source == b.Source && a.KEV == b.KEV && a.EPSS == b.EPSS &&
		slices.Equal(a.Binaries, b.Binaries) && slices.Equal(a.AdvisoryIDs, b.AdvisoryIDs) &&
		equalVEX(a.VEX, b.VEX)
}

func equalVEX(a, b *VEX) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// FindingFilter selects findings for listing. Zero fields do not filter.
type FindingFilter struct {
	AssetID string
	State   State
	KEV     *bool
	// Package matches the package (source package for Debian/Ubuntu).
	Package string
	// VulnID matches the canonical ID or any advisory ID.
	VulnID string
	Limit  int
	Offset int
}

// MaxPage is the largest page a listing returns.
const MaxPage = 1000

// Normalize trims the filter and bounds its paging.
func (f *FindingFilter) Normalize() {
	f.AssetID, f.Package = strings.TrimSpace(f.AssetID), strings.TrimSpace(f.Package)
	f.VulnID = strings.ToUpper(strings.TrimSpace(f.VulnID))
	switch {
	case f.Limit <= 0:
		f.Limit = 100
	case f.Limit > MaxPage:
		f.Limit = MaxPage
	}
	f.Offset = max(f.Offset, 0)
}

// FindingPage is one page of findings and the total that matched.
type FindingPage struct {
	Findings []Finding `json:"findings"`
	Total    int       `json:"total"`
	Limit    int       `json:"limit"`
	Offset   int       `json:"offset"`
}
