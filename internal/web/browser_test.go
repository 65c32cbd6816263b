package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// chromiumPath is Debian's Chromium, installed by scripts/setup.sh.
const chromiumPath = "/usr/bin/chromium"

const browserPassword = "correct horse battery staple"

// browserCSP mirrors the server's policy, so the test also proves the UI
// works with no inline code.
const browserCSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"

// TestBrowserLoginFilterOpen drives the UI in real Chromium against a real
// SQLite database, the real inventory and auth services, and the server's
// cross-origin protection and CSP: sign in, filter the asset list, open an
// asset, filter the findings worklist, open an advisory, sign out.
func TestBrowserLoginFilterOpen(t *testing.T) {
	b := newBrowser(t, 30*time.Second)
	bctx, do := b.ctx, b.do
	ctx := context.Background()

	db := storetest.Open(t, store.SQLite, store.Options{})
	inv := inventory.NewService(db.Inventory(), nil)
	seedBrowserInventory(t, ctx, inv)

	// The real auth service: argon2id (at test cost), real sessions.
	accounts := auth.NewService(db.Auth(), auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if _, err := accounts.CreateUser(ctx, audit.System, auth.NewUser{Username: "lab-admin", DisplayName: "Lab Admin",
		Role: auth.RoleAdmin, Password: browserPassword}); err != nil {
		t.Fatal(err)
	}
	// Findings and advisories come from the test fakes: real ones need the
	// whole feed pipeline, and what is checked here is that the pages work
	// in a browser under the CSP.
	ui, err := New(Config{Accounts: accounts, Inventory: inv, Findings: newFakeFindings(), Advisories: newFakeAdvisories(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBrowserUI(t, accounts, ui)

	// An unauthenticated visit lands on the sign-in page and comes back.
	do("open /assets", chromedp.Navigate(srv.URL+"/assets"), chromedp.WaitVisible(chromedp.ID("username")))
	loginURL := run(t, bctx, chromedp.Location())
	if !strings.Contains(loginURL, "/login?next=%2Fassets") {
		t.Errorf("unauthenticated /assets went to %q; want /login?next=%%2Fassets", loginURL)
	}
	do("sign in",
		chromedp.SendKeys(chromedp.ID("username"), "lab-admin"),
		chromedp.SendKeys(chromedp.ID("password"), browserPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("asset-table")),
	)
	if n := len(run(t, bctx, chromedp.AttributesAll(chromedp.CSSAll(`#asset-table tbody tr`)))); n != 5 {
		t.Errorf("unfiltered rows = %d; want 5", n)
	}

	// Filter to analyzers with the GET form.
	do("filter",
		chromedp.SetValue(chromedp.ID("f-type"), "analyzer"),
		chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#filters a.quiet`)), // "Clear filters" shows once filtered
	)
	if u := run(t, bctx, chromedp.Location()); !strings.Contains(u, "type=analyzer") {
		t.Errorf("filtered list URL = %q; want type=analyzer in it", u)
	}
	rows := run(t, bctx, chromedp.AttributesAll(chromedp.CSSAll(`#asset-table tbody tr`)))
	if len(rows) != 2 {
		t.Errorf("filtered rows = %d; want 2 analyzers", len(rows))
	}
	for _, r := range rows {
		if r["data-type"] != "analyzer" {
			t.Errorf("row %s has type %q; want only analyzers", r["data-asset-id"], r["data-type"])
		}
	}
	// The stylesheet loaded under the CSP: the header has its colour.
	bg := run(t, bctx, chromedp.EvaluateAsDevTools[string](`getComputedStyle(document.querySelector("header.top")).backgroundColor`))
	if bg != "rgb(29, 92, 99)" {
		t.Errorf("header background = %q; want the stylesheet's rgb(29, 92, 99)", bg)
	}

	// Open the first analyzer; rows are ordered by name.
	do("open asset",
		chromedp.Click(chromedp.CSS(`#asset-table tbody tr:first-child td.name a`)),
		chromedp.WaitVisible(chromedp.ID("serial")),
	)
	if serial := run(t, bctx, chromedp.Text(chromedp.ID("serial"))); serial != "CH-311-0042" {
		t.Errorf("detail serial = %q; want CH-311-0042", serial)
	}
	if title := run(t, bctx, chromedp.Title()); title != "Chemistry analyzer · Patchward" {
		t.Errorf("title = %q", title)
	}
	if who := run(t, bctx, chromedp.Text(chromedp.CSS(".user .who"))); !strings.Contains(who, "Lab Admin") {
		t.Errorf("signed-in user shown as %q", who)
	}

	// The findings worklist, filtered by its form, leads to an advisory.
	do("findings",
		chromedp.Navigate(srv.URL+"/findings"),
		chromedp.WaitVisible(chromedp.ID("finding-table")),
		chromedp.Click(chromedp.ID("f-kev")),
		chromedp.Click(chromedp.CSS(`#finding-filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#finding-filters a.quiet`)),
	)
	if n := len(run(t, bctx, chromedp.AttributesAll(chromedp.CSSAll(`#finding-table tbody tr`)))); n != 1 {
		t.Errorf("KEV-only rows = %d; want 1", n)
	}
	kevBG := run(t, bctx, chromedp.EvaluateAsDevTools[string](`getComputedStyle(document.querySelector(".badge.kev")).backgroundColor`))
	if kevBG != "rgb(166, 27, 27)" {
		t.Errorf("KEV badge background = %q; want the stylesheet's rgb(166, 27, 27)", kevBG)
	}
	do("open advisory",
		chromedp.Click(chromedp.CSS(`#finding-table a[href="/advisories/CVE-2024-3094"]`)),
		chromedp.WaitVisible(chromedp.ID("references")),
	)
	if n := len(run(t, bctx, chromedp.AttributesAll(chromedp.CSSAll(`#references a`)))); n != 1 {
		t.Errorf("reference links = %d; want only the https one", n)
	}

	// Sign out (a POST through the cross-origin protection); the session
	// is gone, so the list asks for sign-in again.
	do("sign out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.Navigate(srv.URL+"/assets"),
		chromedp.WaitVisible(chromedp.ID("username")),
	)

	b.checkCSP()
}

// serveBrowserUI serves ui as the server does: behind authn.Middleware,
// the cross-origin protection and the CSP.
func serveBrowserUI(t *testing.T, accounts *auth.Service, ui *UI) *httptest.Server {
	t.Helper()
	var h http.Handler = authn.Middleware(accounts, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, errs.Public(err), errs.HTTPStatus(err))
	})(ui.Handler())
	h = http.NewCrossOriginProtection().Handler(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", browserCSP)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// browser is one headless Chromium for a test, watching for CSP
// violations.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// violations are browser log entries about the Content Security
	// Policy: something in a page was blocked.
	violations []string
}

// newBrowser starts Chromium, skipping the test when it is not installed
// (failing it under CI=true). timeout bounds everything, browser start-up
// included: the allocator's context bounds the browser's life.
func newBrowser(t *testing.T, timeout time.Duration) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Chromium is missing at %s: %v (scripts/setup.sh installs it)", chromiumPath, err)
		}
		t.Skipf("Chromium not installed at %s", chromiumPath)
	}
	tctx, cancelT := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancelT)
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	b := &browser{t: t, ctx: bctx}
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok && strings.Contains(e.Entry.Text, "Content Security Policy") {
			b.mu.Lock()
			b.violations = append(b.violations, e.Entry.Text)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	return b
}

