package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// FeedTokenPrefix starts every calendar feed token. Calendar apps cannot
// send an Authorization header, so a subscription URL has to carry its
// credential in the query string, where it ends up in the app's settings
// and maybe in a proxy's log. A feed token is therefore a separate kind of
// secret: it is accepted only as ?token= on the iCalendar feed, never as a
// bearer token (TokenPrincipal wants "pwt_") and never as a session, so a
// leaked feed URL reveals the maintenance calendar and nothing else.
const FeedTokenPrefix = "pwc_"

// feedTokenName starts the stored name of every calendar feed token. Feed
// tokens share the API token table — hashed at rest, revocable, expiring,
// listed with the user's tokens — and this marker tells them apart in
// listings; which credential a secret is follows from its prefix alone.
const feedTokenName = "calendar feed: "

// IsFeedToken reports whether a stored token is a calendar feed token.
func (t Token) IsFeedToken() bool { return strings.HasPrefix(t.Name, feedTokenName) }

// errBadFeedToken is the one answer for every unusable feed token, so the
// response does not reveal whether a token ever existed.
var errBadFeedToken = errs.E(errs.Unauthorized, "invalid or revoked calendar feed token")

// CreateFeedToken issues a calendar feed token for a user and returns its
// plaintext ("pwc_" and 43 characters of base64url), shown once. Users
// create their own; admins may create them for anyone. name says where it
// is used ("Outlook on the lab PC").
func (s *Service) CreateFeedToken(ctx context.Context, actor audit.Actor, userID, name string) (string, Token, error) {
	return s.issueToken(ctx, actor, userID, name, 0,
		tokenKind{prefix: FeedTokenPrefix, stored: feedTokenName, what: "calendar feed token", action: "calendar_token.create"})
}

// ListFeedTokens returns a user's calendar feed tokens, revoked ones
// included, without their secrets.
func (s *Service) ListFeedTokens(ctx context.Context, userID string) ([]Token, error) {
	ts, err := s.ListTokens(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := []Token{}
	for _, t := range ts {
		if t.IsFeedToken() {
			out = append(out, t)
		}
	}
	return out, nil
}

// RevokeFeedToken revokes a calendar feed token at once; its owner or an
// admin may. An ID that is not a feed token is NotFound here: API tokens
// are revoked through their own route.
func (s *Service) RevokeFeedToken(ctx context.Context, actor audit.Actor, id string) (Token, error) {
	var out Token
	err := s.store.Transact(ctx, func(tx Tx) error {
		c, err := callerOf(ctx, tx, actor)
		if err != nil {
			return err
		}
		old, err := tx.GetToken(ctx, id)
		if err != nil {
			return err
		}
		if !old.IsFeedToken() || (!c.is(old.UserID) && !c.admin()) {
			return errs.E(errs.NotFound, "no calendar feed token %s", id)
		}
		if old.RevokedAt != nil {
			return errs.E(errs.Conflict, "calendar feed token %q is already revoked", strings.TrimPrefix(old.Name, feedTokenName))
		}
		now := s.clock()
		if err := tx.RevokeToken(ctx, id, now); err != nil {
			return err
		}
		out = old
		out.RevokedAt = &now
		return tx.AppendAudit(ctx, audit.Record{Actor: actor, Action: "calendar_token.revoke", ObjectType: "api_token", ObjectID: id, Before: old, After: out})
	})
	if err != nil {
		return Token{}, fmt.Errorf("revoke calendar feed token: %w", err)
	}
	return out, nil
}

// FeedPrincipal returns the principal a calendar feed token acts for: its
// owner, with the owner's current role, so disabling the user or taking
// away calendar:read ends the feed too. It is Unauthorized for anything
// but an active feed token of an enabled user — API tokens included.
func (s *Service) FeedPrincipal(ctx context.Context, plain string) (Principal, error) {
	secret, ok := strings.CutPrefix(plain, FeedTokenPrefix)
	if !ok || !wellFormedSecret(secret) {
		return Principal{}, errBadFeedToken
	}
	t, err := s.store.GetTokenByHash(ctx, secretHash(plain))
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errBadFeedToken
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up calendar feed token: %w", err)
	}
	now := s.clock()
	if !t.IsFeedToken() || !t.Active(now) {
		return Principal{}, errBadFeedToken
	}
	u, err := s.store.GetUser(ctx, t.UserID)
	if errors.Is(err, errs.ErrNotFound) {
		return Principal{}, errBadFeedToken
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up calendar feed token user: %w", err)
	}
	if u.Disabled {
		return Principal{}, errBadFeedToken
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchInterval {
		if err := s.store.Transact(ctx, func(tx Tx) error { return tx.TouchToken(ctx, t.ID, now) }); err != nil {
			return Principal{}, fmt.Errorf("record calendar feed token use: %w", err)
		}
	}
	p := u.Principal()
	p.TokenID = t.ID
	return p, nil
}
