// Package authn resolves who is calling: it reads a bearer API token or the
// session cookie, asks the auth service for the principal, and puts it on the
// request. Route tables then check one named permission per route with
// Require, so authorisation is explicit and testable route by route.
package authn

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
)

// CookieName is the session cookie. The __Host- prefix would forbid plain
// HTTP on 127.0.0.1, which the single-server quick start uses.
const CookieName = "patchward_session"

// Resolver turns credentials into a principal.
type Resolver interface {
	SessionPrincipal(ctx context.Context, token string) (auth.Principal, error)
	TokenPrincipal(ctx context.Context, token string) (auth.Principal, error)
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the authenticated principal of r, if any.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(auth.Principal)
	return p, ok
}

// Middleware authenticates requests that carry credentials. Requests without
// any pass through unauthenticated; Require rejects them where a route needs
// a principal. Invalid credentials are rejected here, not silently ignored,
// so a script with a revoked token gets a clear 401.
func Middleware(res Resolver, onErr func(w http.ResponseWriter, r *http.Request, err error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var (
				p   auth.Principal
				err error
				ok  bool
			)
			if h := r.Header.Get("Authorization"); h != "" {
				scheme, tok, found := strings.Cut(h, " ")
				if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
					onErr(w, r, errs.E(errs.Unauthorized, "Authorization header must be \"Bearer <token>\""))
					return
				}
				p, err = res.TokenPrincipal(r.Context(), strings.TrimSpace(tok))
				ok = err == nil
			} else if c, cerr := r.Cookie(CookieName); cerr == nil && c.Value != "" {
				p, err = res.SessionPrincipal(r.Context(), c.Value)
				ok = err == nil
				if err != nil && errs.KindOf(err) == errs.Unauthorized {
					// An expired session just means "signed out".
					ClearCookie(w, r)
					err = nil
				}
			}
			if err != nil {
				onErr(w, r, err)
				return
			}
			if ok {
				r = r.WithContext(WithPrincipal(r.Context(), p))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Require checks that the request's principal holds perm.
func Require(r *http.Request, perm auth.Permission) (auth.Principal, error) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		return auth.Principal{}, errs.E(errs.Unauthorized, "sign in or send an API token")
	}
	if !p.Can(perm) {
		return p, errs.E(errs.Forbidden, "role %q may not do this (needs %s)", p.Role, perm)
	}
	return p, nil
}

// SetCookie sets the session cookie: HttpOnly, SameSite=Lax, Secure when the
// request came over TLS.
func SetCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// ClearCookie removes the session cookie.
func ClearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// ClientAddr is the caller's IP address for the audit trail. Proxies are
// not trusted: X-Forwarded-For is attacker-controlled unless a trusted proxy
// list is configured, which this version does not offer.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
