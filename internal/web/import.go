package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
)

// The import is two posts. The first uploads the file and is always a dry
// run: the importer reports per row what it would do and changes nothing.
// The preview page carries the exact bytes back (base64 in a hidden field,
// so no line endings or encodings are altered on the way) and "Confirm
// import" posts them again with confirm=1. Both posts run the importer with
// the confirming user's permission checked afresh, so a hand-edited hidden
// field gains nothing that a new upload would not.

type importView struct {
	Kinds   []option
	MaxSize string // e.g. "4 MiB"
	Error   string

	// Set once there is a result.
	Result   bool
	DryRun   bool
	FileName string
	Kind     string
	Content  string // base64 of the file, for the confirm form
	Rows     []ImportRow
	Problems []ImportError
	Counts   []importCount
	Errors   int // may exceed len(Problems) when the importer capped them
	Changes  int
}

type importCount struct {
	Action string
	N      int
	Text   string // "to create", "created", ...
}

// countText says what happens, or happened, to rows with an action.
func countText(action string, dryRun bool) string {
	texts := map[string][2]string{
		"create": {"to create", "created"}, "update": {"to update", "updated"},
		"unchanged": {"unchanged", "unchanged"},
	}
	t, ok := texts[action]
	if !ok {
		return action
	}
	if dryRun {
		return t[0]
	}
	return t[1]
}

func (ui *UI) importView(kind string) importView {
	v := importView{MaxSize: byteSize(ui.cfg.MaxImportBytes)}
	for _, k := range ui.cfg.ImportKinds {
		v.Kinds = append(v.Kinds, option{Value: k.Name, Label: k.Label, Selected: k.Name == kind})
	}
	return v
}

func (ui *UI) importPage(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ui.render(w, r, http.StatusOK, "import", "Import CSV", ui.importView(""))
	return nil
}

func (ui *UI) importCSV(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit := ui.cfg.MaxImportBytes
	// Room for base64 (4/3) and the other fields of the confirm form.
	r.Body = http.MaxBytesReader(w, r.Body, limit/3*4+64<<10)
	if err := r.ParseMultipartForm(limit + 1<<20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return ui.importFailed(w, r, "", errs.Wrap(errs.Invalid, err, "the upload could not be read"))
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	kind := r.PostFormValue("kind")
	if !slices.ContainsFunc(ui.cfg.ImportKinds, func(k ImportKind) bool { return k.Name == kind }) {
		return ui.importFailed(w, r, kind, errs.E(errs.Invalid, "choose what the file contains"))
	}
	var (
		content  []byte
		fileName string
		dryRun   = true
	)
	if f, fh, err := r.FormFile("file"); err == nil {
		defer f.Close()
		fileName = fh.Filename
		if content, err = io.ReadAll(io.LimitReader(f, limit+1)); err != nil {
			return ui.importFailed(w, r, kind, errs.Wrap(errs.Invalid, err, "the upload could not be read"))
		}
	} else if s := r.PostFormValue("content"); s != "" {
		if content, err = base64.StdEncoding.DecodeString(s); err != nil {
			return ui.importFailed(w, r, kind, errs.E(errs.Invalid, "the confirmed file was damaged on the way; upload it again"))
		}
		fileName = r.PostFormValue("filename")
		dryRun = r.PostFormValue("confirm") != "1"
	}
	switch {
	case len(content) == 0:
		return ui.importFailed(w, r, kind, errs.E(errs.Invalid, "choose a non-empty CSV file"))
	case int64(len(content)) > limit:
		return ui.importFailed(w, r, kind, errs.E(errs.TooLarge, "the file is larger than %s", byteSize(limit)))
	}

	res, err := ui.cfg.Importer.ImportCSV(r.Context(), p.Actor(authn.ClientAddr(r)), bytes.NewReader(content),
		ImportOptions{Kind: kind, Name: fileName, DryRun: dryRun})
	if err != nil {
		return ui.importFailed(w, r, kind, err)
	}
	v := ui.importView(kind)
	v.Result, v.DryRun, v.FileName, v.Kind = true, dryRun, fileName, kind
	v.Rows, v.Problems, v.Errors = res.Rows, res.Errors, max(res.ErrorCount, len(res.Errors))
	counts := map[string]int{}
	for _, row := range res.Rows {
		counts[row.Action]++
		if row.Action == "create" || row.Action == "update" {
			v.Changes++
		}
	}
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		v.Counts = append(v.Counts, importCount{Action: a, N: counts[a], Text: countText(a, dryRun)})
	}
	if dryRun && v.Errors == 0 && v.Changes > 0 {
		v.Content = base64.StdEncoding.EncodeToString(content)
	}
	title := "Import result"
	if dryRun {
		title = "Import preview"
	}
	ui.render(w, r, http.StatusOK, "import", title, v)
	return nil
}

// importFailed shows a problem with the file on the upload form; server
// faults go to the error page.
func (ui *UI) importFailed(w http.ResponseWriter, r *http.Request, kind string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errs.E(errs.TooLarge, "the file is larger than %s", byteSize(ui.cfg.MaxImportBytes))
	}
	status := errs.HTTPStatus(err)
	if status >= 500 || status == http.StatusUnauthorized || status == http.StatusForbidden {
		return err
	}
	v := ui.importView(kind)
	v.Error = errs.Public(err)
	ui.render(w, r, status, "import", "Import CSV", v)
	return nil
}

// byteSize formats n for people: "4 MiB", "512 KiB", "900 bytes".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
