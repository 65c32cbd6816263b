package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/policy"
)

// Calendar range defaults and bounds: the seeds' rolling calendar is three
// to six months; a year is the most one request may ask for.
const (
	calendarDefaultMonths = 6
	calendarMaxMonths     = 12
	// feedHistory is how far back the iCalendar feed reaches, so a
	// subscribed calendar keeps the recent past instead of dropping an
	// event the moment it starts.
	feedHistory = 30 * 24 * time.Hour
)

// CalendarSource is the maintenance calendar the API serves.
type CalendarSource interface {
	// Now is the clock the default range starts from.
	Now() time.Time
	// Calendar returns the entries between from and to.
	Calendar(ctx context.Context, from, to time.Time) (CalendarView, error)
}

// CalendarView is the calendar over a range: the policy's windows,
// emergency windows and freezes, and the assets' own windows aggregated,
// plus the assets whose maintenance window could not be read (they are
// left out, never silently moved to another window).
type CalendarView struct {
	Zone          string              `json:"zone"`
	PolicyVersion int                 `json:"policy_version"`
	Entries       []deploy.Occurrence `json:"-"`
	Skipped       []SkippedAsset      `json:"skipped_assets,omitempty"`
}

// SkippedAsset is an asset left out of the calendar and why.
type SkippedAsset struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Problem string `json:"problem"`
}

