package match

import (
	"strings"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
)

// Affects reports whether version of the package or product described by a
// is affected, and the version that fixes it.
//
// A version is affected when it lies in any of a's ranges — [Introduced,
// Fixed) or [Introduced, LastAffected], with Introduced exclusive when
// IntroducedExclusive is set, "" or "0" meaning from the first version, and
// a Limit (OSV) closing the range without being a fix — or when it equals
// one of a's listed Versions. Ranges of type "GIT" name commits, not
// versions, and are ignored. Ordering follows a.Ecosystem; "SEMVER" ranges
// use semantic versioning whatever the ecosystem; advisory.EcosystemCPE and
// "CPE" ranges use CompareCPEVersions.
//
// fixed is the smallest Fixed bound above version among the ranges that
// contain it (or, when only a listed version matched, among all ranges), and
// empty when no fix is known.
//
// For NVD CPE criteria that carry neither ranges nor versions, the version
// in a.CPE decides: ANY ("*") affects every version, a concrete one only
// itself. For other ecosystems an entry without ranges or versions affects
// nothing: OSV leaves that case to the consumer and guessing "all" would
// flood a clinic with findings it cannot act on.
//
// The error is errs.Unsupported for an ecosystem with no known ordering and
// errs.Invalid for a version or bound that cannot be parsed. Callers that
// evaluate one advisory against many versions should use CompileAffected.
func Affects(a advisory.Affected, version string) (affected bool, fixed string, err error) {
	set, err := CompileAffected(a)
	if err != nil {
		return false, "", err
	}
	return set.AffectsString(version)
}

// AffectedSet is an advisory.Affected with every bound parsed once. The
// engine compiles each advisory entry once and evaluates it against each
// distinct installed version, which is where the time goes at fleet scale.
type AffectedSet struct {
	ecosystem string
	order     ordering
	ranges    []compiledRange
	versions  []Version
	// all is set for CPE criteria whose version is ANY and that have no
	// bounds: every version is affected.
	all bool
}

type compiledRange struct {
	introduced          Version // nil: from the first version
	introducedExclusive bool
	fixed               Version
	lastAffected        Version
	limit               Version
}

// CompileAffected parses the bounds of a for repeated evaluation. It fails
// like Affects on unknown ecosystems and unparseable bounds.
func CompileAffected(a advisory.Affected) (*AffectedSet, error) {
	o, err := orderingOf(a.Ecosystem)
	if err != nil {
		return nil, err
	}
	s := &AffectedSet{ecosystem: a.Ecosystem, order: o}
	for i, r := range a.Ranges {
		ro := o
		switch strings.ToUpper(r.Type) {
		case "GIT":
			continue
		case "SEMVER":
			ro = orderSemver
		case "CPE":
			ro = orderCPE
		}
		if ro != o {
			// Mixed orderings within one entry cannot be evaluated against a
			// single parsed version; OSV never produces them.
			return nil, errs.E(errs.Invalid, "affected %s: range %d is %s but the ecosystem orders as %s", a.Ecosystem, i+1, r.Type, o)
		}
		var cr compiledRange
		parse := func(field, v string) (Version, error) {
			if v == "" {
				return nil, nil
			}
			pv, err := parseOrdered(o, v)
			if err != nil {
				return nil, errs.Wrap(errs.Invalid, err, "affected %s: range %d %s bound %q", a.Ecosystem, i+1, field, v)
			}
			return pv, nil
		}
		if r.Introduced != "0" && !(o == orderCPE && isLogicalCPEValue(r.Introduced)) {
			if cr.introduced, err = parse("introduced", r.Introduced); err != nil {
				return nil, err
			}
		}
		cr.introducedExclusive = r.IntroducedExclusive
		if cr.fixed, err = parse("fixed", r.Fixed); err != nil {
			return nil, err
		}
		if cr.lastAffected, err = parse("last_affected", r.LastAffected); err != nil {
			return nil, err
		}
		if cr.limit, err = parse("limit", r.Limit); err != nil {
			return nil, err
		}
		s.ranges = append(s.ranges, cr)
	}
	versions := a.Versions
	if o == orderCPE && len(a.Ranges) == 0 && len(a.Versions) == 0 && a.CPE != "" {
		c, err := ParseCPE(a.CPE)
		if err != nil {
			return nil, err
		}
		switch c.Version {
		case CPEAny:
			s.all = true
		case CPENA:
			// "-": the product has no versions; nothing to compare.
		default:
			versions = []string{c.Version}
		}
	}
	for _, v := range versions {
		if o == orderCPE && v == CPEAny {
			s.all = true
			continue
		}
		pv, err := parseOrdered(o, v)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "affected %s: listed version %q", a.Ecosystem, v)
		}
		s.versions = append(s.versions, pv)
	}
	return s, nil
}

