package fleet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

func TestParseWindowRef(t *testing.T) {
	for _, tc := range []struct {
		ref   string
		slots []agentapi.Slot
	}{
		{"sun-0200-0500", []agentapi.Slot{{Day: 0, Start: "02:00", End: "05:00"}}},
		{"WED-2200-2300", []agentapi.Slot{{Day: 3, Start: "22:00", End: "23:00"}}},
		{"sat-2200-sun-0200", []agentapi.Slot{{Day: 6, Start: "22:00", End: "02:00"}}},
		{"weekends-0600-0700", []agentapi.Slot{{Day: 0, Start: "06:00", End: "07:00"}, {Day: 6, Start: "06:00", End: "07:00"}}},
		{"daily-1900-2100", daily("19:00", "21:00")},
		{"quarterly-vendor", nil},
		{"sun-2500-0100", nil},
		{"sun-0200-0200", nil},
		{"sat-2200-mon-0200", nil}, // not the next day
		{"sat-0200-sun-0300", nil}, // more than a day
		{"", nil},
	} {
		w, err := ParseWindowRef(tc.ref, "America/Chicago")
		if tc.slots == nil {
			if !errors.Is(err, errs.ErrUnsupported) {
				t.Errorf("ParseWindowRef(%q) = %v, %v; want Unsupported", tc.ref, w, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseWindowRef(%q) = %v", tc.ref, err)
			continue
		}
		if diff := cmp.Diff(tc.slots, w.Slots); diff != "" || w.TimeZone != "America/Chicago" {
			t.Errorf("ParseWindowRef(%q) slots (-want +got):\n%s", tc.ref, diff)
		}
	}
}

type fakeAssets struct {
	asset inventory.Asset
	calls int
}

func (f *fakeAssets) Asset(context.Context, string) (inventory.Asset, error) {
	f.calls++
	return f.asset, nil
}

func (f *fakeAssets) Site(context.Context, string) (inventory.Site, error) {
	return inventory.Site{TimeZone: "Europe/Berlin"}, nil
}

func TestAssetWindowsCaches(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	inv := &fakeAssets{asset: inventory.Asset{ID: "a1", SiteID: "s1", MaintenanceWindow: "sun-0200-0500"}}
	aw := NewAssetWindows(inv, time.Minute, func() time.Time { return now })
	ctx := context.Background()
	w, err := aw.Window(ctx, "a1")
	if err != nil || w == nil || w.TimeZone != "Europe/Berlin" || len(w.Slots) != 1 {
		t.Fatalf("Window = %+v, %v; want one Sunday slot in Europe/Berlin", w, err)
	}
	inv.asset.MaintenanceWindow = "quarterly-vendor"
	if w, _ := aw.Window(ctx, "a1"); w == nil || inv.calls != 1 {
		t.Errorf("cached Window = %+v after %d reads; want the cached window and 1 read", w, inv.calls)
	}
	now = now.Add(2 * time.Minute)
	if w, _ := aw.Window(ctx, "a1"); w != nil || inv.calls != 2 {
		t.Errorf("Window after expiry = %+v after %d reads; want nil (named window) and 2 reads", w, inv.calls)
	}
}

func daily(start, end string) []agentapi.Slot {
	var out []agentapi.Slot
	for d := range 7 {
		out = append(out, agentapi.Slot{Day: d, Start: start, End: end})
	}
	return out
}

// TestAssetWindowsNamedPolicyWindow: an asset whose window is a name the
// policy defines ("monthly-baseline": the Thursday after Patch Tuesday,
// 22:00 for four hours in the site's zone) gets that window's dated
// openings; a name the policy does not know leaves the agent on its own.
func TestAssetWindowsNamedPolicyWindow(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	inv := &fakeAssets{asset: inventory.Asset{ID: "a1", SiteID: "s1", MaintenanceWindow: "monthly-baseline"}}
	aw := NewAssetWindows(inv, time.Minute, func() time.Time { return now })
	aw.Named = PolicyWindows{Current: func(context.Context) (*policy.Compiled, error) { return policy.Default(), nil }}
	ctx := context.Background()
	w, err := aw.Window(ctx, "a1")
	if err != nil || w == nil {
		t.Fatalf("Window = %+v, %v; want the policy's monthly baseline", w, err)
	}
	pw, _ := policy.Default().Window("monthly-baseline")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	slots, err := pw.Slots(berlin, now, now.Add(OpeningsAhead))
	if err != nil || len(slots) < 3 {
		t.Fatalf("policy slots = %d, %v; want about four months of monthly openings", len(slots), err)
	}
	if len(w.Openings) != len(slots) || len(w.Slots) != 0 || w.TimeZone != "Europe/Berlin" {
		t.Fatalf("window = %d openings, %d slots, zone %s; want %d openings in Europe/Berlin", len(w.Openings), len(w.Slots), w.TimeZone, len(slots))
	}
	for i, o := range w.Openings {
		if !o.Start.Equal(slots[i].Start) || !o.End.Equal(slots[i].End) || !o.Start.After(now.Add(-pw.Duration.Approx())) {
			t.Errorf("opening %d = %v–%v; want %v–%v", i, o.Start, o.End, slots[i].Start, slots[i].End)
		}
		// Every opening starts at the policy's local start time in Berlin.
		if got := o.Start.In(berlin).Format("15:04"); got != pw.Start {
			t.Errorf("opening %d starts %s local; want %s", i, got, pw.Start)
		}
	}
	now = now.Add(2 * time.Minute)
	inv.asset.MaintenanceWindow = "no-such-window"
	if w, err := aw.Window(ctx, "a1"); w != nil || err != nil {
		t.Errorf("unknown name: Window = %+v, %v; want nil (the agent keeps its own)", w, err)
	}
}
