package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// Sessions are kept here rather than in github.com/alexedwards/scs: scs
// stores the cookie value itself as the key, has no way to end one user's
// sessions when they are disabled or demoted, and could not write the audit
// entry in the same transaction as the sign-in.

// SessionCookieName is the suggested name of the session cookie. The value
// is the token Login returns: 43 characters of unpadded base64url, safe in a
// cookie without quoting.
const SessionCookieName = "patchward_session"

// secretLen is the number of random bytes in session and API token secrets:
// 256 bits, beyond guessing, so a plain SHA-256 (not a slow hash) is enough
// to protect them at rest.
const secretLen = 32

var b64url = base64.RawURLEncoding

// Error messages for failed sign-in. One message covers unknown users, wrong
// passwords and disabled accounts so a guesser learns nothing.
var (
	errBadLogin = errs.E(errs.Unauthorized, "invalid username or password")
	errLocked   = errs.E(errs.Unauthorized, "too many failed attempts; try again later")
	errNoAuth   = errs.E(errs.Unauthorized, "your session has expired or is not valid; sign in again")
	errBadToken = errs.E(errs.Unauthorized, "invalid, expired or revoked API token")
)

// maxAddrLen bounds the stored client address; it comes from the request.
const maxAddrLen = 128

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// newSecret returns secretLen random bytes as unpadded base64url.
func (s *Service) newSecret() (string, error) {
	b := make([]byte, secretLen)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return b64url.EncodeToString(b), nil
}

// secretHash is what is stored for a session or token secret.
func secretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// wellFormedSecret reports whether s decodes to exactly secretLen bytes,
// so junk is rejected before it reaches the database.
func wellFormedSecret(s string) bool {
	if len(s) != b64url.EncodedLen(secretLen) {
		return false
	}
	b, err := b64url.Strict().DecodeString(s)
	return err == nil && len(b) == secretLen
}

// lockoutKey is the username a failure is counted against. Attempts are
// throttled by name whether or not the account exists, so the lockout
// message itself does not reveal which names are real.
func lockoutKey(username string) string { return clip(NormalizeUsername(username), MaxUsernameLen) }

func (s *Service) checkLockout(ctx context.Context, username string) error {
	since := s.clock().Add(-s.opt.FailureWindow)
	n, err := s.store.CountLoginFailures(ctx, lockoutKey(username), since)
	if err != nil {
		return fmt.Errorf("check sign-in failures: %w", err)
	}
	if n >= s.opt.MaxFailures {
		return errLocked
	}
	return nil
}

// recordFailure counts a failed attempt against username and logs it. The
// attempted name is logged only when it belongs to an account (u non-nil):
// people type passwords into the username box, and the audit trail is
// append-only, so an unknown name is never written to it.
func (s *Service) recordFailure(ctx context.Context, actor audit.Actor, username string, u *User, why string) error {
	rec := audit.Record{Actor: actor, Action: "auth.login_failed", ObjectType: "user", Reason: why}
	if u != nil {
		rec.ObjectID = u.ID
		rec.After = map[string]string{"username": u.Username}
	}
	err := s.store.Transact(ctx, func(tx Tx) error {
		now := s.clock()
		if err := tx.PruneLoginFailures(ctx, now.Add(-s.opt.FailureWindow)); err != nil {
			return err
		}
		if err := tx.AddLoginFailure(ctx, lockoutKey(username), now); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, rec)
	})
	if err != nil {
		return fmt.Errorf("record failed sign-in: %w", err)
	}
	return nil
}

