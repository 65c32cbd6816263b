package match

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/advisory"
)

// Index is the matching view of one advisory-set version: every affected
// entry keyed by (ecosystem family, package name) or CPE vendor:product,
// plus KEV and EPSS by CVE. It is built once per feed version, read-only
// afterwards and safe for concurrent use; verdicts per distinct tuple are
// cached on it, so the cache lives exactly as long as the feed version
// whose verdicts it holds.
type Index struct {
	advs    []advInfo
	entries map[Key][]entry
	kev     map[string]advisory.KEV
	epss    map[string]advisory.EPSS
	// sev is the headline CVSS assessment per vulnerability ID, gathered
	// from every advisory that scores it: a Debian record often carries no
	// score while NVD's record of the same CVE does.
	sev map[string]advisory.Severity
	// fp fingerprints each key's entries and enrichment for Diff.
	fp map[Key]uint64

	mu    sync.RWMutex
	cache map[tupleKey][]Match

	stats IndexStats
}

// IndexStats counts what went into an index, for feed status and for
// explaining why a record matches nothing.
type IndexStats struct {
	Advisories int
	Withdrawn  int
	Entries    int
	Keys       int
	// Unkeyed counts affected entries that name neither a package nor a
	// usable CPE or PURL (CSAF products identified by name only, CPE
	// patterns with a wildcard vendor or product): they cannot match.
	Unkeyed int
	// Uncompiled counts entries whose ecosystem has no known version
	// ordering or whose bounds do not parse.
	Uncompiled int
}

// advInfo is the part of an advisory that matching reports.
type advInfo struct {
	id     string
	source string
	// vulns are the vulnerability identities this advisory describes: its
	// CVEs, or one canonical non-CVE ID.
	vulns []string
	// others are its non-CVE IDs (its own ID and non-CVE aliases).
	others []string
	doc    string
}

type entryKind uint8

const (
	kindOSV      entryKind = iota // OSV package entry
	kindNVD                       // NVD CPE match criteria
	kindCSAFCPE                   // CSAF product identified by CPE
	kindCSAFURL                   // CSAF product identified by PURL
	kindCSAFName                  // CSAF product identified by vendor and product name only
)

type entry struct {
	kind entryKind
	adv  int32
	aff  *advisory.Affected
	// set is the entry's bounds compiled once (CompileAffected); nil for
	// CSAF products that name no versions, which cover every version.
	set *AffectedSet
	// release is the OSV ecosystem's release ("12"); "" matches any.
	release string
	cpe     CPE
	// purlVersion is the CSAF product PURL's version; "" means every version.
	purlVersion string
}

// tupleKey is one distinct thing to evaluate: a package as matched
// (ecosystem, name, version and PURL), or a CPE (ecosystem "CPE", name the
// CPE string).
type tupleKey struct {
	eco, name, version, purl string
}

// NewIndex builds an index from a feed version's advisories and its KEV and
// EPSS maps (keyed by CVE ID; either may be nil). Withdrawn advisories are
// left out.
func NewIndex(advs []advisory.Advisory, kev map[string]advisory.KEV, epss map[string]advisory.EPSS) *Index {
	b := newIndexBuilder(kev, epss)
	for i := range advs {
		b.add(&advs[i])
	}
	return b.finish()
}

