package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/store"
)

// runUserCLI runs the patchward command tree with args and stdin, returning
// what it printed.
func runUserCLI(t *testing.T, dbPath, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--db", dbPath, "--log-level", "error"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRunUserCLI(t *testing.T, dbPath, stdin string, args ...string) string {
	t.Helper()
	out, err := runUserCLI(t, dbPath, stdin, args...)
	if err != nil {
		t.Fatalf("patchward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var (
	passwordLine = regexp.MustCompile(`(?m)^password: (\S+)$`)
	tokenLine    = regexp.MustCompile(`(?m)^token: (pwt_\S+)$`)
	idLine       = regexp.MustCompile(`(?m)^id: (\S+)$`)
)

func match(t *testing.T, re *regexp.Regexp, out string) string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no match for %s:\n%s", re, out)
	}
	return m[1]
}

func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "patchward.db")
	mustRunUserCLI(t, dbPath, "", "migrate")

	// A generated password is printed once and works.
	out := mustRunUserCLI(t, dbPath, "", "user", "create", "--username", "Admin", "--role", "admin", "--display-name", "First Admin")
	if !strings.Contains(out, "created user admin (admin)") {
		t.Errorf("create output = %q", out)
	}
	adminPW := match(t, passwordLine, out)

	// --password-stdin reads one line and prints no password.
	const alicePW = "alice's long passphrase"
	out = mustRunUserCLI(t, dbPath, alicePW+"\n", "user", "create", "--username", "alice", "--role", "operator", "--password-stdin")
	if passwordLine.MatchString(out) {
		t.Errorf("create with --password-stdin printed a password: %q", out)
	}

	// Bad input fails with a clear message and changes nothing.
	for _, tc := range []struct {
		args  []string
		stdin string
		kind  errs.Kind
		msg   string
	}{
		{[]string{"user", "create", "--username", "ALICE", "--role", "viewer"}, "", errs.Conflict, `username "alice" is already taken`},
		{[]string{"user", "create", "--username", "bob", "--role", "root"}, "", errs.Invalid, "role: must be one of admin, approver"},
		{[]string{"user", "create", "--username", "bob", "--role", "viewer", "--password-stdin"}, "short\n", errs.Invalid, "password: must be at least 12"},
		{[]string{"user", "create", "--username", "bob", "--role", "viewer", "--password-stdin"}, "", errs.Invalid, "no password on standard input"},
		{[]string{"user", "set-role", "--username", "admin", "--role", "viewer"}, "", errs.Conflict, "last enabled admin"},
		{[]string{"user", "disable", "--username", "nobody"}, "", errs.NotFound, `user "nobody" not found`},
		{[]string{"user", "token", "create", "--username", "alice", "--name", "x", "--expires", "-3d"}, "", errs.Invalid, "--expires"},
		{[]string{"user", "token", "revoke", "--id", "no-such-token"}, "", errs.NotFound, "not found"},
	} {
		_, err := runUserCLI(t, dbPath, tc.stdin, tc.args...)
		if errs.KindOf(err) != tc.kind || !strings.Contains(userMessage(err), tc.msg) {
			t.Errorf("patchward %s = %v; want %v containing %q", strings.Join(tc.args, " "), err, tc.kind, tc.msg)
		}
	}
	if _, err := runUserCLI(t, dbPath, "", "user", "create", "--role", "admin"); err == nil {
		t.Errorf("create without --username succeeded")
	}

	out = mustRunUserCLI(t, dbPath, "", "user", "list")
	if !regexp.MustCompile(`(?m)^admin\s+admin\s+enabled\s+never\s+First Admin$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^alice\s+operator\s+enabled\s+never`).MatchString(out) || strings.Contains(out, "bob") {
		t.Errorf("user list =\n%s", out)
	}
	out = mustRunUserCLI(t, dbPath, "", "user", "list", "--json")
	if !strings.Contains(out, `"username": "alice"`) || strings.Contains(out, "argon2") {
		t.Errorf("user list --json =\n%s", out)
	}

	mustRunUserCLI(t, dbPath, "", "user", "set-role", "--username", "alice", "--role", "approver")
	mustRunUserCLI(t, dbPath, "", "user", "disable", "--username", "alice")
	out = mustRunUserCLI(t, dbPath, "", "user", "list")
	if !regexp.MustCompile(`(?m)^alice\s+approver\s+disabled`).MatchString(out) {
		t.Errorf("after set-role and disable, user list =\n%s", out)
	}
	mustRunUserCLI(t, dbPath, "", "user", "enable", "--username", "alice")
	out = mustRunUserCLI(t, dbPath, "", "user", "reset-password", "--username", "alice")
	alicePW2 := match(t, passwordLine, out)

	out = mustRunUserCLI(t, dbPath, "", "user", "token", "create", "--username", "alice", "--name", "nightly export")
	token, tokenID := match(t, tokenLine, out), match(t, idLine, out)
	if !strings.Contains(out, "expires: 20") {
		t.Errorf("token create without --expires has no default expiry:\n%s", out)
	}
	out = mustRunUserCLI(t, dbPath, "", "user", "token", "create", "--username", "alice", "--name", "forever", "--expires", "never")
	if !strings.Contains(out, "expires: never") {
		t.Errorf("token create --expires never:\n%s", out)
	}

	// What the commands stored works through the service the server uses.
	db, err := store.Open(ctx, dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := newAuthService(db)
	if _, p, err := svc.Login(ctx, "admin", adminPW, ""); err != nil || p.Role != auth.RoleAdmin || p.DisplayName != "First Admin" {
		t.Errorf("admin Login = %+v, %v", p, err)
	}
	if _, _, err := svc.Login(ctx, "alice", alicePW, ""); errs.KindOf(err) != errs.Unauthorized {
		t.Errorf("Login with the old password = %v; want Unauthorized", err)
	}
	if _, p, err := svc.Login(ctx, "alice", alicePW2, ""); err != nil || p.Role != auth.RoleApprover {
		t.Errorf("Login with the reset password = %+v, %v", p, err)
	}
	if p, err := svc.TokenPrincipal(ctx, token); err != nil || p.Username != "alice" || p.TokenID != tokenID {
		t.Errorf("TokenPrincipal = %+v, %v", p, err)
	}

	out = mustRunUserCLI(t, dbPath, "", "user", "token", "list", "--username", "alice")
	if !regexp.MustCompile(tokenID + `\s+nightly export\s+active`).MatchString(out) {
		t.Errorf("token list =\n%s", out)
	}
	mustRunUserCLI(t, dbPath, "", "user", "token", "revoke", "--id", tokenID)
	if _, err := svc.TokenPrincipal(ctx, token); errs.KindOf(err) != errs.Unauthorized {
		t.Errorf("TokenPrincipal after revoke = %v; want Unauthorized", err)
	}
	out = mustRunUserCLI(t, dbPath, "", "user", "token", "list", "--username", "alice")
	if !regexp.MustCompile(tokenID + `\s+nightly export\s+revoked`).MatchString(out) {
		t.Errorf("token list after revoke =\n%s", out)
	}
}

func TestParseExpiry(t *testing.T) {
	for in, want := range map[string]string{"90d": "2160h0m0s", "12h": "12h0m0s", "never": "0s", " 1D ": "24h0m0s"} {
		if got, err := parseExpiry(in); err != nil || got.String() != want {
			t.Errorf("parseExpiry(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0d", "-1d", "d", "1y", "-5h", "9999d"} {
		if _, err := parseExpiry(in); err == nil {
			t.Errorf("parseExpiry(%q) = nil error; want one", in)
		}
	}
}
