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

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
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

// heldRoles are the policy roles each test principal holds: one of the
// default policy's that grants its Patchward role.
var heldRoles = map[auth.Role][]string{
	auth.RoleAdmin:    {"it-manager"},
	auth.RoleApprover: {"security-officer"},
	auth.RoleOperator: {"it-technician"},
}

func principal(r auth.Role) auth.Principal {
	return auth.Principal{UserID: "u-" + string(r), Username: string(r), DisplayName: "Pat " + string(r), Role: r, PolicyRoles: heldRoles[r]}
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
		sites:  []inventory.Site{{ID: "s-clinic", Name: "Riverside Clinic"}, {ID: "s-lab", Name: "Riverside Laboratory", TimeZone: "America/Denver"}},
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
			(q.Actor == "" || e.Actor.Name == q.Actor) && (len(q.ObjectIDs) == 0 || slices.Contains(q.ObjectIDs, e.ObjectID)) {
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
	t          *testing.T
	accounts   *fakeAccounts
	inv        *fakeInventory
	imp        *fakeImporter
	audit      *fakeAudit
	findings   *fakeFindings   // nil unless newVulnEnv or newRiskEnv
	advisories *fakeAdvisories // nil unless newVulnEnv or newRiskEnv
	risk       *fakeRisk       // nil unless newRiskEnv
	exceptions *fakeExceptions // nil unless newRiskEnv
	policy     *fakePolicy     // nil unless newRiskEnv
	logs       *bytes.Buffer
	h          http.Handler
}

// newEnv is the UI without the vulnerability services, as deployments
// wired before they existed still run it.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, false)
}

// newVulnEnv is the UI with fake findings and advisory services too.
func newVulnEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, true)
}

// newRiskEnv is the UI with every service: findings, advisories, the
// risk engine's worklist, exceptions and the policy, on a fixed clock.
func newRiskEnv(t *testing.T) *env {
	t.Helper()
	return buildEnv(t, true, true)
}

func newEnvWith(t *testing.T, vulns bool) *env {
	t.Helper()
	return buildEnv(t, vulns, false)
}

func buildEnv(t *testing.T, vulns, risky bool) *env {
	t.Helper()
	e := &env{t: t, accounts: newFakeAccounts(), inv: newFakeInventory(), imp: &fakeImporter{}, audit: &fakeAudit{}, logs: &bytes.Buffer{}}
	cfg := Config{Accounts: e.accounts, Inventory: e.inv, Importer: e.imp, Audit: e.audit,
		Log: slog.New(slog.NewTextHandler(e.logs, nil))}
	if vulns {
		e.findings, e.advisories = newFakeFindings(), newFakeAdvisories()
		cfg.Findings, cfg.Advisories = e.findings, e.advisories
	}
	if risky {
		e.risk, e.exceptions, e.policy = newFakeRisk(), newFakeExceptions(), newFakePolicy()
		cfg.Risk, cfg.Exceptions, cfg.Policy = e.risk, e.exceptions, e.policy
		cfg.Now = func() time.Time { return riskNow }
	}
	ui, err := New(cfg)
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

// fakeFindings keeps findings in memory and filters them the way the
// store does; it records every filter exactly as the UI passed it.
type fakeFindings struct {
	mu       sync.Mutex
	findings []match.Finding
	filters  []match.FindingFilter
	gets     []string
}

func newFakeFindings() *fakeFindings {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 8, 0, 0, 0, time.UTC) }
	fixedAt, reopenedAt := day(10), day(12)
	return &fakeFindings{findings: []match.Finding{
		{ID: "f-xz", AssetID: "a-chem", Ecosystem: "Debian:12", Package: "xz-utils", Version: "5.4.1-0.2",
			Binaries: []string{"liblzma5", "xz-utils"}, VulnID: "CVE-2024-3094", AdvisoryIDs: []string{"DSA-5649-1"},
			FixedVersion: "5.4.1-1", Source: match.SourceOSV, State: match.StateOpen, FirstSeen: day(1), LastSeen: day(20),
			KEV: true, EPSS: 0.86},
		{ID: "f-ssl", AssetID: "a-chem", Ecosystem: "generic", Package: "openssl", Version: "1.1.1k",
			VulnID: "CVE-2023-0286", Source: match.SourceNVDCPE, State: match.StateOpen, FirstSeen: day(2), LastSeen: day(20),
			EPSS: 0.0042},
		{ID: "f-vpn", AssetID: "a-vpn", Ecosystem: "CSAF", Package: "Acme VPN Gateway", Version: "3.2",
			VulnID: "CVE-2024-1111", Source: match.SourceCSAF, State: match.StateNotAffected, FirstSeen: day(3), LastSeen: day(20),
			VEX: &match.VEX{Status: advisory.StatusKnownNotAffected, Justification: "vulnerable_code_not_in_execute_path",
				Impact: "The affected module is not loaded on the gateway.", Document: "ACME-2024-007 (Acme Corp)"}},
		{ID: "f-heme", AssetID: "a-heme", Ecosystem: "generic", Package: "openssl", Version: "3.0.13",
			VulnID: "CVE-2022-1111", Source: match.SourceNVDCPE, State: match.StateFixed, FirstSeen: day(4), LastSeen: day(9),
			FixedAt: &fixedAt, ReopenedAt: &reopenedAt, ReopenCount: 1},
		// An asset deleted since: its findings stay on record.
		{ID: "f-gone", AssetID: "a-deleted", Ecosystem: "Debian:12", Package: "curl", Version: "7.88.1-10",
			VulnID: "CVE-2023-38545", Source: match.SourceOSV, State: match.StateOpen, FirstSeen: day(5), LastSeen: day(6)},
	}}
}

