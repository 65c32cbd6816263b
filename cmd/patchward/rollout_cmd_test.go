package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	pwmatch "github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// seedKEVProposal stores an open finding on the asset that a KEV listing
// put in the top tier an hour ago, as the risk engine's re-scoring does.
func seedKEVProposal(t *testing.T, dsn, assetID string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	f := pwmatch.Finding{AssetID: assetID, Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.11-1", VulnID: "CVE-2026-1000",
		FixedVersion: "3.0.15-1~deb12u1", Source: pwmatch.SourceOSV, State: pwmatch.StateOpen, FirstSeen: at.Add(-72 * time.Hour), LastSeen: at}
	f.ID = pwmatch.FindingID(assetID, f.Key(), f.VulnID)
	if err := db.Findings().Transact(ctx, func(tx pwmatch.FindingsTx) error {
		return tx.ApplyChanges(ctx, pwmatch.Changes{Changes: []pwmatch.Change{{Kind: pwmatch.ChangeOpen, After: f}}})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Risk().Transact(ctx, func(tx risk.Tx) error {
		if err := tx.PutRecords(ctx, []risk.Record{{FindingID: f.ID, AssetID: assetID, VulnID: f.VulnID, Status: risk.StatusOpen,
			Assessment:    risk.Assessment{Mode: "score", Score: 92, Tier: "critical", Rank: 0, Factors: []risk.Factor{}},
			PolicyVersion: 1, FirstSeen: f.FirstSeen, ClockBasis: risk.BasisAwaitingFix, ComputedAt: at, KEV: true}}); err != nil {
			return err
		}
		return tx.AddEvents(ctx, []risk.Event{{FindingID: f.ID, At: at, Tier: "critical", Score: 92, Status: risk.StatusOpen, PolicyVersion: 1,
			Reason: "re-prioritised (tier raised from high to critical, " + change.KEVReason + ")"}})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutCLI starts a change from the shell on each engine and steers
// its rollout: show and list, a refused pause without --why or by a
// viewer, pause and a refused second pause, resume, the manual task's
// outcome, abort, the deployment log and the retry list; then an
// emergency proposal drafted as a change.
func TestRolloutCLI(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dsn := storetest.DSN(t, engine)
			dir := t.TempDir()
			key := filepath.Join(dir, "audit.key")
			mustCLI(t, dsn, key, "migrate")
			// Each person holds the policy role they act as.
			for _, u := range [][3]string{{"root", "admin", "it-manager"}, {"ann", "approver", "security-officer"},
				{"bob", "approver", "system-owner"}, {"olga", "operator", "it-technician"}, {"vic", "viewer", ""}} {
				args := []string{"user", "create", "--username", u[0], "--role", u[1]}
				if u[2] != "" {
					args = append(args, "--policy-role", u[2])
				}
				mustCLI(t, dsn, key, args...)
			}
			asset := seedChangeAsset(t, dsn)
			cases := []string{"backup-verified", "boot-time", "edr-compatibility", "connectivity"}
			var protocol, results []map[string]any
			for _, id := range cases {
				protocol = append(protocol, map[string]any{"case_id": id})
				results = append(results, map[string]any{"case_id": id, "result": "pass"})
			}
			file := writeJSONFile(t, dir, "change.json", map[string]any{
				"title": "Apply openssl 3.0.15 on FILE-01", "type": "normal",
				"targets":         map[string]any{"assets": []string{asset.ID}},
				"patches":         []map[string]any{{"package": "openssl", "ecosystem": "Debian:12", "target_version": "3.0.15-1~deb12u1"}},
				"test_protocol":   protocol,
				"rollback_plan":   map[string]any{"triggers": []string{"a test case fails"}, "steps": []string{"restore the snapshot"}, "owner": "it-technician"},
				"planned_windows": []map[string]any{{"window": "servers-weekly"}},
			})
			run := writeJSONFile(t, dir, "run.json", map[string]any{"results": results})
			m := changeIDLine.FindStringSubmatch(mustCLI(t, dsn, key, "change", "create", "--file", file, "--as", "ann"))
			if m == nil {
				t.Fatal("change create printed no id")
			}
			id := m[1]
			mustCLI(t, dsn, key, "change", "submit", id, "--as", "ann")
			mustCLI(t, dsn, key, "change", "approve", id, "--as", "bob", "--sign-as", "system-owner")
			mustCLI(t, dsn, key, "change", "approve", id, "--as", "root")
			mustCLI(t, dsn, key, "change", "schedule", id, "--as", "olga")
			mustCLI(t, dsn, key, "change", "test-run", id, "--file", run, "--as", "olga")
			mustCLI(t, dsn, key, "change", "start", id, "--as", "olga", "--why", "window tonight")

			var ro deploy.Rollout
			if err := json.Unmarshal([]byte(mustCLI(t, dsn, key, "rollout", "show", id, "--json")), &ro); err != nil || ro.ChangeID != id {
				t.Fatalf("rollout show --json = %+v, %v", ro, err)
			}
			var item deploy.Item
			for _, w := range ro.Waves {
				for _, it := range w.Items {
					item = it
				}
			}
			if item.Kind != deploy.ItemManual || item.State != deploy.ItemOpen {
				t.Fatalf("FILE-01's item = %+v; want an open manual task", item)
			}
			if out := mustCLI(t, dsn, key, "rollout", "show", id); !strings.Contains(out, "running") || !strings.Contains(out, item.ID) || !strings.Contains(out, "FILE-01") {
				t.Errorf("rollout show:\n%s", out)
			}
			if out := mustCLI(t, dsn, key, "rollout", "list", "--state", "active"); !strings.Contains(out, ro.ID) {
				t.Errorf("rollout list --state active:\n%s", out)
			}
			if out := mustCLI(t, dsn, key, "rollout", "list", "--state", "completed"); strings.Contains(out, ro.ID) {
				t.Errorf("rollout list --state completed lists the running rollout:\n%s", out)
			}
			_, err := runCLI(t, dsn, key, "rollout", "list", "--state", "bogus")
			wantCLIErr(t, "list --state bogus", err, errs.Invalid, "--state")

			_, err = runCLI(t, dsn, key, "rollout", "pause", ro.ID, "--as", "olga")
			wantCLIErr(t, "pause without --why", err, errs.Invalid, "--why")
			_, err = runCLI(t, dsn, key, "rollout", "pause", ro.ID, "--as", "vic", "--why", "x")
			wantCLIErr(t, "pause as a viewer", err, errs.Forbidden, "change:operate")
			if out := mustCLI(t, dsn, key, "rollout", "pause", ro.ID, "--as", "olga", "--why", "QC drift"); !strings.Contains(out, "is paused") {
				t.Errorf("pause = %q", out)
			}
			_, err = runCLI(t, dsn, key, "rollout", "pause", ro.ID, "--as", "olga", "--why", "again")
			wantCLIErr(t, "pause a paused rollout", err, errs.Conflict, "cannot pause a rollout that is paused")
			mustCLI(t, dsn, key, "rollout", "resume", ro.ID, "--as", "olga", "--why", "QC back in range")

			_, err = runCLI(t, dsn, key, "rollout", "manual", ro.ID, item.ID, "--outcome", "maybe", "--note", "x", "--as", "olga")
			wantCLIErr(t, "manual outcome maybe", err, errs.Invalid, "outcome")
			if out := mustCLI(t, dsn, key, "rollout", "manual", ro.ID, item.ID, "--outcome", "done", "--note", "installed by hand; QC passed", "--as", "olga"); !strings.Contains(out, "recorded done") {
				t.Errorf("manual done = %q", out)
			}
			// The wave's gate still soaks on the real clock: abort ends it,
			// and a second abort is refused.
			if out := mustCLI(t, dsn, key, "rollout", "abort", ro.ID, "--as", "olga", "--why", "vendor withdrew the update"); !strings.Contains(out, "is aborted") {
				t.Errorf("abort = %q", out)
			}
			_, err = runCLI(t, dsn, key, "rollout", "abort", ro.ID, "--as", "olga", "--why", "again")
			wantCLIErr(t, "abort an aborted rollout", err, errs.Conflict, "cannot abort a rollout that is aborted")
			if out := mustCLI(t, dsn, key, "rollout", "log", id, "--asset", asset.ID); !strings.Contains(out, "manual_task_done") || !strings.Contains(out, "olga") || !strings.Contains(out, "openssl 3.0.15") {
				t.Errorf("rollout log:\n%s", out)
			}
			_, err = runCLI(t, dsn, key, "rollout", "log", "no-such-change")
			wantCLIErr(t, "log of an unknown change", err, errs.NotFound)
			if out := mustCLI(t, dsn, key, "rollout", "not-converged", id); !strings.Contains(out, "FILE-01") || !strings.Contains(out, "no inventory newer") {
				t.Errorf("rollout not-converged:\n%s", out)
			}

			// An emergency proposal, drafted as a change.
			seedKEVProposal(t, dsn, asset.ID)
			if out := mustCLI(t, dsn, key, "change", "proposals"); !strings.Contains(out, "CVE-2026-1000") {
				t.Errorf("change proposals:\n%s", out)
			}
			_, err = runCLI(t, dsn, key, "change", "proposals", "--draft", "CVE-2026-1000", "--as", "ann")
			wantCLIErr(t, "draft without --justification", err, errs.Invalid, "--justification")
			_, err = runCLI(t, dsn, key, "change", "proposals", "--draft", "CVE-2026-1000", "--as", "olga", "--justification", "x")
			wantCLIErr(t, "draft by an operator", err, errs.Forbidden)
			_, err = runCLI(t, dsn, key, "change", "proposals", "--draft", "CVE-1999-0001", "--as", "ann", "--justification", "x")
			wantCLIErr(t, "draft of an unknown proposal", err, errs.NotFound)
			out := mustCLI(t, dsn, key, "change", "proposals", "--draft", "CVE-2026-1000", "--as", "ann", "--justification", "KEV-listed and exploited")
			dm := changeIDLine.FindStringSubmatch(out)
			if dm == nil {
				t.Fatalf("proposals --draft printed no id:\n%s", out)
			}
			var c change.Change
			if err := json.Unmarshal([]byte(mustCLI(t, dsn, key, "change", "show", dm[1], "--json")), &c); err != nil {
				t.Fatal(err)
			}
			if c.Type != change.Emergency || c.State != change.Draft || c.RequestedBy != "ann" || len(c.Findings) != 1 {
				t.Errorf("drafted change = %+v", c)
			}
			if out := mustCLI(t, dsn, key, "change", "proposals"); strings.Contains(out, "CVE-2026-1000") {
				t.Errorf("proposals after the draft still list CVE-2026-1000:\n%s", out)
			}
		})
	}
}
