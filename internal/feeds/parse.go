package feeds

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
)

// parsedFile is what one feed file holds, whichever format it is in.
type parsedFile struct {
	kind       Kind
	advisories []advisory.Advisory
	kev        *advisory.KEVCatalog
	epss       *advisory.EPSSSet
}

// parseFile is the one seam to the advisory parsers, which recognise each
// file by content.
func parseFile(name string, data []byte) (parsedFile, error) {
	p, err := advisory.ParseAny(name, data)
	if err != nil {
		return parsedFile{}, err
	}
	pf := parsedFile{advisories: p.Advisories, kev: p.KEV, epss: p.EPSS}
	switch p.Format {
	case advisory.FormatOSV, advisory.FormatOSVZip:
		pf.kind = OSV
	case advisory.FormatNVD:
		pf.kind = NVD
	case advisory.FormatKEV:
		pf.kind = KEV
	case advisory.FormatEPSS:
		pf.kind = EPSS
	case advisory.FormatCSAF:
		pf.kind = CSAF
	default:
		return parsedFile{}, errs.E(errs.Unsupported, "%s: unknown feed format %q", name, p.Format)
	}
	return pf, nil
}

// defaultExclude lists files that sit beside CSAF documents in a provider's
// directory (ROLIE feeds, provider metadata) and are not advisories.
var defaultExclude = map[Kind][]string{
	CSAF: {"provider-metadata.json", "service.json", "category-*.json", "*feed-tlp-*.json", "*-feed.json"},
}

// maxNesting bounds archives inside archives.
const maxNesting = 3

// content accumulates a feed version while it is parsed, in memory, before
// anything is written: a parse error anywhere leaves the database untouched.
type content struct {
	feed     Feed
	inflated int64 // bytes produced by decompression, capped by MaxBytes

	recs  []Record
	byKey map[string]int
	kev   []advisory.KEV
	kevAt map[string]int
	epss  []advisory.EPSS
	epsAt map[string]int
	meta  Meta
	// dups counts records that appeared more than once; the latest wins.
	dups int
}

func newContent(f Feed) *content {
	return &content{feed: f, byKey: map[string]int{}, kevAt: map[string]int{}, epsAt: map[string]int{}}
}

// want reports whether a file found in a directory or archive belongs to the
// feed: the kind's data files and archives, minus hidden and excluded names.
func (c *content) want(name string) bool {
	for _, part := range strings.Split(strings.Trim(path.Clean(strings.ReplaceAll(name, "\\", "/")), "/"), "/") {
		if strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return false
		}
	}
	base := path.Base(name)
	for _, pats := range [][]string{defaultExclude[c.feed.Kind], c.feed.Exclude} {
		for _, p := range pats {
			if ok, _ := path.Match(p, base); ok {
				return false
			}
		}
	}
	lower := strings.ToLower(base)
	for _, ext := range []string{".zip", ".tar", ".tgz", ".tar.gz"} {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	lower = strings.TrimSuffix(lower, ".gz")
	if c.feed.Kind == EPSS {
		return strings.HasSuffix(lower, ".csv")
	}
	return strings.HasSuffix(lower, ".json")
}

// add parses one fetched unit: a downloaded body, a local file, an NVD page.
// Archives are expanded and each member parsed in turn. top is true for a
// unit the user named directly, which is parsed whatever its name.
func (c *content) add(name string, data []byte, top bool) error {
	return c.expand(name, data, top, 0)
}

func (c *content) expand(name string, data []byte, top bool, depth int) error {
	if depth > maxNesting {
		return errs.E(errs.Invalid, "%s: archives nested more than %d deep", name, maxNesting)
	}
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return c.expandZip(name, data, depth)
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		inner, err := c.inflate(name, func() (io.Reader, error) { return gzip.NewReader(bytes.NewReader(data)) })
		if err != nil {
			return err
		}
		innerName := strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".tgz")
		if strings.HasSuffix(name, ".tgz") {
			innerName += ".tar"
		}
		return c.expand(innerName, inner, top, depth+1)
	case len(data) > 262 && string(data[257:262]) == "ustar":
		return c.expandTar(name, data, depth)
	}
	if !top && !c.want(name) {
		return nil
	}
	return c.parse(name, data, top)
}

func (c *content) expandZip(name string, data []byte, depth int) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return errs.E(errs.Invalid, "%s: not a readable zip archive (truncated download?): %v", name, err)
	}
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !c.want(zf.Name) {
			continue
		}
		inner, err := c.inflate(name+": "+zf.Name, func() (io.Reader, error) { return zf.Open() })
		if err != nil {
			return err
		}
		if err := c.expand(name+": "+zf.Name, inner, false, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (c *content) expandTar(name string, data []byte, depth int) error {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errs.E(errs.Invalid, "%s: not a readable tar archive (truncated download?): %v", name, err)
		}
		if h.Typeflag != tar.TypeReg || !c.want(h.Name) {
			continue
		}
		member := name + ": " + h.Name
		inner, err := c.inflate(member, func() (io.Reader, error) { return tr, nil })
		if err != nil {
			return err
		}
		if err := c.expand(member, inner, false, depth+1); err != nil {
			return err
		}
	}
}

