package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/demo"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/risk"
)

func seedDemo(ctx context.Context, a *app, out io.Writer) error {
	n, err := demo.Seed(ctx, a.inventory, time.Now())
	if err != nil {
		return err
	}
	pw, created, err := a.accounts.EnsureAdmin(ctx, demoSeeder, "admin")
	if err != nil {
		return err
	}
	approverPW, ownerPW := "", ""
	if n > 0 {
		fmt.Fprintf(out, "Seeded the demo clinic: %d assets.\n", n)
		if err := a.importDemoFeeds(ctx, false); err != nil {
			return err
		}
		if approverPW, err = a.seedDemoRisk(ctx, out); err != nil {
			return err
		}
		// A normal change needs two approvers under the default policy,
		// neither of them its requester: the demo has a second one.
		ownerPW = auth.BootstrapPassword()
		if _, err := a.accounts.CreateUser(ctx, demoSeeder, auth.NewUser{Username: demoOwner,
			DisplayName: "Demo system owner (second approver of changes)", Role: auth.RoleApprover, Password: ownerPW}); err != nil {
			if errs.KindOf(err) != errs.Conflict {
				return fmt.Errorf("demo system owner: %w", err)
			}
			ownerPW = ""
		}
		// Approving as a policy role takes holding it: the admin is the IT
		// manager, the approver the security officer, the owner the system
		// owner.
		for name, role := range map[string]string{"admin": "it-manager", demoApprover: "security-officer", demoOwner: "system-owner"} {
			if err := a.holdDemoRole(ctx, name, role); err != nil {
				return err
			}
		}
		if err := a.seedDemoChange(ctx, out); err != nil {
			return err
		}
		if err := a.demoKEVArrives(ctx, out); err != nil {
			return err
		}
	}
	if created {
		fmt.Fprintf(out, "\nDemo admin created. Sign in with:\n  username: admin\n  password: %s\n(shown once; change it with `patchward user reset-password --username admin`)\n\n", pw)
	}
	if approverPW != "" {
		fmt.Fprintf(out, "Demo approver created (approves risk acceptances and changes). Sign in with:\n  username: %s\n  password: %s\n(shown once; change it with `patchward user reset-password --username %[1]s`)\n\n", demoApprover, approverPW)
	}
	if ownerPW != "" {
		fmt.Fprintf(out, "Demo system owner created (the second approval a normal change needs). Sign in with:\n  username: %s\n  password: %s\n(shown once)\n\n", demoOwner, ownerPW)
	}
	return nil
}

// holdDemoRole gives the demo user username the policy role, unless they
// hold it already.
func (a *app) holdDemoRole(ctx context.Context, username, role string) error {
	u, err := a.accounts.UserByName(ctx, username)
	if err != nil {
		return fmt.Errorf("demo user %s: %w", username, err)
	}
	if slices.Contains(u.PolicyRoles, role) {
		return nil
	}
	if _, err := a.accounts.SetPolicyRoles(ctx, demoSeeder, u.ID, append(slices.Clone(u.PolicyRoles), role)); err != nil {
		return fmt.Errorf("demo user %s as %s: %w", username, role, err)
	}
	return nil
}

// demoOwner is the demo's second approver: a normal change needs two.
const demoOwner = "owner"

// demoSeeder is the audit actor of everything the demo seeds itself.
var demoSeeder = audit.Actor{Kind: audit.ActorSystem, Name: "demo-seed"}

// demoApprover is the demo user who approves the demo's risk acceptance.
const demoApprover = "approver"

