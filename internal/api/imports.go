package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// ImportErrorBody is a refused import: the error plus the report, whose
// per-row errors say what to fix. Nothing was written.
type ImportErrorBody struct {
	ErrorBody
	Report inventory.ImportReport `json:"report"`
}

func (a *API) importRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/assets/import", Tag: "assets",
			Summary: "Import a CSV of purchase records, discovery results or assets (text/csv), or an nmap -oX scan (kind=nmap, application/xml); all rows or none. Use dry_run=true for a preview.",
			Perm:    auth.PermAssetImport, BodyType: "text/csv", Resp: inventory.ImportReport{},
			Query: []Param{
				{Name: "kind", Enum: append(enumStrings(inventory.ImportKinds), "nmap"), Description: "what the file describes (default inventory)"},
				{Name: "dry_run", Type: "boolean", Description: "report what would happen and write nothing"},
				{Name: "map", Description: "column mapping, repeatable: 'CSV header=field' (field '-' ignores the column)"},
				{Name: "name", Description: "file name for the audit trail"},
			},
			Handle: a.importAssets},
		{Method: "GET", Path: "/assets/export", Tag: "assets", Summary: "Export every asset as CSV (re-importable) or JSON (with software)",
			Perm: auth.PermAssetExport, Query: []Param{{Name: "format", Enum: []string{"csv", "json"}}},
			RespType: "text/csv", Handle: a.exportAssets},
		{Method: "GET", Path: "/reconciliation", Tag: "assets",
			Summary: "Reconcile purchases against what agents and discovery saw: purchased-never-seen, shadow devices, stale",
			Perm:    auth.PermAssetRead, Query: []Param{{Name: "stale_days", Type: "integer", Description: "seen assets older than this are stale (default 30)"}},
			Resp: inventory.Reconciliation{}, Handle: a.reconcile},
	}
}

func (a *API) importAssets(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	if q.Get("kind") == "nmap" {
		return a.importNmap(w, r, p)
	}
	if err := requireType(r, "text/csv"); err != nil {
		return err
	}
	opt := inventory.ImportOptions{Kind: inventory.ImportInventory, Name: q.Get("name"), Mapping: map[string]string{}}
	if k := q.Get("kind"); k != "" {
		kind, err := queryEnum(r, "kind", inventory.ImportKinds)
		if err != nil {
			return err
		}
		opt.Kind = kind
	}
	if dry, err := queryBool(r, "dry_run"); err != nil {
		return err
	} else if dry != nil {
		opt.DryRun = *dry
	}
	for _, m := range q["map"] {
		header, field, ok := strings.Cut(m, "=")
		if !ok || strings.TrimSpace(header) == "" || strings.TrimSpace(field) == "" {
			return errs.E(errs.Invalid, "map %q must look like 'CSV header=field'", m)
		}
		opt.Mapping[strings.TrimSpace(header)] = strings.TrimSpace(field)
	}
	body := http.MaxBytesReader(w, r.Body, inventory.MaxImportBytes)
	report, err := a.Inventory.ImportCSV(r.Context(), p.Actor(authn.ClientAddr(r)), body, opt)
	return writeImport(w, report, err, inventory.MaxImportBytes)
}

// importNmap records an nmap -oX scan as a discovery import.
func (a *API) importNmap(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := requireType(r, "application/xml"); err != nil {
		return err
	}
	dry, err := queryBool(r, "dry_run")
	if err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, inventory.MaxNmapBytes)
	report, err := a.Inventory.ImportNmap(r.Context(), p.Actor(authn.ClientAddr(r)), body, r.URL.Query().Get("name"), dry != nil && *dry)
	return writeImport(w, report, err, inventory.MaxNmapBytes)
}

// writeImport renders an import's report, with the error and status when
// the import was refused.
func writeImport(w http.ResponseWriter, report inventory.ImportReport, err error, limit int64) error {
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "file is larger than %d bytes", limit)
		}
		status := errs.HTTPStatus(err)
		if status >= 500 {
			return err
		}
		WriteJSON(w, status, ImportErrorBody{ErrorBody: ErrorBody{Error: errs.Public(err), Fields: errs.FieldsOf(err), Status: status}, Report: report})
		return nil
	}
	WriteJSON(w, http.StatusOK, report)
	return nil
}

func (a *API) exportAssets(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	format := r.URL.Query().Get("format")
	var (
		buf   bytes.Buffer
		err   error
		ctype string
	)
	switch format {
	case "", "csv":
		format, ctype = "csv", "text/csv; charset=utf-8"
		err = a.Inventory.ExportCSV(r.Context(), &buf)
	case "json":
		ctype = "application/json; charset=utf-8"
		err = a.Inventory.ExportJSON(r.Context(), &buf)
	default:
		return errs.E(errs.Invalid, "format must be csv or json")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="patchward-assets.`+format+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
	return nil
}

func (a *API) reconcile(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	days, err := queryInt(r, "stale_days", 0)
	if err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Inventory.Reconcile(r.Context(), days))
}
