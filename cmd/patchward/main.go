// Command patchward is the Patchward server and command-line interface:
// risk-based, audit-ready patch management for clinics and laboratories.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/errs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "patchward:", userMessage(err))
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		os.Exit(1)
	}
}

// exitCode lets a command choose its process exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// userMessage prefers the user-safe message of a kinded error.
func userMessage(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Kind != errs.Internal {
		return e.Message
	}
	return err.Error()
}

// globals are the flags every data-touching subcommand shares.
type globals struct {
	db       string
	auditKey string
	logLevel string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "patchward",
		Short:         "Risk-based, audit-ready patch management for clinics and clinical laboratories",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.db, "db", envOr("PATCHWARD_DB", "patchward.db"),
		"database: a SQLite file path or a postgres:// DSN (env PATCHWARD_DB)")
	pf.StringVar(&g.auditKey, "audit-key", envOr("PATCHWARD_AUDIT_KEY", ""),
		"Ed25519 key file that signs audit checkpoints (env PATCHWARD_AUDIT_KEY; default: beside a SQLite database, else required)")
	pf.StringVar(&g.logLevel, "log-level", envOr("PATCHWARD_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	root.AddCommand(newVersionCmd())
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	return root
}

// subcommands are registered by the files that define them, in a fixed list
// so main stays the one place that wires the CLI.
var subcommands = []func(*globals) *cobra.Command{
	newServeCmd,
	newMigrateCmd,
	newUserCmd,
	newAssetCmd,
	newAuditCmd,
	newScanCmd,
	newFeedsCmd,
	newPolicyCmd,
	newRiskCmd,
	newWorklistCmd,
	newExceptionCmd,
	withProposals(newChangeCmd),
	newCalendarCmd,
	newRolloutCmd,
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "patchward", version)
			return err
		},
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