// inflate reads a decompressing reader, counting against the feed's cap so
// a small hostile archive cannot expand without bound.
func (c *content) inflate(name string, open func() (io.Reader, error)) ([]byte, error) {
	r, err := open()
	if err != nil {
		return nil, errs.E(errs.Invalid, "%s: cannot decompress (truncated or corrupt?): %v", name, err)
	}
	if rc, ok := r.(io.Closer); ok {
		defer rc.Close()
	}
	left := c.feed.MaxBytes - c.inflated
	b, err := io.ReadAll(io.LimitReader(r, left+1))
	if err != nil {
		return nil, errs.E(errs.Invalid, "%s: cannot decompress (truncated or corrupt?): %v", name, err)
	}
	if int64(len(b)) > left {
		return nil, errs.E(errs.TooLarge, "%s: decompresses to more than the feed's max_size of %d bytes", name, c.feed.MaxBytes)
	}
	c.inflated += int64(len(b))
	return b, nil
}

// parse hands one file to the advisory parsers and folds the result in.
func (c *content) parse(name string, data []byte, top bool) error {
	pf, err := parseFile(name, data)
	switch {
	case err == nil:
	case errs.KindOf(err) == errs.Unsupported && !top:
		// A file in a directory or archive that is no feed format at all
		// (a README.json, a schema, a provider's index) is skipped. A broken
		// feed file is a different error (Invalid) and stops the sync.
		c.meta.Skipped++
		return nil
	case errs.KindOf(err) != errs.Internal:
		return err // kinded, and already names the file
	default:
		return errs.Wrap(errs.Invalid, err, "%s: %v", name, err)
	}
	if pf.kind != c.feed.Kind {
		return errs.E(errs.Invalid, "%s holds %s data, but feed %q is of kind %s", name, pf.kind, c.feed.Name, c.feed.Kind)
	}
	c.meta.Files++
	for _, a := range pf.advisories {
		r, err := makeRecord(a)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "%s: %v", name, err)
		}
		c.dups += upsert(c.byKey, &c.recs, r.Key, r)
	}
	if pf.kev != nil {
		if c.meta.KEVReleased == nil || pf.kev.Released.After(*c.meta.KEVReleased) {
			c.meta.KEVCatalogVersion, c.meta.KEVReleased = pf.kev.Version, timePtr(pf.kev.Released)
		}
		for _, k := range pf.kev.Entries {
			if k.CVE == "" {
				return errs.E(errs.Invalid, "%s: a KEV entry has no CVE ID", name)
			}
			c.dups += upsert(c.kevAt, &c.kev, k.CVE, k)
		}
	}
	if pf.epss != nil {
		if c.meta.EPSSScoreDate == nil || pf.epss.ScoreDate.After(*c.meta.EPSSScoreDate) {
			c.meta.EPSSModelVersion, c.meta.EPSSScoreDate = pf.epss.ModelVersion, timePtr(pf.epss.ScoreDate)
		}
		for _, e := range pf.epss.Scores {
			if e.CVE == "" {
				return errs.E(errs.Invalid, "%s: an EPSS row has no CVE ID", name)
			}
			c.dups += upsert(c.epsAt, &c.epss, e.CVE, e)
		}
	}
	return nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// total is the number of records of every type.
func (c *content) total() int { return len(c.recs) + len(c.kev) + len(c.epss) }

// makeRecord encodes a parsed advisory with its lookup keys.
func makeRecord(a advisory.Advisory) (Record, error) {
	if strings.TrimSpace(a.ID) == "" {
		return Record{}, errors.New("an advisory has no ID")
	}
	key := a.ID
	if a.Document != nil && a.Document.Tracking != "" {
		key = a.Document.Tracking + "/" + a.ID
	}
	data, err := json.Marshal(a)
	if err != nil {
		return Record{}, fmt.Errorf("advisory %s: encode: %w", a.ID, err)
	}
	r := Record{Key: key, ID: a.ID, Data: data}
	seen := map[string]bool{}
	// Upstream IDs are indexed too: a Debian DLA names the CVEs it fixes
	// there rather than as aliases, and a search by CVE should find it.
	ids := append(append([]string{a.ID}, a.Aliases...), a.Upstream...)
	for _, id := range ids {
		u := strings.ToUpper(strings.TrimSpace(id))
		if u != "" && !seen[u] {
			seen[u] = true
			r.Idents = append(r.Idents, u)
		}
	}
	pkgs := map[Package]bool{}
	for _, af := range a.Affected {
		p := Package{Ecosystem: af.Ecosystem, Name: af.Package}
		if p.Name == "" && af.CPE != "" {
			p.Name = cpeProduct(af.CPE)
		}
		if p.Name == "" {
			p.Name = af.ProductName
		}
		if p.Name != "" && !pkgs[p] {
			pkgs[p] = true
			r.Packages = append(r.Packages, p)
		}
	}
	return r, nil
}

// cpeProduct returns the product part of a CPE 2.3 name, which is how
// people search for firmware and appliances ("cpe:2.3:o:vendor:product:…").
func cpeProduct(cpe string) string {
	parts := strings.Split(cpe, ":")
	if len(parts) > 4 && parts[0] == "cpe" && parts[1] == "2.3" && parts[4] != "*" && parts[4] != "-" {
		return parts[4]
	}
	return ""
}

// upsert appends v under key, or replaces the earlier value with that key
// (the later file wins), and returns 1 for a duplicate, else 0.
func upsert[K comparable, V any](at map[K]int, list *[]V, key K, v V) int {
	if i, dup := at[key]; dup {
		(*list)[i] = v
		return 1
	}
	at[key] = len(*list)
	*list = append(*list, v)
	return 0
}