// Ecosystem returns the ecosystem whose ordering versions must be parsed
// with before they are given to Affects.
func (s *AffectedSet) Ecosystem() string { return s.ecosystem }

// AffectsString parses version under the set's ordering and evaluates it.
func (s *AffectedSet) AffectsString(version string) (affected bool, fixed string, err error) {
	if s.order == orderCPE && isLogicalCPEValue(version) {
		return false, "", errs.E(errs.Invalid, "installed version %q is not a concrete version", version)
	}
	v, err := parseOrdered(s.order, version)
	if err != nil {
		return false, "", err
	}
	affected, fixed = s.Affects(v)
	return affected, fixed, nil
}

// Affects evaluates a version parsed with ParseVersion under the set's
// ecosystem (see the package-level Affects for the rules).
func (s *AffectedSet) Affects(v Version) (affected bool, fixed string) {
	var best Version
	for _, r := range s.ranges {
		if !r.contains(v) {
			continue
		}
		affected = true
		if r.fixed != nil && (best == nil || r.fixed.Compare(best) < 0) {
			best = r.fixed
		}
	}
	if !affected {
		if s.all {
			affected = true
		}
		for _, lv := range s.versions {
			if lv.Compare(v) == 0 {
				affected = true
				break
			}
		}
		if !affected {
			return false, ""
		}
		// Matched by a listed version only: the nearest fix above it across
		// all ranges is the best upgrade target we know of.
		for _, r := range s.ranges {
			if r.fixed != nil && r.fixed.Compare(v) > 0 && (best == nil || r.fixed.Compare(best) < 0) {
				best = r.fixed
			}
		}
	}
	if best != nil {
		fixed = best.String()
	}
	return affected, fixed
}

func (r compiledRange) contains(v Version) bool {
	if r.introduced != nil {
		c := v.Compare(r.introduced)
		if c < 0 || c == 0 && r.introducedExclusive {
			return false
		}
	}
	if r.limit != nil && v.Compare(r.limit) >= 0 {
		return false
	}
	switch {
	case r.fixed != nil:
		return v.Compare(r.fixed) < 0
	case r.lastAffected != nil:
		return v.Compare(r.lastAffected) <= 0
	}
	// Introduced with no end: no fix yet, everything from there on.
	return true
}

// CPE logical values. In a CPE field CPEAny ("*", ANY) matches every value
// and CPENA ("-", NA) says the attribute does not apply to the product.
const (
	CPEAny = "*"
	CPENA  = "-"
)

// maxCPELen bounds the CPE strings we parse; real ones are under 300 bytes.
const maxCPELen = 1024

// CPE is a parsed CPE name (a product identifier in NVD's dictionary). Every
// field holds the attribute's logical value: CPEAny, CPENA, or the value
// with the CPE 2.3 escapes ("\(") or the 2.2 percent-encoding removed and folded to
// lower case, since CPE matching is case-insensitive. Wildcards embedded in
// a value ("1.*") are kept as literal characters: NVD match criteria use
// only whole-field ANY, and literal matching never over-reports.
type CPE struct {
	// Part is "a" (application), "o" (operating system), "h" (hardware) or
	// CPEAny.
	Part      string
	Vendor    string
	Product   string
	Version   string
	Update    string
	Edition   string
	Language  string
	SWEdition string
	TargetSW  string
	TargetHW  string
	Other     string
}

