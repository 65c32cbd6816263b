package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var exceptionIDLine = regexp.MustCompile(`(?m)^id: (exc_\S+)$`)

// seedRiskAssets stores two assets carrying packages the feeds package's
// real OSV test records affect: a critical, internet-facing LIS and an
// isolated low-criticality analyzer PC, so the same vulnerability scores
// differently on each.
func seedRiskAssets(t *testing.T, dsn string) (lis, analyzer inventory.Asset) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inv := inventory.NewService(db.Inventory(), nil)
	any23 := inventory.Software{Name: "org.apache.any23:apache-any23", Version: "2.4", Ecosystem: "Maven",
		PURL: "pkg:maven/org.apache.any23/apache-any23@2.4"}
	image := inventory.Software{Name: "golang.org/x/image", Version: "0.9.0", Ecosystem: "Go",
		PURL: "pkg:golang/golang.org/x/image@v0.9.0"}
	if lis, err = inv.CreateAsset(ctx, audit.System, inventory.Asset{Name: "LIS-01", Type: inventory.TypeServer,
		Exposure: inventory.ExposureInternet, Criticality: inventory.LevelCritical, HandlesPHI: true,
		Software: []inventory.Software{any23, image}}); err != nil {
		t.Fatal(err)
	}
	if analyzer, err = inv.CreateAsset(ctx, audit.System, inventory.Asset{Name: "Analyzer-PC", Type: inventory.TypeEndpoint,
		Exposure: inventory.ExposureIsolated, Criticality: inventory.LevelLow,
		Software: []inventory.Software{any23}}); err != nil {
		t.Fatal(err)
	}
	return lis, analyzer
}

func worklistJSON(t *testing.T, dsn, key string, args ...string) risk.WorklistPage {
	t.Helper()
	out := mustCLI(t, dsn, key, append([]string{"worklist", "--json"}, args...)...)
	var p risk.WorklistPage
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("worklist --json: %v\n%s", err, out)
	}
	return p
}

