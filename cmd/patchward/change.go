package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/change"
	"github.com/patchward/patchward/internal/deploy"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/store"
)

// withChanges opens the database and runs fn with the change service built
// the way the server builds it.
func (g *globals) withChanges(ctx context.Context, fn func(db *store.DB, svc *change.Service) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db, changeService(db))
}

// changeService is the change service on db, built the way the server builds it.
func changeService(db *store.DB) *change.Service {
	return change.NewService(db.Changes(), policyService(db), db.Risk(), nil)
}

// changeUser resolves --as to the Patchward user a change command acts as,
// holding perm; see actingUser for why the CLI names a user.
func changeUser(ctx context.Context, db *store.DB, username string, perm auth.Permission) (change.User, error) {
	if strings.TrimSpace(username) == "" {
		return change.User{}, errs.E(errs.Invalid, "--as USERNAME is required: changes are drafted, decided and carried out by named Patchward users")
	}
	u, err := actingAccount(ctx, db, username, perm)
	if err != nil {
		return change.User{}, err
	}
	return change.User{Actor: cliUserActor(u), Role: string(u.Role), PolicyRoles: u.PolicyRoles}, nil
}

func newChangeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "change",
		Short: "Draft, approve, schedule, test and carry out change records",
		Long: `Change records say what is patched where, with the risk rating, test protocol,
rollback plan, approvals, test runs and evidence. Every write names the
Patchward user acting (--as): the policy's approver roles, the emergency
authority and separation of duties apply, and each move is audited.`,
	}
	cmd.AddCommand(newChangeListCmd(g), newChangeShowCmd(g), newChangeCreateCmd(g), newChangeEditCmd(g),
		newChangeHistoryCmd(g), newChangeTestRunCmd(g), newChangeEvidenceCmd(g), newChangeSignOffCmd(g), newChangeReviewCmd(g))
	for _, m := range changeMoves {
		cmd.AddCommand(newChangeMoveCmd(g, m))
	}
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newChangeListCmd(g *globals) *cobra.Command {
	var (
		f      change.Filter
		state  string
		typ    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List change records, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.State, f.Type = change.State(state), change.Type(typ)
			return g.withChanges(cmd.Context(), func(_ *store.DB, svc *change.Service) error {
				cs, err := svc.List(cmd.Context(), f)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, nonNilSlice(cs))
				}
				if len(cs) == 0 {
					_, err := fmt.Fprintln(w, "No changes match.")
					return err
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tTYPE\tRISK\tREV\tREQUESTED BY\tTITLE")
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.ID, c.State, c.Type, orDash(c.Risk.Tier), c.Revision, c.RequestedBy, c.Title)
				}
				return tw.Flush()
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only changes in this state")
	fl.StringVar(&typ, "type", "", "standard, normal or emergency")
	fl.StringVar(&f.Asset, "asset", "", "only changes targeting this asset (directly or through a group)")
	fl.IntVar(&f.Limit, "limit", 100, "at most this many (max 1000)")
	fl.IntVar(&f.Offset, "offset", 0, "skip this many")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// changeDetail is what `change show --json` prints.
type changeDetail struct {
	change.Change
	Approvals      []change.Approval     `json:"approvals"`
	ApprovalStatus change.ApprovalStatus `json:"approval_status"`
	Evidence       []change.Evidence     `json:"evidence"`
}

func newChangeShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a change record with its approvals and evidence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(_ *store.DB, svc *change.Service) error {
				c, err := svc.Get(ctx, args[0])
				if err != nil {
					return err
				}
				as, st, err := svc.Approvals(ctx, c.ID)
				if err != nil {
					return err
				}
				ev, err := svc.EvidenceList(ctx, c.ID)
				if err != nil {
					return err
				}
				d := changeDetail{Change: c, Approvals: as, ApprovalStatus: st, Evidence: ev}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), d)
				}
				return printChange(cmd.OutOrStdout(), d)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printChange(w io.Writer, d changeDetail) error {
	c := d.Change
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", c.ID)
	fmt.Fprintf(tw, "title:\t%s\n", c.Title)
	fmt.Fprintf(tw, "type:\t%s\n", c.Type)
	fmt.Fprintf(tw, "state:\t%s (revision %d)\n", c.State, c.Revision)
	fmt.Fprintf(tw, "requested by:\t%s at %s\n", c.RequestedBy, c.CreatedAt.Format(time.RFC3339))
	if c.Risk.Tier != "" {
		fmt.Fprintf(tw, "risk:\t%s (score %.1f, from finding %s)\n", c.Risk.Tier, c.Risk.Score, c.Risk.FindingID)
	}
	fmt.Fprintf(tw, "targets:\tassets %s; groups %s\n", orDash(strings.Join(c.Targets.Assets, ", ")), orDash(strings.Join(c.Targets.Groups, ", ")))
	for _, p := range c.Patches {
		if p.Manual != nil {
			fmt.Fprintf(tw, "patch:\tmanual: %s (owner %s)\n", p.Manual.Description, p.Manual.Owner)
		} else {
			fmt.Fprintf(tw, "patch:\t%s → %s\n", p.Package, p.TargetVersion)
		}
	}
	for _, s := range c.TestProtocol {
		fmt.Fprintf(tw, "test case:\t%s — %s\n", s.CaseID, s.Criteria)
	}
	if e := c.Emergency; e != nil {
		fmt.Fprintf(tw, "emergency:\t%s; go/no-go by %s\n", e.Justification, e.GoNoGoBy.Format(time.RFC3339))
		if e.PostIncidentReview != nil {
			fmt.Fprintf(tw, "review:\t%s (%s)\n", e.PostIncidentReview.Summary, e.PostIncidentReview.By)
		}
	}
	for _, so := range c.SignOffs {
		by := "pending"
		if so.At != nil {
			by = so.By + " at " + so.At.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "sign-off:\t%s: %s\n", so.Role, by)
	}
	st := d.ApprovalStatus
	fmt.Fprintf(tw, "approvals:\t%d of %d (%s)", st.QuorumMet, st.Requirement.Quorum, map[bool]string{true: "complete", false: "incomplete"}[st.Complete])
	for _, ca := range st.MissingClass {
		fmt.Fprintf(tw, "; missing %s for %s", ca.Role, ca.Class)
	}
	fmt.Fprintln(tw)
	for _, a := range d.Approvals {
		exp := ""
		if a.ExpiredAt != nil {
			exp = " (expired: " + a.ExpiredWhy + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s as %s at revision %d%s\n", a.Decision, a.By, a.Role, a.ChangeRevision, exp)
	}
	for _, e := range d.Evidence {
		fmt.Fprintf(tw, "evidence:\t%s %s (%d bytes, %s)\n", e.SHA256, e.Name, e.Size, e.MediaType)
	}
	return tw.Flush()
}

// openFileFlag opens the file a --file flag names, "-" being standard input.
func openFileFlag(cmd *cobra.Command, path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(cmd.InOrStdin()), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "--file %s: cannot open it", path)
	}
	return f, nil
}