// BuildIndex streams the current advisories from src into a new index.
func BuildIndex(ctx context.Context, src AdvisorySource) (*Index, error) {
	kev, err := src.KEV(ctx)
	if err != nil {
		return nil, fmt.Errorf("build match index: KEV: %w", err)
	}
	epss, err := src.EPSS(ctx)
	if err != nil {
		return nil, fmt.Errorf("build match index: EPSS: %w", err)
	}
	b := newIndexBuilder(kev, epss)
	err = src.CurrentAdvisories(ctx, func(a advisory.Advisory) error {
		b.add(&a)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("build match index: %w", err)
	}
	return b.finish(), nil
}

type indexBuilder struct{ ix *Index }

func newIndexBuilder(kev map[string]advisory.KEV, epss map[string]advisory.EPSS) *indexBuilder {
	return &indexBuilder{ix: &Index{entries: map[Key][]entry{}, kev: kev, epss: epss,
		sev: map[string]advisory.Severity{}, cache: map[tupleKey][]Match{}}}
}

func (b *indexBuilder) add(a *advisory.Advisory) {
	ix := b.ix
	ix.stats.Advisories++
	if a.Withdrawn != nil {
		ix.stats.Withdrawn++
		return
	}
	info := newAdvInfo(a)
	// Scores are filed under the vulnerabilities the advisory describes,
	// never under its other IDs: a CSAF document's tracking ID is an alias
	// of every vulnerability in it, and filing each one's score under it
	// would hand the document's worst score to all of them.
	if h, ok := advisory.Headline(a.Severity); ok {
		for _, id := range info.vulns {
			if cur, ok := ix.sev[id]; !ok || headlineOf(cur, h) == h {
				ix.sev[id] = h
			}
		}
	}
	var advIdx int32 = -1
	for i := range a.Affected {
		aff := &a.Affected[i]
		key, e, ok := keyEntry(aff)
		if !ok {
			ix.stats.Unkeyed++
			continue
		}
		if err := e.compile(aff); err != nil {
			// An entry whose bounds cannot be ordered cannot be evaluated;
			// counting it keeps the gap visible in feed status.
			ix.stats.Uncompiled++
			continue
		}
		if advIdx < 0 {
			ix.advs = append(ix.advs, info)
			advIdx = int32(len(ix.advs) - 1)
		}
		e.adv, e.aff = advIdx, aff
		ix.entries[key] = append(ix.entries[key], e)
		ix.stats.Entries++
	}
}

// keyEntry decides under which key an affected entry is filed and how it
// will be evaluated.
func keyEntry(aff *advisory.Affected) (Key, entry, bool) {
	switch {
	case aff.Ecosystem == advisory.EcosystemCPE:
		if !aff.Vulnerable || aff.CPE == "" {
			return Key{}, entry{}, false
		}
		c, err := ParseCPE(aff.CPE)
		if err != nil || !concrete(c.Vendor) || !concrete(c.Product) {
			return Key{}, entry{}, false
		}
		return cpeKey(c), entry{kind: kindNVD, cpe: c}, true
	case aff.Ecosystem == advisory.EcosystemCSAF || aff.Status != "":
		if aff.CPE != "" {
			if c, err := ParseCPE(aff.CPE); err == nil && concrete(c.Vendor) && concrete(c.Product) {
				return cpeKey(c), entry{kind: kindCSAFCPE, cpe: c}, true
			}
		}
		if aff.PURL != "" {
			if k, ver, ok := purlKey(aff.PURL); ok {
				return k, entry{kind: kindCSAFURL, purlVersion: ver}, true
			}
		}
		if aff.Vendor != "" && aff.Package != "" {
			return productKey(aff.Vendor, aff.Package), entry{kind: kindCSAFName}, true
		}
		return Key{}, entry{}, false
	case aff.Package != "" && aff.Ecosystem != "":
		fam, rel := splitEcosystem(aff.Ecosystem)
		return Key{Family: fam, Name: aff.Package}, entry{kind: kindOSV, release: rel}, true
	}
	return Key{}, entry{}, false
}

// compile parses e's bounds once. OSV entries order by their ecosystem;
// NVD criteria and CSAF products by CPE version rules, the closest thing
// firmware and appliance versions have to an ordering.
func (e *entry) compile(aff *advisory.Affected) error {
	var err error
	switch e.kind {
	case kindOSV, kindNVD:
		e.set, err = CompileAffected(*aff)
	default:
		if len(aff.Ranges) == 0 && len(aff.Versions) == 0 {
			return nil
		}
		c := *aff
		c.Ecosystem, c.CPE = advisory.EcosystemCPE, ""
		c.Ranges = slices.Clone(aff.Ranges)
		for i := range c.Ranges {
			c.Ranges[i].Type = "CPE"
		}
		e.set, err = CompileAffected(c)
	}
	return err
}

func concrete(s string) bool { return s != "" && s != "*" && s != "-" }

func cpeKey(c CPE) Key {
	return Key{Family: familyCPE, Name: strings.ToLower(c.Vendor + ":" + c.Product)}
}

// productKey files a CSAF product that only has a vendor and product name
// (every ICSMA advisory) under the normalised names, which an asset's make
// and model are looked up with.
func productKey(vendor, product string) Key {
	return Key{Family: familyProduct, Name: normName(vendor) + ":" + normName(product)}
}

// normName lowercases s and folds runs of anything but letters and digits
// into one space, so "Becton, Dickinson and Company (BD)" and "becton
// dickinson and company bd" agree.
func normName(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(r)
			space = false
		} else {
			space = true
		}
	}
	return b.String()
}

