package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// fakeAccounts has one user per role (username = role, password =
// "pw-"+role) and pre-made sessions "tok-"+role. It is also the
// authn.Resolver, so tests run behind the real middleware.
type fakeAccounts struct {
	mu       sync.Mutex
	sessions map[string]auth.Principal
	logouts  []string
	logins   []string // addr of each successful login
	next     int
}

func newFakeAccounts() *fakeAccounts {
	f := &fakeAccounts{sessions: map[string]auth.Principal{}}
	for _, r := range auth.Roles {
		f.sessions["tok-"+string(r)] = principal(r)
	}
	return f
}

func principal(r auth.Role) auth.Principal {
	return auth.Principal{UserID: "u-" + string(r), Username: string(r), DisplayName: "Pat " + string(r), Role: r}
}

func (f *fakeAccounts) Login(_ context.Context, username, password, addr string) (string, auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := auth.Role(username)
	if !r.Valid() || password != "pw-"+username {
		return "", auth.Principal{}, errs.E(errs.Unauthorized, "wrong username or password")
	}
	f.next++
	tok := fmt.Sprintf("new-%d", f.next)
	f.sessions[tok] = principal(r)
	f.logins = append(f.logins, addr)
	return tok, principal(r), nil
}

func (f *fakeAccounts) Logout(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logouts = append(f.logouts, token)
	delete(f.sessions, token)
	return nil
}

func (f *fakeAccounts) SessionPrincipal(_ context.Context, token string) (auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.sessions[token]
	if !ok {
		return auth.Principal{}, errs.E(errs.Unauthorized, "session expired")
	}
	return p, nil
}

func (f *fakeAccounts) TokenPrincipal(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errs.E(errs.Unauthorized, "no API tokens here")
}

// fakeInventory keeps assets in memory and applies the real Normalize and
// Validate, so validation messages are the inventory's own.
type fakeInventory struct {
	mu      sync.Mutex
	assets  map[string]inventory.Asset
	sites   []inventory.Site
	groups  []inventory.Group
	filters []inventory.Filter
	actors  []audit.Actor
	writes  int
	fail    error // returned by every call when set
}

func newFakeInventory() *fakeInventory {
	f := &fakeInventory{assets: map[string]inventory.Asset{},
		sites:  []inventory.Site{{ID: "s-clinic", Name: "Riverside Clinic"}, {ID: "s-lab", Name: "Riverside Laboratory"}},
		groups: []inventory.Group{{ID: "g-pilot", Name: "Pilot ring"}, {ID: "g-lab", Name: "Tier-1 lab systems"}},
	}
	eos := time.Date(2025, 10, 14, 0, 0, 0, 0, time.UTC)
	patched := time.Date(2026, 3, 2, 14, 30, 0, 0, time.UTC)
	for _, a := range []inventory.Asset{
		{ID: "a-chem", Name: "Chemistry analyzer", Type: inventory.TypeAnalyzer, Make: "Roche", Model: "cobas c 311",
			Serial: "CH-311-0042", SiteID: "s-lab", Exposure: inventory.ExposureClinicalVLAN, HandlesPHI: true,
			Criticality: inventory.LevelCritical, SafetyImpact: inventory.SafetyHigh, RegulatedDevice: true,
			Restriction: inventory.RestrictionVendorOnly, SupportStatus: inventory.SupportSupported,
			BusinessOwner: "Lab director", TechnicalOwner: "Lab IT", Groups: []string{"g-lab"}, Tags: []string{"lab"},
			LastPatchedAt: &patched, PendingUpdates: 2,
			Software: []inventory.Software{{Name: "openssl", Version: "1.1.1k", Ecosystem: "generic"}}},
		{ID: "a-heme", Name: "Hematology analyzer", Type: inventory.TypeAnalyzer, Serial: "HE-7", SiteID: "s-lab",
			Exposure: inventory.ExposureClinicalVLAN, HandlesPHI: true, Criticality: inventory.LevelHigh,
			SupportStatus: inventory.SupportLimited, BusinessOwner: "Lab director"},
		{ID: "a-vpn", Name: "VPN gateway", Type: inventory.TypeNetworkDevice, Serial: "VPN-1", SiteID: "s-clinic",
			Exposure: inventory.ExposureInternet, Criticality: inventory.LevelCritical, SupportStatus: inventory.SupportSupported,
			TechnicalOwner: "IT"},
		{ID: "a-xp", Name: "X-ray workstation", Type: inventory.TypeEndpoint, Serial: "XP-1", SiteID: "s-clinic",
			Exposure: inventory.ExposureInternal, HandlesPHI: true, Criticality: inventory.LevelMedium,
			SupportStatus: inventory.SupportEnded, EndOfSupport: &eos, BusinessOwner: "Radiology"},
	} {
		a.Normalize()
		a.Revision = 3
		f.assets[a.ID] = a
	}
	return f
}