// Login checks a username and password and starts a session. It returns the
// session token, to be set as the cookie value and never stored by the
// caller, and the signed-in principal. addr is the client address, for the
// audit trail.
//
// Every failure (unknown user, wrong password, disabled account) returns the
// same Unauthorized error after the same argon2id work; after MaxFailures
// failures for one username within FailureWindow, attempts are refused
// with "too many failed attempts" until the window moves on.
func (s *Service) Login(ctx context.Context, username, password, addr string) (string, Principal, error) {
	addr = clip(addr, maxAddrLen)
	name := NormalizeUsername(username)
	anon := audit.Actor{Kind: audit.ActorUser, Addr: addr}
	var (
		known *User
		u     User
		err   error
	)
	// A name no account could have is not looked up, but costs the same.
	if usernameProblem(name) == "" {
		u, err = s.store.GetUserByUsername(ctx, name)
		switch {
		case err == nil:
			known = &u
			anon.ID, anon.Name = u.ID, u.Username
		case !errors.Is(err, errs.ErrNotFound):
			return "", Principal{}, fmt.Errorf("sign in: %w", err)
		}
	}
	if err := s.checkLockout(ctx, name); err != nil {
		if errors.Is(err, errLocked) {
			// Logged but not counted, so a lock ends when the failures that
			// caused it age out rather than lasting while someone keeps trying.
			if aerr := s.logLocked(ctx, anon, known); aerr != nil {
				return "", Principal{}, aerr
			}
		}
		return "", Principal{}, err
	}
	var stored string
	if known != nil {
		if stored, err = s.store.PasswordHash(ctx, u.ID); err != nil {
			return "", Principal{}, fmt.Errorf("sign in: %w", err)
		}
	} else if stored, err = s.dummyHash(); err != nil {
		return "", Principal{}, fmt.Errorf("sign in: %w", err)
	}
	ok, rehash, err := s.verify(ctx, stored, password)
	if err != nil {
		return "", Principal{}, fmt.Errorf("sign in: user %s: %w", u.ID, err)
	}
	why := ""
	switch {
	case known == nil:
		why = "unknown username"
	case !ok:
		why = "wrong password"
	case u.Disabled:
		why = "account disabled"
	}
	if why != "" {
		if err := s.recordFailure(ctx, anon, name, known, why); err != nil {
			return "", Principal{}, err
		}
		return "", Principal{}, errBadLogin
	}
	var newHash string
	if rehash {
		// The stored hash used older parameters; upgrade it now, while the
		// plaintext is at hand.
		if newHash, err = s.hash(ctx, password); err != nil {
			return "", Principal{}, fmt.Errorf("sign in: %w", err)
		}
	}
	token, err := s.newSecret()
	if err != nil {
		return "", Principal{}, err
	}
	actor := u.Principal().Actor(addr)
	err = s.store.Transact(ctx, func(tx Tx) error {
		now := s.clock()
		// Re-read under the write lock: the account may have been disabled
		// while the password was being checked.
		cur, err := tx.GetUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Disabled {
			return errBadLogin
		}
		u = cur
		if _, err := tx.DeleteStaleSessions(ctx, now, now.Add(-s.opt.SessionIdle)); err != nil {
			return err
		}
		sess := Session{Hash: secretHash(token), UserID: u.ID, CreatedAt: now,
			ExpiresAt: now.Add(s.opt.SessionLifetime), LastSeenAt: now, Addr: addr}
		if err := tx.InsertSession(ctx, &sess); err != nil {
			return err
		}
		if err := tx.SetLastLogin(ctx, u.ID, now); err != nil {
			return err
		}
		if err := tx.ClearLoginFailures(ctx, lockoutKey(name)); err != nil {
			return err
		}
		if newHash != "" {
			if err := tx.SetPasswordHash(ctx, u.ID, newHash, now); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "user.password_rehash", ObjectType: "user", ObjectID: u.ID,
				After: map[string]string{"password": "[redacted]", "params": s.opt.Params.String()}}); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "auth.login", ObjectType: "user", ObjectID: u.ID,
			After: map[string]string{"username": u.Username, "method": "password"}})
	})
	if err != nil {
		return "", Principal{}, fmt.Errorf("sign in: %w", err)
	}
	return token, u.Principal(), nil
}

func (s *Service) logLocked(ctx context.Context, actor audit.Actor, u *User) error {
	rec := audit.Record{Actor: actor, Action: "auth.login_failed", ObjectType: "user", Reason: "locked out after repeated failures"}
	if u != nil {
		rec.ObjectID = u.ID
		rec.After = map[string]string{"username": u.Username}
	}
	err := s.store.Transact(ctx, func(tx Tx) error { return tx.AppendAudit(ctx, rec) })
	if err != nil {
		return fmt.Errorf("record failed sign-in: %w", err)
	}
	return nil
}

// SessionPrincipal returns the principal for a session cookie value. It is
// Unauthorized if the token is malformed or unknown, the session is idle
// longer than SessionIdle or older than SessionLifetime, or the user is
// disabled. The role is read fresh, so role changes apply at once.
func (s *Service) SessionPrincipal(ctx context.Context, token string) (Principal, error) {
	if !wellFormedSecret(token) {
		return Principal{}, errNoAuth
	}
	hash := secretHash(token)
	sess, err := s.store.GetSession(ctx, hash)
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errNoAuth
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up session: %w", err)
	}
	now := s.clock()
	if s.sessionExpired(sess, now) {
		return Principal{}, errNoAuth
	}
	u, err := s.store.GetUser(ctx, sess.UserID)
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errNoAuth
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up session user: %w", err)
	}
	if u.Disabled {
		return Principal{}, errNoAuth
	}
	if now.Sub(sess.LastSeenAt) >= touchInterval {
		// Not audited: this is bookkeeping for the idle timeout, and logging
		// it would add an entry per minute per user.
		err := s.store.Transact(ctx, func(tx Tx) error { return tx.TouchSession(ctx, hash, now) })
		if err != nil {
			return Principal{}, fmt.Errorf("extend session: %w", err)
		}
	}
	return u.Principal(), nil
}

// Logout ends the session whose cookie value is token. Ending a session that
// does not exist (already expired, or signed out in another tab) succeeds
// without logging, since nothing changed. The audit actor is the session's
// owner: holding the cookie is what entitles the caller to end it.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.LogoutFrom(ctx, token, "")
}

// LogoutFrom is Logout that also records the client address in the audit
// entry, for callers that have it.
func (s *Service) LogoutFrom(ctx context.Context, token, addr string) error {
	if !wellFormedSecret(token) {
		return nil
	}
	hash := secretHash(token)
	err := s.store.Transact(ctx, func(tx Tx) error {
		sess, err := tx.GetSession(ctx, hash)
		if err != nil {
			return err
		}
		actor := audit.Actor{Kind: audit.ActorUser, ID: sess.UserID, Addr: clip(addr, maxAddrLen)}
		if u, err := tx.GetUser(ctx, sess.UserID); err == nil {
			actor = u.Principal().Actor(actor.Addr)
		} else if !errors.Is(err, errs.ErrNotFound) {
			return err
		}
		if err := tx.DeleteSession(ctx, hash); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "auth.logout", ObjectType: "user", ObjectID: sess.UserID})
	})
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// sessionExpired reports whether sess is past its absolute lifetime or has
// been idle too long at now.
func (s *Service) sessionExpired(sess Session, now time.Time) bool {
	return !now.Before(sess.ExpiresAt) || !now.Before(sess.LastSeenAt.Add(s.opt.SessionIdle))
}
