package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
)

// envFeedsConfig names the feed configuration file when --config is not
// given.
const envFeedsConfig = "PATCHWARD_FEEDS"

// envSyncHold is for the crash-safety test only: when set, a sync prints
// syncHoldLine and blocks inside its swap transaction, after writing every
// row and before committing, until the process is killed.
const (
	envSyncHold  = "PATCHWARD_TEST_SYNC_HOLD"
	syncHoldLine = "patchward-test: holding the swap transaction open"
)

// feedsConfigFlag registers --config; the file must exist only when the
// flag or the environment variable names it, because with no feeds.yaml a
// clinic simply has no feeds configured.
func feedsConfigFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "config", envOr(envFeedsConfig, "feeds.yaml"),
		"feed configuration file (env "+envFeedsConfig+"); see docs/feeds.example.yaml")
}

func loadFeedsConfig(cmd *cobra.Command, path string) (feeds.Config, error) {
	_, fromEnv := os.LookupEnv(envFeedsConfig)
	return feeds.LoadConfig(path, cmd.Flags().Changed("config") || fromEnv)
}

func newFeedsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feeds",
		Short: "Sync vulnerability feeds (OSV, NVD, KEV, EPSS, CSAF) and show their status",
	}
	cmd.AddCommand(newFeedsSyncCmd(g), newFeedsStatusCmd(g))
	return cmd
}

type feedsSyncFlags struct {
	config string
	names  []string
	from   string
	kind   string
	force  bool
}

