// Package agentserver serves the agent protocol, /agent/v1/*, on top of the
// fleet service. It is the boundary where untrusted agent input arrives, so
// it does the protocol's own checks in one place before any service call:
// protocol version, body size caps, the Ed25519 request signature, clock
// skew, replay, strict JSON. It lives apart from the wire types in
// internal/agentapi so the agent binary, which imports those, links none of
// the server.
//
// Agent requests carry no user credentials and come from hosts, not
// browsers: the handler is mounted outside the user authentication and
// cross-origin chain, and authenticates every request itself.
package agentserver

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/fleet"
)

// Handler serves /agent/v1/* for svc. Rejected requests are answered with
// the JSON error body of the admin API and logged with the agent's ID.
func Handler(svc *fleet.Service, log *slog.Logger) http.Handler {
	h := &handler{svc: svc, log: log, replay: newReplayGuard(replayTolerance)}
	mux := http.NewServeMux()
	mux.Handle("POST "+agentapi.PathEnroll, http.HandlerFunc(h.enroll))
	mux.Handle("POST "+agentapi.PathCheckIn, h.signed(agentapi.MaxCheckInBody, h.checkIn))
	mux.Handle("GET "+agentapi.PathJobs, h.signed(0, h.jobs))
	mux.Handle("POST "+agentapi.PathJobResult, h.signed(agentapi.MaxResultBody, h.result))
	mux.Handle("/agent/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, "", errs.E(errs.NotFound, "no agent protocol route %s %s", r.Method, r.URL.Path))
	}))
	return mux
}

type handler struct {
	svc    *fleet.Service
	log    *slog.Logger
	replay *replayGuard
}

// call is one authenticated agent request.
type call struct {
	agent    fleet.Agent
	body     []byte
	protocol int
	addr     string
}

// fail answers err and logs it: 5xx as errors, everything else as a
// warning naming the agent, because a refused agent request is either a
// broken agent or someone probing, and both want an admin's eyes.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, agentID string, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errs.E(errs.TooLarge, "request body is larger than %d bytes", mbe.Limit)
	}
	status := errs.HTTPStatus(err)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "agent request refused", "agent_id", agentID, "method", r.Method,
		"path", r.URL.Path, "status", status, "addr", authn.ClientAddr(r), "err", err)
	api.WriteJSON(w, status, api.ErrorBody{Error: errs.Public(err), Fields: errs.FieldsOf(err), Status: status})
}

// protocol reads the protocol version header; only ProtocolVersion is
// spoken.
func protocol(r *http.Request) (int, error) {
	v := r.Header.Get(agentapi.HeaderProtocol)
	n, err := strconv.Atoi(v)
	if err != nil || n != agentapi.ProtocolVersion {
		return 0, errs.E(errs.Invalid, "unsupported agent protocol %q; this server speaks %d (header %s)", truncate(v, 16), agentapi.ProtocolVersion, agentapi.HeaderProtocol)
	}
	return n, nil
}

// readBody reads at most limit bytes; more is TooLarge. A declared length
// over the limit is refused before reading anything.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errs.E(errs.TooLarge, "request body is larger than %d bytes", limit)
	}
	if limit > 0 {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return nil, errs.E(errs.Unsupported, "Content-Type must be application/json")
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max(limit, 0)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errs.E(errs.TooLarge, "request body is larger than %d bytes", limit)
		}
		return nil, errs.Wrap(errs.Invalid, err, "could not read the request body")
	}
	return b, nil
}

// signed authenticates a request before fn sees it: protocol version,
// body cap, timestamp within agentapi.MaxClockSkew, known agent, valid
// signature over method, path, timestamp and body, not a replay, agent not
// revoked.
func (h *handler) signed(limit int64, fn func(http.ResponseWriter, *http.Request, call) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claimed := truncate(r.Header.Get(agentapi.HeaderAgent), agentapi.MaxID)
		c, err := h.authenticate(w, r, limit)
		if err != nil {
			h.fail(w, r, claimed, err)
			return
		}
		if err := fn(w, r, c); err != nil {
			h.fail(w, r, c.agent.ID, err)
		}
	})
}

