package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func TestReconcileAssets(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	ago := func(days int) *time.Time { t := now.AddDate(0, 0, -days); return &t }
	assets := []Asset{
		{Name: "bought and seen", PurchaseRef: "PO-1", LastSeenAt: ago(1)},
		{Name: "bought by date only, seen long ago", PurchasedAt: ago(400), LastSeenAt: ago(45)},
		{Name: "bought, never seen", PurchaseRef: "PO-2", Source: SourcePurchase, Software: []Software{{Name: "x", Version: "1"}}},
		{Name: "shadow: seen, not bought", Source: SourceDiscovery, LastSeenAt: ago(2)},
		{Name: "agent, not bought, no sighting", Source: SourceAgent},
		{Name: "shadow gone stale", Source: SourceManual, LastSeenAt: ago(31)},
		{Name: "manual entry", Source: SourceManual},
	}
	got := ReconcileAssets(assets, now, 0)
	names := func(as []Asset) []string {
		out := []string{}
		for _, a := range as {
			out = append(out, a.Name)
			if a.Software != nil {
				t.Errorf("%s carries software", a.Name)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"purchased never seen", names(got.PurchasedNeverSeen), []string{"bought, never seen"}},
		{"seen never purchased", names(got.SeenNeverPurchased), []string{"shadow: seen, not bought", "agent, not bought, no sighting", "shadow gone stale"}},
		{"stale", names(got.Stale), []string{"bought by date only, seen long ago", "shadow gone stale"}},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if got.Matched != 2 || got.Total != 7 || got.StaleDays != DefaultStaleDays || !got.GeneratedAt.Equal(now) {
		t.Errorf("matched=%d total=%d staleDays=%d at=%v; want 2, 7, 30, now", got.Matched, got.Total, got.StaleDays, got.GeneratedAt)
	}
	if got := ReconcileAssets(assets, now, 60); len(got.Stale) != 0 {
		t.Errorf("with 60 days, stale = %v; want none", names(got.Stale))
	}
}

func TestReconcileService(t *testing.T) {
	svc, _ := newTestService(t)
	ctx := context.Background()
	if _, err := svc.Reconcile(ctx, -1); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("Reconcile(-1) err = %v; want Invalid", err)
	}
	r, err := svc.Reconcile(ctx, 0)
	if err != nil || r.Total != 0 || r.PurchasedNeverSeen == nil || !r.GeneratedAt.Equal(testNow) {
		t.Errorf("empty Reconcile = %+v, %v; want empty non-nil lists at the injected clock", r, err)
	}
}