// TestWorklistAndExceptionsCLI runs a clinic's risk work from the shell on
// each engine: import real advisories, score, read the worklist and a
// score's explanation, then request an exception and have it approved by
// another user, with separation of duties held.
func TestWorklistAndExceptionsCLI(t *testing.T) {
	osvDir, _ := filepath.Abs(filepath.Join(feedsTestdata, "osv"))
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dsn := storetest.DSN(t, engine)
			key := filepath.Join(t.TempDir(), "audit.key")
			mustCLI(t, dsn, key, "migrate")
			for _, u := range [][2]string{{"ann", "approver"}, {"bob", "approver"}, {"olga", "operator"}, {"vic", "viewer"}} {
				mustCLI(t, dsn, key, "user", "create", "--username", u[0], "--role", u[1])
			}
			lis, analyzer := seedRiskAssets(t, dsn)

			if out := mustCLI(t, dsn, key, "worklist"); !strings.Contains(out, "No findings match") {
				t.Errorf("worklist before any feed = %q", out)
			}
			if _, err := runCLI(t, dsn, key, "risk", "recompute"); errs.KindOf(err) != errs.Conflict ||
				!strings.Contains(userMessage(err), "sync the feeds first") {
				t.Errorf("risk recompute before any feed = %v; want a Conflict asking for feeds", err)
			}
			mustCLI(t, dsn, key, "feeds", "sync", "--from", osvDir, "--kind", "osv", "--feed", "osv-local")
			out := mustCLI(t, dsn, key, "risk", "recompute")
			if !strings.Contains(out, "findings: 2 assets matched, 3 opened") || !strings.Contains(out, "risk: 3 findings assessed, 3 records changed") {
				t.Errorf("risk recompute = %q; want 3 findings opened and scored", out)
			}
			if out := mustCLI(t, dsn, key, "risk", "recompute", "--asset", lis.ID); !strings.Contains(out, "risk: 2 findings assessed, 0 records changed") {
				t.Errorf("risk recompute --asset again = %q; want 2 assessed, nothing changed", out)
			}
			if _, err := runCLI(t, dsn, key, "risk", "recompute", "--asset", "no-such-asset"); errs.KindOf(err) != errs.NotFound {
				t.Errorf("risk recompute --asset no-such-asset = %v; want NotFound", err)
			}

			// Score order, highest first: the LIS's findings above the
			// isolated analyzer's, whose CVE is the same.
			page := worklistJSON(t, dsn, key)
			if page.Total != 3 || len(page.Items) != 3 {
				t.Fatalf("worklist = %d findings; want 3:\n%+v", page.Total, page.Items)
			}
			for i := 1; i < len(page.Items); i++ {
				if page.Items[i-1].Assessment.Score < page.Items[i].Assessment.Score {
					t.Errorf("worklist not in score order at %d: %.1f then %.1f", i, page.Items[i-1].Assessment.Score, page.Items[i].Assessment.Score)
				}
			}
			if page.Items[0].AssetID != lis.ID || page.Items[2].AssetID != analyzer.ID || page.Items[2].VulnID != "CVE-2021-38555" {
				t.Errorf("worklist order = %s/%s, …, %s/%s; want the LIS first and the analyzer's CVE-2021-38555 last",
					page.Items[0].AssetName, page.Items[0].VulnID, page.Items[2].AssetName, page.Items[2].VulnID)
			}
			table := mustCLI(t, dsn, key, "worklist", "--limit", "2")
			lines := strings.Split(strings.TrimSpace(table), "\n")
			if len(lines) != 4 || !strings.HasPrefix(lines[0], "RANK  SCORE  TIER") || !strings.HasPrefix(lines[1], "1 ") ||
				!strings.Contains(lines[1], page.Items[0].FindingID) || !strings.Contains(lines[2], page.Items[1].FindingID) || lines[3] != "1–2 of 3" {
				t.Errorf("worklist --limit 2 table:\n%s", table)
			}
			if _, err := runCLI(t, dsn, key, "worklist", "--tier", "urgentish"); errs.KindOf(err) != errs.Invalid ||
				!strings.Contains(userMessage(err), "its tiers are critical") {
				t.Errorf("worklist --tier urgentish = %v; want the policy's tiers named", err)
			}
			if _, err := runCLI(t, dsn, key, "worklist", "--sla", "late"); errs.KindOf(err) != errs.Invalid {
				t.Errorf("worklist --sla late = %v; want Invalid", err)
			}

			target := page.Items[2]
			explain := mustCLI(t, dsn, key, "risk", "explain", target.FindingID)
			for _, want := range []string{"Analyzer-PC (" + analyzer.ID + ")", "CVE-2021-38555", "due because:", "FACTORS", "HISTORY", "first assessed"} {
				if !strings.Contains(explain, want) {
					t.Errorf("risk explain lacks %q:\n%s", want, explain)
				}
			}
			if _, err := runCLI(t, dsn, key, "risk", "explain", "no-such-finding"); errs.KindOf(err) != errs.NotFound {
				t.Errorf("risk explain no-such-finding = %v; want NotFound", err)
			}

			// Ann asks to accept the analyzer's finding.
			expires := time.Now().AddDate(0, 6, 0).Format(time.DateOnly)
			request := []string{"exception", "request", "--scope", "finding", "--target", target.FindingID, "--decision", "mitigate",
				"--reason", "the analyzer's vendor has not validated the update", "--owner", "lab manager", "--expires", expires,
				"--control", "segmentation=analyzer VLAN, no internet"}
			if _, err := runCLI(t, dsn, key, request...); errs.KindOf(err) != errs.Invalid || !strings.Contains(userMessage(err), "--as USERNAME is required") {
				t.Errorf("exception request without --as = %v", err)
			}
			if _, err := runCLI(t, dsn, key, append(request, "--as", "vic")...); errs.KindOf(err) != errs.Forbidden {
				t.Errorf("exception request as a viewer = %v; want Forbidden", err)
			}
			if _, err := runCLI(t, dsn, key, append(request[:len(request)-2], "--control", "segmentation", "--as", "ann")...); errs.KindOf(err) != errs.Invalid {
				t.Errorf("exception request with a malformed --control = %v; want Invalid", err)
			}
			out = mustCLI(t, dsn, key, append(request, "--as", "ann")...)
			id := match(t, exceptionIDLine, out)

			for _, tc := range []struct {
				as   string
				kind errs.Kind
				msg  string
			}{
				{"", errs.Invalid, "--as USERNAME is required"},
				{"nobody", errs.NotFound, "no such Patchward user"},
				{"olga", errs.Forbidden, "lacks the exception:decide permission"},
				{"ann", errs.Forbidden, "separation of duties"},
			} {
				_, err := runCLI(t, dsn, key, "exception", "approve", id, "--as", tc.as)
				if errs.KindOf(err) != tc.kind || !strings.Contains(userMessage(err), tc.msg) {
					t.Errorf("exception approve --as %q = %v; want %v containing %q", tc.as, err, tc.kind, tc.msg)
				}
			}
			if _, err := runCLI(t, dsn, key, "exception", "approve", id, "--as", "bob", "--revision", "5"); errs.KindOf(err) != errs.Conflict {
				t.Errorf("exception approve with a stale revision = %v; want Conflict", err)
			}
			if out := mustCLI(t, dsn, key, "exception", "approve", id, "--as", "bob", "--note", "VLAN checked", "--revision", "1"); out != "exception "+id+" is approved (revision 2)\n" {
				t.Errorf("exception approve = %q", out)
			}

			// The worklist shows it excepted at once.
			excepted := worklistJSON(t, dsn, key, "--status", "excepted")
			if excepted.Total != 1 || excepted.Items[0].FindingID != target.FindingID || excepted.Items[0].SLA != risk.SLAExcepted ||
				excepted.Items[0].ExceptionID != id {
				t.Errorf("excepted worklist = %+v; want the analyzer's finding, excepted under %s", excepted.Items, id)
			}
			if open := worklistJSON(t, dsn, key); open.Total != 2 {
				t.Errorf("open worklist after the exception = %d findings; want 2", open.Total)
			}
			if out := mustCLI(t, dsn, key, "worklist", "--sla", "excepted", "--status", "excepted"); !strings.Contains(out, "excepted") || !strings.Contains(out, target.FindingID) {
				t.Errorf("worklist --sla excepted:\n%s", out)
			}

			list := mustCLI(t, dsn, key, "exception", "list", "--state", "approved")
			if !strings.Contains(list, id) || !strings.Contains(list, "lab manager") || !strings.Contains(list, "ann") {
				t.Errorf("exception list --state approved:\n%s", list)
			}
			if out := mustCLI(t, dsn, key, "exception", "list", "--expiring-within", "7"); !strings.Contains(out, "No exceptions match") {
				t.Errorf("exception list --expiring-within 7:\n%s", out)
			}
			show := mustCLI(t, dsn, key, "exception", "show", id)
			for _, want := range []string{"approved (revision 2)", "by bob: VLAN checked", "segmentation", "not yet"} {
				if !strings.Contains(show, want) {
					t.Errorf("exception show lacks %q:\n%s", want, show)
				}
			}
			if _, err := runCLI(t, dsn, key, "exception", "show", "exc_0000000000000000"); errs.KindOf(err) != errs.NotFound {
				t.Errorf("exception show of an unknown ID = %v; want NotFound", err)
			}
			if out := mustCLI(t, dsn, key, "exception", "aging"); !strings.Contains(out, "approved 1") {
				t.Errorf("exception aging:\n%s", out)
			}
			if _, err := runCLI(t, dsn, key, "exception", "review", id, "--as", "bob"); err == nil {
				t.Errorf("exception review without --outcome succeeded")
			}
			mustCLI(t, dsn, key, "exception", "review", id, "--as", "bob", "--outcome", "continue", "--note", "ACLs in place")
			if show := mustCLI(t, dsn, key, "exception", "show", id); !strings.Contains(show, "REVIEWS") || !strings.Contains(show, "ACLs in place") {
				t.Errorf("exception show after a review:\n%s", show)
			}

			// The audit trail names the users and the shell user behind them.
			ctx := context.Background()
			db, err := store.Open(ctx, dsn, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for action, who := range map[string]string{"exception.request": "ann", "exception.approve": "bob", "exception.review": "bob"} {
				p, err := db.Audit().List(ctx, audit.Query{Action: action, Limit: 10})
				if err != nil || len(p.Entries) != 1 || p.Entries[0].Actor.Name != who || !strings.HasPrefix(p.Entries[0].Actor.Addr, "cli:") {
					t.Errorf("%s audit entries = %+v, %v; want one by %s from the CLI", action, p.Entries, err, who)
				}
			}
		})
	}
}
