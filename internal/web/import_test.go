package web

import (
	"bytes"
	"encoding/base64"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
)

// upload posts a CSV file the way the upload form does.
func (e *env) upload(role auth.Role, kind, name string, content []byte) *httptest.ResponseRecorder {
	e.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.WriteField("kind", kind); err != nil {
		e.t.Fatal(err)
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = fw.Write(content)
	if err := mw.Close(); err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, "/import", role, &body, mw.FormDataContentType())
}

// A CSV with CRLF line endings, a quoted comma and non-ASCII text: the
// confirm step must send back exactly these bytes.
var purchaseCSV = []byte("serial,name,purchase_ref\r\nCH-311-0042,\"Chemistry analyzer, lab\",PO-77\r\nNEW-1,Zürich PC,PO-78\r\n")

func TestImportPreviewShowsRowErrorsAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.imp.result = ImportResult{
		Rows: []ImportRow{{Line: 2, Action: "update", AssetID: "a-chem", Name: "Chemistry analyzer",
			Changes: []ImportChange{{Field: "purchase_ref", Old: "", New: "PO-77"}}}},
		Errors:     []ImportError{{Line: 3, Column: "purchased_at", Message: `"yesterday" is not a date (YYYY-MM-DD)`}},
		ErrorCount: 1,
	}
	w := e.upload(auth.RoleOperator, "purchase", "po.csv", purchaseCSV)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)

	if got := len(e.imp.calls); got != 1 {
		t.Fatalf("importer calls = %d; want 1", got)
	}
	if opt := e.imp.calls[0]; !opt.DryRun || opt.Kind != "purchase" || opt.Name != "po.csv" {
		t.Errorf("options = %+v; want a dry run of kind purchase named po.csv", opt)
	}
	if e.imp.committed != 0 {
		t.Errorf("committed = %d; want 0", e.imp.committed)
	}
	errRow := doc.Find(`#import-errors tbody tr[data-line="3"]`)
	if got := text(errRow); !strings.Contains(got, "purchased_at") || !strings.Contains(got, `"yesterday" is not a date`) {
		t.Errorf("error row = %q; want line 3's column and message", got)
	}
	if got := text(doc.Find(`#import-rows tbody tr[data-line="2"]`)); !strings.Contains(got, "purchase_ref: (empty) → PO-77") {
		t.Errorf("update row = %q; want its change", got)
	}
	if doc.Find("#confirm-form").Length() != 0 {
		t.Error("a preview with errors offers Confirm import")
	}
	if got := text(doc.Find("#import-blocked")); !strings.Contains(got, "Nothing has been imported") {
		t.Errorf("blocked message = %q", got)
	}
}

func TestImportConfirmSendsSameBytes(t *testing.T) {
	e := newEnv(t)
	e.imp.result = ImportResult{Rows: []ImportRow{
		{Line: 2, Action: "update", AssetID: "a-chem", Name: "Chemistry analyzer", Changes: []ImportChange{{Field: "purchase_ref", New: "PO-77"}}},
		{Line: 3, Action: "create", Name: "Zürich PC"},
	}}
	w := e.upload(auth.RoleAdmin, "purchase", "po.csv", purchaseCSV)
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := text(doc.Find("#import-result .summary")); got != "1 to create 1 to update" {
		t.Errorf("summary = %q", got)
	}
	confirm := doc.Find("#confirm-form")
	if confirm.Length() != 1 {
		t.Fatal("no Confirm import form")
	}
	if got := text(confirm.Find("button")); got != "Confirm import" {
		t.Errorf("button = %q", got)
	}
	if e.imp.committed != 0 {
		t.Fatalf("preview committed %d imports", e.imp.committed)
	}

	w = e.post("/import", auth.RoleAdmin, formValues(confirm))
	wantStatus(t, w, http.StatusOK)
	if e.imp.committed != 1 {
		t.Fatalf("committed = %d; want 1", e.imp.committed)
	}
	last := e.imp.calls[len(e.imp.calls)-1]
	if last.DryRun || last.Kind != "purchase" || last.Name != "po.csv" {
		t.Errorf("confirm options = %+v", last)
	}
	if got := e.imp.contents[len(e.imp.contents)-1]; !bytes.Equal(got, purchaseCSV) {
		t.Errorf("confirmed content = %q; want the previewed bytes %q", got, purchaseCSV)
	}
	doc = parse(t, w)
	if got := text(doc.Find("#import-result h2")); got != "Imported: po.csv" {
		t.Errorf("result heading = %q", got)
	}
	if doc.Find("#confirm-form").Length() != 0 {
		t.Error("a finished import offers Confirm again")
	}
}

