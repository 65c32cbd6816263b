package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

type policyView struct {
	// Version is the version shown; InForce the one in force (they differ
	// when an older version is opened from the list).
	Version policy.Version
	InForce int
	Current bool
	SHA256  string
	Applied when
	// Document is the rendered policy document's body, embedded as HTML;
	// DocError says why it is missing.
	Document template.HTML
	DocError string
	MDURL    string
	HTMLURL  string
	Versions []versionRow
	CanWrite bool
	// JustApplied is the version the user has just applied.
	JustApplied int
}

type versionRow struct {
	policy.Version
	Applied  when
	ViewURL  string
	MDURL    string
	HTMLURL  string
	InForce  bool
	Selected bool
}

func versionQuery(n int) string { return "?version=" + strconv.Itoa(n) }

// policyVersionParam reads ?version=; -1 means the version in force.
func policyVersionParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("version")
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errs.E(errs.Invalid, "version must be a policy version number")
	}
	return n, nil
}

func (ui *UI) policyPage(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	n, err := policyVersionParam(r)
	if err != nil {
		return err
	}
	c, cur, err := ui.cfg.Policy.Current(ctx)
	if err != nil {
		return err
	}
	shown := cur
	if n >= 0 && n != cur.Version {
		if c, shown, err = ui.cfg.Policy.Version(ctx, n); err != nil {
			return err
		}
	}
	_, zones, err := ui.policyFacts(ctx)
	if err != nil {
		return err
	}
	now := ui.cfg.Now()
	v := policyView{Version: shown, InForce: cur.Version, Current: shown.Version == cur.Version,
		SHA256: c.SHA256(), Applied: whenAt(shown.AppliedAt, zones.org, now), CanWrite: p.Can(auth.PermPolicyWrite),
		MDURL: "/policy/document.md" + versionQuery(shown.Version), HTMLURL: "/policy/document.html" + versionQuery(shown.Version)}
	if s := r.URL.Query().Get("applied"); s != "" {
		v.JustApplied, _ = strconv.Atoi(s)
	}
	doc, err := ui.cfg.Policy.Document(ctx, shown.Version, policy.FormatHTML)
	if err == nil {
		v.Document, err = documentBody(doc)
	}
	if err != nil {
		// The page still says which version is in force; the document
		// is the part that failed, so say so there.
		ui.log.ErrorContext(ctx, "web: policy document not shown", "version", shown.Version, "err", err)
		v.DocError = "The policy document could not be rendered; the details have been logged."
	}
	versions, err := ui.cfg.Policy.Versions(ctx)
	if err != nil {
		return err
	}
	row := func(pv policy.Version) versionRow {
		q := versionQuery(pv.Version)
		return versionRow{Version: pv, Applied: whenAt(pv.AppliedAt, zones.org, now), ViewURL: "/policy" + q,
			MDURL: "/policy/document.md" + q, HTMLURL: "/policy/document.html" + q,
			InForce: pv.Version == cur.Version, Selected: pv.Version == shown.Version}
	}
	for _, pv := range versions {
		v.Versions = append(v.Versions, row(pv))
	}
	// The built-in default is where every installation starts; it stays
	// listed so an auditor sees the whole history.
	v.Versions = append(v.Versions, row(policy.Version{Version: 0, AppliedBy: "built-in default", SHA256: policy.Default().SHA256()}))
	title := "Policy"
	if !v.Current {
		title = fmt.Sprintf("Policy version %d", shown.Version)
	}
	ui.render(w, r, http.StatusOK, "policy", title, v)
	return nil
}

// unsafeMarkup finds what the page's Content Security Policy would block
// or what must never run inside the UI: script, style and embedding
// elements, inline event handlers and style attributes.
var unsafeMarkup = regexp.MustCompile(`(?i)<\s*(script|style|link|iframe|object|embed|base|form|meta)\b|<[^>]*\s(on[a-z]+|style)\s*=`)

// documentBody takes the body of the policy package's standalone HTML
// document (what sits inside its <main>) for embedding in a UI page, so the
// page shows exactly what the .html download and the auditor's copy say.
// The standalone page carries its own <style>, which the UI's CSP would
// refuse; the UI styles the body with its stylesheet instead. The renderer
// drops raw HTML from the policy's text, and the check below refuses any
// markup that would break the CSP or run code, should that ever change.
func documentBody(doc []byte) (template.HTML, error) {
	i := bytes.Index(doc, []byte("<main>"))
	j := bytes.LastIndex(doc, []byte("</main>"))
	if i < 0 || j < i {
		return "", errors.New("rendered policy document has no <main> element")
	}
	body := doc[i+len("<main>") : j]
	if m := unsafeMarkup.Find(body); m != nil {
		return "", fmt.Errorf("rendered policy document contains markup the UI does not embed: %.60q", m)
	}
	return template.HTML(body), nil //nolint:gosec // the policy renderer's own output, checked above
}

