package advisory

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/patchward/patchward/internal/errs"
)

// osvUnmarshal decodes OSV records with the schema's own protobuf bindings.
// DiscardUnknown keeps Patchward reading records written against newer
// schema versions (new fields and enum values appear regularly) instead of
// rejecting a whole ecosystem's feed.
var osvUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// ParseOSV parses one OSV record or a JSON array of records, as served by
// osv.dev, the ecosystem advisory repositories and `osv-scanner`. Any
// malformed record fails the whole input with an errs.Invalid error that
// names it; nothing is returned alongside an error.
func ParseOSV(r io.Reader) ([]Advisory, error) {
	b, err := readLimited(r, MaxDocumentSize, "OSV input")
	if err != nil {
		return nil, err
	}
	return parseOSVBytes(b, "")
}

// parseOSVBytes parses a record or an array; where names the containing
// file or archive entry in error messages.
func parseOSVBytes(b []byte, where string) ([]Advisory, error) {
	prefix := ""
	if where != "" {
		prefix = where + ": "
	}
	switch firstNonSpace(b) {
	case '{':
		a, err := parseOSVRecord(b)
		if err != nil {
			return nil, invalid("%s%s", prefix, err)
		}
		return []Advisory{a}, nil
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			return nil, invalid("%sOSV array: %s", prefix, jsonProblem(err))
		}
		out := make([]Advisory, 0, len(raws))
		for i, raw := range raws {
			a, err := parseOSVRecord(raw)
			if err != nil {
				return nil, invalid("%sOSV array element %d: %s", prefix, i, err)
			}
			out = append(out, a)
		}
		return out, nil
	case 0:
		return nil, invalid("%sOSV input is empty", prefix)
	}
	return nil, invalid("%sOSV input is not a JSON object or array", prefix)
}

// parseOSVRecord decodes and converts one record. Its errors are plain
// descriptions; callers add position and the Invalid kind.
func parseOSVRecord(raw []byte) (Advisory, error) {
	var v osvschema.Vulnerability
	if err := osvUnmarshal.Unmarshal(raw, &v); err != nil {
		// Name the record if its id is readable despite the damage.
		var idOnly struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &idOnly) == nil && idOnly.ID != "" {
			return Advisory{}, fmt.Errorf("OSV record %s: %v", quoteShort(idOnly.ID), err)
		}
		return Advisory{}, fmt.Errorf("OSV record: %v", err)
	}
	a, err := convertOSV(&v)
	if err != nil {
		if v.GetId() != "" {
			return Advisory{}, fmt.Errorf("OSV record %s: %v", quoteShort(v.GetId()), err)
		}
		return Advisory{}, fmt.Errorf("OSV record: %v", err)
	}
	return a, nil
}

func convertOSV(v *osvschema.Vulnerability) (Advisory, error) {
	if strings.TrimSpace(v.GetId()) == "" {
		return Advisory{}, errors.New("missing id")
	}
	a := Advisory{
		ID:        v.GetId(),
		Source:    SourceOSV,
		Aliases:   appendUnique(nil, v.GetAliases()...),
		Related:   appendUnique(nil, v.GetRelated()...),
		Upstream:  appendUnique(nil, v.GetUpstream()...),
		Summary:   v.GetSummary(),
		Details:   v.GetDetails(),
		Published: osvTime(v.GetPublished()),
		Modified:  osvTime(v.GetModified()),
	}
	if w := v.GetWithdrawn(); w != nil {
		t := osvTime(w)
		a.Withdrawn = &t
	}
	if err := addOSVSeverity(&a, v.GetSeverity()); err != nil {
		return Advisory{}, err
	}
	for _, ref := range v.GetReferences() {
		a.References = appendUnique(a.References, ref.GetUrl())
	}
	a.CWEs = osvCWEs(v.GetDatabaseSpecific())
	for i, af := range v.GetAffected() {
		out, err := convertOSVAffected(af)
		if err != nil {
			return Advisory{}, fmt.Errorf("affected[%d]: %v", i, err)
		}
		// Severity may also sit on an affected package (schema 1.4+);
		// the model keeps one list per advisory.
		if err := addOSVSeverity(&a, af.GetSeverity()); err != nil {
			return Advisory{}, fmt.Errorf("affected[%d]: %v", i, err)
		}
		a.Affected = append(a.Affected, out)
	}
	return a, nil
}

func osvTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

// addOSVSeverity scores each CVSS vector. Non-CVSS severities (Ubuntu's
// "medium" priority) are not CVSS assessments and are left out, because
// the model's Severity is a CVSS score that risk scoring compares.
func addOSVSeverity(a *Advisory, sevs []*osvschema.Severity) error {
	for _, s := range sevs {
		switch s.GetType() {
		case osvschema.Severity_CVSS_V2, osvschema.Severity_CVSS_V3, osvschema.Severity_CVSS_V4:
		default:
			continue
		}
		sev, err := severityOf(s.GetScore(), "")
		if err != nil {
			return fmt.Errorf("severity: %s", errs.Public(err))
		}
		if want := s.GetType().String(); want != sev.Type {
			return fmt.Errorf("severity: type %s but vector %s is %s", want, quoteShort(s.GetScore()), sev.Type)
		}
		if !hasSeverity(a.Severity, sev) {
			a.Severity = append(a.Severity, sev)
		}
	}
	return nil
}

func hasSeverity(list []Severity, s Severity) bool {
	for _, x := range list {
		if x.Type == s.Type && x.Vector == s.Vector && x.Source == s.Source {
			return true
		}
	}
	return false
}

// osvCWEs reads database_specific.cwe_ids, where GitHub (GHSA) and others
// put CWE identifiers; anything that is not a CWE ID is ignored because
// database_specific is free-form by design.
func osvCWEs(ds *structpb.Struct) []string {
	if ds == nil {
		return nil
	}
	var out []string
	for _, key := range []string{"cwe_ids", "cwes"} {
		lv := ds.GetFields()[key].GetListValue()
		for _, item := range lv.GetValues() {
			if s := item.GetStringValue(); isCWE(s) {
				out = appendUnique(out, s)
			}
		}
	}
	return out
}

func convertOSVAffected(af *osvschema.Affected) (Affected, error) {
	out := Affected{Vulnerable: true}
	if p := af.GetPackage(); p != nil {
		out.Ecosystem = p.GetEcosystem()
		out.Package = p.GetName()
		out.PURL = p.GetPurl()
		if out.Package == "" && out.PURL == "" {
			return Affected{}, errors.New("package has neither name nor purl")
		}
		if out.Ecosystem == "" && out.PURL == "" {
			return Affected{}, fmt.Errorf("package %s has no ecosystem", quoteShort(out.Package))
		}
	}
	for i, rg := range af.GetRanges() {
		rs, err := flattenOSVRange(rg)
		if err != nil {
			return Affected{}, fmt.Errorf("ranges[%d]: %v", i, err)
		}
		out.Ranges = append(out.Ranges, rs...)
	}
	out.Versions = append(out.Versions, af.GetVersions()...)
	return out, nil
}

// flattenOSVRange turns an OSV event list into intervals. OSV events are a
// timeline in the ecosystem's version order: each "introduced" opens an
// interval that the next "fixed" or "last_affected" closes. Records list
// events in that order; ordering versions is the matcher's job, so the
// parser keeps the given order, and an introduced that arrives while an
// interval is open only repeats the opening (the earlier one wins) while a
// close with nothing open repeats a close.
// "limit" bounds the whole range without being a fix (GIT ranges use it
// to stop a history walk), so it is copied onto every interval.
func flattenOSVRange(rg *osvschema.Range) ([]Range, error) {
	typ := rg.GetType()
	if typ == osvschema.Range_UNSPECIFIED {
		return nil, errors.New("missing or unknown range type")
	}
	var (
		out      []Range
		open     *Range
		limit    string
		sawIntro bool
	)
	for i, ev := range rg.GetEvents() {
		set := 0
		for _, s := range []string{ev.GetIntroduced(), ev.GetFixed(), ev.GetLastAffected(), ev.GetLimit()} {
			if s != "" {
				set++
			}
		}
		if set != 1 {
			return nil, fmt.Errorf("events[%d]: an event needs exactly one of introduced, fixed, last_affected or limit", i)
		}
		switch {
		case ev.GetIntroduced() != "":
			sawIntro = true
			if open == nil {
				open = &Range{Type: typ.String(), Introduced: ev.GetIntroduced()}
			}
		case ev.GetFixed() != "", ev.GetLastAffected() != "":
			if !sawIntro {
				return nil, fmt.Errorf("events[%d]: %s before any introduced event", i, eventKind(ev))
			}
			if open == nil {
				continue
			}
			open.Fixed, open.LastAffected = ev.GetFixed(), ev.GetLastAffected()
			out = append(out, *open)
			open = nil
		default:
			if limit == "" {
				limit = ev.GetLimit()
			}
		}
	}
	if !sawIntro {
		return nil, errors.New("no introduced event")
	}
	if open != nil {
		out = append(out, *open)
	}
	if limit != "" {
		for i := range out {
			out[i].Limit = limit
		}
	}
	return out, nil
}

