package web

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/policy"
)

func TestPolicyPage(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/policy", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	c, _, _ := e.policy.Current(t.Context())
	for term, want := range map[string]string{
		"Version":    "1",
		"SHA-256":    c.SHA256(),
		"Applied by": "admin",
		"Applied at": "Wed 18 Feb 2026, 09:00 CST",
		"Comment":    "Adopted the shipped policy (CAB 2026-02)",
	} {
		if got := ddOf(doc, "#policy-version", term); got != want {
			t.Errorf("%s = %q; want %q", term, got, want)
		}
	}
	// The rendered document is in the page, without what the CSP refuses.
	article := doc.Find("#policy-document")
	if h1 := text(article.Find("h1").First()); !strings.Contains(h1, "Patch Management Policy") {
		t.Errorf("document heading = %q", h1)
	}
	if article.Find("table").Length() < 3 {
		t.Error("document has no tables: not rendered")
	}
	if n := doc.Find("style, script, [style]").Length(); n != 0 {
		t.Errorf("page has %d style or script elements or style attributes", n)
	}
	for id, want := range map[string]string{"#download-md": "/policy/document.md?version=1", "#download-html": "/policy/document.html?version=1"} {
		if href := doc.Find(id).AttrOr("href", ""); href != want {
			t.Errorf("%s = %q; want %q", id, href, want)
		}
	}
	versions := doc.Find("#policy-versions tbody tr").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-version", "") })
	if diff := cmp.Diff([]string{"1", "0"}, versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	if got := text(doc.Find(`#policy-versions tr[data-version="1"] td`).First()); got != "1 In force" {
		t.Errorf("version 1 cell = %q", got)
	}
	if doc.Find("#edit-policy").Length() != 0 {
		t.Error("a viewer is offered to change the policy")
	}
	if doc := parse(t, e.get("/policy", auth.RoleAdmin)); doc.Find(`#edit-policy[href="/policy/edit"]`).Length() != 1 {
		t.Error("an admin is not offered to change the policy")
	}

	// An older version: its document, and a word that it is not in force.
	doc = parse(t, e.get("/policy?version=0", auth.RoleAuditor))
	if got := text(doc.Find("#not-in-force")); got != "This is version 0; version 1 is in force." {
		t.Errorf("old version banner = %q", got)
	}
	if got := text(doc.Find("#version-number")); got != "Built-in default (no version applied yet)" {
		t.Errorf("version = %q", got)
	}
	wantStatus(t, e.get("/policy?version=7", auth.RoleViewer), http.StatusNotFound)
	wantStatus(t, e.get("/policy?version=latest", auth.RoleViewer), http.StatusBadRequest)
}

func TestPolicyDocumentDownload(t *testing.T) {
	e := newRiskEnv(t)
	w := e.get("/policy/document.md", auth.RoleViewer)
	wantStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != "text/markdown; charset=utf-8" {
		t.Errorf("md content type = %q", ct)
	}
	if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="patchward-policy-v1.md"` {
		t.Errorf("md disposition = %q", cd)
	}
	if !strings.HasPrefix(w.Body.String(), "# ") {
		t.Errorf("markdown starts %.40q", w.Body.String())
	}
	w = e.get("/policy/document.html?version=0", auth.RoleAuditor)
	wantStatus(t, w, http.StatusOK)
	if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="patchward-policy-v0.html"` {
		t.Errorf("html disposition = %q", cd)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("html CSP = %q; want a sandboxed, style-only policy", csp)
	}
	if !strings.Contains(w.Body.String(), "<style>") {
		t.Error("the standalone document lost its stylesheet")
	}
	wantStatus(t, e.get("/policy/document.md?version=9", auth.RoleViewer), http.StatusNotFound)
	wantStatus(t, e.get("/policy/document.md", ""), http.StatusSeeOther)
}

// postPolicy submits the policy form as a browser does: multipart, with
// an optional uploaded file.
func (e *env) postPolicy(role auth.Role, action, source, comment string, file []byte) *httptest.ResponseRecorder {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range map[string]string{"action": action, "source": source, "comment": comment} {
		if err := mw.WriteField(k, v); err != nil {
			e.t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", "policy.yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = fw.Write(file)
	if err := mw.Close(); err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, "/policy/edit", role, &body, mw.FormDataContentType())
}

// badPolicy is the default policy with a misspelt risk mode and an
// unknown key, and the lines they are on.
func badPolicy(t *testing.T) (src string, modeLine, keyLine int) {
	t.Helper()
	src = strings.Replace(string(policy.DefaultSource()), "\n  mode: score\n", "\n  mode: scroe\n", 1)
	src = strings.Replace(src, "\n  review_every: ", "\n  reveiw_every: 1y\n  review_every: ", 1)
	for i, l := range strings.Split(src, "\n") {
		switch l {
		case "  mode: scroe":
			modeLine = i + 1
		case "  reveiw_every: 1y":
			keyLine = i + 1
		}
	}
	if modeLine == 0 || keyLine == 0 || keyLine > modeLine {
		t.Fatal("default policy has changed shape; update badPolicy")
	}
	return src, modeLine, keyLine
}

func TestPolicyValidateShowsProblems(t *testing.T) {
	e := newRiskEnv(t)
	src, modeLine, keyLine := badPolicy(t)
	for _, action := range []string{"validate", "apply"} {
		w := e.postPolicy(auth.RoleAdmin, action, src, "tighten", nil)
		wantStatus(t, w, http.StatusBadRequest)
		doc := parse(t, w)
		items := doc.Find("#policy-problems li")
		lines := items.Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("data-line", "") })
		if diff := cmp.Diff([]string{strconv.Itoa(keyLine), strconv.Itoa(modeLine)}, lines); diff != "" {
			t.Errorf("%s: problem lines (-want +got):\n%s", action, diff)
		}
		mode := items.FilterFunction(func(_ int, s *goquery.Selection) bool { return s.AttrOr("data-line", "") == strconv.Itoa(modeLine) })
		if got := text(mode.Find("pre.source-line")); got != strconv.Itoa(modeLine)+" mode: scroe" {
			t.Errorf("%s: offending line = %q", action, got)
		}
		if got := text(mode.Find("code")); got != "risk.mode" {
			t.Errorf("%s: path = %q", action, got)
		}
		// The form comes back with the text as submitted.
		if got := doc.Find("#f-source").Text(); got != src {
			t.Errorf("%s: source not kept (%d bytes; want %d)", action, len(got), len(src))
		}
	}
	if n := e.policy.count(); n != 1 {
		t.Errorf("versions = %d after invalid submissions; want 1", n)
	}
}

