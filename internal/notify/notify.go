// Package notify tells people when something needs them now — a rollout
// halted by its gate, a rollback that failed — by e-mail through the
// clinic's own SMTP relay. The audit trail records everything; this is the
// part that wakes somebody up.
package notify

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/patchward/patchward/internal/errs"
)

// Mailer sends notifications through an SMTP relay.
type Mailer struct {
	host     string
	port     int
	ssl      bool
	tls      mail.TLSPolicy
	user     string
	password string
	from     string
	to       []string
	timeout  time.Duration
}

// NewMailer reads the relay from a URL — smtp://[user:pass@]host[:port]
// (STARTTLS when the relay offers it), smtp+starttls:// (STARTTLS
// required), smtps:// (TLS from the first byte) — with the sender and the
// recipients. Every part is checked now so a typo fails at start-up, not
// at the first halted rollout.
func NewMailer(rawURL, from string, to []string) (*Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, errs.E(errs.Invalid, "SMTP relay %q: want smtp://host[:port], smtp+starttls://… or smtps://…", redact(rawURL))
	}
	m := &Mailer{host: u.Hostname(), from: strings.TrimSpace(from), timeout: 15 * time.Second}
	switch u.Scheme {
	case "smtp":
		m.port, m.tls = 25, mail.TLSOpportunistic
	case "smtp+starttls":
		m.port, m.tls = 587, mail.TLSMandatory
	case "smtps":
		m.port, m.ssl, m.tls = 465, true, mail.TLSMandatory
	default:
		return nil, errs.E(errs.Invalid, "SMTP relay scheme %q: want smtp, smtp+starttls or smtps", u.Scheme)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, errs.E(errs.Invalid, "SMTP relay port %q is not a port number", p)
		}
		m.port = n
	}
	if u.User != nil {
		m.user = u.User.Username()
		m.password, _ = u.User.Password()
	}
	if m.from == "" || !strings.Contains(m.from, "@") {
		return nil, errs.E(errs.Invalid, "notification sender %q is not an e-mail address", from)
	}
	for _, r := range to {
		if r = strings.TrimSpace(r); r != "" {
			if !strings.Contains(r, "@") {
				return nil, errs.E(errs.Invalid, "notification recipient %q is not an e-mail address", r)
			}
			m.to = append(m.to, r)
		}
	}
	if len(m.to) == 0 {
		return nil, errs.E(errs.Invalid, "no notification recipients: give at least one address")
	}
	return m, nil
}

// Notify sends one plain-text message to every recipient.
func (m *Mailer) Notify(ctx context.Context, subject, body string) error {
	msg := mail.NewMsg()
	if err := msg.From(m.from); err != nil {
		return fmt.Errorf("notify: sender: %w", err)
	}
	if err := msg.To(m.to...); err != nil {
		return fmt.Errorf("notify: recipients: %w", err)
	}
	msg.Subject("[Patchward] " + subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, body)
	opts := []mail.Option{mail.WithPort(m.port), mail.WithTLSPolicy(m.tls), mail.WithTimeout(m.timeout)}
	if m.ssl {
		opts = append(opts, mail.WithSSL())
	}
	if m.user != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(m.user), mail.WithPassword(m.password))
	}
	c, err := mail.NewClient(m.host, opts...)
	if err != nil {
		return fmt.Errorf("notify: SMTP client for %s: %w", net.JoinHostPort(m.host, strconv.Itoa(m.port)), err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("notify: send through %s: %w", net.JoinHostPort(m.host, strconv.Itoa(m.port)), err)
	}
	return nil
}

// redact hides a password in a relay URL for messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return raw
}