func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, limit int64) (call, error) {
	c := call{addr: authn.ClientAddr(r)}
	var err error
	if c.protocol, err = protocol(r); err != nil {
		return c, err
	}
	id := r.Header.Get(agentapi.HeaderAgent)
	ts, err := strconv.ParseInt(r.Header.Get(agentapi.HeaderTimestamp), 10, 64)
	if err != nil {
		return c, errs.E(errs.Unauthorized, "missing or malformed %s header", agentapi.HeaderTimestamp)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(agentapi.HeaderSignature))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, errs.E(errs.Unauthorized, "missing or malformed %s header", agentapi.HeaderSignature)
	}
	now := h.svc.Now()
	if d := now.Sub(time.Unix(ts, 0)); d > agentapi.MaxClockSkew || d < -agentapi.MaxClockSkew {
		return c, errs.E(errs.Unauthorized, "request timestamp is %s away from the server's clock (at most %s allowed); check the host's time", d.Round(time.Second).Abs(), agentapi.MaxClockSkew)
	}
	if c.body, err = readBody(w, r, limit); err != nil {
		return c, err
	}
	if c.agent, err = h.svc.Authenticate(r.Context(), id); err != nil {
		return c, err
	}
	msg := agentapi.SigningString(r.Method, r.URL.Path, time.Unix(ts, 0), c.body)
	if len(c.agent.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(c.agent.PublicKey, []byte(msg), sig) {
		return c, errs.E(errs.Unauthorized, "bad request signature")
	}
	if err := h.replay.check(c.agent.ID, ts, sig); err != nil {
		return c, err
	}
	return c, fleet.Usable(c.agent)
}

// decode reads exactly one JSON object from body into v, refusing unknown
// fields and trailing data, with messages an agent's operator can act on.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return errs.E(errs.Invalid, "request body is empty; expected a JSON object")
		case errors.As(err, &se):
			return errs.E(errs.Invalid, "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return errs.E(errs.Invalid, "field %q must be %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json offers no typed error for this case.
			return errs.E(errs.Invalid, "unknown field %s", truncate(strings.TrimPrefix(err.Error(), "json: unknown field "), 80))
		default:
			return errs.Wrap(errs.Invalid, err, "malformed JSON body")
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.E(errs.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

func (h *handler) enroll(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		proto, err := protocol(r)
		if err != nil {
			return err
		}
		body, err := readBody(w, r, agentapi.MaxEnrollBody)
		if err != nil {
			return err
		}
		var req agentapi.EnrollRequest
		if err := decode(body, &req); err != nil {
			return err
		}
		ag, err := h.svc.Enroll(r.Context(), req, proto, authn.ClientAddr(r))
		if err != nil {
			return err
		}
		h.log.InfoContext(r.Context(), "agent enrolled", "agent_id", ag.ID, "asset_id", ag.AssetID, "hostname", ag.Hostname, "addr", authn.ClientAddr(r))
		api.WriteJSON(w, http.StatusOK, agentapi.EnrollResponse{AgentID: ag.ID, AssetID: ag.AssetID,
			CheckInInterval: agentapi.Duration{Duration: h.svc.CheckInInterval()}})
		return nil
	}()
	if err != nil {
		h.fail(w, r, "", err)
	}
}

func (h *handler) checkIn(w http.ResponseWriter, r *http.Request, c call) error {
	var req agentapi.CheckInRequest
	if err := decode(c.body, &req); err != nil {
		return err
	}
	resp, err := h.svc.CheckIn(r.Context(), c.agent, c.protocol, c.addr, req)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (h *handler) jobs(w http.ResponseWriter, r *http.Request, c call) error {
	if len(c.body) > 0 {
		return errs.E(errs.Invalid, "GET %s takes no body", agentapi.PathJobs)
	}
	jobs, err := h.svc.PullJobs(r.Context(), c.agent, c.addr)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, agentapi.JobsResponse{Jobs: jobs})
	return nil
}

func (h *handler) result(w http.ResponseWriter, r *http.Request, c call) error {
	var res agentapi.JobResult
	if err := decode(c.body, &res); err != nil {
		return err
	}
	if res.JobID != r.PathValue("id") {
		return errs.E(errs.Invalid, "job_id in the body must match the job in the path")
	}
	dup, err := h.svc.ReportResult(r.Context(), c.agent, c.addr, res)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, agentapi.ResultResponse{Duplicate: dup})
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
