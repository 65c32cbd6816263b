package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, sign, export and read the tamper-evident audit log",
		Long: `Every change Patchward makes is appended to a hash-linked Merkle log, and
its head is signed periodically with the audit key (--audit-key). Record the
public key (patchward audit pubkey) somewhere the database administrator
cannot change it; "audit verify --pubkey" and "audit verify-export" then
detect any entry altered, deleted, inserted or reordered.`,
	}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditCheckpointCmd(g), newAuditExportCmd(g),
		newAuditVerifyExportCmd(), newAuditPubkeyCmd(g), newAuditLogCmd(g))
	return cmd
}

// auditFailure is a failed verification: its message names the first bad
// entry and it makes the process exit with status 2, so scripts can tell
// "tampered" from "could not check" (status 1).
type auditFailure struct {
	what string
	err  *audit.VerifyError
}

func (e auditFailure) Error() string {
	if e.err.Seq >= 0 {
		return e.what + " verification FAILED at " + e.err.Error()
	}
	return e.what + " verification FAILED: " + e.err.Error()
}

func (e auditFailure) Unwrap() error { return e.err }

// As lets main find the exit status with errors.As(err, &exitCode).
func (e auditFailure) As(target any) bool {
	if p, ok := target.(*exitCode); ok {
		*p = 2
		return true
	}
	return false
}

// asAuditFailure turns a *VerifyError into an auditFailure and leaves other
// errors alone.
func asAuditFailure(what string, err error) error {
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return auditFailure{what: what, err: ve}
	}
	return err
}

// withAuditDB opens the database and runs fn with its audit store.
func (g *globals) withAuditDB(ctx context.Context, fn func(audit.Store) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db.Audit())
}

// auditSigner loads the audit key, creating it on first use and telling the
// operator to record the public half.
func (g *globals) auditSigner(w io.Writer) (*audit.Signer, error) {
	path, err := g.auditKeyPath()
	if err != nil {
		return nil, err
	}
	s, created, err := audit.LoadOrCreateKey(path)
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(w, "created audit key %s\npublic key (record it outside this server): %s\n", path, s.Verifier().Key())
	}
	return s, nil
}

// auditVerifier is the key to check with: --pubkey if given (the one an
// auditor trusts), else the public half of the local key file.
func (g *globals) auditVerifier(pubkey string) (*audit.Verifier, error) {
	if pubkey != "" {
		return audit.NewVerifier(pubkey)
	}
	path, err := g.auditKeyPath()
	if err != nil {
		return nil, err
	}
	s, err := audit.LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.E(errs.Invalid, "no audit key at %s; pass --pubkey or --audit-key", path)
	}
	if err != nil {
		return nil, err
	}
	return s.Verifier(), nil
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var pubkey string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute and check every entry, checkpoint and the head; exit 2 if tampered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := g.auditVerifier(pubkey)
			if err != nil {
				return err
			}
			return g.withAuditDB(cmd.Context(), func(st audit.Store) error {
				res, err := audit.NewService(st, key, nil).Verify(cmd.Context())
				if err != nil {
					return asAuditFailure("audit log", err)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "audit log OK: %d entries and %d signed checkpoints verified\nsize %d, root %s\n",
					res.Entries, res.Checkpoints, res.Size, base64.StdEncoding.EncodeToString(res.Root))
				if res.Checkpoints == 0 && res.Entries > 0 {
					fmt.Fprintln(w, "warning: no signed checkpoint yet, so a rewrite with recomputed hashes would go unnoticed; run `patchward audit checkpoint`")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "verifier key to check checkpoints with (default: the public half of --audit-key)")
	return cmd
}

func newAuditCheckpointCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Verify the log and sign its current head (serve does this every minute)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.auditSigner(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return g.withAuditDB(cmd.Context(), func(st audit.Store) error {
				cp, made, err := audit.NewCheckpointer(st, s, nil, nil).Checkpoint(cmd.Context())
				if err != nil {
					return asAuditFailure("audit log", err)
				}
				switch {
				case made:
					fmt.Fprintf(cmd.OutOrStdout(), "signed checkpoint at size %d\n", cp.Size)
				case cp.Size == 0:
					fmt.Fprintln(cmd.OutOrStdout(), "audit log is empty; nothing to sign")
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "no new entries since the checkpoint at size %d\n", cp.Size)
				}
				return nil
			})
		},
	}
}

