// Command patchward-agent is Patchward's endpoint agent: it enrolls with a
// one-time token, reports the host's inventory, and applies approved patch
// jobs with the OS package manager inside the maintenance window, with
// pre-checks, verification and rollback, reporting every step.
//
//	patchward-agent enroll --server URL --token T
//	patchward-agent run
//	patchward-agent inventory
//	patchward-agent version
//	patchward-agent simulate --server URL --hosts N
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/patchward/patchward/internal/agent"
	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "patchward-agent:", userMessage(err))
		}
		os.Exit(2)
	}
}

// userMessage prefers the user-safe message of a kinded error.
func userMessage(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Kind != errs.Internal {
		if e.Err != nil {
			return e.Error()
		}
		return e.Message
	}
	return err.Error()
}

const usage = `usage: patchward-agent [-config FILE] [-state-dir DIR] [-log-level LEVEL] COMMAND

commands:
  enroll --server URL --token T   register this host with a one-time token
  run                             check in, pull and run jobs until stopped
  inventory                       print what the agent would report (JSON)
  version                         print the agent and protocol versions
  simulate --server URL --hosts N run N simulated agents (demos, load tests)
`

// globals are the flags every command shares.
type globals struct {
	config   string
	stateDir string
	logLevel string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := globals{}
	fs := flag.NewFlagSet("patchward-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&g.config, "config", envOr("PATCHWARD_AGENT_CONFIG", agent.DefaultConfigPath), "configuration file (YAML)")
	fs.StringVar(&g.stateDir, "state-dir", "", "state directory (overrides the config file)")
	fs.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "patchward-agent %s (protocol %d, %s/%s, %s)\n", agent.Version, agentapi.ProtocolVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return nil
	case "enroll":
		return cmdEnroll(ctx, g, rest, stdout, stderr, log)
	case "run":
		return cmdRun(ctx, g, rest, stderr, log)
	case "inventory":
		return cmdInventory(ctx, g, rest, stdout, stderr)
	case "simulate":
		return cmdSimulate(ctx, rest, stdout, stderr, log)
	}
	fs.Usage()
	return errs.E(errs.Invalid, "unknown command %q", cmd)
}

func loadConfig(g globals) (agent.Config, error) {
	cfg, err := agent.LoadConfig(g.config, true)
	if err != nil {
		return cfg, err
	}
	if g.stateDir != "" {
		cfg.StateDir = g.stateDir
	}
	return cfg, nil
}

func cmdEnroll(ctx context.Context, g globals, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "server base URL (default: the config file's)")
	token := fs.String("token", "", "one-time enrollment token (or env PATCHWARD_ENROLL_TOKEN, which ps cannot show)")
	force := fs.Bool("force", false, "enroll again with a new key even if already enrolled")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	if *server == "" {
		*server = cfg.Server
	}
	if *token == "" {
		*token = os.Getenv("PATCHWARD_ENROLL_TOKEN")
	}
	if *server == "" || *token == "" {
		return errs.E(errs.Invalid, "enroll needs --server URL and --token T")
	}
	st := agent.StateDir{Dir: cfg.StateDir}
	if id, err := st.LoadIdentity(); err == nil && !*force {
		return errs.E(errs.Conflict, "already enrolled as agent %s with %s; use --force to enroll again", id.AgentID, id.Server)
	}
	if *force {
		if err := st.RemoveKey(); err != nil {
			return err
		}
	}
	hc, err := agent.HTTPClient(cfg)
	if err != nil {
		return err
	}
	inv, _ := agent.NewHostCollector(cfg, agent.ExecRunner{}).Collect(ctx)
	id, err := agent.Enroll(ctx, st, *server, *token, inv.Facts, hc)
	if err != nil {
		return err
	}
	log.Info("enrolled", "agent", id.AgentID, "asset", id.AssetID, "server", *server)
	fmt.Fprintf(stdout, "enrolled as agent %s (asset %s)\n", id.AgentID, id.AssetID)
	return nil
}

// newAgent builds the daemon from config and the enrollment state.
func newAgent(ctx context.Context, cfg agent.Config, log *slog.Logger) (*agent.Agent, error) {
	st := agent.StateDir{Dir: cfg.StateDir}
	if err := st.Init(); err != nil {
		return nil, err
	}
	id, err := st.LoadIdentity()
	if err != nil {
		return nil, err
	}
	key, err := st.LoadKey()
	if err != nil {
		return nil, err
	}
	server := id.Server
	if cfg.Server != "" {
		server = cfg.Server // the administrator moved the server
	}
	hc, err := agent.HTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	client, err := agent.NewClient(server, id.AgentID, key, hc, nil)
	if err != nil {
		return nil, err
	}
	journal, err := agent.OpenJournal(st.JobsDir())
	if err != nil {
		return nil, err
	}
	run := agent.ExecRunner{}
	col := agent.NewHostCollector(cfg, run)
	inv, err := col.Collect(ctx)
	if err != nil {
		return nil, fmt.Errorf("first inventory: %w", err)
	}
	pm := agent.ManagerFor(inv.Facts.OSID, inv.OSIDLike, cfg, run)
	log.Info("agent starting", "version", agent.Version, "agent", id.AgentID, "server", server, "os", inv.Facts.OSID, "package_manager", pm.Name(), "packages", len(inv.Packages))
	return agent.New(cfg, id, client, journal, col, pm, run, log)
}

func cmdRun(ctx context.Context, g globals, args []string, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	return runService(ctx, log, func(ctx context.Context) error {
		a, err := newAgent(ctx, cfg, log)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	})
}

func cmdInventory(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	inv, err := agent.NewHostCollector(cfg, agent.ExecRunner{}).Collect(ctx)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
