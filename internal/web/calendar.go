package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

// The rolling calendar shows three to six months, as the seeds ask
// clinics to publish.
const (
	calendarMonthsDefault = 3
	calendarMonthsMax     = 6
	// calendarAssetLimit bounds how many assets' own windows the page
	// reads; past it the page says so instead of slowing down.
	calendarAssetLimit = 20000
)

type calendarView struct {
	Months      []monthGrid
	Agenda      []calendarEntry
	MonthsShown int
	MonthOpts   []option
	Emergency   bool
	Zone        string
	From, To    string
	// Problems are assets whose maintenance window the calendar cannot
	// read; their routine changes would be refused by the scheduler.
	Problems  []string
	Truncated bool
	// FeedURL is the iCalendar feed, TokensURL where the JSON API makes
	// feed tokens; CanMakeFeed offers the form that makes one here, and
	// NewFeed is the link it just made (shown once).
	FeedURL, TokensURL string
	CanMakeFeed        bool
	NewFeed            string
}

type monthGrid struct {
	Title string
	ID    string
	Weeks [][]calendarDay
}

type calendarDay struct {
	Day     int
	Date    string
	InMonth bool
	Today   bool
	Freezes []string
	Entries []calendarEntry
}

type calendarEntry struct {
	Kind        deploy.OccurrenceKind
	Name        string
	Label       string
	Time        string // "22:00–04:00 CDT" in the entry's zone; "all day" for a freeze
	When        string // the agenda's long form
	Zone        string
	Description string
	Assets      int
	Baseline    bool
	ISO         string
}

func (ui *UI) calendarPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	q := r.URL.Query()
	months := calendarMonthsDefault
	if s := q.Get("months"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > calendarMonthsMax {
			return errs.E(errs.Invalid, "months must be a whole number from 1 to %d", calendarMonthsMax)
		}
		months = n
	}
	pol, err := ui.compiledPolicy(ctx)
	if err != nil {
		return err
	}
	cal, err := deploy.NewCalendar(pol, nil)
	if err != nil {
		return err
	}
	zone := cal.Zone()
	now := ui.cfg.Now().In(zone)
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, zone)
	to := from.AddDate(0, months, 0)
	v := calendarView{MonthsShown: months, Emergency: q.Get("emergency") == "show", Zone: zone.String(),
		From: from.Format("2 January 2006"), To: to.AddDate(0, 0, -1).Format("2 January 2006"),
		FeedURL: feedPath, TokensURL: feedTokensPath, CanMakeFeed: ui.cfg.FeedTokens != nil}
	if r.Method == http.MethodPost {
		link, err := ui.makeFeed(w, r, p)
		if err != nil {
			return err
		}
		v.NewFeed = link
	}
	for n := 3; n <= calendarMonthsMax; n++ {
		v.MonthOpts = append(v.MonthOpts, option{Value: strconv.Itoa(n), Label: fmt.Sprintf("%d months", n), Selected: n == months})
	}
	assets, err := ui.calendarAssets(ctx, cal, pol, &v)
	if err != nil {
		return err
	}
	occ, err := cal.Occurrences(from, to, assets...)
	if err != nil {
		return err
	}
	today := now.Format(dateLayout)
	byDay := map[string][]calendarEntry{}
	frozen := map[string][]string{}
	for _, o := range occ {
		e := entryOf(o)
		if o.Kind == deploy.KindFreeze {
			loc := locOr(o.Zone, zone)
			for d := o.Start.In(loc); d.Before(o.End); d = d.AddDate(0, 0, 1) {
				frozen[d.Format(dateLayout)] = append(frozen[d.Format(dateLayout)], o.Name)
			}
			v.Agenda = append(v.Agenda, e)
			continue
		}
		if o.Kind == deploy.KindEmergency && !v.Emergency {
			continue
		}
		day := o.Start.In(locOr(o.Zone, zone)).Format(dateLayout)
		byDay[day] = append(byDay[day], e)
		if o.Kind != deploy.KindEmergency {
			v.Agenda = append(v.Agenda, e)
		}
	}
	for m := range months {
		first := from.AddDate(0, m, 0)
		g := monthGrid{Title: first.Format("January 2006"), ID: "month-" + first.Format("2006-01")}
		// Weeks start on Monday, as clinic rotas do.
		start := first.AddDate(0, 0, -((int(first.Weekday()) + 6) % 7))
		for d := start; ; {
			week := make([]calendarDay, 7)
			for i := range week {
				key := d.Format(dateLayout)
				week[i] = calendarDay{Day: d.Day(), Date: key, InMonth: d.Month() == first.Month(), Today: key == today,
					Freezes: frozen[key], Entries: byDay[key]}
				d = d.AddDate(0, 0, 1)
			}
			g.Weeks = append(g.Weeks, week)
			if d.Month() != first.Month() {
				break
			}
		}
		v.Months = append(v.Months, g)
	}
	ui.render(w, r, http.StatusOK, "calendar", "Maintenance calendar", v)
	return nil
}

