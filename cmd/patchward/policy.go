package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/report"
	"github.com/patchward/patchward/internal/store"
)

// newPolicyCmd is `patchward policy`: the policy as code from the shell.
// Validating, rendering a file and printing the example need no database,
// so an admin can edit and check a policy on any machine and docs can be
// regenerated in a build.
func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, apply, render and inspect the patch management policy",
	}
	cmd.AddCommand(newPolicyValidateCmd(), newPolicyApplyCmd(g), newPolicyRenderCmd(g),
		newPolicyShowCmd(g), newPolicyVersionsCmd(g), newPolicyExampleCmd())
	return cmd
}

// readPolicyFile reads a policy file ("-" for standard input), refusing one
// larger than any policy could be before reading all of it.
func readPolicyFile(cmd *cobra.Command, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	src, err := io.ReadAll(io.LimitReader(r, policy.MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return src, nil
}

// printProblems prints a refused policy's problems one per line in the
// FILE:LINE:COL form editors and CI jump to, and returns the error that
// makes the command fail. Any other error is returned as it is.
func printProblems(w io.Writer, file string, err error) error {
	var pe *policy.Error
	if !errors.As(err, &pe) {
		return err
	}
	for _, p := range pe.Problems {
		path := ""
		if p.Path != "" {
			path = p.Path + ": "
		}
		fmt.Fprintf(w, "%s:%d:%d: %s%s\n", file, p.Line, p.Column, path, p.Message)
	}
	n := len(pe.Problems)
	return errs.E(errs.Invalid, "%s is not a valid policy: %d %s", file, n, plural(n, "problem", "problems"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newPolicyValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a policy file without applying it (no database needed); prints FILE:LINE:COL: problem lines",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := readPolicyFile(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := policy.Load(src)
			if err != nil {
				return printProblems(cmd.OutOrStdout(), args[0], err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (sha256 %s)\n", args[0], c.SHA256())
			return err
		},
	}
}

func newPolicyApplyCmd(g *globals) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a policy file and apply it as the next version (audited; an invalid file changes nothing)",
		Long: `Validate a policy file and apply it as the next version. The apply is recorded
in the audit trail with who, why (--comment) and the digests before and after.
An invalid file is refused whole, with every problem at its line, and the
policy in force stays in force.

A running server re-scores every finding on its next periodic pass
(serve --rescore-every); run ` + "`patchward risk recompute`" + ` to do it now.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, err := readPolicyFile(cmd, args[0])
			if err != nil {
				return err
			}
			// Check the file before touching the database, so a typo is
			// reported the same way with or without one.
			if _, err := policy.Load(src); err != nil {
				return printProblems(cmd.OutOrStdout(), args[0], err)
			}
			db, err := g.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			v, err := policy.NewService(db.Policies(), nil).Apply(ctx, cliActor(), src, comment)
			if err != nil {
				return printProblems(cmd.OutOrStdout(), args[0], err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "applied policy version %d (sha256 %s)\n", v.Version, v.SHA256)
			return err
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why, for the audit trail")
	return cmd
}

// formatPDF is the policy document printed to PDF through its HTML form.
const formatPDF = "pdf"

func newPolicyRenderCmd(g *globals) *cobra.Command {
	var (
		format, file, out, chromium string
		version                     int
	)
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Render the written Patch Management Policy (Markdown, HTML or PDF) from the policy in force, a version, or a file",
		Long: `Render the written Patch Management Policy document from the policy in force,
from --version N (0 is the built-in default), or from --file FILE without a
database (how the documentation is regenerated). --format pdf prints the
HTML document with Chromium (--chromium, default /usr/bin/chromium).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != policy.FormatMarkdown && format != policy.FormatHTML && format != formatPDF {
				return errs.E(errs.Invalid, "--format must be md, html or pdf")
			}
			renderAs := format
			if format == formatPDF {
				renderAs = policy.FormatHTML
			}
			var doc []byte
			if file != "" {
				if cmd.Flags().Changed("version") {
					return errs.E(errs.Invalid, "--file and --version do not go together")
				}
				src, err := readPolicyFile(cmd, file)
				if err != nil {
					return err
				}
				c, err := policy.Load(src)
				if err != nil {
					return printProblems(cmd.ErrOrStderr(), file, err)
				}
				meta := policy.RenderMeta{}
				if !bytes.Equal(src, policy.DefaultSource()) {
					meta.Draft = filepath.Base(file)
				}
				if doc, err = policy.Render(c, renderAs, meta); err != nil {
					return err
				}
			} else {
				if version < -1 {
					return errs.E(errs.Invalid, "--version must be 0 or more")
				}
				db, err := g.openDB(ctx)
				if err != nil {
					return err
				}
				defer db.Close()
				if doc, err = policy.NewService(db.Policies(), nil).Document(ctx, version, renderAs); err != nil {
					return err
				}
			}
			if format == formatPDF {
				var err error
				if doc, err = report.PDF(ctx, chromium, doc); err != nil {
					return err
				}
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(doc)
				return err
			}
			return writeExportFile(out, func(w io.Writer) error {
				_, err := w.Write(doc)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", policy.FormatMarkdown, "md, html or pdf")
	f.StringVar(&chromium, "chromium", report.DefaultChromium, "the Chromium used for --format pdf")
	f.IntVar(&version, "version", -1, "render this applied version (0 is the built-in default); default: the one in force")
	f.StringVar(&file, "file", "", "render this policy file instead, without a database")
	f.StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

// withPolicies opens the database and runs fn with a policy service on it.
func (g *globals) withPolicies(cmd *cobra.Command, fn func(*policy.Service) error) error {
	db, err := g.openDB(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(policyService(db))
}

func policyService(db *store.DB) *policy.Service { return policy.NewService(db.Policies(), nil) }

func newPolicyShowCmd(g *globals) *cobra.Command {
	var (
		version int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the policy in force (or --version N) as YAML, headed by its version, digest and who applied it",
		Long: `Print the policy in force, or --version N, as its YAML source. The header lines
are YAML comments, so the output is a file that can be edited and applied.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withPolicies(cmd, func(svc *policy.Service) error {
				ctx := cmd.Context()
				n := version
				if n < 0 {
					_, cur, err := svc.Current(ctx)
					if err != nil {
						return err
					}
					n = cur.Version
				}
				_, v, err := svc.Version(ctx, n)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return printJSON(w, v)
				}
				fmt.Fprintf(w, "# Patchward policy %s, sha256 %s\n", versionName(v.Version), v.SHA256)
				if v.Version > 0 {
					fmt.Fprintf(w, "# applied %s by %s\n", v.AppliedAt.UTC().Format("2006-01-02 15:04:05Z"), v.AppliedBy)
				}
				if v.Comment != "" {
					fmt.Fprintf(w, "# comment: %s\n", oneLine(v.Comment))
				}
				_, err = io.WriteString(w, v.Source)
				return err
			})
		},
	}
	cmd.Flags().IntVar(&version, "version", -1, "show this version (0 is the built-in default); default: the one in force")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version record as JSON")
	return cmd
}

// oneLine folds a comment onto one line for a table or a header.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func versionName(n int) string {
	if n == 0 {
		return "built-in default (version 0)"
	}
	return "version " + strconv.Itoa(n)
}

func newPolicyVersionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "versions",
		Short: "List every applied policy version, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withPolicies(cmd, func(svc *policy.Service) error {
				vs, err := svc.Versions(cmd.Context())
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					if vs == nil {
						vs = []policy.Version{}
					}
					return printJSON(w, vs)
				}
				if len(vs) == 0 {
					_, err := fmt.Fprintln(w, "No policy applied: the built-in default is in force (see `patchward policy example`).")
					return err
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tAPPLIED\tBY\tSHA256\tCOMMENT")
				for i, v := range vs {
					mark := ""
					if i == 0 {
						mark = " (in force)"
					}
					fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\n", v.Version, mark, v.AppliedAt.UTC().Format("2006-01-02 15:04Z"),
						v.AppliedBy, v.SHA256[:min(12, len(v.SHA256))], oneLine(v.Comment))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPolicyExampleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "example",
		Short: "Print the built-in default policy, a commented starting point for your own",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(policy.DefaultSource())
			return err
		},
	}
}
