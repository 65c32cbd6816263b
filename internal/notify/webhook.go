package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Webhook posts notifications as JSON to a chat or paging system's
// incoming webhook. The "text" field is what Slack, Mattermost, Rocket.Chat
// and Teams workflow webhooks show; subject and body are there for
// anything that wants them apart. With a secret, the body is signed
// (X-Patchward-Signature: sha256=HMAC-SHA256 of the raw body, hex) so the
// receiver can tell Patchward from anyone who learnt the URL.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// SignatureHeader carries the body's HMAC when the webhook has a secret.
const SignatureHeader = "X-Patchward-Signature"

// NewWebhook checks the URL now, so a typo fails at start-up.
func NewWebhook(rawURL, secret string) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errs.E(errs.Invalid, "webhook %q: want an http:// or https:// URL", redactURL(rawURL))
	}
	return &Webhook{url: u.String(), secret: []byte(secret), now: time.Now,
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect would resend the signed body somewhere nobody
			// configured.
			return http.ErrUseLastResponse
		}}}, nil
}

// WebhookMessage is the JSON a webhook receives.
type WebhookMessage struct {
	Text    string    `json:"text"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	Source  string    `json:"source"`
	SentAt  time.Time `json:"sent_at"`
}

// Notify posts one message; any answer but 2xx is an error.
func (w *Webhook) Notify(ctx context.Context, subject, body string) error {
	msg := WebhookMessage{Text: "*[Patchward] " + subject + "*\n" + body, Subject: subject, Body: body,
		Source: "patchward", SentAt: w.now().UTC().Truncate(time.Second)}
	raw, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("notify: webhook message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("notify: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "patchward-notify")
	if len(w.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.secret, raw))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: webhook %s: %w", redactURL(w.url), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify: webhook %s answered %s: %s", redactURL(w.url), resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}

// Sign is the signature header's value for body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// redactURL drops the path and query of a webhook URL for messages: chat
// webhooks carry their credential there.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// Notifier is one channel.
type Notifier interface {
	Notify(ctx context.Context, subject, body string) error
}

// All sends through every channel: one that fails does not keep the
// message from the others, and the error names each failure.
type All []Notifier

// Notify sends to each channel in turn.
func (a All) Notify(ctx context.Context, subject, body string) error {
	var failed []error
	for _, n := range a {
		if err := n.Notify(ctx, subject, body); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}
