package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchward/patchward/internal/notify"
	"github.com/patchward/patchward/internal/store/storetest"
)

// TestNotifiers: the serve flags name the channels; a bad one stops
// start-up rather than the first halted rollout.
func TestNotifiers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       serveFlags
		want    int // channels; -1 an error
		wantNil bool
	}{
		{name: "none", wantNil: true},
		{name: "mail", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "pw@clinic.test", notifyTo: "it@clinic.test"}, want: 1},
		{name: "mail and two webhooks", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "pw@clinic.test", notifyTo: "it@clinic.test",
			webhooks: "https://chat.clinic.test/hooks/a, https://pager.clinic.test/b"}, want: 3},
		{name: "webhook only", f: serveFlags{webhooks: "https://chat.clinic.test/hooks/a"}, want: 1},
		{name: "bad webhook", f: serveFlags{webhooks: "chat.clinic.test/hooks/a"}, want: -1},
		{name: "bad mail", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "nobody"}, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := notifiers(&tc.f)
			switch {
			case tc.want < 0:
				if err == nil {
					t.Fatalf("notifiers accepted %+v", tc.f)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.wantNil:
				if n != nil {
					t.Fatalf("notifiers = %#v; want none", n)
				}
				return
			}
			got := 1
			if all, ok := n.(notify.All); ok {
				got = len(all)
			}
			if got != tc.want {
				t.Errorf("%d channels; want %d", got, tc.want)
			}
		})
	}
}

// TestServeNotifiesWebhook runs `serve --demo --notify-webhook` against a
// real HTTP receiver on loopback: the demo's own story reaches it — its
// change awaiting approval, and the KEV listings that arrived after the
// first scoring as emergency proposals — signed with the configured
// secret.
func TestServeNotifiesWebhook(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []notify.WebhookMessage
		sigs []bool
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m notify.WebhookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		sigs = append(sigs, r.Header.Get(notify.SignatureHeader) == notify.Sign([]byte("hook-secret"), body))
		mu.Unlock()
	}))
	defer hook.Close()
	t.Setenv("PATCHWARD_NOTIFY_WEBHOOK_SECRET", "hook-secret")
	dsn := storetest.DSN(t, "sqlite")
	startServerArgs(t, dsn, filepath.Join(t.TempDir(), "audit.key"), "--notify-webhook", hook.URL+"/hooks/clinic")

	want := []string{"Change awaits approval: Apply Debian DSA-5970-1", "Emergency proposal: CVE-2021-44228"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		var subjects []string
		signed := true
		for i, m := range got {
			subjects = append(subjects, m.Subject)
			signed = signed && sigs[i]
		}
		mu.Unlock()
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool {
			return slices.ContainsFunc(subjects, func(s string) bool { return strings.Contains(s, w) })
		})
		if len(missing) == 0 {
			if !signed {
				t.Errorf("a notice was not signed with the configured secret")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook got %q; still missing %q", subjects, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
