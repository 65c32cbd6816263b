package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// cheapParams keep argon2id fast in tests; production uses DefaultParams.
var cheapParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// testClock is a settable clock for sessions, tokens and lockout windows.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// rawDB opens dsn with database/sql directly, to inspect what the service
// wrote (audit rows, stored hashes) without going through it.
func rawDB(t *testing.T, engine store.Engine, dsn string) *sql.DB {
	t.Helper()
	driver := "pgx"
	if engine == store.SQLite {
		driver = "sqlite"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// auditCounts counts audit entries by action.
func auditCounts(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT action, count(*) FROM audit_entries GROUP BY action`)
	if err != nil {
		t.Fatalf("count audit entries: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var a string
		var n int
		if err := rows.Scan(&a, &n); err != nil {
			t.Fatal(err)
		}
		out[a] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// eachAuth runs fn per engine like storetest.Each, also handing over a raw
// connection to the same database.
func eachAuth(t *testing.T, fn func(t *testing.T, db *store.DB, raw *sql.DB)) {
	for _, e := range storetest.Engines(t) {
		t.Run(string(e), func(t *testing.T) {
			dsn := storetest.DSN(t, e)
			db := storetest.OpenDSN(t, dsn, store.Options{})
			fn(t, db, rawDB(t, e, dsn))
		})
	}
}

func wantKind(t *testing.T, what string, err error, kind errs.Kind) {
	t.Helper()
	if errs.KindOf(err) != kind {
		t.Fatalf("%s: err = %v (kind %v); want kind %v", what, err, errs.KindOf(err), kind)
	}
}

func TestAuthConformance(t *testing.T) {
	eachAuth(t, func(t *testing.T, db *store.DB, raw *sql.DB) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
		svc := auth.NewService(db.Auth(), auth.Options{Now: clk.now, Params: cheapParams, MaxFailures: 3})
		const addr = "192.0.2.10"
		sys := audit.System
		want := map[string]int{}
		checkAudit := func(step string) {
			t.Helper()
			if diff := cmp.Diff(want, auditCounts(t, raw)); diff != "" {
				t.Fatalf("after %s: audit entries by action (-want +got):\n%s", step, diff)
			}
		}

		// Bootstrap: EnsureAdmin creates one admin, once.
		adminPW, created, err := svc.EnsureAdmin(ctx, sys, "admin")
		if err != nil || !created || adminPW == "" {
			t.Fatalf("EnsureAdmin = %q, %v, %v; want a password, true, nil", adminPW, created, err)
		}
		if pw, created, err := svc.EnsureAdmin(ctx, sys, "admin2"); err != nil || created || pw != "" {
			t.Fatalf("second EnsureAdmin = %q, %v, %v; want \"\", false, nil", pw, created, err)
		}
		want["user.create"]++
		checkAudit("EnsureAdmin")
		adminTok, adminP, err := svc.Login(ctx, "Admin", adminPW, addr)
		if err != nil {
			t.Fatalf("admin Login: %v", err)
		}
		want["auth.login"]++
		adminActor := adminP.Actor(addr)

		// Create, read back, and refuse duplicates and bad input unchanged.
		const alicePW = "alice's long passphrase"
		alice, err := svc.CreateUser(ctx, adminActor, auth.NewUser{Username: " Alice ", DisplayName: "Alice A.", Role: auth.RoleOperator, Password: alicePW})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		want["user.create"]++
		got, err := svc.GetUser(ctx, alice.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if diff := cmp.Diff(alice, got); diff != "" {
			t.Errorf("stored user (-created +got):\n%s", diff)
		}
		if alice.Username != "alice" || alice.CreatedAt.IsZero() {
			t.Errorf("created user = %+v; want normalised username and times", alice)
		}
		_, err = svc.CreateUser(ctx, adminActor, auth.NewUser{Username: "ALICE", Role: auth.RoleViewer, Password: "another long password"})
		wantKind(t, "duplicate username", err, errs.Conflict)
		if !strings.Contains(errMessage(err), `"alice" is already taken`) {
			t.Errorf("duplicate username message = %q", errMessage(err))
		}
		_, err = svc.CreateUser(ctx, adminActor, auth.NewUser{Username: "bob", Role: "root", Password: "short"})
		wantKind(t, "invalid user", err, errs.Invalid)
		users, err := svc.ListUsers(ctx)
		if err != nil || len(users) != 2 || users[0].Username != "admin" || users[1].Username != "alice" {
			t.Fatalf("ListUsers = %+v, %v; want admin, alice", users, err)
		}
		checkAudit("create user")

		// A non-admin cannot manage others.
		aliceTok, aliceP, err := svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("alice Login: %v", err)
		}
		want["auth.login"]++
		if aliceP.Role != auth.RoleOperator || aliceP.UserID != alice.ID || aliceP.DisplayName != "Alice A." {
			t.Errorf("alice principal = %+v", aliceP)
		}
		aliceActor := aliceP.Actor(addr)
		_, err = svc.CreateUser(ctx, aliceActor, auth.NewUser{Username: "mallory", Role: auth.RoleAdmin, Password: "mallory's password"})
		wantKind(t, "non-admin CreateUser", err, errs.Forbidden)
		admin := auth.RoleAdmin
		_, err = svc.UpdateUser(ctx, aliceActor, alice.ID, auth.UserUpdate{Role: &admin})
		wantKind(t, "self promotion", err, errs.Forbidden)
		newName := "Alice Anderson"
		if u, err := svc.UpdateUser(ctx, aliceActor, alice.ID, auth.UserUpdate{DisplayName: &newName}); err != nil || u.DisplayName != newName {
			t.Fatalf("own display name = %+v, %v", u, err)
		}
		want["user.update"]++
		checkAudit("permissions")

		// Sessions: lookup, last login, idle timeout extended by use.
		if p, err := svc.SessionPrincipal(ctx, aliceTok); err != nil || p.UserID != alice.ID || p.TokenID != "" {
			t.Fatalf("SessionPrincipal = %+v, %v", p, err)
		}
		if u, _ := svc.GetUser(ctx, alice.ID); u.LastLoginAt == nil || !u.LastLoginAt.Equal(clk.t) {
			t.Errorf("last login = %v; want %v", u.LastLoginAt, clk.t)
		}
		for _, bad := range []string{"", "nonsense", strings.Repeat("A", 43), aliceTok + "x"} {
			_, err := svc.SessionPrincipal(ctx, bad)
			wantKind(t, "bad session token", err, errs.Unauthorized)
		}
		clk.advance(20 * time.Minute)
		if _, err := svc.SessionPrincipal(ctx, aliceTok); err != nil {
			t.Fatalf("SessionPrincipal after 20m: %v", err)
		}
		clk.advance(20 * time.Minute) // 40m since login, 20m since last use
		if _, err := svc.SessionPrincipal(ctx, aliceTok); err != nil {
			t.Fatalf("SessionPrincipal after 40m with use: %v", err)
		}
		clk.advance(31 * time.Minute)
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "idle session", err, errs.Unauthorized)
		_, err = svc.SessionPrincipal(ctx, adminTok)
		wantKind(t, "idle admin session", err, errs.Unauthorized)

		// Absolute lifetime: used every 20 minutes, a session still ends at 12h.
		aliceTok, aliceP, err = svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("alice Login: %v", err)
		}
		want["auth.login"]++
		for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
			clk.advance(20 * time.Minute)
			if _, err := svc.SessionPrincipal(ctx, aliceTok); err != nil {
				t.Fatalf("SessionPrincipal at %v: %v", elapsed+20*time.Minute, err)
			}
		}
		clk.advance(20 * time.Minute)
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "session past lifetime", err, errs.Unauthorized)

		// Logout ends the session; logging out twice is harmless.
		aliceTok, aliceP, err = svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("alice Login: %v", err)
		}
		want["auth.login"]++
		if err := svc.LogoutFrom(ctx, aliceTok, addr); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		want["auth.logout"]++
		var actorID, actorName, actorAddr string
		err = raw.QueryRow(`SELECT actor_id, actor_name, actor_addr FROM audit_entries WHERE action = 'auth.logout'`).Scan(&actorID, &actorName, &actorAddr)
		if err != nil || actorID != alice.ID || actorName != "alice" || actorAddr != addr {
			t.Errorf("logout actor = %q, %q, %q, %v; want alice's id, alice, %s", actorID, actorName, actorAddr, err, addr)
		}
		if err := svc.Logout(ctx, aliceTok); err != nil {
			t.Fatalf("second Logout: %v", err)
		}
		if err := svc.Logout(ctx, "garbage"); err != nil {
			t.Fatalf("Logout(garbage): %v", err)
		}
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "logged-out session", err, errs.Unauthorized)
		checkAudit("sessions")

		// Failed logins: one message for every cause, each logged, then lockout.
		for _, tc := range []struct{ user, pw string }{{"alice", "wrong password!"}, {"nobody", "whatever password"}, {"alice", ""}} {
			_, _, err := svc.Login(ctx, tc.user, tc.pw, addr)
			wantKind(t, "bad login "+tc.user, err, errs.Unauthorized)
			if msg := errMessage(err); msg != "invalid username or password" {
				t.Errorf("bad login %s message = %q", tc.user, msg)
			}
			want["auth.login_failed"]++
		}
		clk.advance(time.Minute)
		_, _, err = svc.Login(ctx, "alice", "wrong again!!", addr) // third failure for alice
		want["auth.login_failed"]++
		_, _, err = svc.Login(ctx, "alice", alicePW, addr)
		wantKind(t, "locked login", err, errs.Unauthorized)
		if msg := errMessage(err); msg != "too many failed attempts; try again later" {
			t.Errorf("locked login message = %q", msg)
		}
		want["auth.login_failed"]++
		checkAudit("failed logins")
		clk.advance(15 * time.Minute) // the first two failures age out
		if _, _, err := svc.Login(ctx, "alice", alicePW, addr); err != nil {
			t.Fatalf("Login after lockout window: %v", err)
		}
		want["auth.login"]++
		// Success cleared the count: two more failures do not lock.
		for range 2 {
			_, _, _ = svc.Login(ctx, "alice", "still wrong!!", addr)
			want["auth.login_failed"]++
		}
		aliceTok, aliceP, err = svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("Login after success reset: %v", err)
		}
		want["auth.login"]++
		checkAudit("lockout")

		// API tokens: create, use, list, revoke; only owner or admin.
		plain, tok, err := svc.CreateToken(ctx, aliceP.Actor(addr), alice.ID, "backup script", 90*24*time.Hour)
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		want["token.create"]++
		if !strings.HasPrefix(plain, auth.TokenPrefix) || len(plain) != len(auth.TokenPrefix)+43 {
			t.Errorf("token plaintext = %q; want pwt_ + 43 chars", plain)
		}
		tp, err := svc.TokenPrincipal(ctx, plain)
		if err != nil || tp.UserID != alice.ID || tp.TokenID != tok.ID || tp.Role != auth.RoleOperator {
			t.Fatalf("TokenPrincipal = %+v, %v", tp, err)
		}
		if ts, err := svc.ListTokens(ctx, alice.ID); err != nil || len(ts) != 1 || ts[0].LastUsedAt == nil || !ts[0].LastUsedAt.Equal(clk.t) {
			t.Fatalf("ListTokens = %+v, %v; want one token used now", ts, err)
		}
		for _, bad := range []string{"", plain[len(auth.TokenPrefix):], "pwt_" + strings.Repeat("A", 43), "Bearer " + plain} {
			_, err := svc.TokenPrincipal(ctx, bad)
			wantKind(t, "bad token", err, errs.Unauthorized)
		}
		_, _, err = svc.CreateToken(ctx, aliceP.Actor(addr), alice.ID, "", 0)
		wantKind(t, "unnamed token", err, errs.Invalid)
		_, _, err = svc.CreateToken(ctx, aliceP.Actor(addr), alice.ID, "past", -time.Hour)
		wantKind(t, "expired token", err, errs.Invalid)
		adminTok, adminP, err = svc.Login(ctx, "admin", adminPW, addr)
		if err != nil {
			t.Fatalf("admin Login: %v", err)
		}
		want["auth.login"]++
		adminActor = adminP.Actor(addr)
		short, shortTok, err := svc.CreateToken(ctx, adminActor, alice.ID, "one hour", time.Hour)
		if err != nil {
			t.Fatalf("admin CreateToken for alice: %v", err)
		}
		want["token.create"]++
		err = svc.RevokeToken(ctx, tp.Actor(addr), shortTok.ID) // alice, via her token
		if err != nil {
			t.Fatalf("RevokeToken by owner: %v", err)
		}
		want["token.revoke"]++
		err = svc.RevokeToken(ctx, tp.Actor(addr), shortTok.ID)
		wantKind(t, "revoke twice", err, errs.Conflict)
		_, err = svc.TokenPrincipal(ctx, short)
		wantKind(t, "revoked token", err, errs.Unauthorized)
		adminPlain, adminTokRec, err := svc.CreateToken(ctx, adminActor, adminP.UserID, "admin script", 0)
		if err != nil {
			t.Fatalf("admin CreateToken: %v", err)
		}
		want["token.create"]++
		err = svc.RevokeToken(ctx, aliceP.Actor(addr), adminTokRec.ID)
		wantKind(t, "revoke another's token", err, errs.Forbidden)
		_, _, err = svc.CreateToken(ctx, aliceP.Actor(addr), adminP.UserID, "sneaky", 0)
		wantKind(t, "token for another user", err, errs.Forbidden)
		checkAudit("tokens")

		// Disabling kills sessions and stops tokens; enabling restores tokens
		// but not sessions.
		yes, no := true, false
		if _, err := svc.UpdateUser(ctx, adminActor, alice.ID, auth.UserUpdate{Disabled: &yes}); err != nil {
			t.Fatalf("disable alice: %v", err)
		}
		want["user.disable"]++
		want["session.end_all"]++
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "session of disabled user", err, errs.Unauthorized)
		_, err = svc.TokenPrincipal(ctx, plain)
		wantKind(t, "token of disabled user", err, errs.Unauthorized)
		_, _, err = svc.Login(ctx, "alice", alicePW, addr)
		wantKind(t, "disabled login", err, errs.Unauthorized)
		if msg := errMessage(err); msg != "invalid username or password" {
			t.Errorf("disabled login message = %q", msg)
		}
		want["auth.login_failed"]++
		_, err = svc.CreateUser(ctx, tp.Actor(addr), auth.NewUser{Username: "x-user", Role: auth.RoleViewer, Password: "a long password!"})
		wantKind(t, "disabled actor", err, errs.Unauthorized)
		if _, err := svc.UpdateUser(ctx, adminActor, alice.ID, auth.UserUpdate{Disabled: &no}); err != nil {
			t.Fatalf("enable alice: %v", err)
		}
		want["user.enable"]++
		if _, err := svc.TokenPrincipal(ctx, plain); err != nil {
			t.Fatalf("token after re-enable: %v", err)
		}
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "session after re-enable", err, errs.Unauthorized)
		checkAudit("disable")

		// A role change ends sessions and applies to tokens at once.
		aliceTok, _, err = svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("alice Login: %v", err)
		}
		want["auth.login"]++
		viewer := auth.RoleViewer
		if _, err := svc.UpdateUser(ctx, adminActor, alice.ID, auth.UserUpdate{Role: &viewer}); err != nil {
			t.Fatalf("set role: %v", err)
		}
		want["user.update"]++
		want["session.end_all"]++
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "session after role change", err, errs.Unauthorized)
		if p, err := svc.TokenPrincipal(ctx, plain); err != nil || p.Role != auth.RoleViewer {
			t.Fatalf("token principal after role change = %+v, %v; want viewer", p, err)
		}
		// Unchanged values change and log nothing.
		if _, err := svc.UpdateUser(ctx, adminActor, alice.ID, auth.UserUpdate{Role: &viewer}); err != nil {
			t.Fatalf("no-op update: %v", err)
		}
		checkAudit("role change")

		// The last enabled admin cannot be disabled or demoted.
		_, err = svc.UpdateUser(ctx, adminActor, adminP.UserID, auth.UserUpdate{Disabled: &yes})
		wantKind(t, "disable last admin", err, errs.Conflict)
		_, err = svc.UpdateUser(ctx, adminActor, adminP.UserID, auth.UserUpdate{Role: &viewer})
		wantKind(t, "demote last admin", err, errs.Conflict)
		_, err = svc.UpdateUser(ctx, adminActor, "no-such-id", auth.UserUpdate{Role: &viewer})
		wantKind(t, "update missing user", err, errs.NotFound)
		if _, err := svc.TokenPrincipal(ctx, adminPlain); err != nil {
			t.Fatalf("admin token: %v", err)
		}
		checkAudit("last admin")

		// Passwords: self-service needs the current one; admins reset.
		aliceTok, aliceP, err = svc.Login(ctx, "alice", alicePW, addr)
		if err != nil {
			t.Fatalf("alice Login: %v", err)
		}
		want["auth.login"]++
		const alicePW2 = "a brand new passphrase"
		err = svc.SetPassword(ctx, aliceP.Actor(addr), alice.ID, "not my password", alicePW2)
		wantKind(t, "wrong current password", err, errs.Invalid)
		want["auth.login_failed"]++
		err = svc.SetPassword(ctx, aliceP.Actor(addr), alice.ID, alicePW, "alice")
		wantKind(t, "weak new password", err, errs.Invalid)
		err = svc.SetPassword(ctx, aliceP.Actor(addr), adminP.UserID, "", "taking over admin")
		wantKind(t, "set another's password", err, errs.Forbidden)
		if err := svc.SetPassword(ctx, aliceP.Actor(addr), alice.ID, alicePW, alicePW2); err != nil {
			t.Fatalf("SetPassword self: %v", err)
		}
		want["user.password_change"]++
		want["session.end_all"]++
		_, err = svc.SessionPrincipal(ctx, aliceTok)
		wantKind(t, "session after password change", err, errs.Unauthorized)
		_, _, err = svc.Login(ctx, "alice", alicePW, addr)
		wantKind(t, "old password", err, errs.Unauthorized)
		want["auth.login_failed"]++
		const alicePW3 = "reset by the admin"
		if err := svc.SetPassword(ctx, adminActor, alice.ID, "", alicePW3); err != nil {
			t.Fatalf("admin reset: %v", err)
		}
		want["user.password_reset"]++
		if _, _, err := svc.Login(ctx, "alice", alicePW3, addr); err != nil {
			t.Fatalf("Login with reset password: %v", err)
		}
		want["auth.login"]++
		checkAudit("passwords")

		// Stronger parameters rehash on the next successful login.
		stronger := cheapParams
		stronger.Memory = 128
		svc2 := auth.NewService(db.Auth(), auth.Options{Now: clk.now, Params: stronger})
		if _, _, err := svc2.Login(ctx, "alice", alicePW3, addr); err != nil {
			t.Fatalf("Login with new params: %v", err)
		}
		want["auth.login"]++
		want["user.password_rehash"]++
		var stored string
		if err := raw.QueryRow(`SELECT password_hash FROM users WHERE id = $1`, alice.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored, "$argon2id$v=19$m=128,t=1,p=1$") {
			t.Errorf("stored hash after rehash = %q; want m=128", stored)
		}
		if _, _, err := svc.Login(ctx, "alice", alicePW3, addr); err != nil {
			t.Fatalf("Login after rehash: %v", err)
		}
		want["auth.login"]++
		want["user.password_rehash"]++ // and back to the first service's params
		checkAudit("rehash")

		// No secret ever reaches the audit trail.
		rows, err := raw.Query(`SELECT action, coalesce(before_json, ''), coalesce(after_json, ''), actor_name FROM audit_entries`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var action, before, after, name string
			if err := rows.Scan(&action, &before, &after, &name); err != nil {
				t.Fatal(err)
			}
			all := before + after + name
			for _, secret := range []string{adminPW, alicePW, alicePW2, alicePW3, "$argon2id", plain[4:], short[4:], aliceTok, adminTok, "nobody"} {
				if strings.Contains(all, secret) {
					t.Errorf("audit entry %s contains a secret or unknown username %q: %s", action, secret, all)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func errMessage(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// TestAuthTokenExpiry checks a token stops working at its expiry and that
// expired sessions are swept at the next sign-in.
func TestAuthTokenExpiry(t *testing.T) {
	eachAuth(t, func(t *testing.T, db *store.DB, raw *sql.DB) {
		ctx := context.Background()
		clk := &testClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
		svc := auth.NewService(db.Auth(), auth.Options{Now: clk.now, Params: cheapParams})
		u, err := svc.CreateUser(ctx, audit.System, auth.NewUser{Username: "ops-bot", Role: auth.RoleOperator, Password: "a long robot password"})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		plain, _, err := svc.CreateToken(ctx, audit.System, u.ID, "nightly", time.Hour)
		if err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		clk.advance(59 * time.Minute)
		if _, err := svc.TokenPrincipal(ctx, plain); err != nil {
			t.Fatalf("TokenPrincipal before expiry: %v", err)
		}
		clk.advance(time.Minute)
		_, err = svc.TokenPrincipal(ctx, plain)
		wantKind(t, "expired token", err, errs.Unauthorized)

		if _, _, err := svc.Login(ctx, "ops-bot", "a long robot password", ""); err != nil {
			t.Fatalf("Login: %v", err)
		}
		clk.advance(time.Hour)
		if _, _, err := svc.Login(ctx, "ops-bot", "a long robot password", ""); err != nil {
			t.Fatalf("Login: %v", err)
		}
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("sessions after sweep = %d; want 1", n)
		}
		// The session secret is stored only as a 32-byte hash.
		var h []byte
		if err := raw.QueryRow(`SELECT token_hash FROM sessions`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		if len(h) != 32 {
			t.Errorf("stored session hash has %d bytes; want 32", len(h))
		}
	})
}

// TestAuthLastAdminRace has two admins demote each other at once: exactly
// one may succeed, on every engine, so an enabled admin always remains.
func TestAuthLastAdminRace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc := auth.NewService(db.Auth(), auth.Options{Params: cheapParams})
		var admins [2]auth.User
		for i, name := range []string{"admin-a", "admin-b"} {
			u, err := svc.CreateUser(ctx, audit.System, auth.NewUser{Username: name, Role: auth.RoleAdmin, Password: "a long admin password"})
			if err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			admins[i] = u
		}
		viewer := auth.RoleViewer
		errc := make(chan error, 2)
		for i := range admins {
			actor, target := admins[i].Principal().Actor(""), admins[1-i].ID
			go func() {
				_, err := svc.UpdateUser(ctx, actor, target, auth.UserUpdate{Role: &viewer})
				errc <- err
			}()
		}
		ok := 0
		for range 2 {
			if err := <-errc; err == nil {
				ok++
			} else if k := errs.KindOf(err); k != errs.Conflict && k != errs.Forbidden {
				t.Errorf("losing demotion err = %v; want Conflict or Forbidden", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d demotions succeeded; want exactly 1", ok)
		}
		if n, err := db.Auth().CountAdmins(ctx); err != nil || n != 1 {
			t.Errorf("CountAdmins = %d, %v; want 1", n, err)
		}
	})
}

// TestAuthCountAdminsLocks checks the last-admin check serialises: while one
// transaction has counted the admins, another's count waits for it to
// commit and then sees its change. (On SQLite the single writer connection
// does this; on PostgreSQL the row locks do.)
func TestAuthCountAdminsLocks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		svc := auth.NewService(db.Auth(), auth.Options{Params: cheapParams})
		var b auth.User
		for _, name := range []string{"admin-a", "admin-b"} {
			u, err := svc.CreateUser(ctx, audit.System, auth.NewUser{Username: name, Role: auth.RoleAdmin, Password: "a long admin password"})
			if err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			b = u
		}
		second := make(chan int, 1)
		err := db.Auth().Transact(ctx, func(tx auth.Tx) error {
			// Errors, not t.Fatal, inside the callback: Fatal would skip
			// the rollback and leave the transaction open.
			if n, err := tx.CountAdmins(ctx); err != nil || n != 2 {
				return fmt.Errorf("first CountAdmins = %d, %v; want 2", n, err)
			}
			go func() {
				n := -1
				_ = db.Auth().Transact(ctx, func(tx auth.Tx) error {
					var err error
					n, err = tx.CountAdmins(ctx)
					return err
				})
				second <- n
			}()
			// A wait is the only way to see that something does not happen.
			select {
			case n := <-second:
				return fmt.Errorf("second CountAdmins = %d without waiting for the first transaction", n)
			case <-time.After(300 * time.Millisecond):
			}
			b.Role = auth.RoleViewer
			return tx.UpdateUser(ctx, &b)
		})
		if err != nil {
			t.Fatalf("Transact: %v", err)
		}
		if n := <-second; n != 1 {
			t.Errorf("second CountAdmins = %d; want 1 after the first committed", n)
		}
	})
}
