package match

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// FindingsStore is the storage the matcher needs: inventory reads shaped
// for matching, finding reads, and transactions to write findings in.
type FindingsStore interface {
	// HostInventory returns one asset's installed software and CPE.
	HostInventory(ctx context.Context, assetID string) (HostInventory, error)
	// EachAsset calls fn for every asset with its CPEs and Products (no
	// Packages), so that assets with no software are still evaluated.
	EachAsset(ctx context.Context, fn func(HostInventory) error) error
	// EachSoftware streams every installed-software row of the estate,
	// grouped by asset, without building asset records.
	EachSoftware(ctx context.Context, fn func(assetID string, p Package) error) error
	// AssetsWithFindings returns the assets that have open or not_affected
	// findings under any of keys.
	AssetsWithFindings(ctx context.Context, keys []Key) ([]string, error)
	GetFinding(ctx context.Context, id string) (Finding, error)
	ListFindings(ctx context.Context, f FindingFilter) (FindingPage, error)
	Transact(ctx context.Context, fn func(FindingsTx) error) error
}

// FindingsTx is one transaction of finding writes. It embeds audit.Appender
// so that state changes are logged in the same transaction.
type FindingsTx interface {
	audit.Appender
	// LockAsset serialises evaluations of one asset (across replicas on
	// PostgreSQL) until the transaction ends.
	LockAsset(ctx context.Context, assetID string) error
	// FindingsInScope loads every finding, in any state, within scope.
	// Scope.AssetID must be set: evaluations are written host by host.
	FindingsInScope(ctx context.Context, scope Scope) ([]Finding, error)
	// ApplyChanges inserts or updates the findings in c.Changes and moves
	// last_seen of c.Seen to c.Now.
	ApplyChanges(ctx context.Context, c Changes) error
}

// Matcher is the audit actor for changes the matcher makes on its own.
var Matcher = audit.Actor{Kind: audit.ActorSystem, Name: "patchward matcher"}

// Service evaluates assets against the current advisory index and keeps
// findings' lifecycle in storage.
type Service struct {
	store FindingsStore
	now   func() time.Time
	index atomic.Pointer[Index]
	// changed hears of every asset whose findings changed, after commit.
	changed func(assetID string)
}

// OnChange registers fn to hear of every asset whose findings changed,
// after the change is committed (the risk engine re-scores them). Call it
// before the service is used; fn must not block.
func (s *Service) OnChange(fn func(assetID string)) { s.changed = fn }