// purlFamilies maps PURL types to OSV ecosystem families, so a CSAF product
// given as pkg:npm/x is found under the same key as an npm package.
var purlFamilies = map[string]string{
	"npm": "npm", "pypi": "pypi", "golang": "go", "maven": "maven", "nuget": "nuget",
	"cargo": "crates.io", "gem": "rubygems", "composer": "packagist", "hex": "hex", "pub": "pub",
}

// purlKey returns the key a PURL is filed under and its version. Debian-like
// and Alpine PURLs carry the distribution as namespace; unknown types
// (pkg:generic/vendor/product) become their own family "type/namespace",
// written without a colon so it reads back as one family.
func purlKey(s string) (Key, string, bool) {
	p, err := packageurl.FromString(s)
	if err != nil || p.Name == "" {
		return Key{}, "", false
	}
	typ := strings.ToLower(p.Type)
	ns := strings.ToLower(p.Namespace)
	switch {
	case typ == "deb" || typ == "apk" || typ == "rpm":
		if ns == "" {
			return Key{}, "", false
		}
		return Key{Family: ns, Name: p.Name}, p.Version, true
	case purlFamilies[typ] != "":
		name := p.Name
		switch {
		case typ == "maven" && ns != "":
			name = p.Namespace + ":" + p.Name
		case ns != "":
			name = p.Namespace + "/" + p.Name
		}
		return Key{Family: purlFamilies[typ], Name: name}, p.Version, true
	default:
		fam := typ
		if ns != "" {
			fam += "/" + ns
		}
		return Key{Family: strings.ReplaceAll(fam, ":", "_"), Name: strings.ToLower(p.Name)}, p.Version, true
	}
}

// embeddedCVE finds the CVE in distribution IDs such as DEBIAN-CVE-2024-1234
// or UBUNTU-CVE-2023-4004, whose records do not always alias it.
var embeddedCVE = regexp.MustCompile(`CVE-\d{4}-\d{4,}$`)

func newAdvInfo(a *advisory.Advisory) advInfo {
	info := advInfo{id: a.ID, source: a.Source}
	if a.Document != nil {
		info.doc = strings.TrimSpace(a.Document.Tracking + " " + a.Document.Publisher)
	}
	var cves, others []string
	// A DLA names the CVEs it fixes as upstream, not aliases; they are
	// still the vulnerabilities it describes.
	for _, id := range a.Upstream {
		if strings.HasPrefix(id, "CVE-") {
			cves = append(cves, id)
		} else if c := embeddedCVE.FindString(id); c != "" {
			cves = append(cves, c)
		}
	}
	for _, id := range append([]string{a.ID}, a.Aliases...) {
		switch {
		case strings.HasPrefix(id, "CVE-"):
			cves = append(cves, id)
		default:
			others = append(others, id)
			if c := embeddedCVE.FindString(id); c != "" && !strings.HasPrefix(id, "CVE-") {
				cves = append(cves, c)
			}
		}
	}
	slices.Sort(cves)
	cves = slices.Compact(cves)
	slices.Sort(others)
	others = slices.Compact(others)
	switch {
	case len(cves) > 0:
		info.vulns = cves
	case len(others) == 0:
		info.vulns = []string{a.ID}
	default:
		// Records without a CVE that alias each other (GHSA and PYSEC) pick
		// the same canonical ID: the smallest of the set.
		info.vulns = []string{others[0]}
	}
	info.others = others
	return info
}

func (b *indexBuilder) finish() *Index {
	ix := b.ix
	ix.stats.Keys = len(ix.entries)
	ix.fp = make(map[Key]uint64, len(ix.entries))
	for k, es := range ix.entries {
		ix.fp[k] = ix.fingerprint(es)
	}
	return ix
}