func TestImportRejectsBadUploads(t *testing.T) {
	e := newEnv(t)
	e.imp.err = errs.E(errs.Invalid, "line 1: the file has no header row")
	for _, tc := range []struct {
		name, kind string
		content    []byte
		status     int
		want       string
	}{
		{"unknown kind", "spreadsheet", purchaseCSV, http.StatusBadRequest, "choose what the file contains"},
		{"empty file", "purchase", nil, http.StatusBadRequest, "choose a non-empty CSV file"},
		{"too large", "purchase", bytes.Repeat([]byte("a,b\n"), DefaultMaxImportBytes/4+1), http.StatusRequestEntityTooLarge, "larger than"},
		{"importer refuses", "inventory", []byte("\n"), http.StatusBadRequest, "no header row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.upload(auth.RoleOperator, tc.kind, "x.csv", tc.content)
			wantStatus(t, w, tc.status)
			if got := text(parse(t, w).Find("#import-error")); !strings.Contains(got, tc.want) {
				t.Errorf("error = %q; want %q", got, tc.want)
			}
		})
	}
	if e.imp.committed != 0 {
		t.Errorf("committed = %d; want 0", e.imp.committed)
	}
}

func TestImportPage(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/import", auth.RoleOperator))
	form := doc.Find("#upload-form")
	if enc, _ := form.Attr("enctype"); enc != "multipart/form-data" {
		t.Errorf("enctype = %q", enc)
	}
	if got := form.Find("select[name=kind] option").Length(); got != len(DefaultImportKinds()) {
		t.Errorf("kinds = %d; want %d", got, len(DefaultImportKinds()))
	}
	if doc.Find(`label[for="f-file"]`).Length() != 1 || doc.Find(`label[for="f-kind"]`).Length() != 1 {
		t.Error("upload controls lack labels")
	}
	if cur := text(doc.Find(`nav a[aria-current="page"]`)); cur != "Import" {
		t.Errorf("current nav = %q", cur)
	}
	// An auditor may read but not import.
	wantStatus(t, e.get("/import", auth.RoleAuditor), http.StatusForbidden)
}

func TestImportConfirmFailsAtCommit(t *testing.T) {
	e := newEnv(t)
	// The inventory changed after the preview: the real run finds a problem.
	e.imp.result = ImportResult{Errors: []ImportError{{Line: 2, Column: "serial", Message: "serial is now used by another asset"}}, ErrorCount: 1}
	w := e.post("/import", auth.RoleAdmin, url.Values{"kind": {"purchase"}, "filename": {"po.csv"},
		"content": {base64.StdEncoding.EncodeToString(purchaseCSV)}, "confirm": {"1"}})
	wantStatus(t, w, http.StatusOK)
	doc := parse(t, w)
	if got := text(doc.Find("#import-blocked")); !strings.Contains(got, "Nothing has been imported") {
		t.Errorf("message = %q", got)
	}
	if doc.Find(".notice").Length() != 0 {
		t.Error("a failed import says it is complete")
	}
	if got := e.imp.calls[0]; got.DryRun {
		t.Error("confirm ran as a dry run")
	}
	w = e.post("/import", auth.RoleAdmin, url.Values{"kind": {"purchase"}, "content": {"%%%not base64"}, "confirm": {"1"}})
	wantStatus(t, w, http.StatusBadRequest)
}
