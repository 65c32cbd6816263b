package notify

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// relay is a real SMTP server (emersion/go-smtp) on loopback that keeps
// what it receives.
type relay struct {
	mu   sync.Mutex
	msgs []received
}

type received struct {
	from string
	to   []string
	data string
}

type session struct {
	r   *relay
	cur received
}

func (r *relay) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{r: r}, nil }
func (s *session) Reset()                                    { s.cur = received{} }
func (s *session) Logout() error                             { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, s.cur)
	s.r.mu.Unlock()
	return nil
}

func startRelay(t *testing.T) (*relay, string) {
	t.Helper()
	r := &relay{}
	srv := smtp.NewServer(r)
	srv.Domain = "relay.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r, ln.Addr().String()
}

func TestMailerSendsThroughRealRelay(t *testing.T) {
	r, addr := startRelay(t)
	m, err := NewMailer("smtp://"+addr, "patchward@clinic.test", []string{"it@clinic.test", " lab@clinic.test "})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Notify(context.Background(), "Rollout of CHG-7 halted", "2 of 4 pilot jobs failed.\nRollback jobs sent."); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) != 1 {
		t.Fatalf("relay received %d messages; want 1", len(r.msgs))
	}
	got := r.msgs[0]
	if got.from != "patchward@clinic.test" || strings.Join(got.to, ",") != "it@clinic.test,lab@clinic.test" {
		t.Errorf("envelope from %q to %v; want patchward@clinic.test to both recipients", got.from, got.to)
	}
	for _, want := range []string{"Subject: [Patchward] Rollout of CHG-7 halted", "2 of 4 pilot jobs failed.", "Message-ID:", "Date:"} {
		if !strings.Contains(got.data, want) {
			t.Errorf("message lacks %q:\n%s", want, got.data)
		}
	}
}

func TestMailerRelayDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	m, err := NewMailer("smtp://"+addr, "patchward@clinic.test", []string{"it@clinic.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Notify(context.Background(), "x", "y"); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Notify to a closed port = %v; want an error naming the relay", err)
	}
}

func TestNewMailerRefusesBadSettings(t *testing.T) {
	for name, tc := range map[string]struct {
		url, from string
		to        []string
	}{
		"no host":       {"smtp://", "a@b.c", []string{"x@y.z"}},
		"scheme":        {"http://relay:25", "a@b.c", []string{"x@y.z"}},
		"port":          {"smtp://relay:99999", "a@b.c", []string{"x@y.z"}},
		"sender":        {"smtp://relay", "patchward", []string{"x@y.z"}},
		"no recipients": {"smtp://relay", "a@b.c", []string{" "}},
		"recipient":     {"smtp://relay", "a@b.c", []string{"it-team"}},
	} {
		if _, err := NewMailer(tc.url, tc.from, tc.to); err == nil {
			t.Errorf("%s: NewMailer(%q, %q, %v) = nil error", name, tc.url, tc.from, tc.to)
		}
	}
	if _, err := NewMailer("smtps://u:secret@relay", "a@b.c", nil); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("an error must not echo the relay password: %v", err)
	}
}
