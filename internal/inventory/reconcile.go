package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// DefaultStaleDays is how long an asset may go unseen before reconciliation
// calls it stale: a month covers clinic PCs switched off over holidays
// without hiding a device that has quietly left the network.
const DefaultStaleDays = 30

// Reconciliation compares what the clinic bought with what is on its
// network (seed: "reconcile it regularly with discovery tools and purchase
// records"). Assets in the lists carry no software, to keep the result small.
type Reconciliation struct {
	GeneratedAt time.Time `json:"generated_at"`
	StaleDays   int       `json:"stale_days"`
	Total       int       `json:"total"`
	// Matched counts assets that were both purchased and seen.
	Matched int `json:"matched"`
	// PurchasedNeverSeen were bought (purchase_ref or purchased_at) but
	// never seen by an agent or discovery: in a cupboard, lost, or on a
	// network segment that discovery does not reach.
	PurchasedNeverSeen []Asset `json:"purchased_never_seen"`
	// SeenNeverPurchased are on the network (last_seen_at set, or found by
	// an agent or discovery) with no purchase record: shadow IT, personal
	// devices and vendor-installed equipment nobody accounted for.
	SeenNeverPurchased []Asset `json:"seen_never_purchased"`
	// Stale were seen, but not within StaleDays.
	Stale []Asset `json:"stale"`
}

// Reconcile compares purchase records with sightings across the whole
// inventory. staleDays 0 means DefaultStaleDays.
func (s *Service) Reconcile(ctx context.Context, staleDays int) (Reconciliation, error) {
	if staleDays < 0 {
		return Reconciliation{}, errs.E(errs.Invalid, "stale days must not be negative")
	}
	assets, err := s.store.AllAssets(ctx)
	if err != nil {
		return Reconciliation{}, fmt.Errorf("reconcile inventory: %w", err)
	}
	return ReconcileAssets(assets, s.now(), staleDays), nil
}

// ReconcileAssets is Reconcile on a given set of assets at time now.
func ReconcileAssets(assets []Asset, now time.Time, staleDays int) Reconciliation {
	if staleDays <= 0 {
		staleDays = DefaultStaleDays
	}
	now = now.UTC()
	r := Reconciliation{GeneratedAt: now, StaleDays: staleDays, Total: len(assets),
		PurchasedNeverSeen: []Asset{}, SeenNeverPurchased: []Asset{}, Stale: []Asset{}}
	cutoff := now.Add(-time.Duration(staleDays) * 24 * time.Hour)
	for _, a := range assets {
		a.Software = nil
		purchased := a.PurchaseRef != "" || a.PurchasedAt != nil
		seen := a.LastSeenAt != nil
		observed := seen || a.Source == SourceAgent || a.Source == SourceDiscovery
		switch {
		case purchased && seen:
			r.Matched++
		case purchased:
			r.PurchasedNeverSeen = append(r.PurchasedNeverSeen, a)
		case observed:
			r.SeenNeverPurchased = append(r.SeenNeverPurchased, a)
		}
		if seen && a.LastSeenAt.Before(cutoff) {
			r.Stale = append(r.Stale, a)
		}
	}
	return r
}
