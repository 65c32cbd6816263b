package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
)

func TestLoginRedirectsToNext(t *testing.T) {
	e := newEnv(t)
	w := e.post("/login", "", url.Values{"username": {"admin"}, "password": {"pw-admin"}, "next": {"/assets?type=analyzer"}})
	wantStatus(t, w, http.StatusSeeOther)
	if got := w.Header().Get("Location"); got != "/assets?type=analyzer" {
		t.Errorf("Location = %q; want %q", got, "/assets?type=analyzer")
	}
	var c *http.Cookie
	for _, k := range w.Result().Cookies() {
		if k.Name == authn.CookieName {
			c = k
		}
	}
	if c == nil || c.Value == "" || !c.HttpOnly {
		t.Fatalf("session cookie = %+v; want an HttpOnly %s", c, authn.CookieName)
	}
	if got := e.accounts.logins; len(got) != 1 || got[0] != "192.0.2.1" {
		t.Errorf("login addrs = %v; want the client address [192.0.2.1]", got)
	}
}

func TestLoginRefusesOpenRedirect(t *testing.T) {
	for _, next := range []string{
		"https://evil.example/", "//evil.example/x", "/\\evil.example", "/\t/evil.example", "\\\\evil.example",
		"javascript:alert(1)", "evil.example", "http:/evil", "",
	} {
		t.Run(next, func(t *testing.T) {
			e := newEnv(t)
			w := e.post("/login", "", url.Values{"username": {"viewer"}, "password": {"pw-viewer"}, "next": {next}})
			wantStatus(t, w, http.StatusSeeOther)
			if got := w.Header().Get("Location"); got != "/assets" {
				t.Errorf("next=%q: Location = %q; want /assets", next, got)
			}
		})
	}
	// The login page does not carry an unsafe next into its form either.
	e := newEnv(t)
	doc := parse(t, e.get("/login?next="+url.QueryEscape("//evil.example"), ""))
	if n := doc.Find(`input[name="next"]`).Length(); n != 0 {
		t.Errorf("login form has %d next fields for an unsafe next; want 0", n)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/assets":                       "/assets",
		"/assets/a-1?x=1#top":           "/assets/a-1?x=1#top",
		"/%2F%2Fevil.example":           "/%2F%2Fevil.example", // a path on this site
		"//evil.example":                "",
		"/\\evil.example":               "",
		"/a\\b":                         "",
		"/\r\nSet-Cookie: x":            "",
		"https://evil.example/":         "",
		"assets":                        "",
		"/" + strings.Repeat("a", 3000): "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLoginWrongPassword(t *testing.T) {
	e := newEnv(t)
	w := e.post("/login", "", url.Values{"username": {"admin"}, "password": {"guess"}, "next": {"/audit"}})
	wantStatus(t, w, http.StatusUnauthorized)
	doc := parse(t, w)
	if got := text(doc.Find("#login-error")); got != "Wrong username or password." {
		t.Errorf("error = %q; want %q", got, "Wrong username or password.")
	}
	if got, _ := doc.Find("#username").Attr("value"); got != "admin" {
		t.Errorf("username field = %q; want it kept as %q", got, "admin")
	}
	if got, _ := doc.Find("#password").Attr("value"); got != "" {
		t.Errorf("password field = %q; want it empty", got)
	}
	if got, _ := doc.Find(`input[name="next"]`).Attr("value"); got != "/audit" {
		t.Errorf("next = %q; want %q", got, "/audit")
	}
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Errorf("cookies = %v; want none", c)
	}
}

func TestUnauthenticatedRedirectsToLogin(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/assets?type=analyzer", "/login?next=" + url.QueryEscape("/assets?type=analyzer")},
		{"GET", "/assets/a-chem", "/login?next=" + url.QueryEscape("/assets/a-chem")},
		{"GET", "/audit", "/login?next=%2Faudit"},
		{"POST", "/assets/a-chem/edit", "/login?next=" + url.QueryEscape("/assets/a-chem/edit")},
		{"GET", "/", "/assets"},
	} {
		w := e.do(tc.method, tc.path, "", nil, "")
		wantStatus(t, w, http.StatusSeeOther)
		if got := w.Header().Get("Location"); got != tc.want {
			t.Errorf("%s %s: Location = %q; want %q", tc.method, tc.path, got, tc.want)
		}
	}
	doc := parse(t, e.get("/login?next="+url.QueryEscape("/assets?type=analyzer"), ""))
	if got, _ := doc.Find(`form[action="/login"] input[name="next"]`).Attr("value"); got != "/assets?type=analyzer" {
		t.Errorf("login form next = %q; want %q", got, "/assets?type=analyzer")
	}
	if doc.Find(`label[for="username"]`).Length() != 1 || doc.Find(`label[for="password"]`).Length() != 1 {
		t.Error("login fields lack labels")
	}
	if n := doc.Find("nav[aria-label=Main]").Length(); n != 0 {
		t.Errorf("signed-out page shows %d navigation bars; want 0", n)
	}
}

func TestSignedInLoginPageRedirects(t *testing.T) {
	e := newEnv(t)
	w := e.get("/login?next=%2Faudit", auth.RoleAuditor)
	wantStatus(t, w, http.StatusSeeOther)
	if got := w.Header().Get("Location"); got != "/audit" {
		t.Errorf("Location = %q; want /audit", got)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	w := e.post("/logout", auth.RoleAdmin, nil)
	wantStatus(t, w, http.StatusSeeOther)
	if got := w.Header().Get("Location"); got != "/login" {
		t.Errorf("Location = %q; want /login", got)
	}
	if got := e.accounts.logouts; len(got) != 1 || got[0] != "tok-admin" {
		t.Errorf("logouts = %v; want [tok-admin]", got)
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == authn.CookieName && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("session cookie not cleared")
	}
	// The old session no longer works.
	wantStatus(t, e.get("/assets", auth.RoleAdmin), http.StatusSeeOther)
}