// readChangeFile reads a change record from path ("-" for standard input)
// through the API's strict decoder.
func readChangeFile(cmd *cobra.Command, path string) (change.Change, error) {
	if path == "" {
		return change.Change{}, errs.E(errs.Invalid, "--file is required: a change record as JSON (see the API's Change schema)")
	}
	r, err := openFileFlag(cmd, path)
	if err != nil {
		return change.Change{}, err
	}
	defer r.Close()
	c, err := change.Decode(r)
	if err != nil {
		return change.Change{}, fmt.Errorf("--file %s: %w", path, err)
	}
	return c, nil
}

func newChangeCreateCmd(g *globals) *cobra.Command {
	var file, as string
	cmd := &cobra.Command{
		Use:     "create --file change.json --as USERNAME",
		Short:   "Draft a change record from a JSON file",
		Example: `  patchward change create --file openssl.json --as ann`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := readChangeFile(cmd, file)
			if err != nil {
				return err
			}
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				out, err := svc.Create(ctx, u, c)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "drafted %s change %q (revision %d)\nid: %s\n", out.Type, out.Title, out.Revision, out.ID)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the change record as JSON (- for standard input)")
	cmd.Flags().StringVar(&as, "as", "", "the Patchward user drafting (required)")
	return cmd
}

