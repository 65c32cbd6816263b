package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/store"
)

// newUserCmd is `patchward user`: account administration from the shell,
// for the first admin and for recovery when nobody can sign in. Whoever can
// run it already has the database, so it acts as the system; the audit trail
// names the operating-system user who ran it.
func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage local user accounts and API tokens",
	}
	cmd.AddCommand(newUserCreateCmd(g), newUserListCmd(g), newUserSetRoleCmd(g), newUserPolicyRolesCmd(g),
		newUserEnableCmd(g, "disable", true), newUserEnableCmd(g, "enable", false),
		newUserResetPasswordCmd(g), newUserTokenCmd(g))
	return cmd
}

// cliActor is the audit actor for account changes made from the command
// line: the system, named for the operating-system user.
func cliActor() audit.Actor {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return audit.Actor{Kind: audit.ActorSystem, ID: "cli", Name: "cli:" + name}
}

// withAuth opens the database and runs fn with an account service on it.
func (g *globals) withAuth(ctx context.Context, fn func(*auth.Service) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(newAuthService(db))
}

// withUser runs fn with an account service and the account username names.
func (g *globals) withUser(ctx context.Context, username string, fn func(*auth.Service, auth.User) error) error {
	return g.withAuth(ctx, func(svc *auth.Service) error {
		u, err := svc.UserByName(ctx, username)
		if err != nil {
			return err
		}
		return fn(svc, u)
	})
}

// newAuthService is the account service on db, checking the policy roles
// given to users against the policy in force, as the server does.
func newAuthService(db *store.DB) *auth.Service {
	return auth.NewService(db.Auth(), auth.Options{PolicyGrants: policyService(db).Grants})
}

// readPassword reads one line from r, for --password-stdin, so a password
// never appears in the process list or shell history.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errs.E(errs.Invalid, "no password on standard input")
	}
	return line, nil
}

// passwordFrom returns the password from stdin if asked, else a generated
// one and true.
func passwordFrom(cmd *cobra.Command, stdin bool) (string, bool, error) {
	if stdin {
		pw, err := readPassword(cmd.InOrStdin())
		return pw, false, err
	}
	return auth.BootstrapPassword(), true, nil
}

func printGenerated(w io.Writer, password string) {
	fmt.Fprintf(w, "password: %s\n", password)
	fmt.Fprintln(w, "This password is shown once. Store it now and change it after the first sign-in.")
}

