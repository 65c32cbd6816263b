package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/inventory"
	pwmatch "github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestVulnerabilityEndToEnd: a device maker's SBOM attached to an asset,
// advisories imported by hand as an air-gapped clinic does, and the running
// server opening a finding; a newer SBOM with the fix closes it.
func TestVulnerabilityEndToEnd(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dsn := storetest.DSN(t, engine)
			key := filepath.Join(t.TempDir(), "audit.key")
			base, out := startServerArgs(t, dsn, key, "--feed-check-every", "100ms")
			pw := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out.String())
			jar, _ := cookiejar.New(nil)
			c := &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
			c.json("POST", "/api/v1/session", map[string]string{"username": "admin", "password": pw[1]}, nil, 200)

			var page inventory.Page
			c.json("GET", "/api/v1/assets?q=LIS-01", nil, &page, 200)
			if page.Total != 1 {
				t.Fatalf("LIS-01 not found")
			}
			lis := page.Assets[0].ID
			sbom := func(version string) string {
				return fmt.Sprintf(`{"bomFormat":"CycloneDX","specVersion":"1.4","version":1,"components":[`+
					`{"type":"library","name":"apache-any23","group":"org.apache.any23","version":%q,"purl":"pkg:maven/org.apache.any23/apache-any23@%s"}]}`, version, version)
			}
			code, body := c.do("POST", "/api/v1/assets/"+lis+"/sbom", "application/json", strings.NewReader(sbom("2.4")))
			if code != 200 {
				t.Fatalf("attach SBOM = %d\n%s", code, body)
			}
			if code, _ := c.do("POST", "/api/v1/assets/"+lis+"/sbom", "application/json", strings.NewReader(`{"bomFormat":"CycloneDX","components":[`)); code != 400 {
				t.Errorf("attach truncated SBOM = %d; want 400", code)
			}

			// Air-gapped import of an advisory file, from the CLI.
			feedFile := filepath.Join(t.TempDir(), "ghsa.json")
			b, err := os.ReadFile("../../internal/advisory/testdata/osv/GHSA-838r-hvwh-24h8.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(feedFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if sout, err := runCLI(t, dsn, key, "feeds", "sync", "--feed", "maven-osv", "--from", feedFile, "--kind", "osv"); err != nil {
				t.Fatalf("feeds sync --from: %v\n%s", err, sout)
			}

			finding := waitFinding(t, c, lis, "CVE-2021-38555", pwmatch.StateOpen)
			if finding.FixedVersion != "2.5" || !strings.Contains(strings.Join(finding.AdvisoryIDs, ","), "GHSA-838r-hvwh-24h8") {
				t.Errorf("finding = %+v; want fixed 2.5 and GHSA alias", finding)
			}
			var feedsStatus []map[string]any
			c.json("GET", "/api/v1/feeds", nil, &feedsStatus, 200)
			names := map[any]bool{}
			for _, st := range feedsStatus {
				names[st["feed"]] = true
			}
			if !names["maven-osv"] || !names["demo-cisa-icsma"] {
				t.Errorf("feed status = %v; want maven-osv and the demo's ICSMA feed", feedsStatus)
			}
			// The demo's infusion pumps carry the real BD Alaris ICSMA's findings.
			var pumps pwmatch.FindingPage
			c.json("GET", "/api/v1/findings?vuln=CVE-2023-30559&limit=10", nil, &pumps, 200)
			if pumps.Total != 2 || pumps.Findings[0].Source != "csaf" {
				t.Errorf("CVE-2023-30559 findings = %d; want both demo pumps, from CSAF", pumps.Total)
			}
			var adv map[string]any
			c.json("GET", "/api/v1/advisories/CVE-2021-38555", nil, &adv, 200)
			if adv["id"] != "GHSA-838r-hvwh-24h8" {
				t.Errorf("advisory by alias = %v; want GHSA-838r-hvwh-24h8", adv["id"])
			}

			// The device maker ships the fix: the new SBOM closes the finding.
			code, body = c.do("POST", "/api/v1/assets/"+lis+"/sbom", "application/json", strings.NewReader(sbom("2.5")))
			if code != 200 || !strings.Contains(string(body), `"fixed": 1`) {
				t.Errorf("attach fixed SBOM = %d; want 200 with one finding fixed\n%s", code, body)
			}
			fixed := waitFinding(t, c, lis, "CVE-2021-38555", pwmatch.StateFixed)
			if fixed.FixedAt == nil || fixed.FirstSeen != finding.FirstSeen {
				t.Errorf("fixed finding = %+v; want fixed_at set and first_seen kept", fixed)
			}
			lout, err := runCLI(t, dsn, key, "audit", "log", "--limit", "300")
			if err != nil || !strings.Contains(lout, "feed.sync") || !strings.Contains(lout, "finding.") {
				t.Errorf("audit log lacks feed sync or finding entries (err %v)", err)
			}
		})
	}
}

func waitFinding(t *testing.T, c *client, assetID, vuln string, state pwmatch.State) pwmatch.Finding {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		code, body := c.do("GET", "/api/v1/assets/"+assetID+"/findings?vuln="+vuln+"&state="+string(state), "", nil)
		last = body
		var p pwmatch.FindingPage
		if code == 200 && json.Unmarshal(body, &p) == nil && len(p.Findings) == 1 {
			return p.Findings[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s finding %s on %s within 20s; last answer:\n%s", state, vuln, assetID, last)
	return pwmatch.Finding{}
}
