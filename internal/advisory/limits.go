package advisory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/errs"
)

// Size limits on outside data. Feeds arrive from the network or from a USB
// stick in an air-gapped clinic; a truncated, corrupt or hostile file must
// fail cleanly instead of exhausting the memory of a small clinic server.
// Each limit sits well above the largest real file of its kind.
const (
	// MaxDocumentSize caps one JSON document: an NVD API page (2,000 CVEs
	// is a few tens of MB), the KEV catalog (about 1.3 MB), a CSAF
	// document (Red Hat kernel VEX files reach tens of MB) or an OSV record
	// or array.
	MaxDocumentSize = 256 << 20
	// MaxEPSSSize caps the uncompressed EPSS CSV (the full daily file is
	// about 10 MB for some 300,000 CVEs).
	MaxEPSSSize = 128 << 20
	// MaxZipSize caps an OSV all.zip archive as stored.
	MaxZipSize = 1 << 30
	// MaxZipEntries caps the records in one OSV archive (the largest
	// ecosystem archives hold a few hundred thousand).
	MaxZipEntries = 1 << 20
	// MaxZipEntrySize caps one decompressed archive entry (one OSV record).
	MaxZipEntrySize = 16 << 20
	// MaxZipTotalSize caps the decompressed size of a whole archive; with
	// the per-entry cap it is what turns a zip bomb into a clean error.
	MaxZipTotalSize = 4 << 30
)

// Source names for Advisory.Source.
const (
	SourceOSV  = "osv"
	SourceNVD  = "nvd"
	SourceCSAF = "csaf"
)

// readLimited reads all of r, refusing more than max bytes with TooLarge
// rather than silently truncating (a truncated feed must never look valid).
func readLimited(r io.Reader, max int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "read %s", what)
	}
	if int64(len(b)) > max {
		return nil, errs.E(errs.TooLarge, "%s is larger than the %s limit", what, byteSize(max))
	}
	return b, nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func invalid(format string, args ...any) error {
	return errs.E(errs.Invalid, format, args...)
}

// jsonProblem turns an encoding/json error into a user-safe description
// with the byte offset, which is what someone fixing a file needs.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Error(), "unexpected end of JSON input") {
			return fmt.Sprintf("truncated JSON (input ends at byte %d)", se.Offset)
		}
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: expected %s, found JSON %s at byte %d", field, te.Type, te.Value, te.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated JSON"
	}
	return "malformed JSON: " + err.Error()
}

// quoteShort quotes outside text for an error message, cut short so that a
// hostile file cannot make a log line or an HTTP response enormous.
func quoteShort(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// firstNonSpace returns the first byte that is not JSON whitespace (or a
// UTF-8 byte-order mark), or 0 for empty input.
func firstNonSpace(b []byte) byte {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// parseTime accepts the timestamp shapes the feeds use: RFC 3339 (OSV,
// CSAF, KEV dateReleased) and NVD's zone-less "2024-03-29T17:15:21.150",
// which NVD documents as UTC. Times are returned in UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp: %s", quoteShort(s))
}

// parseDate accepts a calendar date "2006-01-02" (KEV dateAdded, dueDate).
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not a date (YYYY-MM-DD): %s", quoteShort(s))
	}
	return t, nil
}

// appendUnique appends s to list unless empty or already present; lists
// here are short, so a linear scan beats a map.
func appendUnique(list []string, s ...string) []string {
outer:
	for _, x := range s {
		if x == "" {
			continue
		}
		for _, y := range list {
			if x == y {
				continue outer
			}
		}
		list = append(list, x)
	}
	return list
}

// isCVE reports whether s is a CVE ID: CVE-YYYY-NNNN with 4 to 19 digits,
// the pattern the CVE program and the KEV schema use.
func isCVE(s string) bool {
	if len(s) < 13 || s[:4] != "CVE-" || s[8] != '-' {
		return false
	}
	for _, c := range s[4:8] {
		if c < '0' || c > '9' {
			return false
		}
	}
	n := s[9:]
	if len(n) < 4 || len(n) > 19 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isCWE reports whether s is a CWE ID such as CWE-79.
func isCWE(s string) bool {
	if len(s) < 5 || s[:4] != "CWE-" {
		return false
	}
	for _, c := range s[4:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
