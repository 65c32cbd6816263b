package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// TokenPrefix starts every API token, so a leaked token is recognisable by
// secret scanners and cannot be mistaken for a session cookie.
const TokenPrefix = "pwt_"

// MaxTokenNameLen bounds a token's name.
const MaxTokenNameLen = 64

func tokenNameProblem(name string) string {
	if name == "" {
		return "is required, so the token can be recognised later"
	}
	if p := displayNameProblem(name); p != "" {
		return p
	}
	if utf8.RuneCountInString(name) > MaxTokenNameLen {
		return fmt.Sprintf("must be at most %d characters", MaxTokenNameLen)
	}
	if strings.HasPrefix(strings.ToLower(name), feedTokenName) {
		return fmt.Sprintf("must not start with %q, which marks calendar feed tokens", feedTokenName)
	}
	return ""
}

// CreateToken issues an API token for a user and returns its plaintext,
// "pwt_" followed by 43 characters of base64url, which is shown once and
// never again. Users create their own tokens; admins may create them for
// anyone. ttl zero means the token does not expire.
func (s *Service) CreateToken(ctx context.Context, actor audit.Actor, userID, name string, ttl time.Duration) (string, Token, error) {
	return s.issueToken(ctx, actor, userID, name, ttl, tokenKind{prefix: TokenPrefix, what: "API token", action: "token.create"})
}

// tokenKind says what issueToken is issuing: API tokens and calendar feed
// tokens share storage, hashing and the rules on who may issue them.
type tokenKind struct {
	prefix string
	// stored prefixes the name as stored, marking the token's kind.
	stored string
	what   string
	action string
}

// issueToken validates, creates and audits a token of kind k and returns
// its plaintext, which is shown once and never stored.
func (s *Service) issueToken(ctx context.Context, actor audit.Actor, userID, name string, ttl time.Duration, k tokenKind) (string, Token, error) {
	name = strings.TrimSpace(name)
	var v errs.Validation
	if p := tokenNameProblem(name); p != "" {
		v.Add("name", "%s", p)
	}
	if ttl < 0 {
		v.Add("expires", "must not be in the past")
	}
	if err := v.Err("invalid " + k.what); err != nil {
		return "", Token{}, err
	}
	secret, err := s.newSecret()
	if err != nil {
		return "", Token{}, err
	}
	plain := k.prefix + secret
	var t Token
	err = s.store.Transact(ctx, func(tx Tx) error {
		c, err := callerOf(ctx, tx, actor)
		if err != nil {
			return err
		}
		if !c.is(userID) && !c.admin() {
			return errs.E(errs.Forbidden, "only an admin can create %ss for other users", k.what)
		}
		u, err := tx.GetUser(ctx, userID)
		if err != nil {
			return err
		}
		if u.Disabled {
			return errs.E(errs.Conflict, "user %s is disabled; enable the account first", u.Username)
		}
		now := s.clock()
		t = Token{ID: newID(), UserID: userID, Name: k.stored + name, Hash: secretHash(plain), CreatedAt: now}
		if ttl > 0 {
			exp := now.Add(ttl)
			t.ExpiresAt = &exp
		}
		if err := tx.InsertToken(ctx, &t); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: k.action, ObjectType: "api_token", ObjectID: t.ID, After: t})
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create %s: %w", k.what, err)
	}
	return plain, t, nil
}

// ListTokens returns a user's API tokens, revoked and expired ones included
// so reviews can see them, without their secrets. The HTTP layer allows it
// for the user themself and for admins.
func (s *Service) ListTokens(ctx context.Context, userID string) ([]Token, error) {
	ts, err := s.store.ListTokens(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return ts, nil
}

// GetToken returns one API token, without its secret.
func (s *Service) GetToken(ctx context.Context, id string) (Token, error) {
	return s.store.GetToken(ctx, id)
}

// RevokeToken revokes an API token at once. Its owner or an admin may do so.
// The row is kept, so the audit trail's references to it still resolve.
func (s *Service) RevokeToken(ctx context.Context, actor audit.Actor, id string) error {
	err := s.store.Transact(ctx, func(tx Tx) error {
		c, err := callerOf(ctx, tx, actor)
		if err != nil {
			return err
		}
		old, err := tx.GetToken(ctx, id)
		if err != nil {
			return err
		}
		if !c.is(old.UserID) && !c.admin() {
			return errs.E(errs.Forbidden, "only an admin can revoke other users' API tokens")
		}
		if old.RevokedAt != nil {
			return errs.E(errs.Conflict, "API token %q is already revoked", old.Name)
		}
		now := s.clock()
		if err := tx.RevokeToken(ctx, id, now); err != nil {
			return err
		}
		t := old
		t.RevokedAt = &now
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "token.revoke", ObjectType: "api_token", ObjectID: id, Before: old, After: t})
	})
	if err != nil {
		return fmt.Errorf("revoke API token: %w", err)
	}
	return nil
}

// TokenPrincipal returns the principal for an API token taken from an
// "Authorization: Bearer" header. It is Unauthorized if the token is
// malformed, unknown, revoked or expired, or its user is disabled.
func (s *Service) TokenPrincipal(ctx context.Context, bearer string) (Principal, error) {
	secret, ok := strings.CutPrefix(bearer, TokenPrefix)
	if !ok || !wellFormedSecret(secret) {
		return Principal{}, errBadToken
	}
	t, err := s.store.GetTokenByHash(ctx, secretHash(bearer))
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errBadToken
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up API token: %w", err)
	}
	now := s.clock()
	if !t.Active(now) {
		return Principal{}, errBadToken
	}
	u, err := s.store.GetUser(ctx, t.UserID)
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errBadToken
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up API token user: %w", err)
	}
	if u.Disabled {
		return Principal{}, errBadToken
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchInterval {
		// Not audited: a use is not a change, and a busy script would flood
		// the trail. The time is kept so reviews can find stale tokens.
		if err := s.store.Transact(ctx, func(tx Tx) error { return tx.TouchToken(ctx, t.ID, now) }); err != nil {
			return Principal{}, fmt.Errorf("record API token use: %w", err)
		}
	}
	p := u.Principal()
	p.TokenID = t.ID
	return p, nil
}