// fingerprint hashes what a key's verdicts depend on: each entry's
// advisory, affected data, and the KEV flag and EPSS score (to two decimals,
// so daily jitter of the EPSS model does not re-match the whole estate) of
// its vulnerabilities.
func (ix *Index) fingerprint(es []entry) uint64 {
	h := fnv.New64a()
	w := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
	}
	// Entries are hashed in a canonical order so that the same feed content
	// delivered in another order fingerprints the same.
	sums := make([]uint64, 0, len(es))
	for _, e := range es {
		h.Reset()
		info := &ix.advs[e.adv]
		w(info.id, info.source, info.doc)
		w(info.others...)
		for _, v := range info.vulns {
			kev := ""
			if _, ok := ix.kev[v]; ok {
				kev = "kev"
			}
			sev := ix.sev[v]
			w(v, kev, strconv.FormatFloat(ix.epss[v].Score, 'f', 2, 64), sev.Type, sev.Vector, strconv.FormatFloat(sev.Score, 'f', 1, 64))
		}
		a := e.aff
		w(a.Ecosystem, a.Package, a.Vendor, a.PURL, a.CPE, strconv.FormatBool(a.Vulnerable), string(a.Status), a.Justification, a.Impact)
		w(a.Versions...)
		for _, r := range a.Remediations {
			w(r.Category, r.Details, r.URL)
		}
		for _, r := range a.Ranges {
			w(r.Type, r.Introduced, strconv.FormatBool(r.IntroducedExclusive), r.Fixed, r.LastAffected, r.Limit)
		}
		sums = append(sums, h.Sum64())
	}
	slices.Sort(sums)
	h.Reset()
	for _, s := range sums {
		var b [8]byte
		for i := range b {
			b[i] = byte(s >> (8 * i))
		}
		h.Write(b[:])
	}
	return h.Sum64()
}

// Stats reports what went into the index.
func (ix *Index) Stats() IndexStats { return ix.stats }

// ChangedKeys is the set of keys whose verdicts may differ between two
// index versions.
type ChangedKeys map[Key]struct{}

// Has reports whether k changed.
func (c ChangedKeys) Has(k Key) bool { _, ok := c[k]; return ok }