func (f *fakeFindings) Findings(_ context.Context, flt match.FindingFilter) (match.FindingPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	flt.Normalize()
	var all []match.Finding
	for _, x := range f.findings {
		if (flt.AssetID != "" && x.AssetID != flt.AssetID) || (flt.State != "" && x.State != flt.State) ||
			(flt.KEV != nil && x.KEV != *flt.KEV) || (flt.Package != "" && x.Package != flt.Package) ||
			(flt.VulnID != "" && x.VulnID != flt.VulnID && !slices.Contains(x.AdvisoryIDs, flt.VulnID)) {
			continue
		}
		all = append(all, x)
	}
	p := match.FindingPage{Total: len(all), Limit: flt.Limit, Offset: flt.Offset}
	if flt.Offset < len(all) {
		p.Findings = all[flt.Offset:min(len(all), flt.Offset+flt.Limit)]
	}
	return p, nil
}

func (f *fakeFindings) Finding(_ context.Context, id string) (match.Finding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, id)
	for _, x := range f.findings {
		if x.ID == id {
			return x, nil
		}
	}
	return match.Finding{}, errs.E(errs.NotFound, "no finding %q", id)
}

// calls counts every call, for tests that must see none.
func (f *fakeFindings) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.filters) + len(f.gets)
}

// fakeAdvisories serves canned advisories and feed statuses.
type fakeAdvisories struct {
	mu         sync.Mutex
	advisories []feeds.Hit
	status     []feeds.Status
	queries    []feeds.Query
	gets       []string
}

