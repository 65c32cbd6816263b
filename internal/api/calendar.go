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
// emergency windows and freezes, the assets' own windows aggregated, and
// the changes booked or under way in them, plus the assets whose
// maintenance window could not be read (they are left out, never
// silently moved to another window).
type CalendarView struct {
	Zone          string               `json:"zone"`
	PolicyVersion int                  `json:"policy_version"`
	Entries       []deploy.Occurrence  `json:"-"`
	Changes       []deploy.ChangeEntry `json:"-"`
	// ChangesTruncated: more changes exist than the calendar reads.
	ChangesTruncated bool           `json:"-"`
	Skipped          []SkippedAsset `json:"skipped_assets,omitempty"`
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

// CalendarChange is one change on the calendar as JSON: one of its
// planned windows, or one slot of a rollout wave (the wave's jobs in one
// window occurrence at one site zone).
type CalendarChange struct {
	// UID names the entry by its change and place in it, the same in
	// every answer (and the iCalendar feed's event UID).
	UID      string `json:"uid"`
	ChangeID string `json:"change_id"`
	Title    string `json:"title"`
	// Type is standard, normal or emergency; State the change's state.
	Type      string `json:"type"`
	State     string `json:"state"`
	Emergency bool   `json:"emergency,omitempty"`
	// Part is "planned" (a planned window, Index its position) or "wave"
	// (Index the wave, Slot its slot in time order).
	Part  string `json:"part"`
	Index int    `json:"index"`
	Slot  int    `json:"slot,omitempty"`
	// Window is the policy window a planned window names; Ring and
	// WaveState describe a wave.
	Window    string    `json:"window,omitempty"`
	Ring      string    `json:"ring,omitempty"`
	WaveState string    `json:"wave_state,omitempty"`
	Zone      string    `json:"zone"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// Assets counts a wave slot's assets.
	Assets int `json:"assets,omitempty"`
	// Immediate marks an emergency planned to run as soon as it starts.
	Immediate bool `json:"immediate,omitempty"`
	// Page is the change's page in the web UI.
	Page string `json:"page"`
}

// CalendarResponse is GET /calendar's answer.
type CalendarResponse struct {
	From          time.Time        `json:"from"`
	To            time.Time        `json:"to"`
	Zone          string           `json:"zone"`
	PolicyVersion int              `json:"policy_version"`
	Entries       []CalendarEntry  `json:"entries"`
	Changes       []CalendarChange `json:"changes"`
	// ChangesTruncated says more changes exist than the calendar reads.
	ChangesTruncated bool           `json:"changes_truncated,omitempty"`
	Skipped          []SkippedAsset `json:"skipped_assets,omitempty"`
}

// NewCalendarResponse renders a calendar view over from–to as JSON.
func NewCalendarResponse(from, to time.Time, v CalendarView) CalendarResponse {
	out := CalendarResponse{From: from, To: to, Zone: v.Zone, PolicyVersion: v.PolicyVersion, Entries: []CalendarEntry{},
		Changes: []CalendarChange{}, ChangesTruncated: v.ChangesTruncated, Skipped: v.Skipped}
	for _, o := range v.Entries {
		out.Entries = append(out.Entries, CalendarEntry{Kind: string(o.Kind), Name: o.Name, Description: o.Description,
			Zone: o.Zone, Start: o.Start, End: o.End, AllDay: o.AllDay, Baseline: o.Baseline, Assets: o.Assets})
	}
	for _, c := range v.Changes {
		out.Changes = append(out.Changes, CalendarChange{UID: c.UID(), ChangeID: c.ChangeID, Title: c.Title, Type: string(c.Type),
			State: string(c.State), Emergency: c.Emergency(), Part: string(c.Part), Index: c.Index, Slot: c.Slot, Window: c.Window,
			Ring: c.Ring, WaveState: string(c.WaveState), Zone: c.Zone, Start: c.Start, End: c.End, Assets: c.Assets,
			Immediate: c.Immediate, Page: "/changes/" + c.ChangeID})
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

// PolicyCalendar builds the calendar from the policy in force, the
// inventory's assets (their maintenance windows and their sites' zones)
// and the changes booked or under way.
type PolicyCalendar struct {
	Policies  *policy.Service
	Inventory *inventory.Service
	// Changes, when set, puts changes on the calendar: their planned
	// windows and, with Rollouts, their rollout waves' slots.
	Changes  deploy.ChangeLister
	Rollouts deploy.RolloutFinder
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
	var pa deploy.PlanningAssets
	if c.Inventory != nil {
		if pa, err = deploy.ReadPlanningAssets(ctx, c.Inventory, cal, 0); err != nil {
			return CalendarView{}, err
		}
		for _, u := range pa.Unreadable {
			view.Skipped = append(view.Skipped, SkippedAsset{ID: u.ID, Name: u.Name, Problem: errs.Public(u.Err)})
		}
	}
	if view.Entries, err = cal.Occurrences(from, to, pa.Assets...); err != nil {
		return CalendarView{}, err
	}
	if c.Changes != nil {
		cc, err := cal.ChangeEntries(ctx, c.Changes, c.Rollouts, pa.Assets, from, to, c.Now())
		if err != nil {
			return CalendarView{}, err
		}
		view.Changes, view.ChangesTruncated = cc.Entries, cc.Truncated
	}
	return view, nil
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
			Summary: "The rolling maintenance calendar: baseline and other policy windows, emergency windows, freezes, the assets' own windows aggregated, and the changes booked or under way (planned windows, rollout wave slots)",
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
			Summary: "The maintenance calendar as an iCalendar feed (RFC 5545) to subscribe to, changes included, each change window with a UID that stays the same when it moves: send a bearer token, or a calendar feed token as ?token= (feed tokens work here only)",
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
				body := deploy.Feed{Occurrences: v.Entries, Changes: v.Changes, BaseURL: baseURL(r)}.ICS(now)
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

// baseURL is the address the request came to, for links in the feed.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}