// policyDocument serves the policy document for download, as Markdown or
// as the standalone HTML page, for the version in force or ?version=N.
func (ui *UI) policyDocument(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	n, err := policyVersionParam(r)
	if err != nil {
		return err
	}
	if n < 0 {
		_, cur, err := ui.cfg.Policy.Current(ctx)
		if err != nil {
			return err
		}
		n = cur.Version
	}
	format, ctype := policy.FormatMarkdown, "text/markdown; charset=utf-8"
	if strings.HasSuffix(r.URL.Path, ".html") {
		format, ctype = policy.FormatHTML, "text/html; charset=utf-8"
	}
	doc, err := ui.cfg.Policy.Document(ctx, n, format)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="patchward-policy-v%d.%s"`, n, format))
	h.Set("Cache-Control", "no-store")
	if format == policy.FormatHTML {
		// The standalone document styles itself with one inline <style>
		// so it prints the same anywhere; allow that and nothing else, in
		// a sandbox, instead of the UI's policy (which would unstyle it).
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox")
	}
	_, _ = w.Write(doc)
	return nil
}

// policyEditView is the page to validate and apply a new policy file.
type policyEditView struct {
	InForce int
	Source  string
	Comment string
	// CommentError is set when Apply was pressed without a comment.
	CommentError string
	// Problems are what Validate found, with the offending line.
	Problems []problemRow
	// Message is a problem that is not about a line (already in force,
	// an unreadable upload).
	Message string
	// Valid says the submitted file passed validation; Preview is its
	// rendered document.
	Valid   bool
	Preview template.HTML
	MaxSize string
}

// problemRow is one policy problem with the line it is on, so the admin
// sees what is wrong without counting lines in a textarea.
type problemRow struct {
	policy.Problem
	Source string
}

func (ui *UI) policyEditor(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx := r.Context()
	c, cur, err := ui.cfg.Policy.Current(ctx)
	if err != nil {
		return err
	}
	ui.render(w, r, http.StatusOK, "policy_edit", "Change the policy",
		policyEditView{InForce: cur.Version, Source: string(c.Source()), MaxSize: byteSize(policy.MaxSourceSize)})
	return nil
}

// policySubmit validates, or validates and applies, a pasted or uploaded
// policy file. Whatever is wrong comes back on the form, with the source
// as submitted; the policy in force changes only on a successful apply.
func (ui *UI) policySubmit(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx := r.Context()
	_, cur, err := ui.cfg.Policy.Current(ctx)
	if err != nil {
		return err
	}
	v := policyEditView{InForce: cur.Version, MaxSize: byteSize(policy.MaxSourceSize)}
	// Room for the file, the textarea (which may hold the same text) and
	// the comment.
	r.Body = http.MaxBytesReader(w, r.Body, 2*policy.MaxSourceSize+64<<10)
	if err := r.ParseMultipartForm(2*policy.MaxSourceSize + 64<<10); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "the policy file is larger than %s", byteSize(policy.MaxSourceSize))
		}
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
	}
	src := []byte(r.PostFormValue("source"))
	if f, _, err := r.FormFile("file"); err == nil {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, policy.MaxSourceSize+1))
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "the upload could not be read")
		}
		if len(b) > 0 {
			src = b // an uploaded file wins over the textarea
		}
	}
	// Browsers submit textareas with CRLF line ends; YAML does not care,
	// but the stored source and its digest should not depend on the browser.
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	v.Source, v.Comment = string(src), strings.TrimSpace(r.PostFormValue("comment"))
	action := r.PostFormValue("action")
	if action != "validate" && action != "apply" {
		return errs.E(errs.Invalid, "choose Validate or Apply")
	}
	if len(bytes.TrimSpace(src)) == 0 {
		v.Message = "Paste the policy file or choose one to upload."
		ui.render(w, r, http.StatusBadRequest, "policy_edit", "Change the policy", v)
		return nil
	}
	if action == "apply" && v.Comment == "" {
		// Checked before validating, so the problems and the missing
		// comment show together only when both are wrong.
		v.CommentError = "Say why the policy changes: the comment is kept with the version and in the audit log."
	}
	c, verr := ui.cfg.Policy.Validate(src)
	if verr == nil && action == "apply" && v.Comment != "" {
		ver, err := ui.cfg.Policy.Apply(ctx, p.Actor(authn.ClientAddr(r)), src, v.Comment)
		if err == nil {
			http.Redirect(w, r, fmt.Sprintf("/policy?applied=%d", ver.Version), http.StatusSeeOther)
			return nil
		}
		verr = err
	}
	status := http.StatusOK
	switch {
	case verr != nil:
		var pe *policy.Error
		switch {
		case errors.As(verr, &pe):
			v.Problems = problemRows(src, pe.Problems)
		case errs.KindOf(verr) == errs.Invalid || errs.KindOf(verr) == errs.Conflict:
			v.Message = errs.Public(verr)
		default:
			return verr
		}
		status = errs.HTTPStatus(verr)
	case v.CommentError != "":
		v.Valid = true
		status = http.StatusBadRequest
	default:
		v.Valid = true
	}
	if c != nil && verr == nil {
		if doc, err := policy.Render(c, policy.FormatHTML, policy.RenderMeta{Version: cur.Version + 1}); err == nil {
			v.Preview, _ = documentBody(doc)
		}
	}
	ui.render(w, r, status, "policy_edit", "Change the policy", v)
	return nil
}

// problemRows attaches each problem's source line.
func problemRows(src []byte, ps []policy.Problem) []problemRow {
	lines := strings.Split(string(src), "\n")
	rows := make([]problemRow, len(ps))
	for i, pr := range ps {
		rows[i].Problem = pr
		if pr.Line >= 1 && pr.Line <= len(lines) {
			rows[i].Source = strings.TrimRight(lines[pr.Line-1], "\r")
		}
	}
	return rows
}