func newChangeEditCmd(g *globals) *cobra.Command {
	var (
		file, as, why string
		revision      int
	)
	cmd := &cobra.Command{
		Use:   "edit ID --file change.json --as USERNAME",
		Short: "Replace a draft, submitted or approved change's content (withdraws approvals when the policy says so)",
		Long: `Replace a change's content with the record in --file. The edit names the
revision it was made on: --revision, or the file's "revision" field. Editing a
submitted or approved change withdraws its approvals when the policy's
approvals.expire_on_edit is set.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := readChangeFile(cmd, file)
			if err != nil {
				return err
			}
			if c.ID != "" && c.ID != args[0] {
				return errs.E(errs.Invalid, "--file describes change %s, not %s", c.ID, args[0])
			}
			c.ID = args[0]
			if revision != 0 {
				c.Revision = revision
			}
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				out, err := svc.Update(ctx, u, c, why)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "change %s is %s (revision %d)\n", out.ID, out.State, out.Revision)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "", "the change record as JSON (- for standard input)")
	fl.StringVar(&as, "as", "", "the Patchward user editing (required)")
	fl.StringVar(&why, "why", "", "why it was edited, for the audit trail")
	fl.IntVar(&revision, "revision", 0, "the revision you edited (default: the file's)")
	return cmd
}

// changeMove is one state move as a command.
type changeMove struct {
	name, short string
	perm        auth.Permission
	// decision marks approve and reject, which take --sign-as and --note.
	decision bool
	run      func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error)
}

type moveInput struct {
	why, note, signAs string
	revision          int
	windows           []string
}

func (in moveInput) step() change.Step { return change.Step{Why: in.why, Revision: in.revision} }

var changeMoves = []changeMove{
	{name: "submit", short: "Submit a draft for approval", perm: auth.PermChangeWrite,
		run: func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
			c, err := svc.Submit(ctx, u, id, in.step())
			return c, "", err
		}},
	{name: "approve", short: "Approve a submitted change (not one you requested or edited)", perm: auth.PermChangeApprove, decision: true,
		run: func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
			rev, err := currentRevision(ctx, svc, id, in.revision)
			if err != nil {
				return change.Change{}, "", err
			}
			c, st, err := svc.Approve(ctx, u, id, change.Decision{As: in.signAs, Note: in.note, Revision: rev})
			return c, fmt.Sprintf("approvals: %d of %d", st.QuorumMet, st.Requirement.Quorum), err
		}},
	{name: "reject", short: "Reject a submitted change (--note says why)", perm: auth.PermChangeApprove, decision: true,
		run: func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
			rev, err := currentRevision(ctx, svc, id, in.revision)
			if err != nil {
				return change.Change{}, "", err
			}
			c, err := svc.Reject(ctx, u, id, change.Decision{As: in.signAs, Note: in.note, Revision: rev})
			return c, "", err
		}},
	{name: "rework", short: "Return a rejected change to draft", perm: auth.PermChangeWrite,
		run: func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
			c, err := svc.Rework(ctx, u, id, in.step())
			return c, "", err
		}},
	{name: "schedule", short: "Schedule an approved change (--window replaces its planned windows)", perm: auth.PermChangeOperate,
		run: func(ctx context.Context, svc *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
			var ws []change.PlannedWindow
			for _, w := range in.windows {
				ws = append(ws, change.PlannedWindow{Window: w})
			}
			c, err := svc.Schedule(ctx, u, id, ws, in.step())
			return c, "", err
		}},
	{name: "start", short: "Start deployment (needs a passing test run where the policy requires testing)", perm: auth.PermChangeOperate},
	{name: "complete", short: "Complete a deployed change (sign-offs given; an emergency needs its review); with a rollout, only once it awaits completion", perm: auth.PermChangeOperate},
	{name: "halt", short: "Halt a deployment in progress (--why required); its rollout halts and cancels its queued jobs", perm: auth.PermChangeOperate},
	{name: "resume", short: "Resume a halted deployment; its rollout resumes, retrying the halted wave's failed assets (--why required with a rollout)", perm: auth.PermChangeOperate},
	{name: "rollback", short: "Roll back a change (--why: which trigger fired); with a rollout, rollback jobs go to every asset it changed", perm: auth.PermChangeOperate},
	{name: "cancel", short: "Cancel a change that has not started, or a halted one (--why required); its rollout is aborted", perm: auth.PermChangeWrite},
}

// currentRevision is the revision a decision is made on: --revision, or
// the change as it stands now (the user has just looked at it).
func currentRevision(ctx context.Context, svc *change.Service, id string, rev int) (int, error) {
	if rev != 0 {
		return rev, nil
	}
	c, err := svc.Get(ctx, id)
	return c.Revision, err
}

// runner is how the move runs. Starting a change starts its rollout, and
// the moves a rollout steers go through the engine's one mapping
// (deploy.Rollouts.ChangeMove), as in the UI and the API, so the change
// and its rollout never disagree.
func (m changeMove) runner(db *store.DB, svc *change.Service) func(context.Context, *change.Service, change.User, string, moveInput) (change.Change, string, error) {
	if m.run != nil {
		return m.run
	}
	switch m.name {
	case "start":
		// Starting a change starts its rollout: rings, waves and agent
		// jobs, which the server's engine then advances.
		return rolloutStart(db, svc)
	case "complete":
		return rolloutMove(db, svc, change.ActComplete)
	case "halt":
		return rolloutMove(db, svc, change.ActHalt)
	case "resume":
		return rolloutMove(db, svc, change.ActResume)
	case "rollback":
		return rolloutMove(db, svc, change.ActRollBack)
	default:
		return rolloutMove(db, svc, change.ActCancel)
	}
}

func newChangeMoveCmd(g *globals, m changeMove) *cobra.Command {
	var (
		in moveInput
		as string
	)
	cmd := &cobra.Command{
		Use:   m.name + " ID --as USERNAME",
		Short: m.short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, m.perm)
				if err != nil {
					return err
				}
				c, extra, err := m.runner(db, svc)(ctx, svc, u, args[0], in)
				if err != nil {
					return err
				}
				if extra != "" {
					extra = "; " + extra
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "change %s is %s (revision %d%s)\n", c.ID, c.State, c.Revision, extra)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward user acting (required)")
	fl.IntVar(&in.revision, "revision", 0, "the revision you acted on; refused if it changed since")
	if m.decision {
		fl.StringVar(&in.note, "note", "", "a comment (required to reject)")
		fl.StringVar(&in.signAs, "sign-as", "", "the policy role you sign as (default: the one your role carries that the change still needs)")
	} else {
		fl.StringVar(&in.why, "why", "", "why, for the change's history and the audit trail")
	}
	if m.name == "schedule" {
		fl.StringArrayVar(&in.windows, "window", nil, "a policy maintenance window to schedule into (repeatable; replaces the plan)")
	}
	return cmd
}

func newChangeHistoryCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "A change's state transitions, oldest first: who moved it, when and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(_ *store.DB, svc *change.Service) error {
				ts, err := svc.History(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), ts)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "AT\tACTION\tFROM\tTO\tBY\tREV\tWHY")
				for _, t := range ts {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.At.Format(time.RFC3339), t.Action, orDash(string(t.From)), t.To, t.By, t.Revision, t.Why)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newChangeTestRunCmd(g *globals) *cobra.Command {
	var file, as string
	cmd := &cobra.Command{
		Use:   "test-run ID --file run.json --as USERNAME",
		Short: "Record a test run from a JSON file: {\"results\": [{\"case_id\", \"result\", \"notes\", \"evidence\": [{\"sha256\"}]}]}",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if file == "" {
				return errs.E(errs.Invalid, "--file is required: the run's results as JSON")
			}
			r, err := openFileFlag(cmd, file)
			if err != nil {
				return err
			}
			defer r.Close()
			var in struct {
				Results []change.CaseResult `json:"results"`
			}
			dec := json.NewDecoder(io.LimitReader(r, change.MaxDocument))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return errs.Wrap(errs.Invalid, err, "--file %s: not a test run (%v)", file, err)
			}
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				run, err := svc.RecordTestRun(ctx, u, args[0], change.TestRun{Results: in.Results})
				if err != nil {
					return err
				}
				pass := 0
				for _, r := range run.Results {
					if r.Result == change.ResultPass {
						pass++
					}
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "recorded test run %s: %d of %d cases passed\n", run.ID, pass, len(run.Results))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the run as JSON (- for standard input)")
	cmd.Flags().StringVar(&as, "as", "", "the Patchward user who ran the tests (required)")
	return cmd
}

func newChangeEvidenceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Attach, list and fetch a change's evidence (screenshots, QC printouts, exported logs)",
	}
	var (
		as, name, mediaType string
	)
	add := &cobra.Command{
		Use:   "add ID FILE --as USERNAME",
		Short: fmt.Sprintf("Attach a file (at most %d MiB), stored under its SHA-256", change.MaxEvidence>>20),
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, err := os.Open(args[1])
			if err != nil {
				return errs.Wrap(errs.Invalid, err, "cannot open %s", args[1])
			}
			defer f.Close()
			n, mt := name, mediaType
			if n == "" {
				n = filepath.Base(args[1])
			}
			if mt == "" {
				mt = mime.TypeByExtension(filepath.Ext(args[1]))
			}
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				e, err := svc.AddEvidence(ctx, u, args[0], n, mt, f)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "attached %s (%d bytes, %s)\nsha256: %s\n", e.Name, e.Size, e.MediaType, e.SHA256)
				return err
			})
		},
	}
	add.Flags().StringVar(&as, "as", "", "the Patchward user attaching it (required)")
	add.Flags().StringVar(&name, "name", "", "the name to record (default: the file's)")
	add.Flags().StringVar(&mediaType, "type", "", "its media type (default: from the extension)")

	var out string
	get := &cobra.Command{
		Use:   "get ID SHA256 --out FILE",
		Short: "Fetch evidence after checking its bytes against their SHA-256 (- writes to standard output)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if out == "" {
				return errs.E(errs.Invalid, "--out is required: a file to write, or - for standard output")
			}
			return g.withChanges(ctx, func(_ *store.DB, svc *change.Service) error {
				e, r, err := svc.GetEvidence(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if out == "-" {
					_, err = io.Copy(cmd.OutOrStdout(), r)
					return err
				}
				if err := writeFileAtomic(out, r); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes, sha256 %s verified)\n", out, e.Size, e.SHA256)
				return err
			})
		},
	}
	get.Flags().StringVarP(&out, "out", "o", "", "where to write it (- for standard output)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list ID",
		Short: "List a change's evidence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(_ *store.DB, svc *change.Service) error {
				if _, err := svc.Get(ctx, args[0]); err != nil {
					return err
				}
				ev, err := svc.EvidenceList(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), nonNilSlice(ev))
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "SHA256\tNAME\tTYPE\tSIZE\tBY\tAT")
				for _, e := range ev {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.SHA256, e.Name, e.MediaType, e.Size, e.UploadedBy, e.At.Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(add, get, list)
	return cmd
}

// writeFileAtomic writes r to path through a temporary file, so a failed
// write never leaves half a file under the final name.
func writeFileAtomic(path string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newChangeSignOffCmd(g *globals) *cobra.Command {
	var (
		as, role, note string
		revision       int
	)
	cmd := &cobra.Command{
		Use:   "sign-off ID --role POLICY_ROLE --as USERNAME",
		Short: "Give a requested sign-off as a policy role your Patchward role carries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				c, err := svc.SignOff(ctx, u, args[0], role, note, revision)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s signed off change %s (revision %d)\n", role, c.ID, c.Revision)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward user signing (required)")
	fl.StringVar(&role, "role", "", "the policy role signed as")
	fl.StringVar(&note, "note", "", "a comment")
	fl.IntVar(&revision, "revision", 0, "the revision you acted on")
	return cmd
}

func newChangeReviewCmd(g *globals) *cobra.Command {
	var (
		as, summary string
		lessons     []string
		revision    int
	)
	cmd := &cobra.Command{
		Use:   "review ID --summary TEXT --as USERNAME",
		Short: "Record an emergency change's post-incident review (required before it completes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withChanges(ctx, func(db *store.DB, svc *change.Service) error {
				u, err := changeUser(ctx, db, as, auth.PermChangeWrite)
				if err != nil {
					return err
				}
				c, err := svc.RecordReview(ctx, u, args[0], change.Review{Summary: summary, Lessons: lessons}, revision)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "recorded the post-incident review of change %s (revision %d)\n", c.ID, c.Revision)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&as, "as", "", "the Patchward user recording it (required)")
	fl.StringVar(&summary, "summary", "", "what happened and what was decided")
	fl.StringArrayVar(&lessons, "lesson", nil, "a lesson learned (repeatable)")
	fl.IntVar(&revision, "revision", 0, "the revision you acted on")
	return cmd
}

// rollouts is the rollout engine on db, for one command: the server's
// engine keeps advancing what it starts or steers.
func rollouts(db *store.DB, svc *change.Service) *deploy.Rollouts {
	inv := inventory.NewService(db.Inventory(), nil)
	fl := fleet.NewService(db.Fleet(), fleet.Options{Windows: fleet.NewAssetWindows(inv, 0, nil)})
	return deploy.NewRollouts(db.Rollouts(), svc, fl, policyService(db), deploy.RolloutOptions{})
}

// rolloutStart starts a change through the rollout engine, so that a change
// started from the shell deploys exactly as one started from the UI.
func rolloutStart(db *store.DB, svc *change.Service) func(context.Context, *change.Service, change.User, string, moveInput) (change.Change, string, error) {
	return func(ctx context.Context, _ *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
		ro, err := rollouts(db, svc).Start(ctx, u, id, in.why)
		if err != nil {
			return change.Change{}, "", err
		}
		c, err := svc.Get(ctx, id)
		return c, fmt.Sprintf("rollout %s: %d waves; the server's rollout engine advances it", ro.ID, len(ro.Waves)), err
	}
}

// rolloutMove halts, resumes, rolls back, cancels or completes a change
// through the rollout engine (deploy.Rollouts.ChangeMove): while the
// change's rollout is active the move acts through it, otherwise the
// change service's alone.
func rolloutMove(db *store.DB, svc *change.Service, act change.Action) func(context.Context, *change.Service, change.User, string, moveInput) (change.Change, string, error) {
	return func(ctx context.Context, _ *change.Service, u change.User, id string, in moveInput) (change.Change, string, error) {
		c, ro, err := rollouts(db, svc).ChangeMove(ctx, u, id, act, in.step())
		if err != nil || ro == nil {
			return c, "", err
		}
		return c, fmt.Sprintf("rollout %s is %s", ro.ID, strings.ReplaceAll(string(ro.State), "_", " ")), nil
	}
}