func newUserCreateCmd(g *globals) *cobra.Command {
	var (
		n     auth.NewUser
		role  string
		stdin bool
	)
	cmd := &cobra.Command{
		Use:   "create --username NAME --role ROLE",
		Short: "Create a user; prints a generated password once unless --password-stdin is given",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n.Role = auth.Role(role)
			var generated bool
			var err error
			if n.Password, generated, err = passwordFrom(cmd, stdin); err != nil {
				return err
			}
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				u, err := svc.CreateUser(cmd.Context(), cliActor(), n)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "created user %s (%s)\n", u.Username, u.Role)
				if len(u.PolicyRoles) > 0 {
					fmt.Fprintf(w, "holds policy roles: %s\n", strings.Join(u.PolicyRoles, ", "))
				}
				if generated {
					printGenerated(w, n.Password)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&n.Username, "username", "", "login name: 3-64 of a-z, 0-9, . _ - @")
	f.StringVar(&role, "role", "", "role: "+roleNames())
	f.StringVar(&n.DisplayName, "display-name", "", "name shown in the UI and reports")
	f.StringArrayVar(&n.PolicyRoles, "policy-role", nil, "a policy role the user holds (it-manager, laboratory-director...); repeatable; it must grant --role")
	f.BoolVar(&stdin, "password-stdin", false, "read the password from the first line of standard input")
	_ = cmd.MarkFlagRequired("username")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func roleNames() string {
	names := make([]string, len(auth.Roles))
	for i, r := range auth.Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

func newUserListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				users, err := svc.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(users)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tROLE\tSTATUS\tLAST LOGIN\tDISPLAY NAME")
				for _, u := range users {
					status := "enabled"
					if u.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, status, fmtTime(u.LastLoginAt, "never"), u.DisplayName)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func fmtTime(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

// updateByName applies upd to the user called username.
func updateByName(ctx context.Context, svc *auth.Service, username string, upd auth.UserUpdate) (auth.User, error) {
	u, err := svc.UserByName(ctx, username)
	if err != nil {
		return auth.User{}, err
	}
	return svc.UpdateUser(ctx, cliActor(), u.ID, upd)
}

func newUserSetRoleCmd(g *globals) *cobra.Command {
	var username, role string
	cmd := &cobra.Command{
		Use:   "set-role --username NAME --role ROLE",
		Short: "Change a user's role; ends their sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				r := auth.Role(role)
				u, err := updateByName(cmd.Context(), svc, username, auth.UserUpdate{Role: &r})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is now %s\n", u.Username, u.Role)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user")
	cmd.Flags().StringVar(&role, "role", "", "new role: "+roleNames())
	_ = cmd.MarkFlagRequired("username")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

// newUserPolicyRolesCmd is `user policy-roles`: show, or with --set
// replace, the policy roles a user holds. Approving or signing off a
// change as a policy role takes holding it.
func newUserPolicyRolesCmd(g *globals) *cobra.Command {
	var (
		username string
		set      []string
	)
	cmd := &cobra.Command{
		Use:   "policy-roles --username NAME [--set ROLE,ROLE]",
		Short: "Show or set the policy roles a user holds (checked against the policy in force)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withUser(cmd.Context(), username, func(svc *auth.Service, u auth.User) error {
				var err error
				if cmd.Flags().Changed("set") {
					if u, err = svc.SetPolicyRoles(cmd.Context(), cliActor(), u.ID, set); err != nil {
						return err
					}
				}
				held := strings.Join(u.PolicyRoles, ", ")
				if held == "" {
					held = "none"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s) holds policy roles: %s\n", u.Username, u.Role, held)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user")
	cmd.Flags().StringSliceVar(&set, "set", nil, "replace the held roles with these, comma-separated (--set= for none)")
	_ = cmd.MarkFlagRequired("username")
	return cmd
}

// newUserEnableCmd builds `user disable` and `user enable`.
func newUserEnableCmd(g *globals, verb string, disable bool) *cobra.Command {
	var username string
	short := "Re-enable a disabled user"
	if disable {
		short = "Disable a user: ends their sessions and stops their API tokens"
	}
	cmd := &cobra.Command{
		Use:   verb + " --username NAME",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				u, err := updateByName(cmd.Context(), svc, username, auth.UserUpdate{Disabled: &disable})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %sd\n", u.Username, verb)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user")
	_ = cmd.MarkFlagRequired("username")
	return cmd
}

func newUserResetPasswordCmd(g *globals) *cobra.Command {
	var (
		username string
		stdin    bool
	)
	cmd := &cobra.Command{
		Use:   "reset-password --username NAME",
		Short: "Set a new password (generated and printed once unless --password-stdin); ends the user's sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, generated, err := passwordFrom(cmd, stdin)
			if err != nil {
				return err
			}
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				u, err := svc.UserByName(cmd.Context(), username)
				if err != nil {
					return err
				}
				if err := svc.SetPassword(cmd.Context(), cliActor(), u.ID, "", pw); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "password of %s reset\n", u.Username)
				if generated {
					printGenerated(w, pw)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the new password from the first line of standard input")
	_ = cmd.MarkFlagRequired("username")
	return cmd
}

func newUserTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens for scripts",
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

// parseExpiry reads --expires: "never", a number of days ("90d"), or a Go
// duration ("12h").
func parseExpiry(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "never" {
		return 0, nil
	}
	bad := errs.E(errs.Invalid, "--expires %q: want a positive number of days (90d), a duration (12h) or never", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var username, name, expires string
	cmd := &cobra.Command{
		Use:   "create --username NAME --name TOKEN-NAME",
		Short: "Create an API token; prints it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ttl, err := parseExpiry(expires)
			if err != nil {
				return err
			}
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				u, err := svc.UserByName(cmd.Context(), username)
				if err != nil {
					return err
				}
				plain, t, err := svc.CreateToken(cmd.Context(), cliActor(), u.ID, name, ttl)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "token: %s\n", plain)
				fmt.Fprintf(w, "id: %s\nname: %s\nuser: %s\nexpires: %s\n", t.ID, t.Name, u.Username, fmtTime(t.ExpiresAt, "never"))
				fmt.Fprintln(w, "This token is shown once; Patchward keeps only its hash. Send it as: Authorization: Bearer <token>")
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "user the token acts as")
	f.StringVar(&name, "name", "", "what the token is for, e.g. \"nightly backup\"")
	f.StringVar(&expires, "expires", "90d", "lifetime: days (90d), a duration (12h) or never")
	_ = cmd.MarkFlagRequired("username")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	var username string
	cmd := &cobra.Command{
		Use:   "list --username NAME",
		Short: "List a user's API tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withUser(cmd.Context(), username, func(svc *auth.Service, u auth.User) error {
				ts, err := svc.ListTokens(cmd.Context(), u.ID)
				if err != nil {
					return err
				}
				now := time.Now()
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCREATED\tEXPIRES\tLAST USED")
				for _, t := range ts {
					status := "active"
					switch {
					case t.RevokedAt != nil:
						status = "revoked"
					case !t.Active(now):
						status = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, status, fmtTime(&t.CreatedAt, ""),
						fmtTime(t.ExpiresAt, "never"), fmtTime(t.LastUsedAt, "never"))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user")
	_ = cmd.MarkFlagRequired("username")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "revoke --id TOKEN-ID",
		Short: "Revoke an API token at once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withAuth(cmd.Context(), func(svc *auth.Service) error {
				if err := svc.RevokeToken(cmd.Context(), cliActor(), id); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", id)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "token id, from `user token list`")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}
