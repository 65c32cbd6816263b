package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
	pwmatch "github.com/patchward/patchward/internal/match"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/risk"
	"github.com/patchward/patchward/internal/store"
)

// riskDeps are the services the risk, worklist and exception commands run
// on, built the way the server builds them.
type riskDeps struct {
	db       *store.DB
	inv      *inventory.Service
	findings *pwmatch.Service
	risk     *risk.Service
	// estate is set when a decision asked for the whole estate to be
	// re-scored (a group exception): the command does it before exiting,
	// as a server's re-scoring watcher would.
	estate bool
}

// withRisk opens the database and runs fn on the risk services. The
// advisory index is not built: commands that score call loadIndex, and
// until then the engine skips scoring rather than record every finding as
// unexploited.
func (g *globals) withRisk(ctx context.Context, fn func(*riskDeps) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	d := &riskDeps{db: db, inv: inventory.NewService(db.Inventory(), nil), findings: pwmatch.NewService(db.Findings(), nil)}
	d.risk = risk.NewService(db.Risk(), policyService(db), pwmatch.ServiceIntel{Svc: d.findings},
		risk.Options{Targets: risk.Targets{Findings: d.findings, Inventory: d.inv}})
	d.risk.OnRecompute(func(ctx context.Context, assetID string, _ risk.Summary) {
		rerate(ctx, changeService(db), assetID, slog.Default())
	})
	d.risk.OnChange(func(assetID string) {
		if assetID == "" {
			d.estate = true
		}
	})
	if err := fn(d); err != nil {
		return err
	}
	if d.estate {
		if _, err := d.risk.Recompute(ctx, ""); err != nil {
			return fmt.Errorf("re-score the estate: %w", err)
		}
	}
	return nil
}

// loadIndex builds the advisory index from the current feed versions,
// reporting false when no feed has ever been synced.
func (d *riskDeps) loadIndex(ctx context.Context) (bool, error) {
	st, err := d.db.Feeds().FeedStatus(ctx)
	if err != nil {
		return false, err
	}
	synced := false
	for _, s := range st {
		synced = synced || s.Version > 0
	}
	if !synced {
		return false, nil
	}
	if _, _, err := d.findings.Refresh(ctx, d.db.Feeds()); err != nil {
		return false, err
	}
	return true, nil
}

func newRiskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "risk",
		Short: "Re-score findings under the policy and explain a finding's priority",
	}
	cmd.AddCommand(newRiskRecomputeCmd(g), newRiskExplainCmd(g))
	return cmd
}

