package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// maxResponseBytes bounds what the agent reads from the server: a job list
// is small, and a hostile or broken server must not exhaust the host.
const maxResponseBytes = 8 << 20

// Client speaks the agent protocol: every request after enrollment is
// signed with the agent's Ed25519 key as agentapi.SigningString describes.
type Client struct {
	base    *url.URL
	agentID string
	key     ed25519.PrivateKey
	http    *http.Client
	now     func() time.Time

	mu     sync.Mutex
	lastTS int64 // unix seconds of the last signed request
}

// NewClient returns a client for the server at base. key and agentID may be
// empty for enrollment only.
func NewClient(base string, agentID string, key ed25519.PrivateKey, hc *http.Client, now func() time.Time) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errs.E(errs.Invalid, "server URL %q must be http(s)://host[:port][/prefix]", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Client{base: u, agentID: agentID, key: key, http: hc, now: now}, nil
}

// HTTPClient returns the client the agent talks to the server with: TLS
// 1.2 or later, the configured CA bundle when one is set (else the system
// roots), proxies from the environment, and a timeout per request.
func HTTPClient(cfg Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pemBytes, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, errs.E(errs.Invalid, "ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	// An idle agent keeps at most one connection; a 5-minute check-in
	// interval outlives it anyway.
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1, 1
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// HTTPError is a non-2xx answer from the server.
type HTTPError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

// Error says which status the server answered and why.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
}

// Temporary reports whether retrying later may succeed: network trouble,
// overload and server faults are temporary; a refused credential or a
// rejected payload is not.
func Temporary(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status == http.StatusTooManyRequests || he.Status == http.StatusRequestTimeout || he.Status >= 500
	}
	return !errors.Is(err, context.Canceled)
}

// Enroll registers the agent's public key with a one-time token.
func (c *Client) Enroll(ctx context.Context, token string, pub ed25519.PublicKey, facts agentapi.Facts) (agentapi.EnrollResponse, error) {
	var out agentapi.EnrollResponse
	req := agentapi.EnrollRequest{Token: token, PublicKey: pub, Hostname: facts.Hostname, Facts: facts}
	err := c.do(ctx, http.MethodPost, agentapi.PathEnroll, req, &out, false)
	if err == nil && out.AgentID == "" {
		err = errs.E(errs.Invalid, "server's enrollment answer has no agent id")
	}
	return out, err
}

// CheckIn sends the heartbeat.
func (c *Client) CheckIn(ctx context.Context, req agentapi.CheckInRequest) (agentapi.CheckInResponse, error) {
	var out agentapi.CheckInResponse
	return out, c.do(ctx, http.MethodPost, agentapi.PathCheckIn, req, &out, true)
}

// Jobs pulls the agent's ready jobs.
func (c *Client) Jobs(ctx context.Context) ([]agentapi.Job, error) {
	var out agentapi.JobsResponse
	err := c.do(ctx, http.MethodGet, agentapi.PathJobs, nil, &out, true)
	return out.Jobs, err
}

// Result uploads one job result; re-sending the same JobID and Attempt is
// safe, the server keeps the first.
func (c *Client) Result(ctx context.Context, res agentapi.JobResult) error {
	path := strings.Replace(agentapi.PathJobResult, "{id}", url.PathEscape(res.JobID), 1)
	return c.do(ctx, http.MethodPost, path, res, nil, true)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, sign bool) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		body = b
	}
	u := *c.base
	// path may carry an escaped job ID; keep the escaping on the wire.
	rawPath := strings.TrimRight(c.base.EscapedPath(), "/") + path
	unescaped, err := url.PathUnescape(rawPath)
	if err != nil {
		return fmt.Errorf("request path %q: %w", rawPath, err)
	}
	u.Path, u.RawPath = unescaped, rawPath
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "patchward-agent/"+Version+" ("+runtime.GOOS+"/"+runtime.GOARCH+")")
	req.Header.Set(agentapi.HeaderProtocol, strconv.Itoa(agentapi.ProtocolVersion))
	if sign {
		if c.key == nil || c.agentID == "" {
			return errs.E(errs.Invalid, "agent is not enrolled")
		}
		// The signature covers the path exactly as the server's router sees
		// it (r.URL.Path), including any base prefix.
		agentapi.Sign(req, c.agentID, c.key, body, c.timestamp())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	rd := io.LimitReader(resp.Body, maxResponseBytes+1)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(rd, 4096))
		he := &HTTPError{Status: resp.StatusCode, Message: errorMessage(msg)}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return fmt.Errorf("%s %s: %w", method, path, he)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, rd)
		return nil
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(b) > maxResponseBytes {
		return fmt.Errorf("%s %s: answer larger than %d bytes", method, path, maxResponseBytes)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// timestamp returns the signing time: now, but always at least a second
// after the previous request's. The server refuses a signature it has seen
// as a replay, and timestamps have one-second resolution, so two identical
// requests in one second (a heartbeat right after a job was refused, say)
// would otherwise carry identical signatures. The drift ahead of the clock
// is bounded by the request rate, far inside agentapi.MaxClockSkew.
func (c *Client) timestamp() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.now().Unix()
	if ts <= c.lastTS {
		ts = c.lastTS + 1
	}
	c.lastTS = ts
	return time.Unix(ts, 0)
}

// errorMessage extracts {"error": "..."} when the server sent JSON, else
// the text itself, trimmed for logs.
func errorMessage(b []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Message != "" {
			return e.Message
		}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		s = "(no message)"
	}
	return s
}

// Hostname is os.Hostname with a fallback, for facts and enrollment.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}