// ParseCPE parses a CPE 2.3 formatted string ("cpe:2.3:o:cisco:ios:
// 15.2\(7\)e10:*:*:*:*:*:*:*") or a CPE 2.2 URI ("cpe:/a:apache:
// http_server:2.4.58", including the packed "~" edition form). A 2.3 name
// cut short after the product, as some SBOMs write them, has its missing
// attributes read as ANY. Malformed input is an errs.Invalid error.
func ParseCPE(s string) (CPE, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxCPELen {
		return CPE{}, errs.E(errs.Invalid, "CPE longer than %d bytes", maxCPELen)
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "cpe:2.3:"):
		return parseCPE23(s[len("cpe:2.3:"):])
	case strings.HasPrefix(lower, "cpe:/"):
		return parseCPE22(s[len("cpe:/"):])
	}
	return CPE{}, errs.E(errs.Invalid, "%q is not a CPE (want cpe:2.3:… or cpe:/…)", shorten(s))
}

func parseCPE23(body string) (CPE, error) {
	var (
		fields []string
		cur    strings.Builder
		quoted []bool // whether the field had any escape, to tell "\*" from "*"
		esc    bool
	)
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			if i+1 >= len(body) {
				return CPE{}, errs.E(errs.Invalid, "CPE 2.3 name ends in a lone backslash")
			}
			i++
			cur.WriteByte(body[i])
			esc = true
		case c == ':':
			fields = append(fields, cur.String())
			quoted = append(quoted, esc)
			cur.Reset()
			esc = false
		case c < 0x21 || c > 0x7e:
			return CPE{}, errs.E(errs.Invalid, "CPE 2.3 name contains a character outside printable ASCII")
		default:
			cur.WriteByte(c)
		}
	}
	fields = append(fields, cur.String())
	quoted = append(quoted, esc)
	// The standard wants all 11 attributes, but SBOM producers write
	// truncated names ("cpe:2.3:a:nginx:nginx:1.21.1"); the missing
	// trailing attributes are read as ANY, as a 2.2 URI's would be.
	if len(fields) < 3 || len(fields) > 11 {
		return CPE{}, errs.E(errs.Invalid, "CPE 2.3 name has %d attributes after cpe:2.3:, want part, vendor, product and up to 8 more", len(fields))
	}
	vals := make([]string, 11)
	for i := len(fields); i < 11; i++ {
		vals[i] = CPEAny
	}
	for i, f := range fields {
		switch {
		case f == "":
			return CPE{}, errs.E(errs.Invalid, "CPE 2.3 name has an empty attribute %d (use * for any)", i+1)
		case !quoted[i] && (f == CPEAny || f == CPENA):
			vals[i] = f
		default:
			vals[i] = strings.ToLower(f)
		}
	}
	return cpeFromFields(vals)
}

func parseCPE22(body string) (CPE, error) {
	comps := strings.Split(body, ":")
	if len(comps) > 7 {
		return CPE{}, errs.E(errs.Invalid, "CPE 2.2 URI has %d components, at most 7 allowed", len(comps))
	}
	vals := make([]string, 11)
	for i := range vals {
		vals[i] = CPEAny
	}
	for i, c := range comps {
		switch c {
		case "":
			continue // empty is ANY in a URI
		case CPENA:
			vals[i] = CPENA
			continue
		}
		if i == 5 && strings.HasPrefix(c, "~") {
			// Packed edition: ~edition~sw_edition~target_sw~target_hw~other.
			packed := strings.Split(c[1:], "~")
			if len(packed) != 5 {
				return CPE{}, errs.E(errs.Invalid, "CPE 2.2 URI packed edition %q needs 5 parts", shorten(c))
			}
			for j, p := range packed {
				v, err := decodeURIValue(p)
				if err != nil {
					return CPE{}, err
				}
				vals[[]int{5, 7, 8, 9, 10}[j]] = v
			}
			continue
		}
		v, err := decodeURIValue(c)
		if err != nil {
			return CPE{}, err
		}
		vals[i] = v
	}
	return cpeFromFields(vals)
}