// NewService returns a Service on store using now as its clock.
func NewService(store FindingsStore, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Index returns the index in use, or nil before the first SetIndex.
func (s *Service) Index() *Index { return s.index.Load() }

// SetIndex makes ix the index later evaluations use and returns the one it
// replaced, for EvaluateChanged(old, ix).
func (s *Service) SetIndex(ix *Index) (old *Index) { return s.index.Swap(ix) }

// Refresh builds an index from src's current feed version and swaps it in.
// The caller follows with EvaluateChanged(ctx, old, new).
func (s *Service) Refresh(ctx context.Context, src AdvisorySource) (old, new *Index, err error) {
	new, err = BuildIndex(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	return s.SetIndex(new), new, nil
}

// Summary counts what an evaluation did.
type Summary struct {
	Hosts       int `json:"hosts"`
	Opened      int `json:"opened"`
	Fixed       int `json:"fixed"`
	Reopened    int `json:"reopened"`
	NotAffected int `json:"not_affected"`
	// Updated counts findings whose version, fix or enrichment changed,
	// including VEX statements withdrawn (which reopen not_affected ones).
	Updated int `json:"updated"`
	Seen    int `json:"seen"`
}

func (s *Summary) add(c Changes) {
	s.Hosts++
	s.Seen += len(c.Seen)
	for _, ch := range c.Changes {
		switch ch.Kind {
		case ChangeOpen:
			s.Opened++
		case ChangeFixed:
			s.Fixed++
		case ChangeReopen:
			s.Reopened++
		case ChangeNotAffected:
			s.NotAffected++
		default:
			s.Updated++
		}
	}
}

func (s *Service) requireIndex() (*Index, error) {
	ix := s.Index()
	if ix == nil {
		return nil, errs.E(errs.Conflict, "no advisory data has been loaded yet; sync the feeds first")
	}
	return ix, nil
}

// EvaluateHost re-matches one asset, as after a new inventory from its agent
// or a new SBOM: findings that disappeared are fixed, new ones open. Before
// any advisory data is loaded it does nothing: the first index build
// evaluates every host anyway, and the inventory change that triggered
// this call is already committed.
func (s *Service) EvaluateHost(ctx context.Context, assetID string) (Summary, error) {
	var sum Summary
	ix := s.Index()
	if ix == nil {
		return sum, nil
	}
	inv, err := s.store.HostInventory(ctx, assetID)
	if err != nil {
		return sum, fmt.Errorf("evaluate asset %s: %w", assetID, err)
	}
	c, err := s.reconcileHost(ctx, assetID, ix.MatchHost(inv), Scope{AssetID: assetID}, "asset re-evaluated after a new inventory")
	if err != nil {
		return sum, fmt.Errorf("evaluate asset %s: %w", assetID, err)
	}
	sum.add(c)
	if len(c.Changes) == 0 && s.changed != nil {
		// The asset itself changed (an edit, a new SBOM) even if its
		// findings did not: its exposure or criticality may move scores.
		s.changed(assetID)
	}
	return sum, nil
}

// Estate reads the whole estate's inventory for matching.
func (s *Service) Estate(ctx context.Context) (*Estate, error) {
	b := NewEstateBuilder()
	if err := s.store.EachAsset(ctx, func(h HostInventory) error {
		b.AddHost(h.AssetID)
		for _, c := range h.CPEs {
			b.AddCPE(h.AssetID, c)
		}
		for _, p := range h.Products {
			b.AddProduct(h.AssetID, p)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read assets for matching: %w", err)
	}
	if err := s.store.EachSoftware(ctx, func(id string, p Package) error {
		b.Add(id, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read software for matching: %w", err)
	}
	return b.Estate(), nil
}

// EvaluateAll re-matches every asset against the current index. Each host
// is written in its own transaction, so a long run never holds the writer
// for long and an interrupted run leaves every host either done or as it
// was.
func (s *Service) EvaluateAll(ctx context.Context) (Summary, error) {
	var sum Summary
	ix, err := s.requireIndex()
	if err != nil {
		return sum, err
	}
	e, err := s.Estate(ctx)
	if err != nil {
		return sum, err
	}
	for id, ms := range ix.MatchEstate(e) {
		c, err := s.reconcileHost(ctx, id, ms, Scope{AssetID: id}, "full re-evaluation")
		if err != nil {
			return sum, fmt.Errorf("evaluate estate: asset %s: %w", id, err)
		}
		sum.add(c)
	}
	return sum, nil
}

// EvaluateChanged re-matches only what a new feed version changed: tuples
// under keys whose advisories, KEV flags or EPSS scores differ between old
// and new. Findings under other keys are not touched.
func (s *Service) EvaluateChanged(ctx context.Context, old, new *Index) (Summary, error) {
	var sum Summary
	if new == nil {
		return sum, errs.E(errs.Invalid, "no new advisory index to evaluate against")
	}
	keys := Diff(old, new)
	if len(keys) == 0 {
		return sum, nil
	}
	e, err := s.Estate(ctx)
	if err != nil {
		return sum, err
	}
	keys = e.ExpandKeys(keys)
	done := map[string]bool{}
	reason := "advisory feeds changed"
	for id, ms := range new.MatchEstateKeys(e, keys) {
		done[id] = true
		c, err := s.reconcileHost(ctx, id, ms, Scope{AssetID: id, Keys: keys}, reason)
		if err != nil {
			return sum, fmt.Errorf("evaluate feed change: asset %s: %w", id, err)
		}
		sum.add(c)
	}
	// Hosts with findings under a changed key but no longer holding any
	// tuple under it (their inventory moved on): close those findings too.
	stale, err := s.store.AssetsWithFindings(ctx, keys.Sorted())
	if err != nil {
		return sum, fmt.Errorf("evaluate feed change: %w", err)
	}
	for _, id := range stale {
		if done[id] {
			continue
		}
		c, err := s.reconcileHost(ctx, id, nil, Scope{AssetID: id, Keys: keys}, reason)
		if err != nil {
			return sum, fmt.Errorf("evaluate feed change: asset %s: %w", id, err)
		}
		sum.add(c)
	}
	return sum, nil
}

// reconcileHost writes one host's reconciliation in one transaction.
func (s *Service) reconcileHost(ctx context.Context, assetID string, ms []Match, scope Scope, reason string) (Changes, error) {
	var c Changes
	err := s.store.Transact(ctx, func(tx FindingsTx) error {
		if err := tx.LockAsset(ctx, assetID); err != nil {
			return err
		}
		existing, err := tx.FindingsInScope(ctx, scope)
		if err != nil {
			return err
		}
		c = Reconcile(existing, ms, scope, s.now())
		if len(c.Changes) == 0 && len(c.Seen) == 0 {
			return nil
		}
		if err := tx.ApplyChanges(ctx, c); err != nil {
			return err
		}
		for _, rec := range auditRecords(assetID, c, reason) {
			if err := tx.AppendAudit(ctx, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && len(c.Changes) > 0 && s.changed != nil {
		s.changed(assetID)
	}
	return c, err
}

// auditSummaryItem is one finding in a per-host summary entry.
type auditSummaryItem struct {
	ID      string `json:"id"`
	VulnID  string `json:"vuln_id"`
	Package string `json:"package"`
	Version string `json:"version"`
	Fixed   string `json:"fixed_version,omitempty"`
}

// auditRecords decides how state changes are logged:
//
//   - finding.not_affected, finding.reopen and finding.open for a withdrawn
//     VEX statement: one entry per finding, with the before and after state
//     (auditors must be able to see each suppression and who stated it);
//   - finding.open and finding.fixed: one summary entry per host and
//     action, listing every finding, because a host's first sync opens
//     hundreds at once and an upgrade fixes dozens, and one entry each would
//     bury the log without telling an auditor more.
//
// Content updates (new EPSS, a later fixed version) and last_seen are not
// state changes and are not logged.
func auditRecords(assetID string, c Changes, reason string) []audit.Record {
	var recs []audit.Record
	var opened, fixed []auditSummaryItem
	for _, ch := range c.Changes {
		f := ch.After
		item := auditSummaryItem{ID: f.ID, VulnID: f.VulnID, Package: f.Package, Version: f.Version, Fixed: f.FixedVersion}
		switch ch.Kind {
		case ChangeOpen:
			opened = append(opened, item)
		case ChangeFixed:
			fixed = append(fixed, item)
		case ChangeReopen:
			recs = append(recs, findingRecord("finding.reopen", ch, reason))
		case ChangeNotAffected:
			r := findingRecord("finding.not_affected", ch, reason)
			if f.VEX != nil {
				r.Reason = fmt.Sprintf("vendor VEX %s (%s): %s", f.VEX.Status, f.VEX.Document, f.VEX.Justification)
			}
			recs = append(recs, r)
		case ChangeVEXWithdrawn:
			recs = append(recs, findingRecord("finding.open", ch, "vendor VEX statement of not affected withdrawn"))
		}
	}
	summary := func(action string, items []auditSummaryItem) {
		if len(items) == 0 {
			return
		}
		slices.SortFunc(items, func(a, b auditSummaryItem) int { return strings.Compare(a.ID, b.ID) })
		recs = append(recs, audit.Record{Actor: Matcher, Action: action, ObjectType: "asset", ObjectID: assetID,
			After: map[string]any{"count": len(items), "findings": items}, Reason: reason})
	}
	summary("finding.open", opened)
	summary("finding.fixed", fixed)
	return recs
}

func findingRecord(action string, ch Change, reason string) audit.Record {
	r := audit.Record{Actor: Matcher, Action: action, ObjectType: "finding", ObjectID: ch.After.ID,
		After: auditState(ch.After), Reason: reason}
	if ch.Before != nil {
		r.Before = auditState(*ch.Before)
	}
	return r
}

// auditState is the part of a finding an audit entry records: identity,
// state and the statement behind it, not the volatile last_seen.
func auditState(f Finding) map[string]any {
	m := map[string]any{"asset_id": f.AssetID, "package": f.Package, "version": f.Version,
		"vuln_id": f.VulnID, "state": f.State, "source": f.Source}
	if f.FixedVersion != "" {
		m["fixed_version"] = f.FixedVersion
	}
	if f.VEX != nil {
		m["vex"] = f.VEX
	}
	return m
}

// Finding returns one finding.
func (s *Service) Finding(ctx context.Context, id string) (Finding, error) {
	return s.store.GetFinding(ctx, id)
}

// Findings lists findings with filters and paging.
func (s *Service) Findings(ctx context.Context, f FindingFilter) (FindingPage, error) {
	f.Normalize()
	if f.State != "" && !slices.Contains(States, f.State) {
		return FindingPage{}, errs.E(errs.Invalid, "unknown finding state %q", f.State)
	}
	return s.store.ListFindings(ctx, f)
}
