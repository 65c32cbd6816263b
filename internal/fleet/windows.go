package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

var weekdays = map[string][]int{
	"sun": {0}, "mon": {1}, "tue": {2}, "wed": {3}, "thu": {4}, "fri": {5}, "sat": {6},
	"daily": {0, 1, 2, 3, 4, 5, 6}, "weekdays": {1, 2, 3, 4, 5}, "weekends": {0, 6},
}

// ParseWindowRef reads an asset's maintenance window reference in the
// compact form the inventory uses — "sun-0200-0500", "daily-1900-2100",
// "weekdays-2200-2330", or "sat-2200-sun-0200" for a window across midnight
// — into the weekly window an agent enforces, in time zone tz. A reference
// in another form (a named window such as "quarterly-vendor", to be defined
// by policy) is reported as Unsupported, so the agent keeps its own.
func ParseWindowRef(ref, tz string) (*agentapi.Window, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(ref)), "-")
	w := &agentapi.Window{Name: ref, TimeZone: tz}
	hhmm := func(s string) (string, bool) {
		if len(s) != 4 || strings.Trim(s, "0123456789") != "" || s[:2] > "23" || s[2:] > "59" {
			return "", false
		}
		return s[:2] + ":" + s[2:], true
	}
	switch len(parts) {
	case 3:
		days, ok := weekdays[parts[0]]
		start, ok1 := hhmm(parts[1])
		end, ok2 := hhmm(parts[2])
		if !ok || !ok1 || !ok2 || start == end {
			break
		}
		for _, d := range days {
			w.Slots = append(w.Slots, agentapi.Slot{Day: d, Start: start, End: end})
		}
		return w, nil
	case 4:
		d1, ok := weekdays[parts[0]]
		d2, okd := weekdays[parts[2]]
		start, ok1 := hhmm(parts[1])
		end, ok2 := hhmm(parts[3])
		if !ok || !okd || !ok1 || !ok2 || len(d1) != 1 || len(d2) != 1 || d2[0] != (d1[0]+1)%7 || end >= start {
			break
		}
		// A slot whose end is before its start runs past midnight.
		w.Slots = []agentapi.Slot{{Day: d1[0], Start: start, End: end}}
		return w, nil
	}
	return nil, errs.E(errs.Unsupported, "maintenance window %q is not of the form day-HHMM-HHMM or day-HHMM-nextday-HHMM", ref)
}

// AssetReader is what AssetWindows reads from the inventory.
type AssetReader interface {
	Asset(ctx context.Context, id string) (inventory.Asset, error)
	Site(ctx context.Context, id string) (inventory.Site, error)
}

// NamedWindows resolves a window the policy defines by name (the monthly
// baseline after Patch Tuesday, a quarterly vendor window) into its dated
// openings between from and to; ok is false when no window has that name.
type NamedWindows interface {
	Openings(ctx context.Context, name string, site *time.Location, from, to time.Time) (openings []agentapi.Opening, ok bool, err error)
}

// OpeningsAhead is how far ahead an agent is told a named window's dated
// openings: long enough to reach the next opening of a quarterly window
// and to ride out a long outage of the server.
const OpeningsAhead = 120 * 24 * time.Hour

// AssetWindows is the WindowSource that tells each agent the maintenance
// window recorded on its asset, in its site's time zone. Check-ins are the
// hot path, so answers are cached for a few minutes: a changed window
// reaches the agent at its next check-in after that.
type AssetWindows struct {
	inv AssetReader
	ttl time.Duration
	now func() time.Time
	// Named resolves windows named in the policy; without it an asset
	// whose window is a name leaves its agent on its local configuration.
	Named NamedWindows

	mu    sync.Mutex
	cache map[string]cachedWindow
}

type cachedWindow struct {
	w   *agentapi.Window
	exp time.Time
}

// NewAssetWindows returns an AssetWindows over inv caching for ttl (five
// minutes if zero).
func NewAssetWindows(inv AssetReader, ttl time.Duration, now func() time.Time) *AssetWindows {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &AssetWindows{inv: inv, ttl: ttl, now: now, cache: map[string]cachedWindow{}}
}

// Window returns the asset's window, or nil when it has none the agent
// could enforce.
func (aw *AssetWindows) Window(ctx context.Context, assetID string) (*agentapi.Window, error) {
	now := aw.now()
	aw.mu.Lock()
	c, ok := aw.cache[assetID]
	aw.mu.Unlock()
	if ok && now.Before(c.exp) {
		return c.w, nil
	}
	a, err := aw.inv.Asset(ctx, assetID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil // the agent is refused elsewhere; no window to give
	}
	if err != nil {
		return nil, fmt.Errorf("maintenance window of asset %s: %w", assetID, err)
	}
	var w *agentapi.Window
	if a.MaintenanceWindow != "" {
		tz := "UTC"
		if a.SiteID != "" {
			if s, err := aw.inv.Site(ctx, a.SiteID); err == nil {
				tz = s.TimeZone
			}
		}
		var perr error
		if w, perr = ParseWindowRef(a.MaintenanceWindow, tz); perr != nil && aw.Named != nil {
			if w, err = aw.named(ctx, a.MaintenanceWindow, tz, now); err != nil {
				return nil, fmt.Errorf("maintenance window of asset %s: %w", assetID, err)
			}
		}
	}
	aw.mu.Lock()
	aw.cache[assetID] = cachedWindow{w: w, exp: now.Add(aw.ttl)}
	aw.mu.Unlock()
	return w, nil
}

// named turns a policy window into dated openings for the agent, or nil
// (the agent keeps its own) when the policy names no such window.
func (aw *AssetWindows) named(ctx context.Context, name, tz string, now time.Time) (*agentapi.Window, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	ops, ok, err := aw.Named.Openings(ctx, strings.TrimSpace(name), loc, now, now.Add(OpeningsAhead))
	if err != nil || !ok {
		return nil, err
	}
	if len(ops) > agentapi.MaxOpenings {
		ops = ops[:agentapi.MaxOpenings]
	}
	// A window with no opening in the horizon is still sent: the agent
	// must refuse non-emergency jobs rather than fall back on its own.
	return &agentapi.Window{Name: name, TimeZone: tz, Openings: ops}, nil
}

// PolicyWindows resolves named windows from the policy in force.
type PolicyWindows struct {
	Current func(ctx context.Context) (*policy.Compiled, error)
}

// Openings returns the dated openings of the policy window called name.
func (p PolicyWindows) Openings(ctx context.Context, name string, site *time.Location, from, to time.Time) ([]agentapi.Opening, bool, error) {
	c, err := p.Current(ctx)
	if err != nil {
		return nil, false, err
	}
	w, ok := c.Window(name)
	if !ok {
		return nil, false, nil
	}
	slots, err := w.Slots(site, from, to)
	if err != nil {
		return nil, true, err
	}
	ops := make([]agentapi.Opening, 0, len(slots))
	for _, s := range slots {
		ops = append(ops, agentapi.Opening{Start: s.Start.UTC(), End: s.End.UTC()})
	}
	return ops, true, nil
}