// decodeURIValue percent-decodes one CPE 2.2 URI component.
func decodeURIValue(c string) (string, error) {
	switch c {
	case "":
		return CPEAny, nil
	case CPENA:
		return CPENA, nil
	}
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case ch == '%':
			if i+2 >= len(c) || !isHex(c[i+1]) || !isHex(c[i+2]) {
				return "", errs.E(errs.Invalid, "CPE 2.2 URI component %q has a bad percent escape", shorten(c))
			}
			b.WriteByte(unhex(c[i+1])<<4 | unhex(c[i+2]))
			i += 2
		case ch < 0x21 || ch > 0x7e:
			return "", errs.E(errs.Invalid, "CPE 2.2 URI contains a character outside printable ASCII")
		default:
			b.WriteByte(ch)
		}
	}
	return strings.ToLower(b.String()), nil
}

func cpeFromFields(v []string) (CPE, error) {
	c := CPE{Part: v[0], Vendor: v[1], Product: v[2], Version: v[3], Update: v[4], Edition: v[5],
		Language: v[6], SWEdition: v[7], TargetSW: v[8], TargetHW: v[9], Other: v[10]}
	switch c.Part {
	case "a", "o", "h", CPEAny:
	default:
		return CPE{}, errs.E(errs.Invalid, "CPE part %q must be a, o, h or *", shorten(c.Part))
	}
	return c, nil
}

func (c CPE) fields() [11]string {
	return [11]string{c.Part, c.Vendor, c.Product, c.Version, c.Update, c.Edition,
		c.Language, c.SWEdition, c.TargetSW, c.TargetHW, c.Other}
}

// Matches reports whether target — typically the CPE of an asset's OS or
// firmware — is named by c, an NVD match criterion. Field by field: ANY on
// either side matches, so an asset CPE that leaves an attribute unknown is
// not silently dropped (over-reporting a finding a person can dismiss is
// safer than missing one); NA matches only NA; other values compare
// equal case-insensitively, and versions compare with CompareCPEVersions so that
// "7.2.08" names the same version as "7.2.8". Version ranges are not
// evaluated here: NVD criteria with bounds carry version ANY, and Affects
// checks the bounds.
func (c CPE) Matches(target CPE) bool {
	src, tgt := c.fields(), target.fields()
	for i := range src {
		s, t := src[i], tgt[i]
		switch {
		case s == CPEAny || t == CPEAny || s == t:
			continue
		case s == CPENA || t == CPENA:
			return false
		case i == 3:
			if CompareCPEVersions(s, t) != 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// String renders c as a CPE 2.3 formatted string, escaping every character
// other than letters, digits, '_', '.' and '-' the way NVD writes them.
func (c CPE) String() string {
	var b strings.Builder
	b.WriteString("cpe:2.3")
	for _, f := range c.fields() {
		b.WriteByte(':')
		switch f {
		case "", CPEAny:
			b.WriteString(CPEAny)
			continue
		case CPENA:
			b.WriteString(CPENA)
			continue
		}
		for i := 0; i < len(f); i++ {
			ch := f[i]
			if !asciiLetter(ch) && !asciiDigit(ch) && ch != '_' && ch != '.' && ch != '-' {
				b.WriteByte('\\')
			}
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func isHex(c byte) bool { return asciiDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case asciiDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// truncate keeps error messages short when echoing outside input.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