func (f *fakeInventory) Assets(_ context.Context, flt inventory.Filter) (inventory.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return inventory.Page{}, f.fail
	}
	f.filters = append(f.filters, flt)
	var all []inventory.Asset
	for _, id := range slices.Sorted(maps.Keys(f.assets)) {
		a := f.assets[id]
		q := strings.ToLower(flt.Q)
		if (flt.SiteID != "" && a.SiteID != flt.SiteID) || (flt.Type != "" && a.Type != flt.Type) ||
			(flt.Criticality != "" && a.Criticality != flt.Criticality) || (flt.PHI != nil && a.HandlesPHI != *flt.PHI) ||
			(flt.Exposure != "" && a.Exposure != flt.Exposure) || (flt.Support != "" && a.SupportStatus != flt.Support) ||
			(flt.Owner != "" && !strings.EqualFold(a.BusinessOwner, flt.Owner) && !strings.EqualFold(a.TechnicalOwner, flt.Owner)) ||
			(q != "" && !strings.Contains(strings.ToLower(a.Name+" "+a.Serial), q)) {
			continue
		}
		a.Software = nil
		all = append(all, a)
	}
	if flt.Limit <= 0 {
		flt.Limit = 50
	}
	p := inventory.Page{Total: len(all), Limit: flt.Limit, Offset: flt.Offset}
	if flt.Offset < len(all) {
		p.Assets = all[flt.Offset:min(len(all), flt.Offset+flt.Limit)]
	}
	return p, nil
}

func (f *fakeInventory) Asset(_ context.Context, id string) (inventory.Asset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return inventory.Asset{}, f.fail
	}
	a, ok := f.assets[id]
	if !ok {
		return inventory.Asset{}, errs.E(errs.NotFound, "no asset %q", id)
	}
	return a, nil
}

func (f *fakeInventory) CreateAsset(_ context.Context, actor audit.Actor, a inventory.Asset) (inventory.Asset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.Normalize()
	if err := a.Validate(); err != nil {
		return inventory.Asset{}, err
	}
	a.ID, a.Revision = fmt.Sprintf("a-new-%d", len(f.assets)), 1
	f.assets[a.ID] = a
	f.actors = append(f.actors, actor)
	f.writes++
	return a, nil
}

func (f *fakeInventory) UpdateAsset(_ context.Context, actor audit.Actor, id string, a inventory.Asset) (inventory.Asset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.assets[id]
	if !ok {
		return inventory.Asset{}, errs.E(errs.NotFound, "no asset %q", id)
	}
	if a.Revision != old.Revision {
		return inventory.Asset{}, errs.E(errs.Conflict, "asset %s was changed by someone else; reload and retry", id)
	}
	a.Normalize()
	if err := a.Validate(); err != nil {
		return inventory.Asset{}, err
	}
	a.ID, a.Revision = id, old.Revision+1
	f.assets[id] = a
	f.actors = append(f.actors, actor)
	f.writes++
	return a, nil
}

func (f *fakeInventory) Sites(context.Context) ([]inventory.Site, error) { return f.sites, nil }