func newAuditExportCmd(g *globals) *cobra.Command {
	var from, to, out string
	cmd := &cobra.Command{
		Use:   "export --from TIME --to TIME --out FILE",
		Short: "Write entries with inclusion proofs and a signed checkpoint for offline verification",
		Long: `Signs a checkpoint of the current head first, so every entry in the range
is covered, then writes a JSON bundle: the entries with from <= time < to,
an RFC 6962 inclusion proof for each, the signed checkpoint and the verifier
key. Times are RFC 3339 or dates (a --to date includes that whole day).
An auditor checks it with "patchward audit verify-export FILE --pubkey KEY".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := audit.ParseTime(from, false)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			t := time.Now().UTC().Add(time.Microsecond)
			if to != "" {
				if t, err = audit.ParseTime(to, true); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			s, err := g.auditSigner(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return g.withAuditDB(cmd.Context(), func(st audit.Store) error {
				ctx := cmd.Context()
				if _, _, err := audit.NewCheckpointer(st, s, nil, nil).Checkpoint(ctx); err != nil {
					return asAuditFailure("audit log", err)
				}
				b, err := audit.NewService(st, s.Verifier(), nil).Export(ctx, f, t)
				if err != nil {
					return asAuditFailure("audit log", err)
				}
				if err := writeAuditBundle(out, cmd.OutOrStdout(), b); err != nil {
					return err
				}
				size, _, err := s.Verifier().Open(b.Checkpoint)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d entries with proofs against the signed checkpoint at size %d to %s\n",
					len(b.Entries), size, out)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the range, inclusive (RFC 3339 or YYYY-MM-DD)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, exclusive; a date includes that day (default: now)")
	cmd.Flags().StringVar(&out, "out", "", `file to write ("-" for standard output)`)
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// writeAuditBundle writes b as indented JSON to path, or to stdout for "-".
// A partly written file is removed so an auditor never receives one.
func writeAuditBundle(path string, stdout io.Writer, b *audit.Bundle) error {
	if path == "-" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("create export file: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := errors.Join(enc.Encode(b), f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("write export file: %w", err)
	}
	return nil
}

func newAuditVerifyExportCmd() *cobra.Command {
	var pubkey string
	cmd := &cobra.Command{
		Use:   "verify-export FILE --pubkey KEY",
		Short: "Check an export bundle offline: leaf hashes, inclusion proofs, checkpoint signature",
		Long: `Needs no database and no private key: only the bundle and the verifier key,
which must come from a trusted source rather than from the bundle itself.
Exits 2 if the bundle fails verification.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := audit.NewVerifier(pubkey)
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("open export bundle: %w", err)
				}
				defer f.Close()
				r = f
			}
			b, err := audit.ParseBundle(r)
			if err != nil {
				return err
			}
			res, err := audit.VerifyBundle(b, key)
			if err != nil {
				return asAuditFailure("audit export", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "audit export OK: %d entries from %s to %s, each proven included in the log of %d entries\nsigned root %s by %s\n",
				res.Entries, b.From.Format(time.RFC3339), b.To.Format(time.RFC3339), res.CheckpointSize,
				base64.StdEncoding.EncodeToString(res.Root), key.Key())
			if res.Entries > 0 {
				fmt.Fprintf(w, "entries %d to %d", res.First, res.Last)
				if res.Gaps > 0 {
					fmt.Fprintf(w, "; warning: %d gaps in the sequence, so entries in between were left out of this export", res.Gaps)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "the installation's audit verifier key (from `patchward audit pubkey`)")
	_ = cmd.MarkFlagRequired("pubkey")
	return cmd
}

func newAuditPubkeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pubkey",
		Short: "Print the audit verifier (public) key, creating the key pair on first use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.auditSigner(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), s.Verifier().Key())
			return err
		},
	}
}

func newAuditLogCmd(g *globals) *cobra.Command {
	var (
		q        audit.Query
		from, to string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "List audit entries, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if from != "" {
				if q.From, err = audit.ParseTime(from, false); err != nil {
					return fmt.Errorf("--from: %w", err)
				}
			}
			if to != "" {
				if q.To, err = audit.ParseTime(to, true); err != nil {
					return fmt.Errorf("--to: %w", err)
				}
			}
			return g.withAuditDB(cmd.Context(), func(st audit.Store) error {
				// Listing checks no signatures, so it needs no key.
				p, err := audit.NewService(st, nil, nil).List(cmd.Context(), q)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(p)
				}
				return printAuditPage(cmd.OutOrStdout(), p)
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&q.Limit, "limit", 20, fmt.Sprintf("entries to show (at most %d)", audit.MaxPage))
	f.IntVar(&q.Offset, "offset", 0, "entries to skip")
	f.StringVar(&q.ObjectType, "type", "", "object type, e.g. asset")
	f.StringVar(&q.ObjectID, "object", "", "object ID")
	f.StringVar(&q.Actor, "actor", "", "actor ID or name")
	f.StringVar(&q.Action, "action", "", "action, e.g. asset.update")
	f.StringVar(&from, "from", "", "entries at or after (RFC 3339 or YYYY-MM-DD)")
	f.StringVar(&to, "to", "", "entries before; a date includes that day")
	f.BoolVar(&asJSON, "json", false, "print the page as JSON, with before/after states")
	return cmd
}

func printAuditPage(w io.Writer, p audit.Page) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tADDRESS\tACTION\tOBJECT\tREASON")
	for _, e := range p.Entries {
		actor := e.Actor.Kind
		if e.Actor.Name != "" {
			actor += ":" + e.Actor.Name
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s %s\t%s\n", e.Seq, e.At.Format("2006-01-02 15:04:05"),
			actor, e.Actor.Addr, e.Action, e.ObjectType, e.ObjectID, e.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d of %d entries\n", len(p.Entries), p.Total)
	return err
}
