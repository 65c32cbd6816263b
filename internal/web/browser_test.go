package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
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
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Chromium is missing at %s: %v (scripts/setup.sh installs it)", chromiumPath, err)
		}
		t.Skipf("Chromium not installed at %s", chromiumPath)
	}
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
	var h http.Handler = authn.Middleware(accounts, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, errs.Public(err), errs.HTTPStatus(err))
	})(ui.Handler())
	h = http.NewCrossOriginProtection().Handler(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", browserCSP)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// One deadline for everything, browser start-up included: the
	// allocator's context bounds the browser's life.
	tctx, cancelT := context.WithTimeout(ctx, 30*time.Second)
	defer cancelT()
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
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Browser log entries about the Content Security Policy mean something
	// in a page was blocked.
	var (
		mu         sync.Mutex
		violations []string
	)
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok && strings.Contains(e.Entry.Text, "Content Security Policy") {
			mu.Lock()
			violations = append(violations, e.Entry.Text)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

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

	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		t.Errorf("CSP violation: %s", v)
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
