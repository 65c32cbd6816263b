package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// PolicyValidation answers a policy file that loads: it would be accepted,
// and this is the digest it would be recorded under.
type PolicyValidation struct {
	Valid  bool   `json:"valid"`
	SHA256 string `json:"sha256"`
}

// yamlTypes are the media types a policy file may be sent as: the
// registered one (RFC 9512) and the older spellings tools still send.
var yamlTypes = []string{"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"}

// maxPolicyComment bounds the comment recorded with an applied version; it
// is a sentence for the audit trail, not a document.
const maxPolicyComment = 2000

// CommentHeader carries the comment of a policy apply when a query
// parameter is awkward (long text, scripts that build the URL).
const CommentHeader = "X-Patchward-Comment"

// policyRoutes serve the policy as code: the version in force, its history,
// its rendered document, a dry-run validation and the apply. Reading needs
// policy:read (every role: staff must be able to read the policy they work
// under); applying needs policy:write.
func (a *API) policyRoutes(svc *policy.Service) []Route {
	read, write := auth.PermPolicyRead, auth.PermPolicyWrite
	return []Route{
		{Method: "GET", Path: "/policy", Tag: "policy", Summary: "The policy in force: version, digest, who applied it when and why, and its source",
			Perm: read, Resp: policy.Version{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				_, v, err := svc.Current(r.Context())
				if err != nil {
					return err
				}
				if v.Version == 0 {
					// The built-in default: Version fills in its source
					// and digest.
					_, v, err = svc.Version(r.Context(), 0)
				}
				return reply{w, http.StatusOK}.send(v, err)
			}},
		{Method: "PUT", Path: "/policy", Tag: "policy",
			Summary: "Apply a policy file (YAML body) as the next version; an invalid file answers 422 with every problem and changes nothing",
			Perm:    write, BodyType: "application/yaml", Resp: policy.Version{},
			Query: []Param{{Name: "comment", Description: "why, for the audit trail (or the " + CommentHeader + " header)"}},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				comment := r.URL.Query().Get("comment")
				if comment == "" {
					comment = r.Header.Get(CommentHeader)
				}
				comment = strings.TrimSpace(comment)
				if len(comment) > maxPolicyComment {
					return errs.E(errs.Invalid, "comment is longer than %d bytes", maxPolicyComment)
				}
				src, err := readPolicy(w, r)
				if err != nil {
					return err
				}
				return reply{w, http.StatusOK}.send(svc.Apply(r.Context(), p.Actor(authn.ClientAddr(r)), src, comment))
			}},
		{Method: "POST", Path: "/policy/validate", Tag: "policy",
			Summary: "Check a policy file (YAML body) without applying it: 200 when valid, 422 with every problem at its line and column",
			Perm:    read, BodyType: "application/yaml", Resp: PolicyValidation{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				src, err := readPolicy(w, r)
				if err != nil {
					return err
				}
				c, err := svc.Validate(src)
				if err != nil {
					return err
				}
				WriteJSON(w, http.StatusOK, PolicyValidation{Valid: true, SHA256: c.SHA256()})
				return nil
			}},
		{Method: "GET", Path: "/policy/versions", Tag: "policy", Summary: "Every applied version, newest first (without sources)",
			Perm: read, Resp: []policy.Version{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				vs, err := svc.Versions(r.Context())
				if vs == nil {
					vs = []policy.Version{}
				}
				return reply{w, http.StatusOK}.send(vs, err)
			}},
		{Method: "GET", Path: "/policy/versions/{n}", Tag: "policy", Summary: "One applied version with its source (0 is the built-in default)",
			Perm: read, Resp: policy.Version{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				n, err := versionNumber(r.PathValue("n"))
				if err != nil {
					return err
				}
				_, v, err := svc.Version(r.Context(), n)
				return reply{w, http.StatusOK}.send(v, err)
			}},
		{Method: "GET", Path: "/policy/document", Tag: "policy",
			Summary: "The written Patch Management Policy rendered from a version: Markdown (format=md) or a print-ready HTML page (format=html)",
			Perm:    read, RespType: "text/markdown",
			Query: []Param{{Name: "format", Enum: []string{policy.FormatMarkdown, policy.FormatHTML}, Description: "md (default) or html"},
				{Name: "version", Type: "integer", Description: "version number; the one in force when absent"}},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return policyDocument(w, r, svc)
			}},
	}
}

// versionNumber parses a policy version from a path: anything that is not
// a version number names no version, so it is NotFound like an unknown one.
func versionNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, errs.E(errs.NotFound, "no policy version %q", s)
	}
	return n, nil
}

// readPolicy reads a policy file from the request body: a YAML media type,
// at most policy.MaxSourceSize bytes.
func readPolicy(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !slices.Contains(yamlTypes, mt) {
		return nil, errs.E(errs.Unsupported, "Content-Type must be application/yaml (got %q)", ct)
	}
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, policy.MaxSourceSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errs.E(errs.TooLarge, "policy file is larger than %d bytes", mbe.Limit)
		}
		return nil, errs.Wrap(errs.Invalid, err, "could not read the policy file")
	}
	return src, nil
}

// policyDocument renders a version as its written document. The file name
// carries the version, so a saved copy says which policy it is.
func policyDocument(w http.ResponseWriter, r *http.Request, svc *policy.Service) error {
	format, err := queryEnum(r, "format", []string{policy.FormatMarkdown, policy.FormatHTML})
	if err != nil {
		return err
	}
	if format == "" {
		format = policy.FormatMarkdown
	}
	n := -1
	if s := r.URL.Query().Get("version"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			return errs.E(errs.Invalid, "query parameter version must be a non-negative integer")
		}
	} else {
		_, v, err := svc.Current(r.Context())
		if err != nil {
			return err
		}
		n = v.Version
	}
	doc, err := svc.Document(r.Context(), n, format)
	if err != nil {
		return err
	}
	h := w.Header()
	name := fmt.Sprintf("patch-management-policy-v%d.%s", n, format)
	if format == policy.FormatHTML {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Disposition", `inline; filename="`+name+`"`)
		// The page carries its stylesheet inline and nothing else: allow
		// exactly that, and no script, frame, form or remote load.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	} else {
		h.Set("Content-Type", "text/markdown; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
	return nil
}