// seedDemoRisk matches the demo clinic against the demo advisories,
// prioritises the findings and records the demo's approved risk acceptance
// for the infusion pumps, so the first worklist is the one a clinic would
// see. The acceptance is requested by the demo admin and approved by a
// second, approver user (separation of duties), whose new password it
// returns ("" if that user already existed).
func (a *app) seedDemoRisk(ctx context.Context, out io.Writer) (string, error) {
	if _, _, err := a.watcher.Check(ctx); err != nil {
		return "", fmt.Errorf("match the demo clinic: %w", err)
	}
	if _, err := a.risk.Recompute(ctx, ""); err != nil {
		return "", fmt.Errorf("prioritise the demo findings: %w", err)
	}
	requester := risk.Requester{Actor: demoSeeder, Role: string(auth.RoleAdmin)}
	if u, err := a.accounts.UserByName(ctx, "admin"); err == nil && u.Role == auth.RoleAdmin {
		requester.Actor = audit.Actor{Kind: audit.ActorUser, ID: u.ID, Name: u.Username}
	}
	pw := auth.BootstrapPassword()
	u, err := a.accounts.CreateUser(ctx, demoSeeder, auth.NewUser{Username: demoApprover,
		DisplayName: "Demo approver (security officer)", Role: auth.RoleApprover, Password: pw})
	if errs.KindOf(err) == errs.Conflict {
		pw = ""
		u, err = a.accounts.UserByName(ctx, demoApprover)
	}
	if err != nil {
		return "", fmt.Errorf("demo approver: %w", err)
	}
	approver := risk.Requester{Actor: audit.Actor{Kind: audit.ActorUser, ID: u.ID, Name: u.Username}, Role: string(u.Role)}
	if _, err := demo.AcceptPumpRisk(ctx, a.inventory, a.risk, requester, approver, time.Now()); err != nil {
		return "", err
	}
	// Re-score now rather than in the background, so the first worklist
	// already shows the pumps' findings as excepted.
	if _, err := a.risk.Recompute(ctx, ""); err != nil {
		return "", fmt.Errorf("prioritise the demo findings: %w", err)
	}
	wl, err := a.risk.Worklist(ctx, risk.WorklistFilter{Limit: 1})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "Prioritised the demo findings: %d open on the worklist; the infusion pumps' findings are under an approved risk acceptance.\n", wl.Total)
	return pw, nil
}

// importDemoFeeds syncs the demo's real advisory files as local feeds, the
// way an air-gapped clinic imports files, so findings appear on first run:
// the advisories, or (kev) the CISA KEV catalog alone.
func (a *app) importDemoFeeds(ctx context.Context, kev bool) error {
	dfs, err := demo.Feeds()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "patchward-demo-feeds")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	actor := demoSeeder
	for _, df := range dfs {
		if (feeds.Kind(df.Kind) == feeds.KEV) != kev {
			continue
		}
		path := filepath.Join(dir, df.File)
		if err := os.WriteFile(path, df.Data, 0o600); err != nil {
			return err
		}
		fd := feeds.Feed{Name: df.Name, Kind: feeds.Kind(df.Kind), Path: path, Interval: feeds.DefaultInterval,
			Timeout: feeds.DefaultTimeout, MaxBytes: feeds.DefaultMaxBytes}
		if _, err := a.feeds.Sync(ctx, actor, fd, feeds.SyncOptions{}); err != nil {
			return fmt.Errorf("import demo advisories: %w", err)
		}
	}
	return nil
}

// demoKEVArrives imports the CISA KEV catalog after the first scoring, as
// it happens when CISA lists a vulnerability the clinic already has: the
// listed findings are re-prioritised with the listing as the reason, and
// each listed vulnerability becomes an emergency proposal.
func (a *app) demoKEVArrives(ctx context.Context, out io.Writer) error {
	if err := a.importDemoFeeds(ctx, true); err != nil {
		return err
	}
	if _, _, err := a.watcher.Check(ctx); err != nil {
		return fmt.Errorf("re-match the demo clinic: %w", err)
	}
	sum, err := a.risk.Recompute(ctx, "")
	if err != nil {
		return fmt.Errorf("re-prioritise the demo findings: %w", err)
	}
	props, err := change.NewProposals(a.db.Proposals(), a.policies).EmergencyProposals(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Then the CISA KEV catalog arrived: %d findings re-prioritised, %d vulnerabilities proposed as emergency changes (see Proposals).\n",
		sum.Reprioritized, len(props))
	return nil
}