// Sorted returns the keys in a stable order.
func (c ChangedKeys) Sorted() []Key {
	out := make([]Key, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := strings.Compare(a.Family, b.Family); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Diff returns the keys whose advisories, KEV flags or EPSS scores differ
// between old and new: only tuples under these keys need re-matching when
// new replaces old. A nil old means everything in new changed.
func Diff(old, new *Index) ChangedKeys {
	out := ChangedKeys{}
	if new != nil {
		for k, f := range new.fp {
			if old == nil || old.fp[k] != f {
				out[k] = struct{}{}
			}
		}
	}
	if old != nil {
		for k := range old.fp {
			if new == nil {
				out[k] = struct{}{}
				continue
			}
			if _, ok := new.fp[k]; !ok {
				out[k] = struct{}{}
			}
		}
	}
	return out
}

// tupleKeys returns the keys a tuple is looked up under: its package key
// and, when it has a PURL filed elsewhere, the PURL's key.
func tupleKeys(t tupleKey) (primary, alt Key, hasAlt bool) {
	switch t.eco {
	case advisory.EcosystemCPE:
		c, err := ParseCPE(t.name)
		if err != nil {
			return Key{Family: familyCPE, Name: t.name}, Key{}, false
		}
		return cpeKey(c), Key{}, false
	case advisory.EcosystemCSAF:
		vendor, product, _ := strings.Cut(t.name, "\x00")
		return productKey(vendor, product), Key{}, false
	}
	if t.eco == "" && t.purl != "" {
		if k, _, ok := purlKey(t.purl); ok {
			return k, Key{}, false
		}
	}
	primary = KeyOf(t.eco, t.name)
	if t.purl != "" {
		if k, _, ok := purlKey(t.purl); ok && k != primary {
			return primary, k, true
		}
	}
	return primary, Key{}, false
}

// verdicts returns the deduplicated matches (without asset) for one tuple,
// evaluating it at most once per index.
func (ix *Index) verdicts(t tupleKey) []Match {
	ix.mu.RLock()
	ms, ok := ix.cache[t]
	ix.mu.RUnlock()
	if ok {
		return ms
	}
	ms = ix.evaluate(t)
	ix.mu.Lock()
	ix.cache[t] = ms
	ix.mu.Unlock()
	return ms
}

// hit is one entry that said something about a tuple.
type hit struct {
	e     *entry
	fixed string
	// fixNote is a CSAF vendor_fix remediation for the product, kept when
	// it names no fixed version.
	fixNote string
	vex     *VEX
}

// parsedVersion parses a tuple's version once per ecosystem it is compared
// in: every Debian:12 entry for a package shares one parse.
type parsedVersion struct {
	raw string
	by  map[string]Version
}

func (p *parsedVersion) in(eco string) (Version, bool) {
	if v, ok := p.by[eco]; ok {
		return v, v != nil
	}
	if p.by == nil {
		p.by = make(map[string]Version, 1)
	}
	v, err := ParseVersion(eco, p.raw)
	if err != nil {
		v = nil
	}
	p.by[eco] = v
	return v, v != nil
}

// affects evaluates e's compiled bounds against the tuple's version; an
// entry with no bounds covers every version.
func (e *entry) affects(pv *parsedVersion) (bool, string) {
	if e.set == nil {
		return true, ""
	}
	v, ok := pv.in(e.set.Ecosystem())
	if !ok {
		return false, ""
	}
	return e.set.Affects(v)
}

func (ix *Index) evaluate(t tupleKey) []Match {
	primary, alt, hasAlt := tupleKeys(t)
	var hits []hit
	pv := &parsedVersion{raw: t.version}
	switch t.eco {
	case advisory.EcosystemCPE:
		hits = ix.evalCPE(t, primary)
	case advisory.EcosystemCSAF:
		hits = ix.evalProduct(pv, primary)
	default:
		hits = ix.evalPackage(t, pv, primary, hits)
		if hasAlt {
			hits = ix.evalPackage(t, pv, alt, hits)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	return ix.merge(t, primary, hits)
}

func (ix *Index) evalPackage(t tupleKey, pv *parsedVersion, k Key, hits []hit) []hit {
	_, rel := splitEcosystem(t.eco)
	es := ix.entries[k]
	for i := range es {
		e := &es[i]
		switch e.kind {
		case kindOSV:
			// An advisory for one release says nothing about another: the
			// same source package has different fixed versions in Debian 11
			// and 12.
			if e.release != "" && e.release != rel {
				continue
			}
			if affected, fixed := e.affects(pv); affected {
				hits = append(hits, hit{e: e, fixed: fixed})
			}
		case kindCSAFURL:
			if e.purlVersion != "" && !sameVersion(t.eco, e.purlVersion, t.version) {
				continue
			}
			if e.purlVersion == "" {
				if affected, _ := e.affects(pv); !affected {
					continue
				}
			}
			if h, ok := ix.csafHit(e, k); ok {
				hits = append(hits, h)
			}
		}
	}
	return hits
}

func sameVersion(eco, a, b string) bool {
	if a == b {
		return true
	}
	c, err := CompareVersions(eco, a, b)
	return err == nil && c == 0
}

func (ix *Index) evalCPE(t tupleKey, k Key) []hit {
	c, err := ParseCPE(t.name)
	if err != nil {
		return nil
	}
	pv := &parsedVersion{raw: c.Version}
	var hits []hit
	es := ix.entries[k]
	for i := range es {
		e := &es[i]
		switch e.kind {
		case kindNVD:
			pat := e.cpe
			ranged := len(e.aff.Ranges) > 0 || len(e.aff.Versions) > 0
			if ranged {
				// Version bounds live in the ranges; the criteria's own
				// version is then ANY.
				pat.Version = CPEAny
			}
			if !pat.Matches(c) {
				continue
			}
			// The compiled set decides versions: ranges, listed versions,
			// or the criteria's own version.
			if isLogicalCPEValue(c.Version) {
				// An asset CPE without a version can only match criteria
				// that cover every version.
				if ranged || concrete(e.cpe.Version) {
					continue
				}
				hits = append(hits, hit{e: e})
				continue
			}
			if affected, fixed := e.affects(pv); affected {
				hits = append(hits, hit{e: e, fixed: fixed})
			}
		case kindCSAFCPE:
			pat := e.cpe
			if e.set != nil {
				pat.Version = CPEAny
			}
			if !pat.Matches(c) {
				continue
			}
			if e.set != nil {
				if affected, _ := e.affects(pv); !affected {
					continue
				}
			}
			if h, ok := ix.csafHit(e, k); ok {
				hits = append(hits, h)
			}
		}
	}
	return hits
}

// evalProduct matches a device known by vendor, product and version against
// CSAF products named the same way.
func (ix *Index) evalProduct(pv *parsedVersion, k Key) []hit {
	var hits []hit
	es := ix.entries[k]
	for i := range es {
		e := &es[i]
		if e.kind != kindCSAFName {
			continue
		}
		if e.set != nil {
			if pv.raw == "" {
				continue
			}
			if affected, _ := e.affects(pv); !affected {
				continue
			}
		}
		if h, ok := ix.csafHit(e, k); ok {
			hits = append(hits, h)
		}
	}
	return hits
}

// csafHit turns a matched CSAF product status into a hit. Products listed
// as fixed or recommended are not affected and only lend their version as
// the fix for the advisory's affected products under the same key.
func (ix *Index) csafHit(e *entry, k Key) (hit, bool) {
	switch e.aff.Status {
	case advisory.StatusKnownAffected, advisory.StatusUnderInvestigation, advisory.StatusKnownNotAffected:
	default:
		return hit{}, false
	}
	h := hit{e: e, vex: &VEX{Status: e.aff.Status, Justification: e.aff.Justification,
		Impact: e.aff.Impact, Document: ix.advs[e.adv].doc}}
	if e.aff.Status != advisory.StatusKnownNotAffected {
		h.fixNote = vendorFix(e.aff.Remediations)
	}
	if e.aff.Status != advisory.StatusKnownNotAffected {
		for _, o := range ix.entries[k] {
			if o.adv != e.adv || (o.aff.Status != advisory.StatusFixed && o.aff.Status != advisory.StatusRecommended) {
				continue
			}
			switch {
			case o.kind == kindCSAFCPE && concrete(o.cpe.Version):
				h.fixed = o.cpe.Version
			case o.kind == kindCSAFURL && o.purlVersion != "":
				h.fixed = o.purlVersion
			case o.kind == kindCSAFName && len(o.aff.Versions) > 0:
				h.fixed = o.aff.Versions[0]
			case o.kind == kindCSAFName && len(o.aff.Ranges) > 0 && o.aff.Ranges[0].Introduced != "" && o.aff.Ranges[0].Introduced != "0":
				// "fixed: version 2.1 and later" is a range starting at the fix.
				h.fixed = o.aff.Ranges[0].Introduced
			}
		}
	}
	return h, true
}

// vexRank orders conflicting vendor statements: when two say different
// things about the same product, the one that leaves the finding open wins.
func vexRank(v *VEX) int {
	switch {
	case v == nil:
		return 0
	case v.Status == advisory.StatusKnownNotAffected:
		return 1
	case v.Status == advisory.StatusUnderInvestigation:
		return 2
	default:
		return 3
	}
}

// merge folds hits into one match per vulnerability: an advisory and its
// aliases (a DSA and its CVE, a GHSA and its PYSEC) become one match with
// the canonical ID and the others as aliases.
func (ix *Index) merge(t tupleKey, k Key, hits []hit) []Match {
	eco, name, version := t.eco, t.name, t.version
	switch {
	case t.eco == advisory.EcosystemCPE:
		c, _ := ParseCPE(t.name)
		name, version = k.Name, c.Version
	case t.eco == advisory.EcosystemCSAF:
		name = k.Name
	case t.eco == "":
		eco = k.Family
	}
	byVuln := map[string]*Match{}
	var order []string
	for _, h := range hits {
		info := &ix.advs[h.e.adv]
		src := SourceOSV
		switch h.e.kind {
		case kindNVD:
			src = SourceNVDCPE
		case kindCSAFCPE, kindCSAFURL, kindCSAFName:
			src = SourceCSAF
		}
		for _, v := range info.vulns {
			m := byVuln[v]
			if m == nil {
				m = &Match{Ecosystem: eco, Package: name, Version: version, AdvisoryID: v, Source: src}
				byVuln[v] = m
				order = append(order, v)
			}
			for _, o := range info.others {
				if o != v {
					m.Aliases = append(m.Aliases, o)
				}
			}
			if h.fixed != "" && (m.FixedVersion == "" || later(eco, h.fixed, m.FixedVersion)) {
				// Sources that disagree on the fix: ask for the later one,
				// which satisfies both.
				m.FixedVersion = h.fixed
			}
			if h.fixNote != "" && m.FixNote == "" {
				m.FixNote = h.fixNote
			}
			if h.vex != nil && vexRank(h.vex) > vexRank(m.VEX) {
				m.VEX, m.Source = h.vex, SourceCSAF
			}
		}
	}
	slices.Sort(order)
	out := make([]Match, 0, len(order))
	for _, v := range order {
		m := byVuln[v]
		slices.Sort(m.Aliases)
		m.Aliases = slices.Compact(m.Aliases)
		m.KEV, m.EPSS = ix.enrich(v, m.Aliases)
		out = append(out, *m)
	}
	return out
}

// maxFixNote bounds a remediation's text on a finding: it says what to do,
// the advisory holds the rest.
const maxFixNote = 300

// vendorFix returns the first vendor_fix remediation's details (and URL),
// or "" when the vendor offers none.
func vendorFix(rs []advisory.Remediation) string {
	for _, r := range rs {
		if r.Category != "vendor_fix" {
			continue
		}
		note := strings.Join(strings.Fields(r.Details), " ")
		if note == "" {
			note = "the vendor provides a fix"
		}
		if len(note) > maxFixNote {
			cut := maxFixNote
			for cut > 0 && !utf8.RuneStart(note[cut]) {
				cut--
			}
			note = note[:cut] + "…"
		}
		if r.URL != "" {
			note += " (" + r.URL + ")"
		}
		return note
	}
	return ""
}

func later(eco, a, b string) bool {
	c, err := CompareVersions(eco, a, b)
	return err == nil && c > 0
}

func headlineOf(a, b advisory.Severity) advisory.Severity {
	h, _ := advisory.Headline([]advisory.Severity{a, b})
	return h
}

// Intel is what the feeds say about one vulnerability beyond which packages
// it affects: its headline CVSS, its KEV entry and its EPSS score.
type Intel struct {
	CVSS *advisory.Severity
	KEV  *advisory.KEV
	EPSS *advisory.EPSS
}

// Intel looks up a vulnerability under its canonical ID and its CVE
// aliases (other aliases, such as a CSAF document's tracking ID, name more
// than this vulnerability). The headline CVSS is the best across them (v4
// over v3.x over v2, then the highest score); EPSS the highest probability.
func (ix *Index) Intel(id string, aliases []string) Intel {
	var in Intel
	ids := []string{id}
	for _, a := range aliases {
		if strings.HasPrefix(a, "CVE-") && a != id {
			ids = append(ids, a)
		}
	}
	for _, a := range ids {
		if s, ok := ix.sev[a]; ok {
			if in.CVSS == nil {
				in.CVSS = &s
			} else if h := headlineOf(*in.CVSS, s); h != *in.CVSS {
				in.CVSS = &h
			}
		}
		if !strings.HasPrefix(a, "CVE-") {
			continue
		}
		if k, ok := ix.kev[a]; ok && in.KEV == nil {
			in.KEV = &k
		}
		if e, ok := ix.epss[a]; ok && (in.EPSS == nil || e.Score > in.EPSS.Score) {
			in.EPSS = &e
		}
	}
	return in
}

// enrich looks up KEV and EPSS for a vulnerability under its canonical ID
// and any CVE alias.
func (ix *Index) enrich(id string, aliases []string) (kev bool, epss float64) {
	look := func(c string) {
		if _, ok := ix.kev[c]; ok {
			kev = true
		}
		if e, ok := ix.epss[c]; ok {
			epss = math.Max(epss, e.Score)
		}
	}
	look(id)
	for _, a := range aliases {
		if strings.HasPrefix(a, "CVE-") {
			look(a)
		}
	}
	return kev, epss
}

// ServiceIntel is the risk engine's view of a Service's current index:
// what the feeds say about a vulnerability, not ready until the first index
// is built.
type ServiceIntel struct{ Svc *Service }

// Intel looks a vulnerability up in the current index; ok is false before
// the first index is built.
func (i ServiceIntel) Intel(id string, aliases []string) (Intel, bool) {
	ix := i.Svc.Index()
	if ix == nil {
		return Intel{}, false
	}
	return ix.Intel(id, aliases), true
}

// IntelVersion names the index in use: every feed change builds a new one.
func (i ServiceIntel) IntelVersion() string { return fmt.Sprintf("%p", i.Svc.Index()) }
