// Package api is Patchward's JSON API under /api/v1. Every route is one row
// in a table that names its method, path, required permission and types; the
// same table registers the handlers and generates the OpenAPI document, so
// the two cannot drift.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// MaxJSONBody bounds JSON request bodies.
const MaxJSONBody = 1 << 20

// Param documents one query parameter.
type Param struct {
	Name, Description string
	// Enum lists allowed values, if any.
	Enum []string
	Type string // "string" (default), "integer", "boolean"
}

// Route is one API operation.
type Route struct {
	Method string
	// Path is relative to Prefix and uses http.ServeMux wildcards.
	Path    string
	Summary string
	Tag     string
	// Perm is the permission required; PermPublic marks the few routes that
	// must work before sign-in.
	Perm  auth.Permission
	Query []Param
	// Body and Resp are zero values of the request and response types, for
	// the OpenAPI schema; BodyType/RespType default to application/json.
	Body, Resp         any
	BodyType, RespType string
	// Status is the success status (default 200).
	Status int
	// Authenticate, when set, is a second way in for this route alone:
	// asked only when the request carries no session or bearer token, it
	// returns the principal some route-specific credential names (the
	// iCalendar feed's ?token=), or found false to leave the request
	// anonymous. The route's permission is checked either way.
	Authenticate func(r *http.Request) (p auth.Principal, found bool, err error)
	Handle       func(w http.ResponseWriter, r *http.Request, p auth.Principal) error
}

// PermPublic marks a route that needs no principal (sign-in only).
const PermPublic auth.Permission = ""

// Handler builds the http.Handler serving routes under Prefix. Unknown paths
// below the prefix get a JSON 404.
func Handler(routes []Route, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+Prefix+rt.Path, wrap(rt, log))
	}
	mux.Handle(Prefix+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, log, errs.E(errs.NotFound, "no API route %s %s", r.Method, r.URL.Path))
	}))
	return mux
}

func wrap(rt Route, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p auth.Principal
		if rt.Perm != PermPublic {
			if _, signedIn := authn.PrincipalFrom(r.Context()); !signedIn && rt.Authenticate != nil {
				alt, found, err := rt.Authenticate(r)
				if err != nil {
					WriteError(w, r, log, err)
					return
				}
				if found {
					r = r.WithContext(authn.WithPrincipal(r.Context(), alt))
				}
			}
			var err error
			if p, err = authn.Require(r, rt.Perm); err != nil {
				WriteError(w, r, log, err)
				return
			}
		}
		if err := rt.Handle(w, r, p); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// ErrorBody is the JSON shape of every API error.
type ErrorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
	// Problems lists every problem of a refused policy file at its line
	// and column, so an editor can mark them all at once.
	Problems []policy.Problem `json:"problems,omitempty"`
	Status   int              `json:"status"`
}

// WriteError renders err as JSON with the status its kind maps to. Internal
// errors are logged with detail and shown generically.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errs.E(errs.TooLarge, "request body is larger than %d bytes", mbe.Limit)
	}
	status := errs.HTTPStatus(err)
	body := ErrorBody{Error: errs.Public(err), Fields: errs.FieldsOf(err)}
	// A policy file that does not load is well-formed HTTP carrying content
	// the server cannot accept: 422, with the problems line by line.
	var pe *policy.Error
	if status == http.StatusBadRequest && errors.As(err, &pe) {
		status, body.Problems = http.StatusUnprocessableEntity, pe.Problems
	}
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="patchward"`)
	}
	body.Status = status
	WriteJSON(w, status, body)
}

// WriteJSON renders v to a buffer first, so an encoding failure never leaves
// a half-written 200.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"internal error encoding response","status":500}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// DecodeJSON reads exactly one JSON object of type T from r's body:
// application/json only, bounded in size, unknown fields refused.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireType(r, "application/json"); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return errs.E(errs.TooLarge, "request body is larger than %d bytes", mbe.Limit)
		case errors.Is(err, io.EOF):
			return errs.E(errs.Invalid, "request body is empty; expected a JSON object")
		case errors.As(err, &se):
			return errs.E(errs.Invalid, "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return errs.E(errs.Invalid, "field %q must be %s, not %s", te.Field, te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json offers no typed error for this case.
			return errs.E(errs.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return errs.Wrap(errs.Invalid, err, "malformed JSON body")
		}
	}
	if dec.More() {
		return errs.E(errs.Invalid, "request body must hold a single JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.E(errs.Invalid, "request body must hold a single JSON object")
	}
	return nil
}

func requireType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return errs.E(errs.Unsupported, "Content-Type must be %s (got %q)", want, ct)
	}
	return nil
}

// queryInt parses an optional integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errs.E(errs.Invalid, "query parameter %s must be a non-negative integer", name)
	}
	return n, nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(r *http.Request, name string) (*bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, errs.E(errs.Invalid, "query parameter %s must be true or false", name)
	}
	return &b, nil
}

// queryEnum checks an optional enumerated query parameter.
func queryEnum[T ~string](r *http.Request, name string, valid []T) (T, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return "", nil
	}
	for _, v := range valid {
		if string(v) == s {
			return v, nil
		}
	}
	names := make([]string, len(valid))
	for i, v := range valid {
		names[i] = string(v)
	}
	return "", errs.E(errs.Invalid, "query parameter %s: %q is not one of: %s", name, s, strings.Join(names, ", "))
}

func enumStrings[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}
