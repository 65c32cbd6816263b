package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
)

// withProposals adds `proposals` to the change command mk builds; it
// wraps the constructor so the change command's own file need not know
// about it.
func withProposals(mk func(*globals) *cobra.Command) func(*globals) *cobra.Command {
	return func(g *globals) *cobra.Command {
		cmd := mk(g)
		cmd.AddCommand(newChangeProposalsCmd(g))
		return cmd
	}
}

func newChangeProposalsCmd(g *globals) *cobra.Command {
	var (
		since, draft, as, why string
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "proposals",
		Short: "Vulnerabilities that entered the top risk tier through CISA KEV and no change covers yet",
		Long: `Lists the open findings whose risk history shows a CISA KEV listing put them in
the top risk tier, grouped per vulnerability with the affected assets and the
fixed versions, leaving out findings a change (other than a cancelled one)
already links. Each is a proposed emergency change; --json prints the draft
change record with each proposal. --draft VULN creates that draft as the
user named by --as (who must hold the policy's emergency authority), with
--justification saying why it cannot wait; add its test protocol and
rollback plan before submitting it.`,
		Example: `  patchward change proposals --since 7d
  patchward change proposals --draft CVE-2024-3094 --justification "KEV-listed, exploited" --as ann`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := policy.ParseDuration(since)
			if err != nil || d.Approx() <= 0 {
				return errs.E(errs.Invalid, "--since %q: want a positive duration such as 30d or 72h", since)
			}
			from := d.Neg().AddTo(time.Now().UTC(), time.UTC)
			db, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ps, err := change.NewProposals(db.Proposals(), policyService(db)).EmergencyProposals(cmd.Context(), from)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if draft != "" {
				return draftProposal(cmd, db, ps, draft, as, why, from)
			}
			if asJSON {
				type withDraft struct {
					change.Proposal
					Draft change.Change `json:"draft"`
				}
				out := make([]withDraft, len(ps))
				for i, p := range ps {
					out[i] = withDraft{p, p.Draft()}
				}
				return printJSON(w, out)
			}
			if len(ps) == 0 {
				_, err := fmt.Fprintf(w, "No open finding entered the top tier through KEV since %s without a change.\n", from.Format(time.RFC3339))
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VULNERABILITY\tTIER\tSCORE\tSINCE\tASSETS\tFIX")
			for _, p := range ps {
				names := make([]string, len(p.Assets))
				for i, a := range p.Assets {
					names[i] = a.AssetName
				}
				fix := make([]string, len(p.Patches))
				for i, pt := range p.Patches {
					fix[i] = pt.Package + " " + pt.TargetVersion
				}
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\n", p.VulnID, p.Tier, p.Score, p.EnteredAt.Format(time.RFC3339),
					strings.Join(names, ", "), orDash(strings.Join(fix, ", ")))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "30d", "how far back a KEV listing counts (30d, 72h)")
	fl.BoolVar(&asJSON, "json", false, "print JSON, each proposal with its draft emergency change")
	fl.StringVar(&draft, "draft", "", "create the draft emergency change of this vulnerability's proposal")
	fl.StringVar(&as, "as", "", "with --draft: the Patchward user drafting it (required)")
	fl.StringVar(&why, "justification", "", "with --draft: why the change cannot wait (required)")
	return cmd
}

// draftProposal creates the emergency change the proposal of vuln stands
// for, as the named user; the change service applies the emergency
// authority and declares the go/no-go deadline.
func draftProposal(cmd *cobra.Command, db *store.DB, ps []change.Proposal, vuln, as, why string, from time.Time) error {
	ctx := cmd.Context()
	if strings.TrimSpace(why) == "" {
		return errs.E(errs.Invalid, "--justification is required: say why the emergency change cannot wait")
	}
	u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if !strings.EqualFold(p.VulnID, vuln) {
			continue
		}
		d := p.Draft()
		d.Emergency = &change.EmergencyInfo{Justification: why}
		c, err := changeService(db).Create(ctx, u, d)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "drafted emergency change %q on %d assets (go/no-go by %s)\nid: %s\n",
			c.Title, len(c.Targets.Assets), c.Emergency.GoNoGoBy.Format(time.RFC3339), c.ID)
		return err
	}
	return errs.E(errs.NotFound, "no emergency proposal for %s since %s", vuln, from.Format(time.RFC3339))
}
