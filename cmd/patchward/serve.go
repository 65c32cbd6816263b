package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/agentapi/agentserver"
	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	pwmatch "github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/notify"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/server"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/web"
)

type serveFlags struct {
	addr         string
	demo         bool
	migrate      bool
	tlsCert      string
	tlsKey       string
	checkpoints  time.Duration
	feedCheck    time.Duration
	feedsConfig  string
	riskEvery    time.Duration
	rolloutEvery time.Duration
	// smtpURL, notifyFrom and notifyTo send e-mail, and webhooks post to
	// chat, when a rollout halts or an emergency proposal appears.
	smtpURL, notifyFrom, notifyTo string
	webhooks                      string
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Patchward server (web UI, JSON API, metrics)",
		Long: `Run the Patchward server.

With --demo, Patchward creates the schema if needed, seeds a demo clinic with a
laboratory on an empty database, imports real advisories for its devices as
local feeds, prioritises the findings, records an approved risk acceptance for
its infusion pumps, and prints the passwords of the demo admin and the demo
approver once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), g, f, cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", envOr("PATCHWARD_ADDR", "127.0.0.1:8080"), "listen address (env PATCHWARD_ADDR)")
	fl.BoolVar(&f.demo, "demo", false, "seed a demo clinic on an empty database and create a demo admin (implies --migrate)")
	fl.BoolVar(&f.migrate, "migrate", false, "apply pending schema migrations before serving")
	fl.StringVar(&f.tlsCert, "tls-cert", envOr("PATCHWARD_TLS_CERT", ""), "TLS certificate file (serve HTTPS)")
	fl.StringVar(&f.tlsKey, "tls-key", envOr("PATCHWARD_TLS_KEY", ""), "TLS private key file")
	fl.DurationVar(&f.checkpoints, "checkpoint-every", time.Minute, "how often to sign an audit checkpoint when the log grew")
	fl.DurationVar(&f.feedCheck, "feed-check-every", time.Minute, "how often to look for feed versions synced elsewhere and re-match")
	fl.StringVar(&f.smtpURL, "smtp", envOr("PATCHWARD_SMTP_URL", ""), "SMTP relay for notifications: smtp://[user:pass@]host[:port], smtp+starttls://… or smtps://… (env PATCHWARD_SMTP_URL); none: halts are only logged and audited")
	fl.StringVar(&f.notifyFrom, "notify-from", envOr("PATCHWARD_NOTIFY_FROM", ""), "sender address of notifications (env PATCHWARD_NOTIFY_FROM)")
	fl.StringVar(&f.notifyTo, "notify-to", envOr("PATCHWARD_NOTIFY_TO", ""), "comma-separated recipients of notifications (env PATCHWARD_NOTIFY_TO)")
	fl.StringVar(&f.webhooks, "notify-webhook", envOr("PATCHWARD_NOTIFY_WEBHOOKS", ""), "comma-separated webhook URLs (Slack, Mattermost, Teams workflow, pager) that get the same notifications as JSON (env PATCHWARD_NOTIFY_WEBHOOKS); set PATCHWARD_NOTIFY_WEBHOOK_SECRET to sign them")
	fl.DurationVar(&f.riskEvery, "rescore-every", 15*time.Minute, "how often to re-score every finding and expire exceptions that ran out (changes are re-scored at once)")
	fl.DurationVar(&f.rolloutEvery, "rollout-every", 30*time.Second, "how often the rollout engine advances active rollouts (a new agent inventory also wakes it)")
	fl.StringVar(&f.feedsConfig, "feeds", envOr(envFeedsConfig, "feeds.yaml"),
		"vulnerability feed configuration (env "+envFeedsConfig+"); none configured if the file is absent; see docs/feeds.example.yaml")
	return cmd
}

// app is every service the server runs, built once from flags.
type app struct {
	db        *store.DB
	inventory *inventory.Service
	accounts  *auth.Service
	audit     *audit.Service
	// checkpoints signs audit checkpoints in the background.
	checkpoints *audit.Checkpointer
	findings    *pwmatch.Service
	// watcher keeps findings in step with the feeds.
	watcher *pwmatch.Watcher
	feeds   *feeds.Service
	fleet   *fleet.Service
	// policies keeps the policy in force; risk scores findings under it
	// and rescorer keeps scores and SLA clocks current.
	policies *policy.Service
	risk     *risk.Service
	rescorer *risk.Watcher
	// changes keeps change records, approvals, test runs and evidence.
	changes *change.Service
	// rollouts deploys scheduled changes ring by ring through fleet jobs.
	rollouts *deploy.Rollouts
	handler  http.Handler
}

// appOptions are the settings buildApp needs beyond the database.
type appOptions struct {
	// Notifier tells people when a rollout halts or an emergency proposal
	// appears (nil: log and audit only).
	Notifier deploy.Notifier
}

func buildApp(db *store.DB, signer *audit.Signer, log *slog.Logger, opt appOptions) (*app, error) {
	a := &app{db: db}
	a.inventory = inventory.NewService(db.Inventory(), nil)
	a.policies = policy.NewService(db.Policies(), nil)
	a.accounts = auth.NewService(db.Auth(), auth.Options{PolicyGrants: a.policies.Grants})
	a.audit = audit.NewService(db.Audit(), signer.Verifier(), nil)
	a.checkpoints = audit.NewCheckpointer(db.Audit(), signer, nil, log)
	a.findings = pwmatch.NewService(db.Findings(), nil)
	a.watcher = pwmatch.NewWatcher(a.findings, db.Feeds(), feedFingerprint(db.Feeds()), log)
	a.risk = risk.NewService(db.Risk(), a.policies, pwmatch.ServiceIntel{Svc: a.findings},
		risk.Options{Targets: risk.Targets{Findings: a.findings, Inventory: a.inventory}, Log: log})
	a.rescorer = risk.NewWatcher(a.risk, log)
	a.changes = change.NewService(db.Changes(), a.policies, db.Risk(), nil)
	// A finding that moves tier (entered KEV, exception ended) moves the
	// changes that would fix it.
	proposals := change.NewProposals(db.Proposals(), a.policies)
	var alerts *change.ProposalAlerts
	if opt.Notifier != nil {
		alerts = change.NewProposalAlerts(proposals, db.Changes(), a.audit, opt.Notifier, nil)
		notices := change.NewNotices(a.changes, opt.Notifier)
		a.changes.OnMove(func(ctx context.Context, c change.Change, from change.State) {
			// Off the request: a slow relay must not hold up an approval.
			go func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				if err := notices.Moved(ctx, c, from); err != nil {
					log.Error("could not send a change notice", "change", c.ID, "state", c.State, "err", err)
				}
			}()
		})
	}
	a.risk.OnRecompute(func(ctx context.Context, assetID string, sum risk.Summary) {
		rerate(ctx, a.changes, assetID, log)
		if alerts == nil || sum.Reprioritized == 0 {
			return
		}
		if n, err := alerts.Check(ctx); err != nil {
			log.Error("could not alert on emergency proposals; retrying at the next re-prioritisation", "sent", n, "err", err)
		} else if n > 0 {
			log.Info("emergency proposals announced", "count", n)
		}
	})
	a.findings.OnChange(a.rescorer.Notify)
	a.risk.OnChange(a.rescorer.Notify)
	a.policies.OnApply(func(policy.Version) { a.rescorer.Notify("") })
	a.feeds = feeds.NewService(db.Feeds(), feeds.Options{Fetcher: &feeds.Fetcher{UserAgent: "patchward/" + version}, Log: log})
	windows := fleet.NewAssetWindows(a.inventory, 0, nil)
	// Assets whose window is a policy window's name get its dated openings.
	windows.Named = fleet.PolicyWindows{Current: func(ctx context.Context) (*policy.Compiled, error) {
		c, _, err := a.policies.Current(ctx)
		return c, err
	}}
	kick := &rolloutKick{}
	a.fleet = fleet.NewService(db.Fleet(), fleet.Options{Log: log, Listener: inventoryListeners{rematch{a.findings, log}, kick}, JobListener: kick, Windows: windows})
	a.rollouts = deploy.NewRollouts(db.Rollouts(), a.changes, a.fleet, a.policies, deploy.RolloutOptions{Log: log, Notifier: opt.Notifier})
	kick.r = a.rollouts
	apiSvc := &api.API{Inventory: a.inventory, Accounts: a.accounts, Audit: a.audit, Findings: a.findings,
		Advisories: db.Feeds(), Evaluator: a.findings, Fleet: a.fleet, Policies: a.policies, Risk: a.risk,
		Changes: a.changes, Rollouts: a.rollouts, Proposals: proposals, Calendar: &api.PolicyCalendar{Policies: a.policies, Inventory: a.inventory, Changes: a.changes, Rollouts: a.rollouts}, Log: log, Version: version}
	ui, err := web.New(web.Config{Accounts: a.accounts, Inventory: a.inventory, Audit: auditEntries{a.audit}, Importer: csvImporter{a.inventory},
		Findings: a.findings, Advisories: db.Feeds(), Risk: a.risk, Exceptions: a.risk, Policy: a.policies, Changes: deployingChanges{a.changes, a.rollouts}, FeedTokens: a.accounts,
		Rollouts: a.rollouts, Jobs: a.fleet, Proposals: proposals,
		ImportKinds: append(web.DefaultImportKinds(), web.ImportKind{Name: "nmap", Label: "nmap scan (XML from nmap -oX)"}), Log: log})
	if err != nil {
		return nil, fmt.Errorf("build web UI: %w", err)
	}
	reg := prometheus.NewRegistry()
	a.handler = server.New(server.Config{Log: log, DB: db, Resolver: a.accounts,
		API: api.Handler(apiSvc.Routes(), log), Web: ui.Handler(), Agent: agentserver.Handler(a.fleet, log),
		Registry: reg, Version: version})
	return a, nil
}

// rerate carries findings' new tiers to the changes that fix them; a
// failure is logged, and the next recompute tries again.
func rerate(ctx context.Context, changes *change.Service, assetID string, log *slog.Logger) {
	moved, err := changes.Rerate(ctx, assetID)
	if err != nil {
		log.Error("re-rating changes failed", "err", err)
	}
	for _, m := range moved {
		log.Info("change re-rated", "change", m.ChangeID, "from", m.Before.Tier, "to", m.After.Tier)
	}
}

// notifiers builds the notification channels the flags name: nil when
// none, so halts and proposals are only logged and audited.
func notifiers(f *serveFlags) (notify.Notifier, error) {
	var all notify.All
	if f.smtpURL != "" {
		m, err := notify.NewMailer(f.smtpURL, f.notifyFrom, strings.Split(f.notifyTo, ","))
		if err != nil {
			return nil, err
		}
		all = append(all, m)
	}
	for _, u := range strings.Split(f.webhooks, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		w, err := notify.NewWebhook(u, os.Getenv("PATCHWARD_NOTIFY_WEBHOOK_SECRET"))
		if err != nil {
			return nil, err
		}
		all = append(all, w)
	}
	switch len(all) {
	case 0:
		return nil, nil
	case 1:
		return all[0], nil
	}
	return all, nil
}

func serve(ctx context.Context, g *globals, f *serveFlags, cmd *cobra.Command) error {
	log := slog.Default()
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	db, err := store.Open(ctx, g.db, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if f.demo || f.migrate {
		if applied, err := db.Migrate(ctx); err != nil {
			return err
		} else if len(applied) > 0 {
			log.Info("applied schema migrations", "count", len(applied))
		}
	}
	if err := db.CheckSchema(ctx); err != nil {
		return err
	}
	if err := db.Optimize(ctx); err != nil {
		log.Warn("could not refresh query planner statistics", "err", err)
	}
	keyPath, err := g.auditKeyPath()
	if err != nil {
		return err
	}
	signer, created, err := audit.LoadOrCreateKey(keyPath)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(cmd.OutOrStdout(), "Created the audit signing key %s.\nRecord its public key where database administrators cannot change it:\n  %s\n", keyPath, signer.Verifier().Key())
	}
	var opt appOptions
	if opt.Notifier, err = notifiers(f); err != nil {
		return err
	}
	a, err := buildApp(db, signer, log, opt)
	if err != nil {
		return err
	}
	if f.demo {
		if err := seedDemo(ctx, a, cmd.OutOrStdout()); err != nil {
			return err
		}
	}
	_, fromEnv := os.LookupEnv(envFeedsConfig)
	feedCfg, err := feeds.LoadConfig(f.feedsConfig, fromEnv || cmd.Flags().Changed("feeds"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute,
		WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Patchward %s serving on %s://%s (database: %s)\n", version, scheme, ln.Addr(), db.Engine())

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		_ = a.checkpoints.Run(bg, f.checkpoints)
	}()
	defer func() { stopBG(); <-bgDone }()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = a.watcher.Run(bg, f.feedCheck)
	}()
	defer func() { stopBG(); <-watchDone }()
	rolloutDone := make(chan struct{})
	go func() {
		defer close(rolloutDone)
		_ = a.rollouts.Run(bg, f.rolloutEvery)
	}()
	defer func() { stopBG(); <-rolloutDone }()
	rescoreDone := make(chan struct{})
	go func() {
		defer close(rescoreDone)
		_ = a.rescorer.Run(bg, f.riskEvery)
	}()
	defer func() { stopBG(); <-rescoreDone }()
	if done := a.startFeeds(bg, feedCfg, log); done != nil {
		defer func() { stopBG(); <-done }()
	}

	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			errc <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// auditEntries adapts the audit service to the UI's listing interface.
type auditEntries struct{ svc *audit.Service }

func (a auditEntries) Entries(ctx context.Context, q web.AuditQuery) ([]audit.Entry, int, error) {
	p, err := a.svc.List(ctx, audit.Query{ObjectType: q.ObjectType, ObjectIDs: q.ObjectIDs, Actor: q.Actor,
		Action: q.Action, Limit: q.Limit, Offset: q.Offset})
	return p.Entries, p.Total, err
}

// csvImporter adapts the inventory import to the UI's import page.
type csvImporter struct{ inv *inventory.Service }

func (c csvImporter) ImportCSV(ctx context.Context, actor audit.Actor, r io.Reader, opt web.ImportOptions) (web.ImportResult, error) {
	var (
		rep inventory.ImportReport
		err error
	)
	switch kind := inventory.ImportKind(opt.Kind); {
	case opt.Kind == "nmap":
		rep, err = c.inv.ImportNmap(ctx, actor, r, opt.Name, opt.DryRun)
	case slices.Contains(inventory.ImportKinds, kind):
		rep, err = c.inv.ImportCSV(ctx, actor, r, inventory.ImportOptions{Kind: kind, Name: opt.Name, DryRun: opt.DryRun})
	default:
		return web.ImportResult{}, errs.E(errs.Invalid, "unknown import kind %q", opt.Kind)
	}
	res := web.ImportResult{ErrorCount: rep.ErrorCount}
	for _, row := range rep.Preview {
		ir := web.ImportRow{Line: row.Row, Action: row.Action, AssetID: row.AssetID, Name: row.AssetName}
		for _, ch := range row.Changes {
			ir.Changes = append(ir.Changes, web.ImportChange{Field: ch.Field, Old: ch.Old, New: ch.New})
		}
		res.Rows = append(res.Rows, ir)
	}
	for _, e := range rep.Errors {
		res.Errors = append(res.Errors, web.ImportError{Line: e.Row, Column: e.Column, Message: e.Message})
	}
	return res, err
}

// feedFingerprint summarises the current feed versions; it changes whenever
// any feed's current version does.
func feedFingerprint(r feeds.Reader) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		st, err := r.FeedStatus(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, s := range st {
			fmt.Fprintf(&b, "%s=%d;", s.Feed, s.VersionID)
		}
		return b.String(), nil
	}
}

// startFeeds runs the configured feeds on their schedules; a sync that
// stores a new version kicks the findings watcher at once. It returns nil
// when no feed is configured.
func (a *app) startFeeds(ctx context.Context, cfg feeds.Config, log *slog.Logger) <-chan struct{} {
	if len(cfg.Feeds) == 0 {
		log.Info("no vulnerability feeds configured; import files with `patchward feeds sync --from`")
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = feeds.NewScheduler(kickingSyncer{a.feeds, a.watcher}, cfg.Feeds, nil, log).Run(ctx)
	}()
	return done
}

// kickingSyncer tells the findings watcher about every new feed version.
type kickingSyncer struct {
	*feeds.Service
	w *pwmatch.Watcher
}

func (k kickingSyncer) Sync(ctx context.Context, actor audit.Actor, f feeds.Feed, opt feeds.SyncOptions) (feeds.Result, error) {
	r, err := k.Service.Sync(ctx, actor, f, opt)
	if err == nil && r.Outcome == feeds.Updated {
		k.w.Kick()
	}
	return r, err
}

// deployingChanges is the change service as the UI uses it: starting a
// change starts its rollout.
type deployingChanges struct {
	*change.Service
	rollouts *deploy.Rollouts
}

func (d deployingChanges) Start(ctx context.Context, u change.User, id string, st change.Step) (change.Change, error) {
	if _, err := d.rollouts.Start(ctx, u, id, st.Why); err != nil {
		return change.Change{}, err
	}
	return d.Service.Get(ctx, id)
}

// rematch re-evaluates an asset when its agent reports a new inventory.
type rematch struct {
	findings *pwmatch.Service
	log      *slog.Logger
}

func (r rematch) InventoryChanged(ctx context.Context, assetID string) {
	if _, err := r.findings.EvaluateHost(ctx, assetID); err != nil {
		r.log.ErrorContext(ctx, "re-matching an agent's new inventory failed", "asset", assetID, "err", err)
	}
}
