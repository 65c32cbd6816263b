package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/server"
)

type fakeDB struct{ err error }

func (f fakeDB) Ping(context.Context) error { return f.err }

// tokens resolves the bearer "good-<role>" to a principal of that role.
type tokens struct{}

func (tokens) TokenPrincipal(_ context.Context, tok string) (auth.Principal, error) {
	if r := auth.Role(strings.TrimPrefix(tok, "good-")); r.Valid() {
		return auth.Principal{UserID: "u1", Username: "u", Role: r}, nil
	}
	return auth.Principal{}, errs.E(errs.Unauthorized, "invalid or revoked API token")
}

func (tokens) SessionPrincipal(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errs.E(errs.Unauthorized, "session expired")
}

func newServer(db fakeDB) http.Handler {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		w.Write([]byte("ui"))
	})
	return server.New(server.Config{Log: log, DB: db, Resolver: tokens{}, API: web, Web: web,
		Registry: prometheus.NewRegistry(), Version: "test"})
}

func TestServer(t *testing.T) {
	h := newServer(fakeDB{})
	for _, tc := range []struct {
		name, method, path, bearer string
		header                     map[string]string
		want                       int
		body                       string
	}{
		{name: "health", method: "GET", path: "/healthz", want: 200, body: `"ok"`},
		{name: "metrics anonymous", method: "GET", path: "/metrics", want: 401},
		{name: "metrics viewer", method: "GET", path: "/metrics", bearer: "good-viewer", want: 403},
		{name: "metrics operator", method: "GET", path: "/metrics", bearer: "good-operator", want: 200, body: "patchward_build_info"},
		{name: "bad token", method: "GET", path: "/", bearer: "stolen", want: 401, body: "invalid or revoked"},
		{name: "malformed authorization", method: "GET", path: "/", header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, want: 401},
		{name: "expired session is anonymous", method: "GET", path: "/", header: map[string]string{"Cookie": "patchward_session=old"}, want: 200},
		{name: "cross-site post refused", method: "POST", path: "/", header: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: 403},
		{name: "cross-origin post refused", method: "POST", path: "/", header: map[string]string{"Origin": "https://evil.example"}, want: 403},
		{name: "same-origin post allowed", method: "POST", path: "/", header: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: 200},
		{name: "panic recovered", method: "GET", path: "/panic", want: 500, body: "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%s %s = %d %q; want %d containing %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.want, tc.body)
			}
			for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
				if rec.Header().Get(hdr) == "" {
					t.Errorf("response lacks %s", hdr)
				}
			}
		})
	}
}

func TestHealthReportsDatabaseDown(t *testing.T) {
	h := newServer(fakeDB{err: errors.New("connection refused")})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "refused") {
		t.Errorf("GET /healthz with the database down = %d %q; want 503 without internal detail", rec.Code, rec.Body.String())
	}
}