func (f *fakeInventory) Groups(context.Context) ([]inventory.Group, error) { return f.groups, nil }

// fakeImporter answers with a canned result and records what it was given.
type fakeImporter struct {
	mu        sync.Mutex
	result    ImportResult
	err       error
	calls     []ImportOptions
	contents  [][]byte
	committed int // imports that were not dry runs
}

func (f *fakeImporter) ImportCSV(_ context.Context, _ audit.Actor, r io.Reader, opt ImportOptions) (ImportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return ImportResult{}, err
	}
	f.calls = append(f.calls, opt)
	f.contents = append(f.contents, b)
	if f.err != nil {
		return ImportResult{}, f.err
	}
	if !opt.DryRun && f.result.ErrorCount == 0 {
		f.committed++
	}
	return f.result, nil
}

type fakeAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
	queries []AuditQuery
}

func (f *fakeAudit) Entries(_ context.Context, q AuditQuery) ([]audit.Entry, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	var out []audit.Entry
	for _, e := range f.entries {
		if (q.ObjectType == "" || e.ObjectType == q.ObjectType) && (q.Action == "" || e.Action == q.Action) &&
			(q.Actor == "" || e.Actor.Name == q.Actor) && (q.ObjectID == "" || e.ObjectID == q.ObjectID) {
			out = append(out, e)
		}
	}
	total := len(out)
	if q.Offset < len(out) {
		out = out[q.Offset:min(len(out), q.Offset+q.Limit)]
	} else {
		out = nil
	}
	return out, total, nil
}

// env is one UI under test with its fakes, behind authn.Middleware.
type env struct {
	t        *testing.T
	accounts *fakeAccounts
	inv      *fakeInventory
	imp      *fakeImporter
	audit    *fakeAudit
	logs     *bytes.Buffer
	h        http.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, accounts: newFakeAccounts(), inv: newFakeInventory(), imp: &fakeImporter{}, audit: &fakeAudit{}, logs: &bytes.Buffer{}}
	ui, err := New(Config{Accounts: e.accounts, Inventory: e.inv, Importer: e.imp, Audit: e.audit,
		Log: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.h = authn.Middleware(e.accounts, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, errs.Public(err), errs.HTTPStatus(err))
	})(ui.Handler())
	return e
}

// do sends a request as role ("" for nobody signed in).
func (e *env) do(method, target string, role auth.Role, body io.Reader, contentType string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, target, body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if role != "" {
		r.AddCookie(&http.Cookie{Name: authn.CookieName, Value: "tok-" + string(role)})
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) get(target string, role auth.Role) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(http.MethodGet, target, role, nil, "")
}

func (e *env) post(target string, role auth.Role, form url.Values) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(http.MethodPost, target, role, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
}

func parse(t *testing.T, w *httptest.ResponseRecorder) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatalf("parse HTML: %v", err)
	}
	return doc
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status = %d; want %d\nbody: %.2000s", w.Code, want, w.Body.String())
	}
}

func text(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }

// formValues reads a rendered form the way a browser would submit it
// (text inputs, hidden inputs, checked boxes, selected options, textareas),
// so tests post back exactly what the page offered.
func formValues(form *goquery.Selection) url.Values {
	v := url.Values{}
	form.Find("input[name]").Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		typ, _ := s.Attr("type")
		val, _ := s.Attr("value")
		switch typ {
		case "checkbox", "radio":
			if _, ok := s.Attr("checked"); ok {
				v.Add(name, orDefault(val, "on"))
			}
		case "file", "submit":
		default:
			v.Add(name, val)
		}
	})
	form.Find("select[name]").Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		opt := s.Find("option[selected]").First()
		if opt.Length() == 0 {
			opt = s.Find("option").First()
		}
		val, _ := opt.Attr("value")
		v.Add(name, val)
	})
	form.Find("textarea[name]").Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		// The HTML parser drops the newline that follows <textarea>.
		v.Add(name, s.Text())
	})
	return v
}
