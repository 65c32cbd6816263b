package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
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
	approverPW := ""
	if n > 0 {
		fmt.Fprintf(out, "Seeded the demo clinic: %d assets.\n", n)
		if err := a.importDemoFeeds(ctx); err != nil {
			return err
		}
		if approverPW, err = a.seedDemoRisk(ctx, out); err != nil {
			return err
		}
	}
	if created {
		fmt.Fprintf(out, "\nDemo admin created. Sign in with:\n  username: admin\n  password: %s\n(shown once; change it with `patchward user reset-password --username admin`)\n\n", pw)
	}
	if approverPW != "" {
		fmt.Fprintf(out, "Demo approver created (approves risk acceptances and changes). Sign in with:\n  username: %s\n  password: %s\n(shown once; change it with `patchward user reset-password --username %[1]s`)\n\n", demoApprover, approverPW)
		// A normal change needs two approvers under the default policy,
		// neither of them its requester: the demo has a second one.
		ownerPW := auth.BootstrapPassword()
		if _, err := a.accounts.CreateUser(ctx, demoSeeder, auth.NewUser{Username: demoOwner,
			DisplayName: "Demo system owner (second approver of changes)", Role: auth.RoleApprover, Password: ownerPW}); err != nil {
			if errs.KindOf(err) != errs.Conflict {
				return fmt.Errorf("demo system owner: %w", err)
			}
		} else {
			fmt.Fprintf(out, "Demo system owner created (the second approval a normal change needs). Sign in with:\n  username: %s\n  password: %s\n(shown once)\n\n", demoOwner, ownerPW)
		}
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
// way an air-gapped clinic imports files, so findings appear on first run.
func (a *app) importDemoFeeds(ctx context.Context) error {
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