func newFakeAdvisories() *fakeAdvisories {
	published := time.Date(2024, 3, 29, 17, 15, 0, 0, time.UTC)
	modified := time.Date(2025, 1, 9, 10, 0, 0, 0, time.UTC)
	xz := advisory.Advisory{ID: "CVE-2024-3094", Source: "osv", Aliases: []string{"DSA-5649-1"},
		Summary: "Malicious code in xz-utils release tarballs", Published: published, Modified: modified,
		Severity: []advisory.Severity{
			{Type: advisory.CVSSv3, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10, Rating: "CRITICAL", Source: "nvd@nist.gov"},
		},
		CWEs: []string{"CWE-506"},
		References: []string{
			"https://www.openwall.com/lists/oss-security/2024/03/29/4",
			"javascript:alert(document.cookie)",
			"JavaScript:alert(1)",
			"data:text/html,<script>alert(1)</script>",
			"//evil.example/relative",
		},
		Affected: []advisory.Affected{{Ecosystem: "Debian:12", Package: "xz-utils", Vulnerable: true,
			Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: "5.4.1-1"}}}},
	}
	vpn := advisory.Advisory{ID: "CVE-2024-1111", Source: "csaf", Summary: "Acme VPN Gateway web interface command injection",
		Published: published, Modified: modified,
		Document: &advisory.Document{Title: "Acme VPN Gateway advisory", Tracking: "ACME-2024-007", Publisher: "Acme Corp", Version: "2"},
		Severity: []advisory.Severity{{Type: advisory.CVSSv4, Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Score: 9.3, Rating: "CRITICAL"}},
		Affected: []advisory.Affected{
			{Ecosystem: "CSAF", Vendor: "Acme", ProductName: "Acme VPN Gateway 3.1", Vulnerable: true, Status: advisory.StatusKnownAffected,
				Ranges: []advisory.Range{{Type: "CSAF", Introduced: "3.0", LastAffected: "3.1.4"}},
				Remediations: []advisory.Remediation{
					{Category: "vendor_fix", Details: "Update to firmware 3.1.5", URL: "https://acme.example/fw/3.1.5"},
					{Category: "mitigation", Details: "Disable the web interface", URL: "javascript:alert(2)"},
				}},
			{Ecosystem: "CSAF", Vendor: "Acme", ProductName: "Acme VPN Gateway 3.1.5", Status: advisory.StatusFixed, Versions: []string{"3.1.5"}},
			{Ecosystem: "CSAF", Vendor: "Acme", ProductName: "Acme VPN Gateway 3.2", Status: advisory.StatusKnownNotAffected,
				Justification: "vulnerable_code_not_in_execute_path", Impact: "The affected module is not loaded."},
		},
	}
	nvd := advisory.Advisory{ID: "CVE-2023-0286", Source: "nvd", Details: "There is a type confusion vulnerability relating to X.400 address processing.",
		Published: published, Modified: modified}
	at := time.Date(2026, 4, 2, 3, 0, 0, 0, time.UTC)
	earlier := at.Add(-24 * time.Hour)
	return &fakeAdvisories{
		advisories: []feeds.Hit{{Feed: "nvd", Advisory: nvd}, {Feed: "acme-csaf", Advisory: vpn}, {Feed: "osv-debian", Advisory: xz}},
		status: []feeds.Status{
			{Feed: "epss", Kind: feeds.EPSS, Source: "https://epss.example/epss_scores-current.csv.gz", Version: 12,
				FetchedAt: &at, LastAttemptAt: &at, LastSuccessAt: &at, EPSS: 281234,
				Meta: feeds.Meta{EPSSModelVersion: "v2025.03.14", EPSSScoreDate: &at}},
			{Feed: "kev", Kind: feeds.KEV, Source: "https://kev.example/known_exploited_vulnerabilities.json", Version: 3,
				FetchedAt: &earlier, LastAttemptAt: &at, LastSuccessAt: &earlier, KEV: 1484,
				LastError: "fetch kev: server answered 503 Service Unavailable", Meta: feeds.Meta{KEVCatalogVersion: "2026.04.01"}},
			{Feed: "nvd", Kind: feeds.NVD, Source: "https://user:hunter2@nvd.example/rest/json/cves/2.0?apiKey=s3cret", Version: 0,
				LastAttemptAt: &at, LastError: "fetch nvd: timeout"},
		},
	}
}

func (f *fakeAdvisories) Advisory(_ context.Context, id string) (advisory.Advisory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, id)
	for _, h := range f.advisories {
		if strings.EqualFold(h.Advisory.ID, id) {
			return h.Advisory, nil
		}
	}
	for _, h := range f.advisories {
		for _, a := range h.Advisory.Aliases {
			if strings.EqualFold(a, id) {
				return h.Advisory, nil
			}
		}
	}
	return advisory.Advisory{}, errs.E(errs.NotFound, "no advisory %q", id)
}

func (f *fakeAdvisories) SearchAdvisories(_ context.Context, q feeds.Query, limit, offset int) (feeds.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	prefix := strings.ToUpper(q.ID)
	var hits []feeds.Hit
	for _, h := range f.advisories {
		a := h.Advisory
		idOK := prefix == "" || slices.ContainsFunc(append([]string{a.ID}, a.Aliases...), func(s string) bool {
			return strings.HasPrefix(strings.ToUpper(s), prefix)
		})
		pkgOK := q.Package == "" || slices.ContainsFunc(a.Affected, func(af advisory.Affected) bool { return af.Package == q.Package })
		if idOK && pkgOK {
			hits = append(hits, h)
		}
	}
	p := feeds.Page{Total: len(hits), Limit: limit, Offset: offset}
	if offset < len(hits) {
		p.Hits = hits[offset:min(len(hits), offset+limit)]
	}
	return p, nil
}

func (f *fakeAdvisories) FeedStatus(context.Context) ([]feeds.Status, error) { return f.status, nil }

func (f *fakeAdvisories) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries) + len(f.gets)
}