func eventKind(ev *osvschema.Event) string {
	if ev.GetFixed() != "" {
		return "fixed"
	}
	return "last_affected"
}

// ParseOSVZip parses an OSV archive as osv.dev publishes it per ecosystem
// (gs://osv-vulnerabilities/<ecosystem>/all.zip): one JSON record per
// entry. The archive is read through ra without extracting anything.
// Because a zip's headers are outside data too, the declared sizes are not
// trusted: every entry is read through a limit, and the entry count, each
// entry's and the archive's total decompressed size are capped
// (MaxZipEntries, MaxZipEntrySize, MaxZipTotalSize) so a zip bomb ends in
// an errs.TooLarge error rather than an exhausted server.
func ParseOSVZip(ra io.ReaderAt, size int64) ([]Advisory, error) {
	return parseOSVZip(ra, size, zipLimits{
		size: MaxZipSize, entries: MaxZipEntries, entry: MaxZipEntrySize, total: MaxZipTotalSize,
	})
}

// zipLimits are the caps ParseOSVZip enforces; tests shrink them.
type zipLimits struct {
	size, entries, entry, total int64
}

func parseOSVZip(ra io.ReaderAt, size int64, lim zipLimits) ([]Advisory, error) {
	if size > lim.size {
		return nil, errs.E(errs.TooLarge, "OSV archive is larger than the %s limit", byteSize(lim.size))
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// ErrInsecurePath only matters when extracting; names are
		// labels here. Anything else means the archive is damaged.
		return nil, errs.E(errs.Invalid, "OSV archive: not a readable zip: %v", err)
	}
	if int64(len(zr.File)) > lim.entries {
		return nil, errs.E(errs.TooLarge, "OSV archive has %d entries; the limit is %d", len(zr.File), lim.entries)
	}
	var (
		out   []Advisory
		total int64
		buf   bytes.Buffer
	)
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || !strings.EqualFold(pathExt(f.Name), ".json") {
			continue
		}
		name := quoteShort(f.Name)
		if f.UncompressedSize64 > uint64(lim.entry) {
			return nil, errs.E(errs.TooLarge, "OSV archive entry %s declares %d bytes; the limit is %s", name, f.UncompressedSize64, byteSize(lim.entry))
		}
		rc, err := f.Open()
		if err != nil {
			return nil, errs.E(errs.Invalid, "OSV archive entry %s: %v", name, err)
		}
		buf.Reset()
		n, err := io.Copy(&buf, io.LimitReader(rc, lim.entry+1))
		rc.Close()
		if err != nil {
			return nil, errs.E(errs.Invalid, "OSV archive entry %s: %v", name, err)
		}
		if n > lim.entry {
			return nil, errs.E(errs.TooLarge, "OSV archive entry %s decompresses to more than %s", name, byteSize(lim.entry))
		}
		if total += n; total > lim.total {
			return nil, errs.E(errs.TooLarge, "OSV archive decompresses to more than %s", byteSize(lim.total))
		}
		advs, err := parseOSVBytes(buf.Bytes(), "OSV archive entry "+name)
		if err != nil {
			return nil, err
		}
		out = append(out, advs...)
	}
	if out == nil {
		return nil, errs.E(errs.Invalid, "OSV archive holds no JSON records")
	}
	return out, nil
}

func pathExt(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 && !strings.ContainsRune(name[i:], '/') {
		return name[i:]
	}
	return ""
}
