package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentsim"
	"github.com/patchward/patchward/internal/errs"
)

// cmdSimulate runs N simulated agents against a server (internal/agentsim)
// for demos, the deployment tests and load tests. It installs nothing: the
// simulated hosts only speak the protocol.
func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o agentsim.Options
	fs.StringVar(&o.Server, "server", "", "server base URL (required)")
	fs.IntVar(&o.Hosts, "hosts", 10, "number of simulated agents")
	fs.StringVar(&o.HostPrefix, "prefix", "sim", "host name prefix")
	tokenFile := fs.String("tokens", "", "file with one enrollment token per line (one per host)")
	fs.StringVar(&o.AdminToken, "admin-token", os.Getenv("PATCHWARD_ADMIN_TOKEN"), "API token that may create enrollment tokens (env PATCHWARD_ADMIN_TOKEN)")
	fs.DurationVar(&o.CheckInInterval, "interval", 0, "check-in interval (default: the server's)")
	fs.Float64Var(&o.FailureRate, "failure-rate", 0, "fraction of jobs that fail (half of them rolled back)")
	fs.StringVar(&o.PackagesFrom, "packages-from", "", "dpkg status file the inventories are drawn from (default /var/lib/dpkg/status)")
	fs.IntVar(&o.Rounds, "rounds", 0, "check-ins per host (0: until interrupted)")
	fs.Uint64Var(&o.Seed, "seed", uint64(time.Now().UnixNano()), "random seed for inventories and failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Server == "" {
		return errs.E(errs.Invalid, "simulate needs --server URL")
	}
	if *tokenFile != "" {
		f, err := os.Open(*tokenFile)
		if err != nil {
			return fmt.Errorf("read --tokens: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if tok := strings.TrimSpace(sc.Text()); tok != "" {
				o.EnrollmentTokens = append(o.EnrollmentTokens, tok)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read --tokens: %w", err)
		}
	}
	o.Log = log
	stats, err := agentsim.Run(ctx, o)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(stats)
}