// seedDemoChange books the demo's first change the way people would: the
// admin turns the intranet server's sope findings (Debian DSA-5970-1) into a
// normal change with its test protocol, rollback plan and communication
// plan; the security officer and the system owner approve it; the staging
// test run passes; it is scheduled in the servers' weekly window. The
// calendar and the change list then show a change waiting for its window.
func (a *app) seedDemoChange(ctx context.Context, out io.Writer) error {
	admin, err := a.accounts.UserByName(ctx, "admin")
	if err != nil {
		return fmt.Errorf("demo change: %w", err)
	}
	person := func(name string) (change.User, error) {
		u, err := a.accounts.UserByName(ctx, name)
		if err != nil {
			return change.User{}, fmt.Errorf("demo change: %w", err)
		}
		return change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: u.ID, Name: u.Username}, Role: string(u.Role), PolicyRoles: u.PolicyRoles}, nil
	}
	requester := change.User{Actor: audit.Actor{Kind: audit.ActorUser, ID: admin.ID, Name: admin.Username}, Role: string(admin.Role), PolicyRoles: admin.PolicyRoles}
	secOff, err := person(demoApprover)
	if err != nil {
		return err
	}
	owner, err := person(demoOwner)
	if err != nil {
		return err
	}
	wl, err := a.risk.Worklist(ctx, risk.WorklistFilter{Limit: 500})
	if err != nil {
		return err
	}
	c := change.Change{Title: "Apply Debian DSA-5970-1 (sope) on the intranet server", Type: change.Normal,
		Description:    "SOGo's sope libraries on INTRANET-01 carry the vulnerabilities Debian fixed in DSA-5970-1.",
		PreChecks:      []string{"VM snapshot taken and verified", "Backup of the SOGo database verified"},
		Communication:  change.Communication{Notify: []string{"All staff (intranet and web mail)", "Help desk"}, UserImpact: "Web mail and the intranet unavailable for about 10 minutes"},
		RollbackPlan:   change.RollbackPlan{Triggers: []string{"A test case fails", "Web mail does not load after the update"}, Steps: []string{"Revert the VM snapshot taken before the change", "Confirm web mail loads"}, Owner: "it-technician"},
		PlannedWindows: []change.PlannedWindow{{Window: "servers-weekly"}}}
	for _, it := range wl.Items {
		if it.AssetName != "INTRANET-01" || it.FixedVersion == "" {
			continue
		}
		c.Findings = append(c.Findings, it.FindingID)
		p := change.Patch{Package: it.Package, Ecosystem: it.Ecosystem, TargetVersion: it.FixedVersion}
		if !slices.Contains(c.Patches, p) {
			c.Patches = append(c.Patches, p)
		}
		if len(c.Targets.Assets) == 0 {
			c.Targets.Assets = []string{it.AssetID}
		}
	}
	if len(c.Findings) == 0 {
		return fmt.Errorf("demo change: the intranet server has no open finding with a fix")
	}
	pol, _, err := a.policies.Current(ctx)
	if err != nil {
		return err
	}
	for _, id := range change.RequiredCases(pol, change.Normal, nil) {
		c.TestProtocol = append(c.TestProtocol, change.TestStep{CaseID: id})
	}
	if c, err = a.changes.Create(ctx, requester, c); err != nil {
		return fmt.Errorf("demo change: %w", err)
	}
	if c, err = a.changes.Submit(ctx, requester, c.ID, change.Step{Why: "ready for approval", Revision: c.Revision}); err != nil {
		return fmt.Errorf("demo change: %w", err)
	}
	for _, ap := range []struct {
		u  change.User
		as string
	}{{secOff, "security-officer"}, {owner, "system-owner"}} {
		if c, _, err = a.changes.Approve(ctx, ap.u, c.ID, change.Decision{As: ap.as, Note: "Reviewed the protocol and rollback plan.", Revision: c.Revision}); err != nil {
			return fmt.Errorf("demo change: approval as %s: %w", ap.as, err)
		}
	}
	run := change.TestRun{}
	for _, s := range c.TestProtocol {
		run.Results = append(run.Results, change.CaseResult{CaseID: s.CaseID, Result: change.ResultPass, Notes: "Passed on the staging copy of the VM."})
	}
	if _, err := a.changes.RecordTestRun(ctx, requester, c.ID, run); err != nil {
		return fmt.Errorf("demo change: test run: %w", err)
	}
	if c, err = a.changes.Schedule(ctx, requester, c.ID, nil, change.Step{Why: "next servers window", Revision: c.Revision}); err != nil {
		return fmt.Errorf("demo change: %w", err)
	}
	fmt.Fprintf(out, "Booked the demo change %s (%s): approved, tested, scheduled in the servers' weekly window.\n", c.ID, c.Title)
	return nil
}
