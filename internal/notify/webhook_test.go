package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// hook is a real HTTP receiver on loopback that keeps what it is sent.
type hook struct {
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
	status int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, b)
	h.sigs = append(h.sigs, r.Header.Get(SignatureHeader))
	status := h.status
	h.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
		return
	}
	if status != 0 {
		http.Error(w, "relay says no", status)
	}
}

func TestWebhook(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		secret  string
		status  int
		wantErr string
	}{
		{name: "signed", secret: "s3cret"},
		{name: "unsigned"},
		{name: "refused", status: http.StatusBadGateway, wantErr: "502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hook{status: tc.status}
			srv := httptest.NewServer(h)
			defer srv.Close()
			w, err := NewWebhook(srv.URL+"/hooks/T0KEN-IN-PATH", tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			err = w.Notify(ctx, "Rollout halted: CHG-1", "pilot failed 2 of 3")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "T0KEN") {
					t.Fatalf("Notify = %v; want an error naming %s without the URL's token", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			if len(h.bodies) != 1 {
				t.Fatalf("receiver got %d posts; want 1", len(h.bodies))
			}
			var m WebhookMessage
			if err := json.Unmarshal(h.bodies[0], &m); err != nil {
				t.Fatal(err)
			}
			if m.Subject != "Rollout halted: CHG-1" || m.Body != "pilot failed 2 of 3" || !strings.Contains(m.Text, "[Patchward] Rollout halted: CHG-1") || m.SentAt.IsZero() {
				t.Errorf("message = %+v", m)
			}
			switch {
			case tc.secret == "" && h.sigs[0] != "":
				t.Errorf("unsigned webhook sent signature %q", h.sigs[0])
			case tc.secret != "" && h.sigs[0] != Sign([]byte(tc.secret), h.bodies[0]):
				t.Errorf("signature %q does not verify", h.sigs[0])
			}
		})
	}
}

func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	elsewhere := &hook{}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	w, err := NewWebhook(srv.URL, "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Notify(context.Background(), "x", "y"); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("Notify through a redirect = %v; want a 307 error", err)
	}
	if len(elsewhere.bodies) != 0 {
		t.Errorf("the signed body followed the redirect")
	}
}

func TestNewWebhookRejects(t *testing.T) {
	for _, u := range []string{"", "ftp://host/x", "hooks.example/x", "http://", "://bad"} {
		if _, err := NewWebhook(u, ""); err == nil {
			t.Errorf("NewWebhook(%q) accepted", u)
		}
	}
}

type failing struct{ calls *int }

func (f failing) Notify(context.Context, string, string) error {
	*f.calls++
	return errors.New("channel down")
}

func TestAllSendsPastAFailure(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	w, err := NewWebhook(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = All{failing{&calls}, w}.Notify(context.Background(), "s", "b")
	if err == nil || !strings.Contains(err.Error(), "channel down") {
		t.Errorf("All.Notify = %v; want the failed channel's error", err)
	}
	if calls != 1 || len(h.bodies) != 1 {
		t.Errorf("first channel called %d times, webhook got %d posts; want 1 and 1", calls, len(h.bodies))
	}
}