// The iCalendar feed's addresses in the JSON API: a signed-in user creates
// a feed token, and a calendar client fetches the feed with it.
const (
	feedPath       = "/api/v1/calendar.ics"
	feedTokensPath = "/api/v1/calendar/tokens"
)

// makeFeed creates a feed token for the signed-in user and returns the
// subscription link, absolute so it can be pasted into a calendar app.
func (ui *UI) makeFeed(w http.ResponseWriter, r *http.Request, p auth.Principal) (string, error) {
	if ui.cfg.FeedTokens == nil {
		return "", notFound()
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return "", errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	name := orDefault(strings.TrimSpace(r.PostForm.Get("name")), "Calendar feed")
	secret, _, err := ui.cfg.FeedTokens.CreateFeedToken(r.Context(), p.Actor(authn.ClientAddr(r)), p.UserID, name)
	if err != nil {
		return "", err
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + feedPath + "?" + url.Values{"token": {secret}}.Encode(), nil
}

func locOr(name string, def *time.Location) *time.Location {
	if l, err := time.LoadLocation(name); err == nil && name != "" {
		return l
	}
	return def
}

func entryOf(o deploy.Occurrence) calendarEntry {
	loc := locOr(o.Zone, time.UTC)
	s, e := o.Start.In(loc), o.End.In(loc)
	ce := calendarEntry{Kind: o.Kind, Name: o.Name, Zone: o.Zone, Description: o.Description, Assets: o.Assets,
		Baseline: o.Baseline, ISO: o.Start.UTC().Format(time.RFC3339)}
	switch o.Kind {
	case deploy.KindFreeze:
		ce.Label, ce.Time = "Freeze", "all day"
		ce.When = s.Format("Mon 2 Jan 2006") + " – " + e.AddDate(0, 0, -1).Format("Mon 2 Jan 2006") + " (" + o.Zone + ")"
		return ce
	case deploy.KindEmergency:
		ce.Label = "Emergency window"
	case deploy.KindAssetWindow:
		ce.Label = "Asset window"
	default:
		ce.Label = "Maintenance window"
		if o.Baseline {
			ce.Label = "Baseline window"
		}
	}
	ce.Time = s.Format("15:04") + "–" + e.Format("15:04 MST")
	ce.When = s.Format("Mon 2 Jan 2006, 15:04") + " – " + e.Format("Mon 2 Jan 15:04 MST") + " (" + o.Zone + ")"
	return ce
}

// calendarAssets reads every asset's own window and site zone, so the
// calendar shows the per-asset windows and each site's local times. An
// asset whose window the calendar cannot read is listed, not fatal.
func (ui *UI) calendarAssets(ctx context.Context, cal *deploy.Calendar, pol *policy.Compiled, v *calendarView) ([]deploy.Asset, error) {
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return nil, err
	}
	zones := map[string]*time.Location{}
	for _, s := range sites {
		if s.TimeZone != "" {
			zones[s.ID] = locOr(s.TimeZone, nil)
		}
	}
	var out []deploy.Asset
	for offset := 0; ; {
		page, err := ui.cfg.Inventory.Assets(ctx, inventory.Filter{Limit: inventory.MaxPage, Offset: offset})
		if err != nil {
			return nil, err
		}
		for _, a := range page.Assets {
			da := deploy.Asset{ID: a.ID, Site: a.SiteID, Location: zones[a.SiteID], Window: a.MaintenanceWindow}
			if cal.CheckWindow(da) != nil {
				v.Problems = append(v.Problems, fmt.Sprintf("%s: maintenance window %q is neither a weekly window (sun-0200-0500) nor a window the policy names", a.Name, a.MaintenanceWindow))
				continue
			}
			out = append(out, da)
		}
		offset += len(page.Assets)
		if len(page.Assets) == 0 || offset >= page.Total {
			break
		}
		if offset >= calendarAssetLimit {
			v.Truncated = true
			break
		}
	}
	return out, nil
}
