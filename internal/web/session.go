package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
)

// maxFormBytes bounds ordinary (non-upload) form posts.
const maxFormBytes = 256 << 10

type loginView struct {
	Username string
	Next     string
	Error    string
}

func (ui *UI) loginPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	next := safeNext(r.URL.Query().Get("next"))
	if p.UserID != "" {
		// Already signed in: a bookmarked /login should not ask again.
		http.Redirect(w, r, orDefault(next, ui.landing(p)), http.StatusSeeOther)
		return nil
	}
	ui.render(w, r, http.StatusOK, "login", "Sign in", loginView{Next: next})
	return nil
}

func (ui *UI) login(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the sign-in form could not be read")
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	next := safeNext(r.PostForm.Get("next"))
	token, p, err := ui.cfg.Accounts.Login(r.Context(), username, r.PostForm.Get("password"), authn.ClientAddr(r))
	if err != nil {
		status := errs.HTTPStatus(err)
		msg := errs.Public(err)
		if errs.KindOf(err) == errs.Unauthorized {
			// One message for unknown user and wrong password, so the form
			// does not reveal which usernames exist.
			msg = "Wrong username or password."
		}
		if status >= 500 {
			ui.log.ErrorContext(r.Context(), "web: login failed", "err", err)
		}
		ui.render(w, r, status, "login", "Sign in", loginView{Username: username, Next: next, Error: msg})
		return nil
	}
	authn.SetCookie(w, r, token)
	http.Redirect(w, r, orDefault(next, ui.landing(p)), http.StatusSeeOther)
	return nil
}

func (ui *UI) logout(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if c, err := r.Cookie(authn.CookieName); err == nil && c.Value != "" {
		if err := ui.cfg.Accounts.Logout(r.Context(), c.Value); err != nil && errs.KindOf(err) != errs.Unauthorized {
			// Keep the cookie: the session may still be live on the server,
			// and the user should know sign-out did not happen.
			return err
		}
	}
	authn.ClearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// safeNext returns s if it is a path on this site, else "". It is the
// guard against open redirects through /login?next=: absolute URLs,
// scheme-relative "//host" and browser-lenient forms such as "/\host" or
// paths with embedded tabs or newlines are all refused.
func safeNext(s string) string {
	if s == "" || s[0] != '/' || len(s) > 2048 {
		return ""
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
