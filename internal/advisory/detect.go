package advisory

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/patchward/patchward/internal/errs"
)

// Format is a feed file format, recognised by content.
type Format string

// The formats Detect recognises.
const (
	FormatOSV    Format = "osv"     // one OSV record or a JSON array of them
	FormatOSVZip Format = "osv-zip" // an OSV all.zip archive
	FormatNVD    Format = "nvd"     // NVD CVE API 2.0 response or CVE object
	FormatKEV    Format = "kev"     // CISA KEV catalog JSON
	FormatEPSS   Format = "epss"    // FIRST EPSS CSV, plain or gzip
	FormatCSAF   Format = "csaf"    // CSAF 2.0 document (advisory or VEX)
)

// zipMagic starts a zip archive's first local file header.
var zipMagic = []byte("PK\x03\x04")

// Detect recognises a feed file by its content, never its name: an
// air-gapped clinic copies feeds by hand and names them as it likes, and
// `patchward scan --feeds DIR` takes any mix. It looks only at the
// structure (top-level keys, magic bytes, the CSV header), so a file it
// recognises may still fail to parse. Content that is no feed format is
// an errs.Unsupported error, which lets a caller skip a stray README but
// stop on a broken feed (errs.Invalid from the parser).
func Detect(b []byte) (Format, error) {
	if len(b) > MaxZipSize {
		return "", errs.E(errs.TooLarge, "feed file is larger than the %s limit", byteSize(MaxZipSize))
	}
	switch {
	case bytes.HasPrefix(b, zipMagic):
		return FormatOSVZip, nil
	case bytes.HasPrefix(b, gzipMagic):
		// Only EPSS is published gzip-compressed; check the start of
		// the decompressed text to be sure.
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return "", errs.E(errs.Invalid, "gzip file with a broken header: %v", err)
		}
		head, _ := io.ReadAll(io.LimitReader(zr, 4096))
		if looksLikeEPSS(head) {
			return FormatEPSS, nil
		}
		return "", errs.E(errs.Unsupported, "gzip file that is not an EPSS CSV")
	case looksLikeEPSS(b):
		return FormatEPSS, nil
	}
	switch firstNonSpace(b) {
	case '[':
		return detectJSONArray(b)
	case '{':
		return detectJSONObject(b)
	}
	return "", errs.E(errs.Unsupported, "not a recognised feed format (OSV, NVD 2.0, KEV, EPSS, CSAF)")
}

// looksLikeEPSS is true for text starting with EPSS's model comment or its
// column header.
func looksLikeEPSS(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(b, []byte("#model_version:")) {
		return true
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	return strings.EqualFold(strings.TrimSpace(string(first)), "cve,epss,percentile")
}

func detectJSONObject(b []byte) (Format, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return "", errs.E(errs.Invalid, "JSON feed file: %s", jsonProblem(err))
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	switch {
	case has("document") && (has("product_tree") || has("vulnerabilities") || bytes.Contains(top["document"], []byte(`"csaf_version"`))):
		return FormatCSAF, nil
	case has("catalogVersion") && has("vulnerabilities"):
		return FormatKEV, nil
	case has("vulnerabilities") && (has("format") || has("resultsPerPage") || has("totalResults")):
		return FormatNVD, nil
	case has("cve") && !has("affected"):
		return FormatNVD, nil
	case has("id") && (has("descriptions") || has("sourceIdentifier") || has("vulnStatus")):
		return FormatNVD, nil
	case has("id") && (has("modified") || has("affected") || has("schema_version") || has("aliases")):
		return FormatOSV, nil
	}
	return "", errs.E(errs.Unsupported, "JSON file that is not an OSV, NVD 2.0, KEV or CSAF document")
}

// detectJSONArray accepts an array of OSV records (what osv.dev's query
// API and some mirrors return); an empty array carries nothing and is
// treated as OSV so a directory of exports does not fail on it.
func detectJSONArray(b []byte) (Format, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return "", errs.E(errs.Invalid, "JSON feed file: %s", jsonProblem(err))
	}
	if len(items) == 0 {
		return FormatOSV, nil
	}
	var first map[string]json.RawMessage
	if json.Unmarshal(items[0], &first) == nil && first["id"] != nil {
		return FormatOSV, nil
	}
	return "", errs.E(errs.Unsupported, "JSON array that is not a list of OSV records")
}

// Parsed is the content of one feed file: advisories, or a KEV catalog, or
// an EPSS score set, as its Format says.
type Parsed struct {
	Format     Format
	Advisories []Advisory
	KEV        *KEVCatalog
	EPSS       *EPSSSet
}

// ParseAny recognises data with Detect and parses it with the matching
// parser. name is used only in error messages, so an operator sees which
// file of a feed directory is broken. Errors keep the parser's kind
// (errs.Invalid, errs.TooLarge, or errs.Unsupported for a non-feed file).
func ParseAny(name string, data []byte) (Parsed, error) {
	f, err := Detect(data)
	if err != nil {
		return Parsed{}, named(name, err)
	}
	p := Parsed{Format: f}
	switch f {
	case FormatOSV:
		if len(data) > MaxDocumentSize {
			return Parsed{}, named(name, errs.E(errs.TooLarge, "OSV input is larger than the %s limit", byteSize(MaxDocumentSize)))
		}
		p.Advisories, err = parseOSVBytes(data, "")
	case FormatOSVZip:
		p.Advisories, err = ParseOSVZip(bytes.NewReader(data), int64(len(data)))
	case FormatNVD:
		p.Advisories, err = ParseNVD(bytes.NewReader(data))
	case FormatCSAF:
		p.Advisories, err = ParseCSAF(bytes.NewReader(data))
	case FormatKEV:
		var c KEVCatalog
		if c, err = ParseKEV(bytes.NewReader(data)); err == nil {
			p.KEV = &c
		}
	case FormatEPSS:
		var s EPSSSet
		if s, err = ParseEPSS(bytes.NewReader(data)); err == nil {
			p.EPSS = &s
		}
	}
	if err != nil {
		return Parsed{}, named(name, err)
	}
	return p, nil
}

// named prefixes an error's user-safe message with the file name, keeping
// its kind and cause.
func named(name string, err error) error {
	var e *errs.Error
	if name == "" || !errors.As(err, &e) {
		return err
	}
	return &errs.Error{Kind: e.Kind, Message: name + ": " + e.Message, Fields: e.Fields, Err: e.Err}
}
