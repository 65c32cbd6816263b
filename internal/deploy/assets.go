package deploy

import (
	"context"
	"time"

	"github.com/patchward/patchward/internal/inventory"
)

// AssetSource is the part of the inventory planning reads: the sites with
// their zones and the assets, page by page; *inventory.Service implements
// it.
type AssetSource interface {
	Sites(ctx context.Context) ([]inventory.Site, error)
	Assets(ctx context.Context, f inventory.Filter) (inventory.Page, error)
}

var _ AssetSource = (*inventory.Service)(nil)

// PlanningAssets is the inventory as the calendar plans with it: every
// asset whose maintenance window the calendar can read, in its site's
// zone, and the assets it cannot read, named rather than moved to another
// window.
type PlanningAssets struct {
	Assets     []Asset
	Unreadable []UnreadableAsset
	// Truncated is set when the inventory holds more assets than the
	// limit ReadPlanningAssets was given; the rest were not read.
	Truncated bool
}

// UnreadableAsset is an asset whose maintenance window the calendar
// cannot read: its routine changes would be refused by the scheduler.
type UnreadableAsset struct {
	ID, Name string
	// Window is the inventory's maintenance_window as written.
	Window string
	// Err is Calendar.CheckWindow's answer (kind Invalid, naming the
	// asset).
	Err error
}

// ReadPlanningAssets reads every asset's maintenance window and its site's
// time zone from inv, so the calendar shows per-asset windows in each
// site's local time. A site without a zone (or with one the host does not
// know) leaves its assets in the calendar's zone. An asset whose window
// cal cannot read is listed in Unreadable, not fatal. limit bounds how
// many assets are read (0: all of them); past it Truncated is set.
func ReadPlanningAssets(ctx context.Context, inv AssetSource, cal *Calendar, limit int) (PlanningAssets, error) {
	sites, err := inv.Sites(ctx)
	if err != nil {
		return PlanningAssets{}, err
	}
	zones := map[string]*time.Location{}
	for _, s := range sites {
		if s.TimeZone == "" {
			continue
		}
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			zones[s.ID] = l
		}
	}
	var (
		out PlanningAssets
		// readable caches which maintenance_window values the calendar
		// reads: most assets share a handful, and the answer does not
		// depend on the zone.
		readable = map[string]bool{}
	)
	for offset := 0; ; {
		page, err := inv.Assets(ctx, inventory.Filter{Limit: inventory.MaxPage, Offset: offset})
		if err != nil {
			return PlanningAssets{}, err
		}
		for _, a := range page.Assets {
			da := Asset{ID: a.ID, Site: a.SiteID, Location: zones[a.SiteID], Window: a.MaintenanceWindow}
			if !readable[da.Window] {
				if err := cal.CheckWindow(da); err != nil {
					out.Unreadable = append(out.Unreadable, UnreadableAsset{ID: a.ID, Name: a.Name, Window: a.MaintenanceWindow, Err: err})
					continue
				}
				readable[da.Window] = true
			}
			out.Assets = append(out.Assets, da)
		}
		offset += len(page.Assets)
		if len(page.Assets) == 0 || offset >= page.Total {
			return out, nil
		}
		if limit > 0 && offset >= limit {
			out.Truncated = true
			return out, nil
		}
	}
}
