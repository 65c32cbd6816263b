package main

import (
	"bytes"
	"context"
	"github.com/patchward/patchward/internal/auth"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestDemoSeedPrioritises seeds the demo on a fresh SQLite database the way
// `serve --demo` does and checks the first worklist a clinic sees: real
// advisories matched, findings in several tiers with a known-exploited one
// on top, the infusion pumps under an approved risk acceptance, and all of
// it in an audit trail that verifies.
func TestDemoSeedPrioritises(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, store.Options{})
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(t.TempDir(), "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := buildApp(db, signer, slog.New(slog.DiscardHandler), appOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	start := time.Now()
	if err := seedDemo(ctx, a, &out); err != nil {
		t.Fatalf("seedDemo: %v\n%s", err, &out)
	}
	t.Logf("demo seeding took %v", time.Since(start))
	for _, re := range []string{`username: admin\n  password: \S+`, `username: approver\n  password: \S+`, `username: owner\n  password: \S+`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("seed output lacks %q:\n%s", re, &out)
		}
	}

	// Two approvers besides the admin: a normal change needs two, and its
	// requester cannot be one of them.
	for _, name := range []string{"approver", "owner"} {
		if u, err := a.accounts.UserByName(ctx, name); err != nil || u.Role != auth.RoleApprover {
			t.Errorf("demo user %s = %+v, %v; want an approver", name, u.Role, err)
		}
	}
	wl, err := a.risk.Worklist(ctx, risk.WorklistFilter{Status: "all", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	tiers := map[string]int{}
	var top *risk.WorklistItem
	for i, it := range wl.Items {
		t.Logf("%-6s %5.1f %-9s %-30s %-18s due %s kev=%v", it.Assessment.Tier, it.Assessment.Score, it.Status,
			it.AssetName, it.VulnID, it.Assessment.TargetText, it.KEV)
		if it.Status == risk.StatusOpen {
			tiers[it.Assessment.Tier]++
			if top == nil {
				top = &wl.Items[i]
			}
		}
	}
	if len(tiers) < 3 {
		t.Errorf("open findings by tier = %v; want at least three tiers", tiers)
	}
	if top == nil || !top.KEV || top.Assessment.Tier != "critical" {
		t.Errorf("top of the worklist = %+v; want a KEV-listed critical finding", top)
	}
	kevCritical := 0
	for _, it := range wl.Items {
		if it.Status == risk.StatusOpen && it.KEV && it.Assessment.Tier == "critical" {
			kevCritical++
		}
	}
	if kevCritical == 0 {
		t.Errorf("no KEV-listed finding in the critical tier")
	}
	// Log4Shell on the video server: CISA knows ransomware campaigns use it,
	// and the score says so.
	ransomware := false
	for _, it := range wl.Items {
		for _, f := range it.Assessment.Factors {
			if f.Name == "Known ransomware use" && f.Points > 0 && it.Assessment.Tier == "critical" {
				ransomware = true
			}
		}
	}
	if !ransomware {
		t.Errorf("no critical finding scored for known ransomware use")
	}

	// The pumps' findings are covered by the approved acceptance.
	ex, err := a.risk.Exceptions(ctx, risk.ExceptionFilter{State: risk.ExceptionApproved})
	if err != nil || len(ex) != 1 {
		t.Fatalf("approved exceptions = %d, %v; want 1", len(ex), err)
	}
	e := ex[0]
	if e.RequestedBy != "admin" || e.DecidedBy != "approver" || len(e.Controls) < 2 {
		t.Errorf("exception requested by %q, decided by %q, %d controls; want admin, approver, segmentation and more",
			e.RequestedBy, e.DecidedBy, len(e.Controls))
	}
	pumps := 0
	for _, it := range wl.Items {
		if !strings.HasPrefix(it.AssetName, "Infusion pump") {
			continue
		}
		pumps++
		if it.Status != risk.StatusExcepted || it.ExceptionID != e.ID {
			t.Errorf("%s %s: status %s, exception %q; want excepted under %s", it.AssetName, it.VulnID, it.Status, it.ExceptionID, e.ID)
		}
	}
	if pumps == 0 {
		t.Errorf("no infusion pump findings on the worklist")
	}

	// The KEV catalog arrived after the first scoring: Log4Shell is an
	// emergency proposal because of it.
	props, err := change.NewProposals(db.Proposals(), a.policies).EmergencyProposals(ctx, start.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var proposed []string
	for _, p := range props {
		proposed = append(proposed, p.VulnID)
	}
	if !slices.Contains(proposed, "CVE-2021-44228") {
		t.Errorf("emergency proposals = %v; want Log4Shell, listed in KEV after the first scoring", proposed)
	}

	// One change is booked: approved by two, tested, scheduled, on the
	// calendar.
	booked, err := a.changes.List(ctx, change.Filter{State: change.Scheduled})
	if err != nil || len(booked) != 1 {
		t.Fatalf("scheduled changes = %d, %v; want the demo's one", len(booked), err)
	}
	c := booked[0]
	if _, st, err := a.changes.Approvals(ctx, c.ID); err != nil || !st.Complete || len(st.Approvers) != 2 {
		t.Errorf("demo change approvals = %+v, %v; want two, complete", st, err)
	}
	if runs, err := a.changes.TestRuns(ctx, c.ID); err != nil || len(runs) != 1 {
		t.Errorf("demo change test runs = %d, %v; want 1", len(runs), err)
	}
	if len(c.Findings) == 0 || c.Risk.Tier == "" || len(c.Patches) == 0 {
		t.Errorf("demo change = %+v; want findings, a risk rating and patches", c)
	}
	cal := &api.PolicyCalendar{Policies: a.policies, Inventory: a.inventory, Changes: a.changes, Rollouts: a.rollouts}
	v, err := cal.Calendar(ctx, time.Now(), time.Now().AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.Changes, func(e deploy.ChangeEntry) bool { return e.ChangeID == c.ID }) {
		t.Errorf("the demo change is not on the next month's calendar: %+v", v.Changes)
	}

	// Everything seeded is in the audit trail, and the trail verifies.
	res, err := a.audit.Verify(ctx)
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	p, err := a.audit.List(ctx, audit.Query{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if int64(p.Total) != res.Entries {
		t.Errorf("audit list total %d; verified %d entries", p.Total, res.Entries)
	}
	var actions []string
	for _, en := range p.Entries {
		actions = append(actions, en.Action)
	}
	for _, want := range []string{"site.create", "group.create", "asset.create", "feed.sync", "finding.open",
		"risk.reprioritize", "user.create", "exception.request", "exception.approve"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}

	// A restart on the seeded database seeds nothing twice.
	out.Reset()
	if err := seedDemo(ctx, a, &out); err != nil || strings.Contains(out.String(), "password") {
		t.Errorf("second seedDemo = %v with output %q; want no new users or findings", err, &out)
	}
	if ex, _ := a.risk.Exceptions(ctx, risk.ExceptionFilter{}); len(ex) != 1 {
		t.Errorf("after a second seed: %d exceptions; want 1", len(ex))
	}
}