// do runs a step's actions, failing the test with the step's name.
func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

// checkCSP fails the test for every CSP violation the browser logged.
func (b *browser) checkCSP() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range b.violations {
		b.t.Errorf("CSP violation: %s", v)
	}
}

// run runs one browser action and returns its value, failing the test on
// error.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

func seedBrowserInventory(t *testing.T, ctx context.Context, inv *inventory.Service) {
	t.Helper()
	actor := audit.Actor{Kind: audit.ActorSystem, Name: "browser-test"}
	lab, err := inv.CreateSite(ctx, actor, inventory.Site{Name: "Riverside Laboratory", TimeZone: "America/Chicago"})
	if err != nil {
		t.Fatal(err)
	}
	clinic, err := inv.CreateSite(ctx, actor, inventory.Site{Name: "Riverside Clinic", TimeZone: "America/Chicago"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []inventory.Asset{
		{Name: "Chemistry analyzer", Type: inventory.TypeAnalyzer, Serial: "CH-311-0042", SiteID: lab.ID,
			Exposure: inventory.ExposureClinicalVLAN, HandlesPHI: true, Criticality: inventory.LevelCritical,
			RegulatedDevice: true, Restriction: inventory.RestrictionVendorOnly, BusinessOwner: "Lab director"},
		{Name: "Hematology analyzer", Type: inventory.TypeAnalyzer, Serial: "HE-7", SiteID: lab.ID,
			Exposure: inventory.ExposureClinicalVLAN, HandlesPHI: true, Criticality: inventory.LevelHigh},
		{Name: "EHR server", Type: inventory.TypeServer, Serial: "EHR-1", SiteID: clinic.ID,
			HandlesPHI: true, Criticality: inventory.LevelCritical},
		{Name: "VPN gateway", Type: inventory.TypeNetworkDevice, Serial: "VPN-1", SiteID: clinic.ID,
			Exposure: inventory.ExposureInternet, Criticality: inventory.LevelCritical},
		{Name: "Front desk PC", Type: inventory.TypeEndpoint, Serial: "FD-1", SiteID: clinic.ID},
	} {
		if _, err := inv.CreateAsset(ctx, actor, a); err != nil {
			t.Fatalf("seed %s: %v", a.Name, err)
		}
	}
}

// TestBrowserWorklistException drives the risk pages in real Chromium on a
// real SQLite database with the real services end to end: real advisory
// files synced through the feed pipeline, findings opened by the real
// matcher, scored by the real risk engine under the built-in policy. An
// admin signs in (landing on the worklist), sees the findings in score
// order, opens the top one's explanation and requests an exception for it;
// an approver approves it; the finding is then excepted, its clock stopped,
// and off the open worklist.
func TestBrowserWorklistException(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	do := b.do
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	db, inv, findings, policies, engine := riskWorld(t, ctx, quiet)

	accounts := auth.NewService(db.Auth(), auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	for _, u := range []auth.NewUser{
		{Username: "lab-admin", DisplayName: "Lab Admin", Role: auth.RoleAdmin, Password: browserPassword},
		{Username: "lab-director", DisplayName: "Lab Director", Role: auth.RoleApprover, Password: browserPassword},
	} {
		if _, err := accounts.CreateUser(ctx, audit.System, u); err != nil {
			t.Fatal(err)
		}
	}
	ui, err := New(Config{Accounts: accounts, Inventory: inv, Findings: findings, Advisories: db.Feeds(),
		Risk: engine, Exceptions: engine, Policy: policies, Audit: nil, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBrowserUI(t, accounts, ui)
	signIn := func(user string) {
		t.Helper()
		do("sign in as "+user,
			chromedp.Navigate(srv.URL+"/login"),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), browserPassword),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("worklist-table")),
		)
	}

	// Sign-in lands on the worklist, highest score first.
	signIn("lab-admin")
	if u := run(t, b.ctx, chromedp.Location()); !strings.HasSuffix(u, "/worklist") {
		t.Errorf("landed on %q; want the worklist", u)
	}
	rows := run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#worklist-table tbody tr`)))
	if len(rows) != 3 {
		t.Fatalf("worklist rows = %d; want 3", len(rows))
	}
	prev := 101.0
	for i, r := range rows {
		score, err := strconv.ParseFloat(r["data-score"], 64)
		if err != nil || score > prev {
			t.Errorf("row %d score %q after %v: not in descending score order", i+1, r["data-score"], prev)
		}
		prev = score
	}
	top := rows[0]["data-finding-id"]
	if asset := run(t, b.ctx, chromedp.Text(chromedp.CSS(`#worklist-table tbody tr:first-child td.asset`))); asset != "EHR server" {
		t.Errorf("top of the worklist is on %q; want the EHR server (critical, PHI, CVSS 9.1)", asset)
	}

	// Why it ranks there: the explanation on the finding page.
	do("open explanation",
		chromedp.Click(chromedp.CSS(`#worklist-table tbody tr:first-child a[href$="#priority"]`)),
		chromedp.WaitVisible(chromedp.ID("explanation")),
	)
	findingURL := strings.TrimSuffix(run(t, b.ctx, chromedp.Location()), "#priority")
	if n := len(run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#explanation tbody tr`)))); n < 5 {
		t.Errorf("explanation has %d factors; want the CVSS, KEV, EPSS, exposure, criticality… terms", n)
	}
	if cvss := run(t, b.ctx, chromedp.Text(chromedp.CSS(`#explanation tbody tr:first-child td.input`))); !strings.Contains(cvss, "9.1") {
		t.Errorf("CVSS factor input = %q; want the advisory's 9.1", cvss)
	}

	// Request an exception from the finding page.
	expires := time.Now().AddDate(0, 3, 0).Format("2006-01-02")
	do("request exception",
		chromedp.Click(chromedp.ID("request-exception")),
		chromedp.WaitVisible(chromedp.ID("exception-form")),
	)
	if owner := run(t, b.ctx, chromedp.Value(chromedp.ID("f-owner"))); owner != "EHR manager" {
		t.Errorf("owner prefilled as %q; want the asset's business owner", owner)
	}
	do("fill in the request",
		chromedp.SetValue(chromedp.ID("f-decision"), "mitigate"),
		chromedp.SendKeys(chromedp.ID("f-reason"), "The EHR vendor certifies Any23 2.5 with the next release."),
		chromedp.SetValue(chromedp.ID("f-expires_at"), expires),
		chromedp.SetValue(chromedp.ID("f-control-kind-1"), "segmentation"),
		chromedp.SendKeys(chromedp.ID("f-control-desc-1"), "EHR server reachable only from the clinical VLAN"),
		chromedp.Click(chromedp.ID("submit-exception")),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	excURL := strings.TrimSuffix(run(t, b.ctx, chromedp.Location()), "?done=request")
	if !strings.Contains(excURL, "/exceptions/exc_") {
		t.Fatalf("after the request: %q; want an exception page", excURL)
	}
	if state := run(t, b.ctx, chromedp.Text(chromedp.ID("state"))); state != "Requested" {
		t.Errorf("state = %q; want Requested", state)
	}
	// The requester (an admin, not an approver under the default policy)
	// cannot decide it: there is no approve form, only the way to withdraw.
	if n := len(run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#form-withdraw`)))); n != 1 {
		t.Errorf("withdraw forms = %d; want 1 for the requester", n)
	}
	do("sign out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("username")))

	// The approver approves it.
	signIn("lab-director")
	do("approve",
		chromedp.Navigate(excURL),
		chromedp.WaitVisible(chromedp.ID("form-approve")),
		chromedp.SendKeys(chromedp.ID("note-approve"), "Segmentation verified with the network team."),
		chromedp.Click(chromedp.CSS(`#form-approve button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("done")),
	)
	if state := run(t, b.ctx, chromedp.Text(chromedp.ID("state"))); state != "Approved" {
		t.Errorf("state after approval = %q", state)
	}

	// The finding is excepted: clock stopped, linked to the exception.
	do("open the finding", chromedp.Navigate(findingURL), chromedp.WaitVisible(chromedp.ID("priority")))
	if sla := run(t, b.ctx, chromedp.Text(chromedp.ID("sla-state"))); sla != "Excepted" {
		t.Errorf("SLA state = %q; want Excepted", sla)
	}
	if href := run(t, b.ctx, chromedp.AttributeValue(chromedp.CSS(`#covering-exception a`), "href")).Value; !strings.HasSuffix(excURL, href) {
		t.Errorf("covering exception link = %q; want %s", href, excURL)
	}
	do("worklist", chromedp.Navigate(srv.URL+"/worklist"), chromedp.WaitVisible(chromedp.ID("worklist-table")))
	for _, r := range run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#worklist-table tbody tr`))) {
		if r["data-finding-id"] == top {
			t.Error("the excepted finding is still on the open worklist")
		}
	}
	do("excepted worklist", chromedp.Navigate(srv.URL+"/worklist?sla=excepted"), chromedp.WaitVisible(chromedp.ID("worklist-table")))
	if got := run(t, b.ctx, chromedp.AttributeValue(chromedp.CSS(`#worklist-table tbody tr`), "data-finding-id")).Value; got != top {
		t.Errorf("excepted worklist lists %q; want %q", got, top)
	}
	// The policy (its document embedded) and the exception list render
	// under the CSP too.
	do("policy", chromedp.Navigate(srv.URL+"/policy"), chromedp.WaitVisible(chromedp.ID("policy-document")))
	do("exceptions", chromedp.Navigate(srv.URL+"/exceptions"), chromedp.WaitVisible(chromedp.ID("exception-table")))
	b.checkCSP()
}

// riskWorld is a small clinic on a real SQLite database with the real
// services end to end: real advisory files synced through the feed
// pipeline, findings opened by the real matcher and scored by the real
// risk engine under the built-in policy.
func riskWorld(t *testing.T, ctx context.Context, quiet *slog.Logger) (*store.DB, *inventory.Service, *match.Service, *policy.Service, *risk.Service) {
	t.Helper()
	db := storetest.Open(t, store.SQLite, store.Options{})
	inv := inventory.NewService(db.Inventory(), nil)
	seedRiskInventory(t, ctx, inv)

	// Two real advisories, synced from their files as an air-gapped
	// clinic does: GitHub's OSV record for Apache Any23 (CVSS 9.1) and
	// Debian's DSA for nginx.
	fs := feeds.NewService(db.Feeds(), feeds.Options{Log: quiet})
	for name, file := range map[string]string{"ghsa-maven": "GHSA-838r-hvwh-24h8.json", "debian-dsa": "DSA-3029-1.json"} {
		fd := feeds.Feed{Name: name, Kind: feeds.OSV, Path: filepath.Join("..", "advisory", "testdata", "osv", file),
			Interval: feeds.DefaultInterval, Timeout: feeds.DefaultTimeout, MaxBytes: feeds.DefaultMaxBytes}
		if _, err := fs.Sync(ctx, audit.System, fd, feeds.SyncOptions{}); err != nil {
			t.Fatalf("sync %s: %v", name, err)
		}
	}
	findings := match.NewService(db.Findings(), nil)
	if _, _, err := findings.Refresh(ctx, db.Feeds()); err != nil {
		t.Fatal(err)
	}
	if sum, err := findings.EvaluateAll(ctx); err != nil || sum.Opened != 3 {
		t.Fatalf("EvaluateAll = %+v, %v; want 3 findings opened", sum, err)
	}
	policies := policy.NewService(db.Policies(), nil)
	engine := risk.NewService(db.Risk(), policies, browserIntel{findings}, risk.Options{Targets: browserTargets{inv, findings}, Log: quiet})
	if sum, err := engine.Recompute(ctx, ""); err != nil || sum.Assessed != 3 {
		t.Fatalf("Recompute = %+v, %v; want 3 assessed", sum, err)
	}
	return db, inv, findings, policies, engine
}

// browserIntel gives the risk engine what the matcher's advisory index
// says, as the server wires it.
type browserIntel struct{ findings *match.Service }

func (i browserIntel) Intel(id string, aliases []string) (match.Intel, bool) {
	ix := i.findings.Index()
	if ix == nil {
		return match.Intel{}, false
	}
	return ix.Intel(id, aliases), true
}

// browserTargets confirms an exception's target exists.
type browserTargets struct {
	inv      *inventory.Service
	findings *match.Service
}

func (t browserTargets) CheckTarget(ctx context.Context, scope, id string) error {
	var err error
	switch scope {
	case risk.ScopeFinding:
		_, err = t.findings.Finding(ctx, id)
	case risk.ScopeAsset:
		_, err = t.inv.Asset(ctx, id)
	default:
		_, err = t.inv.Group(ctx, id)
	}
	return err
}

// seedRiskInventory is a small clinic whose software the two advisories
// match: Apache Any23 2.4 on the EHR server and a front-desk PC, an old
// nginx on the internet-facing VPN gateway.
func seedRiskInventory(t *testing.T, ctx context.Context, inv *inventory.Service) {
	t.Helper()
	actor := audit.Actor{Kind: audit.ActorSystem, Name: "browser-test"}
	clinic, err := inv.CreateSite(ctx, actor, inventory.Site{Name: "Riverside Clinic", TimeZone: "America/Chicago"})
	if err != nil {
		t.Fatal(err)
	}
	any23 := []inventory.Software{{Name: "org.apache.any23:apache-any23", Version: "2.4", Ecosystem: "Maven"}}
	for _, a := range []inventory.Asset{
		{Name: "EHR server", Type: inventory.TypeServer, Serial: "EHR-1", SiteID: clinic.ID, HandlesPHI: true,
			Criticality: inventory.LevelCritical, BusinessOwner: "EHR manager", Software: any23},
		{Name: "Front desk PC", Type: inventory.TypeEndpoint, Serial: "FD-1", SiteID: clinic.ID,
			Criticality: inventory.LevelLow, Software: any23},
		{Name: "VPN gateway", Type: inventory.TypeNetworkDevice, Serial: "VPN-1", SiteID: clinic.ID,
			Exposure: inventory.ExposureInternet, Criticality: inventory.LevelHigh,
			Software: []inventory.Software{{Name: "nginx", Version: "1.2.1-2.2+wheezy2", Ecosystem: "Debian:7"}}},
	} {
		if _, err := inv.CreateAsset(ctx, actor, a); err != nil {
			t.Fatalf("seed %s: %v", a.Name, err)
		}
	}
}

// TestBrowserChangeFromWorklist drives change control in real Chromium on
// the real services: the admin selects the two Any23 findings on the
// worklist and turns them into a change (package and fixed version, test
// cases and rollback triggers prefilled) with a custom test case of their
// own, submits it, and is not offered the approval of their own change;
// the security officer approves, the admin edits the change (told first
// that this withdraws that approval) and adds a second custom case; a
// test run covering every case, with an uploaded evidence file, is
// recorded; two approvers sign as security officer and system owner and
// the change is approved. The calendar renders under the CSP.
func TestBrowserChangeFromWorklist(t *testing.T) {
	b := newBrowser(t, 120*time.Second)
	do := b.do
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, inv, findings, policies, engine := riskWorld(t, ctx, quiet)
	changes := change.NewService(db.Changes(), policies, db.Risk(), nil)
	jobs := fleet.NewService(db.Fleet(), fleet.Options{Log: quiet})
	rollouts := deploy.NewRollouts(db.Rollouts(), changes, jobs, policies, deploy.RolloutOptions{Log: quiet})

	accounts := auth.NewService(db.Auth(), auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	for _, u := range []auth.NewUser{
		{Username: "lab-admin", DisplayName: "Lab Admin", Role: auth.RoleAdmin, Password: browserPassword},
		{Username: "sec-officer", DisplayName: "Security Officer", Role: auth.RoleApprover, Password: browserPassword, PolicyRoles: []string{"security-officer"}},
		{Username: "ehr-owner", DisplayName: "EHR Owner", Role: auth.RoleApprover, Password: browserPassword, PolicyRoles: []string{"system-owner"}},
	} {
		if _, err := accounts.CreateUser(ctx, audit.System, u); err != nil {
			t.Fatal(err)
		}
	}
	ui, err := New(Config{Accounts: accounts, Inventory: inv, Findings: findings, Advisories: db.Feeds(),
		Risk: engine, Exceptions: engine, Policy: policies, Changes: startingChanges{changes, rollouts}, Rollouts: rollouts, Jobs: jobs, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBrowserUI(t, accounts, ui)
	signIn := func(user string) {
		t.Helper()
		do("sign in as "+user,
			chromedp.Navigate(srv.URL+"/login"),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), browserPassword),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("worklist-table")),
		)
	}
	signOut := func() {
		t.Helper()
		do("sign out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("username")))
	}
	text := func(sel string) string {
		t.Helper()
		return strings.Join(strings.Fields(run(t, b.ctx, chromedp.Text(chromedp.CSS(sel)))), " ")
	}

	// Select the Any23 findings (package org.apache.any23…) on the worklist.
	signIn("lab-admin")
	rows := run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#worklist-table tbody tr`)))
	var picked []string
	for i := range rows {
		pkg := text(fmt.Sprintf(`#worklist-table tbody tr:nth-child(%d) td.package`, i+1))
		if strings.Contains(pkg, "any23") {
			picked = append(picked, rows[i]["data-finding-id"])
			do("select finding", chromedp.Click(chromedp.ID("select-"+rows[i]["data-finding-id"])))
		}
	}
	if len(picked) != 2 {
		t.Fatalf("Any23 findings on the worklist = %d; want 2", len(picked))
	}
	do("create change", chromedp.Click(chromedp.ID("create-change")), chromedp.WaitVisible(chromedp.ID("change-form")))
	if v := run(t, b.ctx, chromedp.Value(chromedp.ID("f-pkg-1"))); v != "org.apache.any23:apache-any23" {
		t.Errorf("package prefilled as %q", v)
	}
	if v := run(t, b.ctx, chromedp.Value(chromedp.ID("f-version-1"))); v != "2.5" {
		t.Errorf("target version prefilled as %q; want the fixed version 2.5", v)
	}
	do("fill in the change",
		chromedp.SetValue(chromedp.ID("f-window"), "servers-weekly"),
		chromedp.SendKeys(chromedp.ID("f-notify"), "EHR users\nHelp desk"),
		chromedp.SendKeys(chromedp.ID("f-impact"), "EHR unavailable for up to 30 minutes on Sunday night"),
		chromedp.SendKeys(chromedp.ID("f-rb_steps"), "Restore the VM snapshot taken before the change"),
		chromedp.SendKeys(chromedp.ID("f-rb_owner"), "Clinic IT on call"),
		chromedp.SendKeys(chromedp.ID("f-custom-name-1"), "EHR sign-in from the front desk"),
		chromedp.SendKeys(chromedp.ID("f-custom-criteria-1"), "Sign-in completes within 10 seconds"),
		chromedp.Click(chromedp.ID("submit-change")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="create"]`)),
	)
	const signIn1, printer = "custom-ehr-sign-in-from-the-front-desk", "custom-label-printer-prints"
	if got := text(`#protocol tr[data-case="` + signIn1 + `"]`); !strings.Contains(got, "EHR sign-in from the front desk") || !strings.Contains(got, "Sign-in completes within 10 seconds") {
		t.Errorf("custom case on the change page = %q", got)
	}
	changeURL := strings.TrimSuffix(run(t, b.ctx, chromedp.Location()), "?done=create")
	if got := text("#target-assets"); got != "EHR server, Front desk PC" && got != "Front desk PC, EHR server" {
		t.Errorf("targets = %q", got)
	}
	if got := text("#risk"); !strings.Contains(got, "Critical") {
		t.Errorf("risk rating = %q; want the EHR finding's critical tier", got)
	}
	// Wait for this action's notice: the create notice is still on the
	// page when the click lands.
	do("submit", chromedp.Click(chromedp.CSS(`#act-submit button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#done[data-done="submit"]`)))
	if got := text(".tags .chg"); got != "Submitted" {
		t.Errorf("state = %q; want Submitted", got)
	}

	// The requester is not offered the approval of their own change, and
	// is told why.
	if got := text("#own-change"); !strings.HasPrefix(got, "You requested this change; someone else must approve or reject it") {
		t.Errorf("separation-of-duties line = %q", got)
	}
	if n := run(t, b.ctx, chromedp.EvaluateAsDevTools[int](`document.querySelectorAll("#decide-form, #approve").length`)); n != 0 {
		t.Errorf("the requester is offered the decision form (%d elements)", n)
	}
	signOut()
	approve := func(user, as string) {
		t.Helper()
		signIn(user)
		do("approve as "+as,
			chromedp.Navigate(changeURL),
			chromedp.WaitVisible(chromedp.ID("decide-form")),
			chromedp.SetValue(chromedp.ID("decide-as"), as),
			chromedp.SendKeys(chromedp.ID("decide-note"), "Test evidence reviewed."),
			chromedp.Click(chromedp.ID("approve")),
			chromedp.WaitVisible(chromedp.CSS(`#done[data-done="approve"]`)),
		)
		signOut()
	}
	approve("sec-officer", "security-officer")

	// The admin edits the change: the form says the approval given goes,
	// and a second custom case is added in a blank row.
	signIn("lab-admin")
	do("open the edit form",
		chromedp.Navigate(changeURL),
		chromedp.WaitVisible(chromedp.ID("approvals")),
		chromedp.Click(chromedp.ID("edit-change")),
		chromedp.WaitVisible(chromedp.ID("withdraw-warning")),
	)
	if got := text("#withdraw-warning"); !strings.HasPrefix(got, "Editing withdraws 1 approval:") {
		t.Errorf("withdraw warning = %q", got)
	}
	if v := run(t, b.ctx, chromedp.Value(chromedp.ID("f-custom-name-1"))); v != "EHR sign-in from the front desk" {
		t.Errorf("edit form's first custom case = %q", v)
	}
	do("save the edit",
		chromedp.SendKeys(chromedp.ID("f-custom-name-2"), "Label printer prints"),
		chromedp.SendKeys(chromedp.ID("f-custom-criteria-2"), "A specimen label prints legibly"),
		chromedp.SendKeys(chromedp.ID("f-why"), "The lab asked for a printer check"),
		chromedp.Click(chromedp.ID("submit-change")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="edit"]`)),
	)
	if got := text(`#protocol tr[data-case="` + printer + `"]`); !strings.Contains(got, "Label printer prints") {
		t.Errorf("added custom case on the change page = %q", got)
	}
	if n := len(run(t, b.ctx, chromedp.AttributesAll(chromedp.CSSAll(`#approval-table tr[data-expired="true"]`)))); n != 1 {
		t.Errorf("expired approvals after the edit = %d; want the security officer's", n)
	}

	// A passing test run with the backup check's evidence attached.
	evidence := filepath.Join(t.TempDir(), "snapshot-restore.txt")
	if err := os.WriteFile(evidence, []byte("VM snapshot ehr-2026-pre restored to the test host; EHR login OK\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do("record test run",
		chromedp.Navigate(changeURL),
		chromedp.WaitVisible(chromedp.ID("test-form")),
		chromedp.SetValue(chromedp.ID("result-backup-verified"), "pass"),
		chromedp.SetValue(chromedp.ID("result-boot-time"), "pass"),
		chromedp.SetValue(chromedp.ID("result-edr-compatibility"), "pass"),
		chromedp.SetValue(chromedp.ID("result-connectivity"), "pass"),
		chromedp.SetValue(chromedp.ID("result-"+signIn1), "pass"),
		chromedp.SetValue(chromedp.ID("result-"+printer), "pass"),
		chromedp.SendKeys(chromedp.ID("notes-backup-verified"), "Snapshot restore checked"),
		chromedp.SetUploadFiles(chromedp.ID("file-backup-verified"), []string{evidence}),
		chromedp.Click(chromedp.ID("record-run")),
		chromedp.WaitVisible(chromedp.CSS(`#done[data-done="test"]`)),
	)
	if v := run(t, b.ctx, chromedp.AttributeValue(chromedp.CSS(`#test-runs .run`), "data-verdict")).Value; v != "pass" {
		t.Errorf("test run verdict = %q", v)
	}
	if got := text(`#evidence-table td.sha`); len(got) != 64 {
		t.Errorf("evidence SHA-256 shown as %q", got)
	}
	signOut()

	approve("sec-officer", "security-officer")
	approve("ehr-owner", "system-owner")
	signIn("lab-admin")
	do("open the change", chromedp.Navigate(changeURL), chromedp.WaitVisible(chromedp.ID("approvals")))
	if got := text(".tags .chg"); got != "Approved" {
		t.Errorf("state = %q; want Approved", got)
	}
	if got := text("#approval-status"); got != "Requirement met" {
		t.Errorf("approval status = %q", got)
	}
	// Scheduled and started, the change is deployed by its rollout: the
	// Deployment section carries its operations, and a pause must say
	// why.
	do("schedule", chromedp.Click(chromedp.CSS(`#act-schedule button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#done[data-done="schedule"]`)))
	do("start", chromedp.SendKeys(chromedp.ID("why-start"), "Sunday night window"),
		chromedp.Click(chromedp.CSS(`#act-start button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("deployment")))
	if got := text("#rollout-state"); !strings.Contains(got, "Running") {
		t.Errorf("rollout state = %q; want Running", got)
	}
	// Of the change's own moves only halt is offered (it halts the
	// rollout with it); resume, roll back and cancel are the rollout's.
	if n := run(t, b.ctx, chromedp.EvaluateAsDevTools[int](`document.querySelectorAll("#actions form").length - document.querySelectorAll("#act-halt").length`)); n != 0 {
		t.Errorf("%d change-level moves besides halt are offered while its rollout runs", n)
	}
	do("pause with a why",
		chromedp.SendKeys(chromedp.ID("rollout-why-pause"), "Lab asks to wait for the QC run"),
		chromedp.Click(chromedp.CSS(`#rollout-pause button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("rollout-resume")),
	)
	if got := text("#rollout-reason"); got != "Lab asks to wait for the QC run" {
		t.Errorf("rollout reason after pause = %q", got)
	}
	if got := text("#rollout-state"); !strings.Contains(got, "Paused") {
		t.Errorf("rollout state after pause = %q", got)
	}
	do("changes list", chromedp.Navigate(srv.URL+"/changes"), chromedp.WaitVisible(chromedp.ID("change-table")))
	do("calendar", chromedp.Navigate(srv.URL+"/calendar"), chromedp.WaitVisible(chromedp.ID("agenda")))
	bg := run(t, b.ctx, chromedp.EvaluateAsDevTools[string](`getComputedStyle(document.querySelector(".cal-entry.k-window")).borderLeftColor`))
	if bg != "rgb(29, 92, 99)" {
		t.Errorf("window entry border = %q; want the stylesheet's", bg)
	}
	b.checkCSP()
}