func newRiskRecomputeCmd(g *globals) *cobra.Command {
	var assetID string
	cmd := &cobra.Command{
		Use:   "recompute",
		Short: "Match findings against the current feeds, then re-score them and move SLA clocks under the policy in force",
		Long: `Bring findings up to date with the advisory feeds already synced into the
database, then re-score every open finding (or one asset's with --asset) under
the policy in force: scores, tiers, due dates and their reasons, recorded in
the audit trail. Exceptions whose expiry has passed end.

A running server does all this by itself as feeds, inventories and the policy
change; this command is for a clinic that runs the CLI from cron, and for
seeing the effect of a policy at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return g.withRisk(ctx, func(d *riskDeps) error {
				if assetID != "" {
					if _, err := d.inv.Asset(ctx, assetID); err != nil {
						return err
					}
				}
				ok, err := d.loadIndex(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return errs.E(errs.Conflict, "no advisory data has been loaded yet; sync the feeds first (patchward feeds sync)")
				}
				var m pwmatch.Summary
				if assetID != "" {
					m, err = d.findings.EvaluateHost(ctx, assetID)
				} else {
					m, err = d.findings.EvaluateAll(ctx)
				}
				if err != nil {
					return err
				}
				s, err := d.risk.Recompute(ctx, assetID)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "findings: %d assets matched, %d opened, %d fixed, %d reopened, %d not affected, %d updated\n",
					m.Hosts, m.Opened, m.Fixed, m.Reopened, m.NotAffected, m.Updated)
				_, err = fmt.Fprintf(w, "risk: %d findings assessed, %d records changed, %d priority events, %d more urgent, %d exceptions expired\n",
					s.Assessed, s.Changed, s.Events, s.Reprioritized, s.ExceptionsExpired)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&assetID, "asset", "", "only this asset (ID)")
	return cmd
}

func newWorklistCmd(g *globals) *cobra.Command {
	var (
		f      risk.WorklistFilter
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "worklist",
		Short: "The prioritised worklist: open findings, most urgent first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if f.Limit < 1 || f.Offset < 0 {
				return errs.E(errs.Invalid, "--limit must be at least 1 and --offset at least 0")
			}
			return g.withRisk(ctx, func(d *riskDeps) error {
				page, err := d.risk.Worklist(ctx, f)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), page)
				}
				return printWorklist(cmd.OutOrStdout(), page)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.Limit, "limit", 10, "rows to show (at most 1000)")
	fl.IntVar(&f.Offset, "offset", 0, "rows to skip")
	fl.StringVar(&f.Status, "status", "", "open (default), excepted, fixed, not_affected or all")
	fl.StringVar(&f.SLA, "sla", "", "breached, due_soon, on_track, excepted or awaiting_fix")
	fl.StringVar(&f.Tier, "tier", "", "an SLA tier of the policy in force")
	fl.StringVar(&f.AssetID, "asset", "", "asset ID")
	fl.StringVar(&f.SiteID, "site", "", "site ID")
	fl.StringVar(&f.VulnID, "vuln", "", "vulnerability ID")
	fl.StringVar(&f.Sort, "sort", "", "score (highest first, default) or due (soonest first)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dueText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func printWorklist(w io.Writer, p risk.WorklistPage) error {
	if p.Total == 0 {
		_, err := fmt.Fprintln(w, "No findings match. (Findings are scored once feeds are synced: see `patchward risk recompute`.)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tSCORE\tTIER\tDUE\tSLA\tASSET\tPACKAGE\tVULN\tFINDING")
	for i, it := range p.Items {
		pkg := it.Package + " " + it.Version
		if it.FixedVersion != "" {
			pkg += " → " + it.FixedVersion
		}
		fmt.Fprintf(tw, "%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Offset+i+1, it.Assessment.Score, it.Assessment.Tier,
			dueText(it.DueAt), it.SLA, it.AssetName, pkg, it.VulnID, it.FindingID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d–%d of %d\n", p.Offset+1, p.Offset+len(p.Items), p.Total)
	return err
}

func newRiskExplainCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain FINDING_ID",
		Short: "Why a finding has its priority: each score factor, the SLA clock, and the history of its tier and due date",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRisk(ctx, func(d *riskDeps) error {
				ex, err := d.risk.Explain(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), ex)
				}
				asset := ex.Record.AssetID
				if a, err := d.inv.Asset(ctx, asset); err == nil {
					asset = a.Name + " (" + a.ID + ")"
				}
				return printExplanation(cmd.OutOrStdout(), ex, asset)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printExplanation(w io.Writer, ex risk.Explanation, asset string) error {
	r, a := ex.Record, ex.Record.Assessment
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "finding:\t%s\n", r.FindingID)
	fmt.Fprintf(tw, "asset:\t%s\n", asset)
	fmt.Fprintf(tw, "vulnerability:\t%s\n", r.VulnID)
	fmt.Fprintf(tw, "status:\t%s\n", r.Status)
	fmt.Fprintf(tw, "priority:\ttier %s, score %.1f (%s mode, policy version %d)\n", a.Tier, a.Score, a.Mode, r.PolicyVersion)
	fmt.Fprintf(tw, "SLA:\t%s, due %s\n", ex.SLA, dueText(r.DueAt))
	fmt.Fprintf(tw, "due because:\t%s\n", r.DueReason)
	if a.TargetText != "" {
		fmt.Fprintf(tw, "target:\t%s (%s)\n", a.TargetText, a.TargetWhy)
	}
	if !r.ClockStart.IsZero() {
		fmt.Fprintf(tw, "clock started:\t%s (%s)\n", dueText(r.ClockStart), r.ClockBasis)
	} else {
		fmt.Fprintf(tw, "clock started:\tnot yet (%s)\n", r.ClockBasis)
	}
	if r.ExceptionID != "" {
		fmt.Fprintf(tw, "exception:\t%s\n", r.ExceptionID)
	}
	if len(a.Classes) > 0 {
		fmt.Fprintf(tw, "asset classes:\t%s\n", strings.Join(a.Classes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(a.Factors) > 0 {
		fmt.Fprintln(w, "\nFACTORS")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FACTOR\tINPUT\tPOINTS\tNOTE")
		for _, f := range a.Factors {
			fmt.Fprintf(tw, "%s\t%s\t%+.1f\t%s\n", f.Name, f.Input, f.Points, f.Note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if s := a.SSVC; s != nil {
		fmt.Fprintf(w, "\nSSVC (%s): exploitation %s, automatable %s, technical impact %s, mission and well-being %s → %s\n",
			s.Table, s.Exploitation, s.Automatable, s.TechnicalImpact, s.Mission, s.Outcome)
		for _, k := range []string{"exploitation", "automatable", "technical_impact", "mission_wellbeing"} {
			if why := s.Why[k]; why != "" {
				fmt.Fprintf(w, "  %s: %s\n", k, why)
			}
		}
	}
	fmt.Fprintln(w, "\nHISTORY")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tTIER\tSCORE\tDUE\tSTATUS\tPOLICY\tREASON")
	for _, e := range ex.History {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%d\t%s\n", dueText(e.At), e.Tier, e.Score, dueText(e.DueAt), e.Status, e.PolicyVersion, e.Reason)
	}
	return tw.Flush()
}

// actingUser resolves --as to the Patchward user an exception command acts
// as. Whoever runs the CLI can reach the database, so the command cannot
// prove who they are; naming a real user whose role holds the permission
// keeps the policy's approver roles and separation of duties meaningful, and
// the audit entry records the operating-system user who ran it as well.
func actingUser(ctx context.Context, db *store.DB, username string, perm auth.Permission) (risk.Requester, error) {
	u, err := actingAccount(ctx, db, username, perm)
	if err != nil {
		return risk.Requester{}, err
	}
	return risk.Requester{Actor: cliUserActor(u), Role: string(u.Role)}, nil
}

// actingAccount is the account --as names, enabled and holding perm.
func actingAccount(ctx context.Context, db *store.DB, username string, perm auth.Permission) (auth.User, error) {
	if strings.TrimSpace(username) == "" {
		return auth.User{}, errs.E(errs.Invalid, "--as USERNAME is required: exceptions are requested and decided by named Patchward users")
	}
	u, err := newAuthService(db).UserByName(ctx, username)
	if errs.KindOf(err) == errs.NotFound {
		return auth.User{}, errs.E(errs.NotFound, "--as %s: no such Patchward user", username)
	}
	if err != nil {
		return auth.User{}, err
	}
	if u.Disabled {
		return auth.User{}, errs.E(errs.Forbidden, "--as %s: the account is disabled", u.Username)
	}
	if !u.Role.Can(perm) {
		return auth.User{}, errs.E(errs.Forbidden, "--as %s: role %s lacks the %s permission", u.Username, u.Role, perm)
	}
	return u, nil
}

// cliUserActor is the audit actor for u acting from the command line.
func cliUserActor(u auth.User) audit.Actor {
	return audit.Actor{Kind: audit.ActorUser, ID: u.ID, Name: u.Username, Addr: cliActor().Name}
}

func newExceptionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exception",
		Short: "Request, decide, review and list exceptions (documented risk acceptances)",
		Long: `Exceptions accept the risk of findings that cannot be remediated in time, with
compensating controls, an owner, an expiry and periodic reviews. Requests and
decisions name the Patchward user acting (--as): the policy's approver roles
apply, and nobody decides their own request.`,
	}
	cmd.AddCommand(newExceptionListCmd(g), newExceptionShowCmd(g), newExceptionRequestCmd(g),
		newExceptionDecideCmd(g, "approve", "Approve a requested exception"),
		newExceptionDecideCmd(g, "reject", "Reject a requested exception (--note says why)"),
		newExceptionDecideCmd(g, "review", "Record the periodic review of an approved exception (--outcome continue or revoke)"),
		newExceptionDecideCmd(g, "revoke", "End an exception early (--note says why)"),
		newExceptionAgingCmd(g))
	return cmd
}

func newExceptionListCmd(g *globals) *cobra.Command {
	var (
		f          risk.ExceptionFilter
		reviewDue  bool
		expiringIn int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List exceptions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if expiringIn < 0 {
				return errs.E(errs.Invalid, "--expiring-within must be 0 or more days")
			}
			return g.withRisk(ctx, func(d *riskDeps) error {
				now := d.risk.Now()
				if reviewDue {
					f.ReviewDueBy = &now
				}
				if cmd.Flags().Changed("expiring-within") {
					by := now.AddDate(0, 0, expiringIn)
					f.ExpiringBy = &by
				}
				es, err := d.risk.Exceptions(ctx, f)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					if es == nil {
						es = []risk.Exception{}
					}
					return printJSON(w, es)
				}
				if len(es) == 0 {
					_, err := fmt.Fprintln(w, "No exceptions match.")
					return err
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tSCOPE\tTARGET\tVULN\tDECISION\tOWNER\tEXPIRES\tNEXT REVIEW\tREQUESTED BY")
				for _, e := range es {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.State, e.Scope, e.Target, orDash(e.VulnID),
						e.Decision, e.Owner, dueText(e.ExpiresAt), dueText(e.NextReviewAt), e.RequestedBy)
				}
				return tw.Flush()
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.State, "state", "", "requested, approved, rejected, revoked or expired")
	fl.StringVar(&f.Scope, "scope", "", "finding, asset or group")
	fl.StringVar(&f.Target, "target", "", "finding, asset or group ID")
	fl.BoolVar(&reviewDue, "review-due", false, "only approved exceptions whose review is due now")
	fl.IntVar(&expiringIn, "expiring-within", 0, "only approved exceptions that expire within this many days")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// exceptionDetail is an exception with its reviews, as `show --json` prints
// it (the API's shape).
type exceptionDetail struct {
	risk.Exception
	Reviews []risk.Review `json:"reviews"`
}

func newExceptionShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an exception with its controls and reviews",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withRisk(ctx, func(d *riskDeps) error {
				e, rs, err := d.risk.Exception(ctx, args[0])
				if err != nil {
					return err
				}
				if rs == nil {
					rs = []risk.Review{}
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), exceptionDetail{e, rs})
				}
				return printException(cmd.OutOrStdout(), e, rs)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printException(w io.Writer, e risk.Exception, rs []risk.Review) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", e.ID)
	fmt.Fprintf(tw, "state:\t%s (revision %d)\n", e.State, e.Revision)
	fmt.Fprintf(tw, "covers:\t%s %s", e.Scope, e.Target)
	if e.VulnID != "" {
		fmt.Fprintf(tw, ", %s only", e.VulnID)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "decision:\t%s\n", e.Decision)
	fmt.Fprintf(tw, "reason:\t%s\n", oneLine(e.Reason))
	fmt.Fprintf(tw, "owner:\t%s\n", e.Owner)
	fmt.Fprintf(tw, "requested:\t%s by %s\n", dueText(e.RequestedAt), e.RequestedBy)
	if e.DecidedAt != nil {
		fmt.Fprintf(tw, "decided:\t%s by %s: %s\n", dueText(*e.DecidedAt), e.DecidedBy, oneLine(e.DecisionNote))
	}
	fmt.Fprintf(tw, "expires:\t%s\n", dueText(e.ExpiresAt))
	fmt.Fprintf(tw, "next review:\t%s\n", dueText(e.NextReviewAt))
	if e.EndedAt != nil {
		fmt.Fprintf(tw, "ended:\t%s %s %s\n", dueText(*e.EndedAt), e.EndedBy, oneLine(e.EndNote))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(e.Controls) > 0 {
		fmt.Fprintln(w, "\nCONTROLS")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tDESCRIPTION\tVERIFIED")
		for _, c := range e.Controls {
			verified := "not yet"
			if c.VerifiedAt != nil {
				verified = dueText(*c.VerifiedAt) + " by " + c.VerifiedBy
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Kind, oneLine(c.Description), verified)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rs) > 0 {
		fmt.Fprintln(w, "\nREVIEWS")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AT\tBY\tOUTCOME\tNOTE")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", dueText(r.At), r.By, r.Outcome, oneLine(r.Note))
		}
		return tw.Flush()
	}
	return nil
}

// parseExceptionExpiry reads --expires: an RFC 3339 time, or a date meaning the
// start of that day in UTC.
func parseExceptionExpiry(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, errs.E(errs.Invalid, "--expires %q: give a date (2027-01-31) or an RFC 3339 time (2027-01-31T17:00:00Z)", s)
}

func newExceptionRequestCmd(g *globals) *cobra.Command {
	var (
		e        risk.Exception
		controls []string
		expires  string
		as       string
	)
	cmd := &cobra.Command{
		Use:   "request --as USERNAME --scope SCOPE --target ID --decision DECISION --reason TEXT --owner NAME --expires DATE",
		Short: "Request an exception, checked against the policy's exception rules",
		Example: `  patchward exception request --as ann --scope finding --target f_0123 --decision mitigate \
    --reason "vendor has not validated the update" --owner "lab manager" --expires 2027-03-31 \
    --control "segmentation=LIS VLAN, no internet access"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if e.ExpiresAt, err = parseExceptionExpiry(expires); err != nil {
				return err
			}
			for _, c := range controls {
				kind, desc, ok := strings.Cut(c, "=")
				if !ok {
					return errs.E(errs.Invalid, "--control %q: give KIND=DESCRIPTION, KIND one of %s", c, strings.Join(policy.ControlKinds, ", "))
				}
				e.Controls = append(e.Controls, risk.Control{Kind: kind, Description: desc})
			}
			return g.withRisk(ctx, func(d *riskDeps) error {
				who, err := actingUser(ctx, d.db, as, auth.PermExceptionRequest)
				if err != nil {
					return err
				}
				out, err := d.risk.RequestException(ctx, who, e)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "requested exception %s (expires %s; needs approval by another user with an approver role)\n", out.ID, dueText(out.ExpiresAt))
				_, err = fmt.Fprintf(w, "id: %s\n", out.ID)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward user requesting (required)")
	fl.StringVar(&e.Scope, "scope", "", "finding, asset or group")
	fl.StringVar(&e.Target, "target", "", "the finding, asset or group ID")
	fl.StringVar(&e.VulnID, "vuln", "", "narrow an asset or group exception to this vulnerability")
	fl.StringVar(&e.Decision, "decision", "", "accept, mitigate, transfer or avoid (as the policy allows)")
	fl.StringVar(&e.Reason, "reason", "", "why the finding cannot be remediated in time")
	fl.StringArrayVar(&controls, "control", nil, "a compensating control as KIND=DESCRIPTION (repeatable); kinds: "+strings.Join(policy.ControlKinds, ", "))
	fl.StringVar(&e.Owner, "owner", "", "who is accountable for the risk and the controls")
	fl.StringVar(&expires, "expires", "", "when it ends: a date (start of day, UTC) or an RFC 3339 time")
	return cmd
}

func newExceptionDecideCmd(g *globals, action, short string) *cobra.Command {
	var (
		dec risk.Decision
		as  string
	)
	cmd := &cobra.Command{
		Use:   action + " ID --as USERNAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dec.Action = action
			return g.withRisk(ctx, func(d *riskDeps) error {
				who, err := actingUser(ctx, d.db, as, auth.PermExceptionDecide)
				if err != nil {
					return err
				}
				// Re-scoring what the exception covers needs the
				// advisory index, so the worklist shows the decision at
				// once.
				if _, err := d.loadIndex(ctx); err != nil {
					return err
				}
				e, err := d.risk.DecideException(ctx, who, args[0], dec)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "exception %s is %s (revision %d)\n", e.ID, e.State, e.Revision)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward user deciding (required; the policy's approver roles apply, and not the requester)")
	fl.StringVar(&dec.Note, "note", "", "why (required to reject or revoke)")
	fl.IntVar(&dec.Revision, "revision", 0, "the revision you read; refused if it changed since")
	if action == "review" {
		fl.StringVar(&dec.Outcome, "outcome", "", "continue (controls confirmed in place) or revoke")
		_ = cmd.MarkFlagRequired("outcome")
	}
	return cmd
}

func newExceptionAgingCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "aging",
		Short: "Exception aging: counts by state, ages of approved ones, reviews due or overdue, expiries coming",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return g.withRisk(ctx, func(d *riskDeps) error {
				rep, err := d.risk.ExceptionAging(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), rep)
				}
				return printAging(cmd.OutOrStdout(), rep)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printAging(w io.Writer, rep risk.AgingReport) error {
	var states, ages []string
	for _, s := range rep.States {
		states = append(states, fmt.Sprintf("%s %d", s.State, s.Count))
	}
	for _, a := range rep.Ages {
		ages = append(ages, fmt.Sprintf("%s: %d", a.Label, a.Count))
	}
	fmt.Fprintf(w, "exceptions at %s: %s\n", dueText(rep.At), strings.Join(states, ", "))
	fmt.Fprintf(w, "approved, by age: %s\n", strings.Join(ages, ", "))
	for _, sec := range []struct {
		title string
		items []risk.AgingItem
	}{{"REVIEW DUE", rep.DueForReview}, {"REVIEW OVERDUE", rep.OverdueReviews}, {"EXPIRING", rep.Expiring}} {
		if len(sec.items) == 0 {
			continue
		}
		fmt.Fprintln(w, "\n"+sec.title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSCOPE\tTARGET\tVULN\tOWNER\tAGE (DAYS)\tNEXT REVIEW\tEXPIRES")
		for _, it := range sec.items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.Scope, it.Target, orDash(it.VulnID), it.Owner,
				it.AgeDays, dueText(it.NextReviewAt), dueText(it.ExpiresAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