func TestPolicyApply(t *testing.T) {
	e := newRiskEnv(t)
	src := strings.Replace(string(policy.DefaultSource()), "review_every: 90d", "review_every: 60d", 1)

	// Validate: valid, with a preview, and nothing applied.
	w := e.postPolicy(auth.RoleAdmin, "validate", src, "", nil)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if doc.Find("#policy-valid").Length() != 1 || doc.Find("#policy-preview h1").Length() == 0 {
		t.Error("valid file: no confirmation or preview")
	}
	// Apply without a comment: refused on the form.
	w = e.postPolicy(auth.RoleAdmin, "apply", src, "  ", nil)
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#f-comment-error")); !strings.HasPrefix(got, "Say why the policy changes") {
		t.Errorf("comment error = %q", got)
	}
	if n := e.policy.count(); n != 1 {
		t.Fatalf("applied without a comment")
	}
	// An uploaded file wins over the textarea.
	w = e.postPolicy(auth.RoleAdmin, "apply", "garbage: [", "Reviews every 60 days (CAB 2026-03)", []byte(src))
	wantStatus(t, w, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != "/policy?applied=2" {
		t.Errorf("after apply: %q", loc)
	}
	if e.policy.count() != 2 || e.policy.versions[1].Source != src || e.policy.applies[0].Name != "admin" {
		t.Errorf("applied = %+v", e.policy.versions[1:])
	}
	doc = parse(t, e.get("/policy?applied=2", auth.RoleAdmin))
	if got := text(doc.Find("#applied")); !strings.HasPrefix(got, "Version 2 applied and in force.") {
		t.Errorf("notice = %q", got)
	}
	if got := ddOf(doc, "#policy-version", "Comment"); got != "Reviews every 60 days (CAB 2026-03)" {
		t.Errorf("comment = %q", got)
	}
	// The same file again: a conflict, said on the form.
	w = e.postPolicy(auth.RoleAdmin, "apply", src, "again", nil)
	wantStatus(t, w, http.StatusConflict)
	if got := text(parse(t, w).Find("#policy-message")); got != "this policy is already in force as version 2" {
		t.Errorf("conflict message = %q", got)
	}
	// Textareas send CRLF; the stored source does not depend on it.
	w = e.postPolicy(auth.RoleAdmin, "validate", strings.ReplaceAll(src, "\n", "\r\n"), "", nil)
	wantStatus(t, w, http.StatusOK)
}

func TestPolicyEditForbidden(t *testing.T) {
	e := newRiskEnv(t)
	for _, role := range []auth.Role{auth.RoleApprover, auth.RoleOperator, auth.RoleAuditor, auth.RoleViewer} {
		wantStatus(t, e.get("/policy/edit", role), http.StatusForbidden)
		wantStatus(t, e.postPolicy(role, "apply", string(policy.DefaultSource())+"\n# x\n", "sneaky", nil), http.StatusForbidden)
	}
	if n := e.policy.count(); n != 1 {
		t.Errorf("versions = %d; a role without policy:write applied one", n)
	}
	w := e.get("/policy/edit", auth.RoleAdmin)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	form := doc.Find("#policy-form")
	if form.AttrOr("enctype", "") != "multipart/form-data" || form.Find(`input[type=file][name=file]`).Length() != 1 {
		t.Error("the policy form cannot upload a file")
	}
	if got := doc.Find("#f-source").Text(); got != string(policy.DefaultSource()) {
		t.Error("the editor does not start from the policy in force")
	}
	// An empty submission is a message, not a validation of nothing.
	w = e.post("/policy/edit", auth.RoleAdmin, url.Values{"action": {"validate"}, "source": {"  "}})
	wantStatus(t, w, http.StatusBadRequest)
	if got := text(parse(t, w).Find("#policy-message")); got != "Paste the policy file or choose one to upload." {
		t.Errorf("empty message = %q", got)
	}
}
