package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/store"
)

// withRollouts opens the database and runs fn with the rollout engine
// built as the server builds it (change control, the agents' job queue
// with the assets' windows, the policy in force).
func (g *globals) withRollouts(ctx context.Context, fn func(db *store.DB, ro *deploy.Rollouts) error) error {
	return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
		return fn(db, rollouts(db, svc))
	})
}

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show and steer the rollouts that deploy changes ring by ring",
		Long: `A change's rollout deploys it wave by wave, one wave per policy ring, each
inside the assets' maintenance windows and only after the previous wave met
its gate. These commands show rollouts, their deployment logs and the assets
that did not converge, and let an operator (--as) pause, resume, abort or
roll back a rollout and record the outcome of a manual task. Every action
says why and is audited; the server's engine carries on from there.`,
	}
	cmd.AddCommand(newRolloutShowCmd(g), newRolloutListCmd(g), newRolloutManualCmd(g), newRolloutLogCmd(g), newRolloutNotConvergedCmd(g))
	for _, op := range []struct {
		name, short string
		do          func(*deploy.Rollouts, context.Context, change.User, string, string) (deploy.Rollout, error)
	}{
		{"pause", "Pause a running rollout: no new wave or job starts; queued jobs still run", (*deploy.Rollouts).Pause},
		{"resume", "Resume a paused or halted rollout (a halted wave's failed assets are retried)", (*deploy.Rollouts).Resume},
		{"abort", "Abort a rollout for good and cancel its change (installed updates stay)", (*deploy.Rollouts).Abort},
		{"rollback", "Roll back every asset the rollout changed (--why: which trigger fired)", (*deploy.Rollouts).RollBack},
	} {
		cmd.AddCommand(newRolloutOpCmd(g, op.name, op.short, op.do))
	}
	return cmd
}

func newRolloutOpCmd(g *globals, name, short string, do func(*deploy.Rollouts, context.Context, change.User, string, string) (deploy.Rollout, error)) *cobra.Command {
	var as, why string
	cmd := &cobra.Command{
		Use:   name + " ROLLOUT_ID --why TEXT --as USERNAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(why) == "" {
				return errs.E(errs.Invalid, "--why is required: say why, for the audit trail")
			}
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(db *store.DB, ro *deploy.Rollouts) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeOperate)
				if err != nil {
					return err
				}
				out, err := do(ro, ctx, u, args[0], why)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "rollout %s is %s: %s\n", out.ID, out.State, out.Reason)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "the Patchward operator acting (required)")
	cmd.Flags().StringVar(&why, "why", "", "why (required)")
	return cmd
}

func newRolloutShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CHANGE_ID",
		Short: "Show a change's rollout: waves with their gates' verdicts, and each asset's item",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(_ *store.DB, ro *deploy.Rollouts) error {
				r, err := ro.ByChange(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), r)
				}
				return printRollout(cmd.OutOrStdout(), r)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printRollout(w io.Writer, r deploy.Rollout) error {
	fmt.Fprintf(w, "rollout %s of change %s: %s", r.ID, r.ChangeID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintf(w, "\ntype %s, emergency %v, started by %s at %s\n", r.ChangeType, r.Emergency, r.CreatedBy, r.CreatedAt.UTC().Format(time.RFC3339))
	for _, wv := range r.Waves {
		fmt.Fprintf(w, "\nwave %d, ring %s: %s", wv.Index, wv.Ring, wv.State)
		if wv.Verdict != "" {
			fmt.Fprintf(w, ", gate %s: %s", wv.Verdict, wv.Reason)
		}
		fmt.Fprintf(w, "\n")
		if len(wv.Items) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ITEM\tASSET\tKIND\tPLANNED START\tJOB\tSTATE\tOUTCOME")
		for _, it := range wv.Items {
			outcome := it.Outcome
			if it.Note != "" {
				outcome = strings.TrimSpace(outcome + " " + it.Note)
			}
			if it.RollbackState != deploy.RollbackNone {
				outcome = strings.TrimSpace(outcome + " (rollback " + string(it.RollbackState) + ")")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.AssetName, it.Kind, stamp(it.PlannedStart), orDash(it.JobID), it.State, orDash(outcome))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func newRolloutListCmd(g *globals) *cobra.Command {
	var (
		state  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rollouts, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := deploy.RolloutFilter{Limit: 1000}
			switch state {
			case "":
			case "active":
				f.States = deploy.ActiveRolloutStates
			default:
				f.States = []deploy.RolloutState{deploy.RolloutState(state)}
			}
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(_ *store.DB, ro *deploy.Rollouts) error {
				list, err := ro.List(ctx, f)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), nonNilSlice(list))
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ROLLOUT\tCHANGE\tSTATE\tSTARTED\tREASON")
				for _, r := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.ChangeID, r.State, r.CreatedAt.UTC().Format(time.RFC3339), orDash(r.Reason))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only rollouts in this state, or active")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if state == "" || state == "active" {
			return nil
		}
		for _, s := range []deploy.RolloutState{deploy.RolloutRunning, deploy.RolloutPaused, deploy.RolloutHalted, deploy.RolloutRollingBack,
			deploy.RolloutRolledBack, deploy.RolloutAwaitingCompletion, deploy.RolloutCompleted, deploy.RolloutAborted} {
			if string(s) == state {
				return nil
			}
		}
		return errs.E(errs.Invalid, "--state %q: want active or a rollout state (running, paused, halted, rolling_back, rolled_back, awaiting_completion, completed, aborted)", state)
	}
	return cmd
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func newRolloutManualCmd(g *globals) *cobra.Command {
	var as, outcome, note string
	cmd := &cobra.Command{
		Use:   "manual ROLLOUT_ID ITEM_ID --outcome done|failed --note TEXT --as USERNAME",
		Short: "Record the outcome of an open manual task (a vendor step or an asset without an agent)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(db *store.DB, ro *deploy.Rollouts) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeOperate)
				if err != nil {
					return err
				}
				r, err := ro.RecordManual(ctx, u, args[0], args[1], outcome, note)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "recorded %s for item %s; rollout %s is %s\n", outcome, args[1], r.ID, r.State)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward operator recording it (required)")
	fl.StringVar(&outcome, "outcome", "", "done or failed (required)")
	fl.StringVar(&note, "note", "", "what was done, by whom, what was seen (required)")
	return cmd
}

func newRolloutLogCmd(g *globals) *cobra.Command {
	var (
		asset  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "log CHANGE_ID",
		Short: "A change's deployment log: per asset the patches, times, operator or agent, validation steps and deviations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(db *store.DB, ro *deploy.Rollouts) error {
				if _, err := changeService(db).Get(ctx, args[0]); err != nil {
					return err
				}
				log, err := ro.DeploymentLog(ctx, args[0], asset)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), nonNilSlice(log))
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "AT\tASSET\tACTOR\tEVENT\tPATCHES\tSTEPS\tDEVIATION\tDETAIL")
				for _, e := range log {
					pkgs := make([]string, len(e.Packages))
					for i, p := range e.Packages {
						pkgs[i] = p.Name + " " + p.TargetVersion
					}
					steps := make([]string, len(e.Steps))
					for i, s := range e.Steps {
						res := "ok"
						if !s.OK {
							res = fmt.Sprintf("failed (exit %d)", s.ExitCode)
						}
						steps[i] = s.Name + " " + res
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.AssetID, e.Actor, e.Event,
						orDash(strings.Join(pkgs, ", ")), orDash(strings.Join(steps, ", ")), orDash(e.Deviation), orDash(e.Detail))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&asset, "asset", "", "only this asset's log (asset ID)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRolloutNotConvergedCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "not-converged CHANGE_ID",
		Short: "The change's assets that no newer inventory shows at the target versions yet — the retry list — and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRollouts(ctx, func(_ *store.DB, ro *deploy.Rollouts) error {
				cs, err := ro.NotConverged(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), nonNilSlice(cs))
				}
				if len(cs) == 0 {
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "Every asset of change %s has converged.\n", args[0])
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ASSET\tITEM\tSTATE\tWHY")
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Item.AssetName, c.Item.ID, c.Item.State, c.Reason)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