func newFeedsSyncCmd(g *globals) *cobra.Command {
	f := &feedsSyncFlags{}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Fetch, validate and swap in new versions of the configured feeds",
		Long: `Fetch each configured feed (or those named with --feed), incrementally where the
source allows, parse every record, and only then swap the new version in, in one
transaction. A broken or truncated feed changes nothing and says why.

For an air-gapped clinic, --from imports a local file, directory or archive:
  patchward feeds sync --from /media/usb/kev.json --kind kev
  patchward feeds sync --from /media/usb/Debian-all.zip --kind osv --feed osv-debian
With --from, --feed names the feed to replace (default: "manual-KIND"); a feed
configured under that name keeps its settings but reads from --from this once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFeedsSync(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	feedsConfigFlag(cmd, &f.config)
	fl.StringSliceVar(&f.names, "feed", nil, "sync only this feed (repeatable)")
	fl.StringVar(&f.from, "from", "", "import this local file, directory or archive instead of the configured source")
	fl.StringVar(&f.kind, "kind", "", "the kind of the --from data: "+kindNames())
	fl.BoolVar(&f.force, "force", false, "download in full and store a fresh version even if unchanged; accept a version that shrank by more than half")
	return cmd
}

func kindNames() string {
	s := make([]string, len(feeds.Kinds))
	for i, k := range feeds.Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// selectFeeds resolves the flags to the feeds to sync.
func selectFeeds(cfg feeds.Config, f *feedsSyncFlags) ([]feeds.Feed, error) {
	byName := map[string]feeds.Feed{}
	for _, fd := range cfg.Feeds {
		byName[fd.Name] = fd
	}
	if f.from != "" {
		if len(f.names) > 1 {
			return nil, errs.E(errs.Invalid, "--from imports into one feed; give at most one --feed")
		}
		kind := feeds.Kind(f.kind)
		name := ""
		if len(f.names) == 1 {
			name = f.names[0]
		}
		fd, configured := byName[name]
		switch {
		case kind == "" && configured:
			kind = fd.Kind
		case kind == "":
			return nil, errs.E(errs.Invalid, "--from needs --kind (%s)", kindNames())
		case !kind.Valid():
			return nil, errs.E(errs.Invalid, "unknown --kind %q (%s)", f.kind, kindNames())
		case configured && fd.Kind != kind:
			return nil, errs.E(errs.Invalid, "feed %q is configured as %s, not %s", name, fd.Kind, kind)
		}
		if !configured {
			if name == "" {
				name = "manual-" + string(kind)
			}
			fd = feeds.Feed{Name: name, Kind: kind, Interval: feeds.DefaultInterval, Timeout: feeds.DefaultTimeout,
				MaxBytes: feeds.DefaultMaxBytes}
			if !feeds.ValidName(name) {
				return nil, errs.E(errs.Invalid, "--feed %q is not a valid feed name: lower-case letters, digits, '.', '_' or '-'", name)
			}
		}
		fd.URL, fd.Path = "", f.from
		return []feeds.Feed{fd}, nil
	}
	if f.kind != "" {
		return nil, errs.E(errs.Invalid, "--kind goes with --from")
	}
	if len(cfg.Feeds) == 0 {
		return nil, errs.E(errs.Invalid, "no feeds are configured; list them in feeds.yaml (see docs/feeds.example.yaml) or import a file with --from FILE --kind KIND")
	}
	if len(f.names) == 0 {
		return cfg.Feeds, nil
	}
	var out []feeds.Feed
	for _, n := range f.names {
		fd, ok := byName[n]
		if !ok {
			return nil, errs.E(errs.NotFound, "feed %q is not configured", n)
		}
		out = append(out, fd)
	}
	return out, nil
}

func runFeedsSync(cmd *cobra.Command, g *globals, f *feedsSyncFlags) error {
	ctx := cmd.Context()
	cfg, err := loadFeedsConfig(cmd, f.config)
	if err != nil && f.from == "" {
		return err
	}
	list, err := selectFeeds(cfg, f)
	if err != nil {
		return err
	}
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	opt := feeds.Options{Fetcher: &feeds.Fetcher{UserAgent: "patchward/" + version}}
	if os.Getenv(envSyncHold) != "" {
		out := cmd.OutOrStdout()
		opt.BeforeCommit = func(ctx context.Context, feed string) error {
			fmt.Fprintln(out, syncHoldLine)
			<-ctx.Done()
			return ctx.Err()
		}
	}
	svc := feeds.NewService(db.Feeds(), opt)
	w := cmd.OutOrStdout()
	failed := 0
	for _, fd := range list {
		start := time.Now()
		res, err := svc.Sync(ctx, cliActor(), fd, feeds.SyncOptions{Force: f.force})
		if err != nil {
			failed++
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: FAILED: %s\n", fd.Name, strings.TrimPrefix(feeds.PublicMessage(err), "feed "+fd.Name+": "))
			if errs.KindOf(err) == errs.Internal {
				slog.Error("feed sync failed", "feed", fd.Name, "err", err)
			}
			continue
		}
		fmt.Fprintf(w, "%s: %s\n", fd.Name, describeResult(res, time.Since(start)))
	}
	if failed > 0 {
		return exitCode(1)
	}
	return nil
}

func describeResult(r feeds.Result, took time.Duration) string {
	var counts []string
	for _, c := range []struct {
		n    int
		what string
	}{{r.Advisories, "advisories"}, {r.KEV, "KEV entries"}, {r.EPSS, "EPSS scores"}} {
		if c.n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	s := fmt.Sprintf("%s, version %d", r.Outcome, r.Version)
	if len(counts) > 0 {
		s += " (" + strings.Join(counts, ", ") + ")"
	}
	if r.Incremental {
		s += ", built incrementally"
	}
	if r.Duplicates > 0 {
		s += fmt.Sprintf(", %d duplicate records (the last one read kept)", r.Duplicates)
	}
	return s + fmt.Sprintf(" in %s", took.Round(time.Millisecond))
}

func newFeedsStatusCmd(g *globals) *cobra.Command {
	var (
		config string
		format string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each feed's current version, record counts and last sync",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "table" && format != "json" {
				return errs.E(errs.Invalid, "--format must be table or json")
			}
			cfg, err := loadFeedsConfig(cmd, config)
			if err != nil {
				return err
			}
			db, err := g.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Feeds().FeedStatus(ctx)
			if err != nil {
				return err
			}
			st = withConfigured(st, cfg)
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return printFeedStatus(cmd.OutOrStdout(), st)
		},
	}
	feedsConfigFlag(cmd, &config)
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

// withConfigured adds configured feeds that were never synced, so status
// shows what is expected as well as what is there.
func withConfigured(st []feeds.Status, cfg feeds.Config) []feeds.Status {
	for _, fd := range cfg.Feeds {
		if !slices.ContainsFunc(st, func(s feeds.Status) bool { return s.Feed == fd.Name }) {
			st = append(st, feeds.Status{Feed: fd.Name, Kind: fd.Kind, Source: fd.Source()})
		}
	}
	slices.SortFunc(st, func(a, b feeds.Status) int { return strings.Compare(a.Feed, b.Feed) })
	return st
}

func printFeedStatus(w io.Writer, st []feeds.Status) error {
	if len(st) == 0 {
		_, err := fmt.Fprintln(w, "No feeds configured or synced. See docs/feeds.example.yaml, or import a file with `patchward feeds sync --from FILE --kind KIND`.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tKIND\tVERSION\tRECORDS\tLAST SUCCESS\tLAST ATTEMPT\tSTATUS")
	when := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	}
	for _, s := range st {
		records := s.Advisories + s.KEV + s.EPSS
		state := "ok"
		switch {
		case s.LastError != "":
			state = "FAILED: " + s.LastError
		case s.Version == 0:
			state = "never synced"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.Feed, s.Kind, s.Version, records, when(s.LastSuccessAt), when(s.LastAttemptAt), state)
	}
	return tw.Flush()
}
