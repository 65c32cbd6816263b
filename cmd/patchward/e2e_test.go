package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store/storetest"
)

// syncBuffer is a bytes.Buffer safe to read while the server writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

// startServer runs `patchward serve --demo` on 127.0.0.1:0 against dsn and
// returns its base URL and printed output; the server stops with the test.
func startServer(t *testing.T, dsn, keyPath string) (base string, out *syncBuffer) {
	t.Helper()
	return startServerArgs(t, dsn, keyPath)
}

// startServerArgs is startServer with extra serve flags.
func startServerArgs(t *testing.T, dsn, keyPath string, extra ...string) (base string, out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	root := newRoot()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(append([]string{"--db", dsn, "--audit-key", keyPath, "--log-level", "error", "serve", "--demo", "--addr", "127.0.0.1:0"}, extra...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve exited with %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			return m[1], out
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("server did not start:\n%s", out)
	return "", nil
}

type client struct {
	t    *testing.T
	base string
	http *http.Client
	// bearer, if set, is sent instead of cookies.
	bearer string
}

func (c *client) do(method, path, ctype string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *client) json(method, path string, in, out any, want int) {
	c.t.Helper()
	var body io.Reader
	ctype := ""
	if in != nil {
		b, _ := json.Marshal(in)
		body, ctype = bytes.NewReader(b), "application/json"
	}
	code, b := c.do(method, path, ctype, body)
	if code != want {
		c.t.Fatalf("%s %s = %d; want %d\n%s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode: %v\n%s", method, path, err, b)
		}
	}
}

// TestServerEndToEnd starts the real server on :0 with a fresh database on
// each engine and walks an admin's day: sign in, read and edit the
// inventory, script with a token, read metrics, sign out; then proves the
// audit trail of all that verifies.
func TestServerEndToEnd(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dsn := storetest.DSN(t, engine)
			key := filepath.Join(t.TempDir(), "audit.key")
			base, out := startServer(t, dsn, key)
			pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out.String())
			if pw == nil {
				t.Fatalf("demo admin password not printed:\n%s", out)
			}
			jar, _ := cookiejar.New(nil)
			c := &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}

			if code, _ := c.do("GET", "/healthz", "", nil); code != 200 {
				t.Errorf("GET /healthz = %d; want 200", code)
			}
			if code, _ := c.do("GET", "/api/v1/assets", "", nil); code != 401 {
				t.Errorf("anonymous GET /api/v1/assets = %d; want 401", code)
			}
			c.json("POST", "/api/v1/session", map[string]string{"username": "admin", "password": "wrong password!"}, nil, 401)
			c.json("POST", "/api/v1/session", map[string]string{"username": "admin", "password": pw[1]}, nil, 200)

			var page inventory.Page
			c.json("GET", "/api/v1/assets?type=analyzer", nil, &page, 200)
			if page.Total != 2 {
				t.Fatalf("demo analyzers = %d; want 2", page.Total)
			}
			asset := page.Assets[0]
			asset.Location = "Chemistry bench 2"
			var updated inventory.Asset
			c.json("PUT", "/api/v1/assets/"+asset.ID, asset, &updated, 200)
			if updated.Location != "Chemistry bench 2" || updated.Revision != asset.Revision+1 {
				t.Errorf("updated = %q rev %d; want new location, rev %d", updated.Location, updated.Revision, asset.Revision+1)
			}
			// The same stale revision again is a conflict, not a lost update.
			c.json("PUT", "/api/v1/assets/"+asset.ID, asset, nil, 409)

			// A browser-shaped cross-site POST is refused.
			req, _ := http.NewRequest("POST", base+"/api/v1/assets", strings.NewReader(`{"name":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if resp, err := c.http.Do(req); err != nil || resp.StatusCode != 403 {
				t.Errorf("cross-site POST = %v, %v; want 403", resp.StatusCode, err)
			}

			var tok struct{ Token string }
			c.json("POST", "/api/v1/me/tokens", map[string]any{"name": "prometheus", "expires_in_days": 30}, &tok, 201)
			script := &client{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second}, bearer: tok.Token}
			code, metrics := script.do("GET", "/metrics", "", nil)
			if code != 200 || !strings.Contains(string(metrics), "patchward_http_requests_total") {
				t.Errorf("GET /metrics with token = %d; want 200 with request counters", code)
			}
			var created inventory.Asset
			script.json("POST", "/api/v1/assets", inventory.Asset{Name: "Nurse station PC", Type: inventory.TypeEndpoint, HandlesPHI: true}, &created, 201)

			// CSV import: a bad row refuses the whole file; a dry run writes
			// nothing; the real import creates both rows.
			var before inventory.Page
			script.json("GET", "/api/v1/assets?limit=1", nil, &before, 200)
			good := "PO Number,Purchase Date,Vendor,Model,Serial Number,Device Type,Site\n" +
				"PO-2026-1001,2026-10-01,Dell,OptiPlex 7020,SN-E2E-1,endpoint,Riverside Clinic\n" +
				"PO-2026-1001,2026-10-01,Dell,OptiPlex 7020,SN-E2E-2,endpoint,Riverside Clinic\n"
			bad := good + "PO-2026-1002,2026-10-02,Acme,Toaster 3000,SN-E2E-3,toaster,Riverside Clinic\n"
			code, body := script.do("POST", "/api/v1/assets/import?kind=purchase", "text/csv", strings.NewReader(bad))
			if code != 400 || !strings.Contains(string(body), `"row": 4`) {
				t.Errorf("import with a bad row = %d; want 400 naming row 4\n%s", code, body)
			}
			code, body = script.do("POST", "/api/v1/assets/import?kind=purchase&dry_run=true", "text/csv", strings.NewReader(good))
			if code != 200 || !strings.Contains(string(body), `"created": 2`) {
				t.Errorf("dry-run import = %d; want 200 with 2 creates\n%s", code, body)
			}
			var mid inventory.Page
			script.json("GET", "/api/v1/assets?limit=1", nil, &mid, 200)
			if mid.Total != before.Total {
				t.Errorf("after refused and dry-run imports: %d assets; want %d", mid.Total, before.Total)
			}
			if code, _ := script.do("POST", "/api/v1/assets/import?kind=purchase", "application/json", strings.NewReader(good)); code != 415 {
				t.Errorf("import with JSON content type = %d; want 415", code)
			}
			code, body = script.do("POST", "/api/v1/assets/import?kind=purchase", "text/csv", strings.NewReader(good))
			if code != 200 || !strings.Contains(string(body), `"created": 2`) {
				t.Errorf("import = %d; want 200 with 2 creates\n%s", code, body)
			}
			var recon struct {
				PurchasedNeverSeen []inventory.Asset `json:"purchased_never_seen"`
				SeenNeverPurchased []inventory.Asset `json:"seen_never_purchased"`
			}
			script.json("GET", "/api/v1/reconciliation", nil, &recon, 200)
			if len(recon.PurchasedNeverSeen) < 3 || len(recon.SeenNeverPurchased) < 3 {
				t.Errorf("reconciliation = %d purchased-never-seen, %d shadow; want >= 3 each (2 imported + demo)",
					len(recon.PurchasedNeverSeen), len(recon.SeenNeverPurchased))
			}
			// An nmap scan marks a known switch as seen (matched by MAC) and
			// adds an unknown host as an unmanaged device.
			scan := `<?xml version="1.0"?><nmaprun scanner="nmap" version="7.93">` +
				`<host><status state="up"/><address addr="10.10.0.2" addrtype="ipv4"/><address addr="00:1B:54:AA:BB:01" addrtype="mac" vendor="Cisco Systems"/></host>` +
				`<host><status state="up"/><address addr="10.10.30.99" addrtype="ipv4"/><address addr="F0:9F:C2:00:00:99" addrtype="mac" vendor="Ubiquiti"/>` +
				`<ports><port protocol="tcp" portid="22"><state state="open"/><service name="ssh" product="OpenSSH" version="8.4"/></port></ports></host>` +
				`<host><status state="down"/><address addr="10.10.30.100" addrtype="ipv4"/></host></nmaprun>`
			code, body = script.do("POST", "/api/v1/assets/import?kind=nmap&name=scan.xml", "application/xml", strings.NewReader(scan))
			if code != 200 || !strings.Contains(string(body), `"created": 1`) || !strings.Contains(string(body), `"updated": 1`) {
				t.Errorf("nmap import = %d; want 200 with 1 create and 1 update\n%s", code, body)
			}
			code, body = script.do("GET", "/api/v1/assets/export?format=csv", "", nil)
			if code != 200 || !strings.Contains(string(body), "SN-E2E-2") {
				t.Errorf("CSV export = %d; want 200 with the imported serial", code)
			}

			c.json("DELETE", "/api/v1/session", nil, nil, 204)
			if code, _ := c.do("GET", "/api/v1/me", "", nil); code != 401 {
				t.Errorf("GET /api/v1/me after sign-out = %d; want 401", code)
			}

			// The audit trail holds all of it and verifies.
			vout, err := runCLI(t, dsn, key, "audit", "verify")
			if err != nil {
				t.Fatalf("audit verify after the session: %v\n%s", err, vout)
			}
			lout, err := runCLI(t, dsn, key, "audit", "log", "--limit", "200")
			if err != nil {
				t.Fatalf("audit log: %v\n%s", err, lout)
			}
			for _, action := range []string{"asset.update", "asset.create", "auth.login", "auth.login_failed", "token.create", "inventory.import"} {
				if !strings.Contains(lout, action) {
					t.Errorf("audit log lacks %s:\n%s", action, lout)
				}
			}
		})
	}
}

// runCLI runs a patchward subcommand against dsn and returns its output.
func runCLI(t *testing.T, dsn, key string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--db", dsn, "--audit-key", key, "--log-level", "error"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}