// CalendarEntry is one calendar entry as JSON.
type CalendarEntry struct {
	// Kind is window, emergency, freeze or asset-window.
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Zone        string    `json:"zone"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	AllDay      bool      `json:"all_day,omitempty"`
	Baseline    bool      `json:"baseline,omitempty"`
	// Assets counts the assets whose routine changes run in the window.
	Assets int `json:"assets"`
}

// CalendarResponse is GET /calendar's answer.
type CalendarResponse struct {
	From          time.Time       `json:"from"`
	To            time.Time       `json:"to"`
	Zone          string          `json:"zone"`
	PolicyVersion int             `json:"policy_version"`
	Entries       []CalendarEntry `json:"entries"`
	Skipped       []SkippedAsset  `json:"skipped_assets,omitempty"`
}

// NewCalendarResponse renders a calendar view over from–to as JSON.
func NewCalendarResponse(from, to time.Time, v CalendarView) CalendarResponse {
	out := CalendarResponse{From: from, To: to, Zone: v.Zone, PolicyVersion: v.PolicyVersion, Entries: []CalendarEntry{}, Skipped: v.Skipped}
	for _, o := range v.Entries {
		out.Entries = append(out.Entries, CalendarEntry{Kind: string(o.Kind), Name: o.Name, Description: o.Description,
			Zone: o.Zone, Start: o.Start, End: o.End, AllDay: o.AllDay, Baseline: o.Baseline, Assets: o.Assets})
	}
	return out
}

// FeedTokenRequest names a new calendar feed token after where it is used.
type FeedTokenRequest struct {
	Name string `json:"name"`
}

// FeedTokenCreated is a new calendar feed token: its secret, shown once,
// and the subscription path that carries it.
type FeedTokenCreated struct {
	Token    string     `json:"token"`
	FeedPath string     `json:"feed_path"`
	Detail   auth.Token `json:"detail"`
}

// FeedTokenParam is the query parameter that carries a calendar feed token;
// only the iCalendar feed reads it.
const FeedTokenParam = "token"

// PolicyCalendar builds the calendar from the policy in force and the
// inventory's assets, their maintenance windows and their sites' zones.
type PolicyCalendar struct {
	Policies  *policy.Service
	Inventory *inventory.Service
	// Clock is the time source; time.Now when nil.
	Clock func() time.Time
}

// Now returns the calendar's clock.
func (c *PolicyCalendar) Now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// Calendar returns the entries between from and to.
func (c *PolicyCalendar) Calendar(ctx context.Context, from, to time.Time) (CalendarView, error) {
	pol, ver, err := c.Policies.Current(ctx)
	if err != nil {
		return CalendarView{}, err
	}
	cal, err := deploy.NewCalendar(pol, nil)
	if err != nil {
		return CalendarView{}, err
	}
	view := CalendarView{Zone: cal.Zone().String(), PolicyVersion: ver.Version}
	var assets []deploy.Asset
	if c.Inventory != nil {
		if assets, view.Skipped, err = c.assets(ctx, cal, from); err != nil {
			return CalendarView{}, err
		}
	}
	view.Entries, err = cal.Occurrences(from, to, assets...)
	return view, err
}

// assets reads every asset's window and site zone, leaving out (and
// naming) those whose window the calendar cannot read.
func (c *PolicyCalendar) assets(ctx context.Context, cal *deploy.Calendar, from time.Time) ([]deploy.Asset, []SkippedAsset, error) {
	sites, err := c.Inventory.Sites(ctx)
	if err != nil {
		return nil, nil, err
	}
	zones := map[string]*time.Location{}
	for _, s := range sites {
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			zones[s.ID] = l
		}
	}
	var (
		out     []deploy.Asset
		skipped []SkippedAsset
		// readable caches, per maintenance_window value, whether the
		// calendar can read it: most assets share a handful of values.
		readable = map[string]bool{}
	)
	for off := 0; ; off += inventory.MaxPage {
		page, err := c.Inventory.Assets(ctx, inventory.Filter{Limit: inventory.MaxPage, Offset: off})
		if err != nil {
			return nil, nil, err
		}
		for _, a := range page.Assets {
			da := deploy.Asset{ID: a.ID, Site: a.SiteID, Location: zones[a.SiteID], Window: a.MaintenanceWindow}
			if ok, seen := readable[da.Window]; !seen || !ok {
				err := cal.CheckWindow(da)
				readable[da.Window] = err == nil
				if err != nil {
					skipped = append(skipped, SkippedAsset{ID: a.ID, Name: a.Name, Problem: errs.Public(err)})
					continue
				}
			}
			out = append(out, da)
		}
		if len(page.Assets) < inventory.MaxPage || off+len(page.Assets) >= page.Total {
			return out, skipped, nil
		}
	}
}

// calendarRoutes serve the maintenance calendar (calendar:read, every
// role), its iCalendar feed, and the feed tokens that let calendar apps —
// which cannot send an Authorization header — subscribe to the feed. A
// feed token is accepted as ?token= on the feed and nowhere else.
func (a *API) calendarRoutes(src CalendarSource) []Route {
	read := auth.PermCalendarRead
	rng := []Param{
		{Name: "from", Description: "start: an RFC 3339 time or a date (default now)"},
		{Name: "to", Description: fmt.Sprintf("end: an RFC 3339 time or a date (default %d months after from; at most %d months)", calendarDefaultMonths, calendarMaxMonths)},
	}
	return []Route{
		{Method: "GET", Path: "/calendar", Tag: "calendar",
			Summary: "The rolling maintenance calendar: baseline and other policy windows, emergency windows, freezes and the assets' own windows aggregated",
			Perm:    read, Query: rng, Resp: CalendarResponse{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				from, to, err := calendarRange(r, src.Now(), 0)
				if err != nil {
					return err
				}
				v, err := src.Calendar(r.Context(), from, to)
				if err != nil {
					return err
				}
				WriteJSON(w, http.StatusOK, NewCalendarResponse(from, to, v))
				return nil
			}},
		{Method: "GET", Path: "/calendar.ics", Tag: "calendar",
			Summary: "The maintenance calendar as an iCalendar feed (RFC 5545) to subscribe to: send a bearer token, or a calendar feed token as ?token= (feed tokens work here only)",
			Perm:    read, RespType: "text/calendar",
			Query:        append([]Param{{Name: FeedTokenParam, Description: "a calendar feed token (pwc_…), for calendar apps that cannot send headers"}}, rng...),
			Authenticate: a.feedPrincipal,
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				now := src.Now()
				from, to, err := calendarRange(r, now, feedHistory)
				if err != nil {
					return err
				}
				v, err := src.Calendar(r.Context(), from, to)
				if err != nil {
					return err
				}
				body := deploy.ICS(v.Entries, now)
				h := w.Header()
				h.Set("Content-Type", "text/calendar; charset=utf-8")
				h.Set("Content-Disposition", `inline; filename="patchward.ics"`)
				h.Set("Cache-Control", "private, max-age=300")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				return nil
			}},
		{Method: "POST", Path: "/calendar/tokens", Tag: "calendar",
			Summary: "Create a calendar feed token for yourself: read-only, accepted only by the iCalendar feed, shown once, revocable",
			Perm:    read, Body: FeedTokenRequest{}, Resp: FeedTokenCreated{}, Status: http.StatusCreated,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				var in FeedTokenRequest
				if err := DecodeJSON(w, r, &in); err != nil {
					return err
				}
				secret, t, err := a.Accounts.CreateFeedToken(r.Context(), p.Actor(authn.ClientAddr(r)), p.UserID, in.Name)
				if err != nil {
					return err
				}
				WriteJSON(w, http.StatusCreated, FeedTokenCreated{Token: secret, Detail: t,
					FeedPath: Prefix + "/calendar.ics?" + FeedTokenParam + "=" + secret})
				return nil
			}},
		{Method: "GET", Path: "/calendar/tokens", Tag: "calendar", Summary: "Your calendar feed tokens, revoked ones included, without their secrets",
			Perm: read, Resp: []auth.Token{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Accounts.ListFeedTokens(r.Context(), p.UserID))
			}},
		{Method: "DELETE", Path: "/calendar/tokens/{id}", Tag: "calendar", Summary: "Revoke one of your calendar feed tokens (admins: anyone's)",
			Perm: read, Status: http.StatusNoContent,
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				if _, err := a.Accounts.RevokeFeedToken(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id")); err != nil {
					return err
				}
				w.WriteHeader(http.StatusNoContent)
				return nil
			}},
	}
}

// feedPrincipal resolves ?token= to the feed token's owner. Absent, it
// finds nobody and the usual sign-in rules apply.
func (a *API) feedPrincipal(r *http.Request) (auth.Principal, bool, error) {
	tok := r.URL.Query().Get(FeedTokenParam)
	if tok == "" {
		return auth.Principal{}, false, nil
	}
	p, err := a.Accounts.FeedPrincipal(r.Context(), tok)
	if err != nil {
		return auth.Principal{}, false, err
	}
	return p, true, nil
}

// calendarRange reads from and to: from defaults to now less back, to to
// six months after from (after now when from is not given); the range may
// not exceed twelve months.
func calendarRange(r *http.Request, now time.Time, back time.Duration) (time.Time, time.Time, error) {
	q := r.URL.Query()
	now = now.UTC().Truncate(time.Second)
	from, anchor := now.Add(-back), now
	if s := q.Get("from"); s != "" {
		t, err := parseCalendarTime(s)
		if err != nil {
			return time.Time{}, time.Time{}, fieldError("from", err.Error())
		}
		from, anchor = t, t
	}
	to := anchor.AddDate(0, calendarDefaultMonths, 0)
	if s := q.Get("to"); s != "" {
		t, err := parseCalendarTime(s)
		if err != nil {
			return time.Time{}, time.Time{}, fieldError("to", err.Error())
		}
		to = t
	}
	if !to.After(from) {
		return time.Time{}, time.Time{}, fieldError("to", "must be after from")
	}
	if to.After(from.AddDate(0, calendarMaxMonths, 0)) {
		return time.Time{}, time.Time{}, fieldError("to", fmt.Sprintf("the calendar spans at most %d months", calendarMaxMonths))
	}
	return from, to, nil
}

func parseCalendarTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("give an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)")
}
