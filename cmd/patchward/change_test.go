package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	ics "github.com/arran4/golang-ical"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

var (
	changeIDLine = regexp.MustCompile(`(?m)^id: (\S+)$`)
	shaLine      = regexp.MustCompile(`(?m)^sha256: ([0-9a-f]{64})$`)
)

// seedChangeAsset stores one general server, which no asset class claims:
// a normal change on it needs two approvals and the general test cases.
func seedChangeAsset(t *testing.T, dsn string) inventory.Asset {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := inventory.NewService(db.Inventory(), nil).CreateAsset(ctx, audit.System,
		inventory.Asset{Name: "FILE-01", Type: inventory.TypeServer, MaintenanceWindow: "sun-0200-0500"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func writeJSONFile(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantCLIErr(t *testing.T, what string, err error, kind errs.Kind, contains ...string) {
	t.Helper()
	if errs.KindOf(err) != kind {
		t.Errorf("%s = %v (%v); want %v", what, err, errs.KindOf(err), kind)
		return
	}
	for _, c := range contains {
		if !strings.Contains(userMessage(err), c) {
			t.Errorf("%s = %q; want it to contain %q", what, userMessage(err), c)
		}
	}
}

// TestChangeCLI carries a normal change through its life from the shell on
// each engine, with the refusals a change board relies on: a viewer cannot
// draft, the requester cannot approve, and an illegal move is refused with
// the moves that are allowed. Then the calendar, as a table and as an
// iCalendar file that a real parser reads.
func TestChangeCLI(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dsn := storetest.DSN(t, engine)
			dir := t.TempDir()
			key := filepath.Join(dir, "audit.key")
			mustCLI(t, dsn, key, "migrate")
			for _, u := range [][3]string{{"root", "admin", "it-manager"}, {"ann", "approver", "security-officer"}, {"bob", "approver"}, {"olga", "operator"}, {"vic", "viewer"}} {
				args := []string{"user", "create", "--username", u[0], "--role", u[1]}
				if u[2] != "" {
					args = append(args, "--policy-role", u[2])
				}
				mustCLI(t, dsn, key, args...)
			}
			// Policy roles are checked against the policy in force.
			for _, tc := range []struct{ user, set, msg string }{
				{"olga", "laboratory-director", "grants the Patchward role approver; the user has operator"},
				{"bob", "chief-of-staff", "not a role in the policy in force"},
				{"bob", "system-owner,system-owner", "twice"},
			} {
				_, err := runCLI(t, dsn, key, "user", "policy-roles", "--username", tc.user, "--set", tc.set)
				wantCLIErr(t, "policy-roles --set "+tc.set, err, errs.Invalid, tc.msg)
			}
			if out := mustCLI(t, dsn, key, "user", "policy-roles", "--username", "bob", "--set", "system-owner,laboratory-director"); !strings.Contains(out, "bob (approver) holds policy roles: system-owner, laboratory-director") {
				t.Errorf("policy-roles --set output = %q", out)
			}
			asset := seedChangeAsset(t, dsn)
			var protocol []map[string]any
			for _, id := range []string{"backup-verified", "boot-time", "edr-compatibility", "connectivity"} {
				protocol = append(protocol, map[string]any{"case_id": id})
			}
			file := writeJSONFile(t, dir, "change.json", map[string]any{
				"title": "Apply openssl 3.0.15 on FILE-01", "type": "normal",
				"targets":         map[string]any{"assets": []string{asset.ID}},
				"patches":         []map[string]any{{"package": "openssl", "ecosystem": "Debian:12", "target_version": "3.0.15-1~deb12u1"}},
				"test_protocol":   protocol,
				"rollback_plan":   map[string]any{"triggers": []string{"a test case fails"}, "steps": []string{"restore the snapshot"}, "owner": "it-technician"},
				"planned_windows": []map[string]any{{"window": "servers-weekly"}},
			})
			bad := writeJSONFile(t, dir, "bad.json", map[string]any{"title": "x", "type": "normal", "rollback_pln": map[string]any{}})

			_, err := runCLI(t, dsn, key, "change", "create", "--file", file, "--as", "vic")
			wantCLIErr(t, "create as a viewer", err, errs.Forbidden, "change:write")
			_, err = runCLI(t, dsn, key, "change", "create", "--file", file)
			wantCLIErr(t, "create without --as", err, errs.Invalid, "--as USERNAME")
			_, err = runCLI(t, dsn, key, "change", "create", "--file", bad, "--as", "ann")
			wantCLIErr(t, "create from a misspelt file", err, errs.Invalid, "expected shape")

			out := mustCLI(t, dsn, key, "change", "create", "--file", file, "--as", "ann")
			m := changeIDLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("change create printed no id:\n%s", out)
			}
			id := m[1]
			mustCLI(t, dsn, key, "change", "edit", id, "--file", file, "--as", "ann", "--revision", "1", "--why", "same content, new revision")
			_, err = runCLI(t, dsn, key, "change", "edit", id, "--file", file, "--as", "ann", "--revision", "1")
			wantCLIErr(t, "edit on a stale revision", err, errs.Conflict, "changed since you loaded it")

			if out := mustCLI(t, dsn, key, "change", "submit", id, "--as", "ann", "--why", "ready"); !strings.Contains(out, "is submitted") {
				t.Errorf("submit = %q", out)
			}
			_, err = runCLI(t, dsn, key, "change", "approve", id, "--as", "ann")
			wantCLIErr(t, "self-approval", err, errs.Forbidden, "you requested this change")
			_, err = runCLI(t, dsn, key, "change", "approve", id, "--as", "olga")
			wantCLIErr(t, "approval by an operator", err, errs.Forbidden, "change:approve")
			if out := mustCLI(t, dsn, key, "change", "approve", id, "--as", "bob", "--sign-as", "system-owner"); !strings.Contains(out, "is submitted") || !strings.Contains(out, "approvals: 1 of 2") {
				t.Errorf("first approval = %q", out)
			}
			if out := mustCLI(t, dsn, key, "change", "approve", id, "--as", "root"); !strings.Contains(out, "is approved") {
				t.Errorf("second approval = %q", out)
			}

			// The refused illegal transition names what is allowed.
			_, err = runCLI(t, dsn, key, "change", "start", id, "--as", "olga")
			wantCLIErr(t, "start an approved change", err, errs.Conflict, "cannot start a change that is approved", "schedule (→ scheduled)")
			_, err = runCLI(t, dsn, key, "change", "schedule", id, "--as", "ann")
			wantCLIErr(t, "schedule by an approver", err, errs.Forbidden, "change:operate")
			mustCLI(t, dsn, key, "change", "schedule", id, "--as", "olga", "--window", "servers-weekly")
			// The booked change is on the calendar, in the table and the feed.
			if table := mustCLI(t, dsn, key, "calendar"); !strings.Contains(table, "CHANGES") || !strings.Contains(table, id) {
				t.Errorf("calendar after scheduling lacks the change %s:\n%s", id, table)
			}
			if feed := mustCLI(t, dsn, key, "calendar", "--ics"); !strings.Contains(feed, "UID:change-"+id+"-window-0@patchward") {
				t.Errorf("calendar feed lacks the change's event:\n%s", feed)
			}

			// Evidence in and out, byte for byte; a run cites it.
			qc := []byte("EDR console: healthy, nothing quarantined\n")
			qcPath := filepath.Join(dir, "edr.txt")
			if err := os.WriteFile(qcPath, qc, 0o600); err != nil {
				t.Fatal(err)
			}
			out = mustCLI(t, dsn, key, "change", "evidence", "add", id, qcPath, "--as", "olga")
			sm := shaLine.FindStringSubmatch(out)
			if sm == nil {
				t.Fatalf("evidence add printed no sha256:\n%s", out)
			}
			got := filepath.Join(dir, "got.txt")
			mustCLI(t, dsn, key, "change", "evidence", "get", id, sm[1], "--out", got)
			if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, qc) {
				t.Errorf("evidence get wrote %q, %v; want %q", b, err, qc)
			}
			if out := mustCLI(t, dsn, key, "change", "evidence", "list", id); !strings.Contains(out, sm[1]) || !strings.Contains(out, "edr.txt") {
				t.Errorf("evidence list = %q", out)
			}
			var results []map[string]any
			for _, p := range protocol {
				results = append(results, map[string]any{"case_id": p["case_id"], "result": "pass",
					"evidence": []map[string]any{{"sha256": sm[1]}}})
			}
			run := writeJSONFile(t, dir, "run.json", map[string]any{"results": results})
			if out := mustCLI(t, dsn, key, "change", "test-run", id, "--file", run, "--as", "olga"); !strings.Contains(out, "4 of 4 cases passed") {
				t.Errorf("test-run = %q", out)
			}
			mustCLI(t, dsn, key, "change", "start", id, "--as", "olga")
			// Started, the change is deployed by its rollout: the change's
			// moves act through it, so the two always agree. Completing it
			// by hand while waves still run is refused.
			_, err = runCLI(t, dsn, key, "change", "complete", id, "--as", "olga", "--why", "verified")
			wantCLIErr(t, "complete a change its rollout still deploys", err, errs.Conflict, "is being deployed by rollout")
			rolloutOf := func() deploy.Rollout {
				t.Helper()
				var ro deploy.Rollout
				if err := json.Unmarshal([]byte(mustCLI(t, dsn, key, "rollout", "show", id, "--json")), &ro); err != nil || ro.ChangeID != id {
					t.Fatalf("rollout show --json = %+v, %v", ro, err)
				}
				return ro
			}
			ro := rolloutOf()
			if ro.State != deploy.RolloutRunning {
				t.Errorf("after the refused complete the rollout is %s; want running", ro.State)
			}
			_, err = runCLI(t, dsn, key, "change", "halt", id, "--as", "olga")
			wantCLIErr(t, "halt under a rollout without why", err, errs.Invalid)
			if out := mustCLI(t, dsn, key, "change", "halt", id, "--as", "olga", "--why", "QC out of range"); !strings.Contains(out, "is halted") || !strings.Contains(out, "rollout "+ro.ID+" is halted") {
				t.Errorf("change halt = %q; want the change and its rollout halted", out)
			}
			if ro = rolloutOf(); ro.State != deploy.RolloutHalted {
				t.Errorf("after change halt the rollout is %s; want halted", ro.State)
			}
			if out := mustCLI(t, dsn, key, "change", "resume", id, "--as", "olga", "--why", "QC back in range"); !strings.Contains(out, "is in_progress") || !strings.Contains(out, "rollout "+ro.ID+" is running") {
				t.Errorf("change resume = %q; want the change in progress and its rollout running", out)
			}
			if ro = rolloutOf(); ro.State != deploy.RolloutRunning {
				t.Errorf("after change resume the rollout is %s; want running", ro.State)
			}
			if out := mustCLI(t, dsn, key, "rollout", "abort", ro.ID, "--as", "olga", "--why", "vendor withdrew the update"); !strings.Contains(out, "is aborted") {
				t.Errorf("rollout abort = %q", out)
			}
			_, err = runCLI(t, dsn, key, "change", "cancel", id, "--as", "olga", "--why", "too late")
			wantCLIErr(t, "cancel a cancelled change", err, errs.Conflict, "cancelled is final")

			hist := mustCLI(t, dsn, key, "change", "history", id)
			for _, want := range []string{"create", "submit", "approve", "schedule", "start", "cancel"} {
				if !strings.Contains(hist, want) {
					t.Errorf("history lacks %s:\n%s", want, hist)
				}
			}
			var list []change.Change
			if err := json.Unmarshal([]byte(mustCLI(t, dsn, key, "change", "list", "--json", "--state", "cancelled")), &list); err != nil || len(list) != 1 || list[0].ID != id {
				t.Errorf("change list --json --state cancelled = %+v, %v", list, err)
			}

			// The calendar, as a table and as a parsed iCalendar file.
			table := mustCLI(t, dsn, key, "calendar", "--from", "2026-04-01", "--to", "2026-10-01")
			for _, want := range []string{"freeze", "cap-inspection", "window (baseline)", "monthly-baseline", "asset-window", "sun-0200-0500"} {
				if !strings.Contains(table, want) {
					t.Errorf("calendar table lacks %q:\n%s", want, table)
				}
			}
			icsPath := filepath.Join(dir, "maint.ics")
			mustCLI(t, dsn, key, "calendar", "--from", "2026-04-01", "--to", "2026-10-01", "--ics", "--out", icsPath)
			f, err := os.Open(icsPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cal, err := ics.ParseCalendar(f)
			if err != nil {
				t.Fatalf("parse %s: %v", icsPath, err)
			}
			if rows := strings.Count(strings.TrimSpace(table), "\n"); len(cal.Events()) != rows {
				t.Errorf("iCalendar events = %d; want %d, one per table row", len(cal.Events()), rows)
			}
			_, err = runCLI(t, dsn, key, "calendar", "--from", "2026-01-01", "--to", "2027-06-01")
			wantCLIErr(t, "calendar over 12 months", err, errs.Invalid, "at most 12 months")
		})
	}
}
