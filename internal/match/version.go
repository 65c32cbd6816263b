package match

import (
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/errs"
)

// Version ordering is delegated to osv-scalibr's semantic package: it is
// the comparison osv-scanner itself uses for every OSV ecosystem and is held
// to each ecosystem's own tool (dpkg, rpm, apk-tools, pip, Maven …) by the
// oracle tests in version_test.go. Writing our own dpkg or rpm comparison
// would only add a second, less tested one.

// Version is a version string parsed once for one ecosystem's ordering, so
// that the matching engine can compare each distinct installed version
// against many advisory bounds without re-parsing it every time.
type Version interface {
	// Compare returns -1, 0 or +1 as the receiver sorts before, equal to or
	// after other. Both must come from ParseVersion with ecosystems of the
	// same ordering; comparing across orderings (a programming error) falls
	// back to a byte-wise comparison of the ordering name and then the
	// strings, so that the result is still deterministic.
	Compare(other Version) int
	// String returns the version as it was given.
	String() string
}

// ordering names one family of version rules. Many OSV ecosystems share a
// family: every RPM distribution orders like rpmvercmp, Ubuntu like dpkg.
type ordering string

const (
	orderDebian    ordering = "Debian"
	orderRPM       ordering = "Red Hat"
	orderAlpine    ordering = "Alpine"
	orderSemver    ordering = "npm"
	orderPyPI      ordering = "PyPI"
	orderMaven     ordering = "Maven"
	orderNuGet     ordering = "NuGet"
	orderRubyGems  ordering = "RubyGems"
	orderPackagist ordering = "Packagist"
	orderPub       ordering = "Pub"
	orderCRAN      ordering = "CRAN"
	orderHackage   ordering = "Hackage"
	orderCPE       ordering = "CPE"
)

// orderings maps the base name of an OSV ecosystem (the part before the
// first ':') to its version rules. The names are OSV's; the extra RPM and
// apk distributions are those whose packages use the same tools, so an asset
// on Fedora or Oracle Linux still gets the right ordering even though OSV
// publishes no ecosystem under that name.
var orderings = map[string]ordering{
	"Debian": orderDebian, "Ubuntu": orderDebian,

	"Red Hat": orderRPM, "AlmaLinux": orderRPM, "Rocky Linux": orderRPM,
	"SUSE": orderRPM, "openSUSE": orderRPM, "openEuler": orderRPM,
	"Mageia": orderRPM, "Fedora": orderRPM, "CentOS": orderRPM,
	"Oracle Linux": orderRPM, "Amazon Linux": orderRPM, "Azure Linux": orderRPM,
	"Photon OS": orderRPM, "RPM": orderRPM,

	"Alpine": orderAlpine, "Alpaquita": orderAlpine, "BellSoft Hardened Containers": orderAlpine,
	"Chainguard": orderAlpine, "Wolfi": orderAlpine, "MinimOS": orderAlpine,

	"npm": orderSemver, "Go": orderSemver, "crates.io": orderSemver, "Hex": orderSemver,
	"Bitnami": orderSemver, "ConanCenter": orderSemver, "SwiftURL": orderSemver,
	"GHC": orderSemver, "Julia": orderSemver, "Bioconductor": orderSemver,
	"Docker Hardened Images": orderSemver, "SEMVER": orderSemver,

	"PyPI": orderPyPI, "Maven": orderMaven, "NuGet": orderNuGet,
	"RubyGems": orderRubyGems, "Packagist": orderPackagist, "Pub": orderPub,
	"CRAN": orderCRAN, "Hackage": orderHackage,

	advisory.EcosystemCPE: orderCPE,
}

// orderingOf returns the ordering for an ecosystem name such as
// "Debian:12", "Ubuntu:Pro:22.04:LTS" or "Red Hat:enterprise_linux:9::baseos".
func orderingOf(ecosystem string) (ordering, error) {
	base, _, _ := strings.Cut(ecosystem, ":")
	if o, ok := orderings[strings.TrimSpace(base)]; ok {
		return o, nil
	}
	return "", errs.E(errs.Unsupported, "no version ordering known for ecosystem %q", ecosystem)
}

// maxVersionLen bounds the version strings we parse: real ones are short,
// and the semantic parsers build big integers from digit runs.
const maxVersionLen = 256

// ParseVersion parses v under the ordering of ecosystem (an OSV ecosystem
// name, optionally with its release suffix, or advisory.EcosystemCPE). The
// error is errs.Unsupported for an unknown ecosystem and errs.Invalid for a
// version the ecosystem cannot order.
func ParseVersion(ecosystem, v string) (Version, error) {
	o, err := orderingOf(ecosystem)
	if err != nil {
		return nil, err
	}
	return parseOrdered(o, v)
}

func parseOrdered(o ordering, v string) (Version, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errs.E(errs.Invalid, "empty %s version", o)
	}
	if len(v) > maxVersionLen {
		return nil, errs.E(errs.Invalid, "%s version longer than %d bytes", o, maxVersionLen)
	}
	if o == orderCPE {
		return parseCPEVersion(v), nil
	}
	var (
		sv  semantic.Version
		err error
	)
	switch o {
	case orderSemver:
		// Parse with semver rules directly: "SEMVER" ranges may appear under
		// any ecosystem name.
		sv = semantic.ParseSemverVersion(v)
	default:
		sv, err = semantic.Parse(v, string(o))
	}
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "invalid %s version %q", o, v)
	}
	return semVersion{o: o, raw: v, v: sv}, nil
}

// CompareVersions compares a and b under ecosystem's ordering and returns
// -1, 0 or +1. It parses both on every call; callers comparing the same
// versions repeatedly should use ParseVersion.
func CompareVersions(ecosystem, a, b string) (int, error) {
	o, err := orderingOf(ecosystem)
	if err != nil {
		return 0, err
	}
	if o == orderCPE {
		return CompareCPEVersions(a, b), nil
	}
	va, err := parseOrdered(o, a)
	if err != nil {
		return 0, err
	}
	vb, err := parseOrdered(o, b)
	if err != nil {
		return 0, err
	}
	c, err := va.(semVersion).compare(vb.(semVersion))
	if err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "cannot compare %s versions %q and %q", o, a, b)
	}
	return c, nil
}

// semVersion wraps one osv-scalibr parsed version with its ordering and the
// original text.
type semVersion struct {
	o   ordering
	raw string
	v   semantic.Version
}

func (s semVersion) String() string { return s.raw }

func (s semVersion) compare(t semVersion) (int, error) {
	if s.raw == t.raw {
		// Identical strings are equal in every ordering; this is the common
		// case when an installed version equals a fixed version exactly.
		return 0, nil
	}
	c, err := s.v.Compare(t.v)
	if err != nil {
		return 0, err
	}
	return cmpSign(c), nil
}

// Compare implements Version.
func (s semVersion) Compare(other Version) int {
	t, ok := other.(semVersion)
	if !ok || t.o != s.o {
		return crossCompare(s.o, s.raw, other)
	}
	c, err := s.compare(t)
	if err != nil {
		// The semantic parsers accept what they can later compare; an error
		// here means a malformed token slipped through (e.g. a Maven token
		// with an unknown prefix). Byte order keeps Compare total.
		return strings.Compare(s.raw, t.raw)
	}
	return c
}

// crossCompare orders versions of different orderings deterministically.
func crossCompare(o ordering, raw string, other Version) int {
	var oo ordering
	switch t := other.(type) {
	case semVersion:
		oo = t.o
	case cpeVersion:
		oo = orderCPE
	}
	if c := strings.Compare(string(o), string(oo)); c != 0 {
		return c
	}
	return strings.Compare(raw, other.String())
}

func cmpSign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

// --- CPE versions ---------------------------------------------------------

// CompareCPEVersions orders the free-form version strings of CPE names and
// NVD version bounds ("7.2.8", "15.2(7)E10", "2.4.58", "10.0.19045",
// "1.1.1w", "2.0.0-rc1"), for which no ecosystem defines an ordering. It
// returns -1, 0 or +1.
//
// Each string is split into runs of digits and runs of letters; every other
// character (".", "-", "_", "(", ")", "+", "\" of CPE escapes, …) only
// separates runs. Runs are compared pairwise from the left:
//   - two digit runs numerically (any length, leading zeros ignored);
//   - two letter runs case-insensitively, byte-wise;
//   - a digit run sorts after a letter run ("1.0.1" > "1.0a"), as rpm does.
//
// When one string runs out first, the longer one is newer ("1.1.1w" >
// "1.1.1", "15.2(7)E10" > "15.2(7)"), unless what follows is a pre-release
// word — dev, snapshot, alpha, beta, pre, preview, rc, in that order — which
// sorts before the end ("2.0.0-rc1" < "2.0.0"). Pre-release words also sort
// before every other letter run, which keeps the order transitive.
//
// The CPE logical values ANY ("*") and NA ("-"), and the empty string, are
// not versions: they compare equal to each other and before every concrete
// version. Affects refuses them as installed versions.
func CompareCPEVersions(a, b string) int {
	return parseCPEVersion(a).compare(parseCPEVersion(b))
}

// cpeVersion is a CPE version split once into its runs.
type cpeVersion struct {
	raw string
	// logical is set for ANY, NA and "": they sort before all versions.
	logical bool
	toks    []cpeToken
}

func parseCPEVersion(v string) cpeVersion {
	if isLogicalCPEValue(v) {
		return cpeVersion{raw: v, logical: true}
	}
	return cpeVersion{raw: v, toks: cpeTokens(v)}
}

func (c cpeVersion) compare(t cpeVersion) int {
	switch {
	case c.logical && t.logical:
		return 0
	case c.logical:
		return -1
	case t.logical:
		return 1
	}
	return compareCPETokens(c.toks, t.toks)
}

func (c cpeVersion) String() string { return c.raw }

// Compare implements Version.
func (c cpeVersion) Compare(other Version) int {
	t, ok := other.(cpeVersion)
	if !ok {
		return crossCompare(orderCPE, c.raw, other)
	}
	return c.compare(t)
}

// isLogicalCPEValue reports whether v is one of the CPE logical values that
// stand for "any version" or "not applicable" rather than a version.
func isLogicalCPEValue(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || v == "*" || v == "-"
}

// cpeToken is one run of a CPE version. Numeric runs keep their digits
// without leading zeros so that arbitrarily long numbers compare correctly.
type cpeToken struct {
	text string
	// class orders runs of different kinds at the same position.
	class int
	// rank orders pre-release words among themselves.
	rank int
}

// Token classes, in sort order. classEnd stands for "no more runs".
const (
	classPre = iota
	classEnd
	classAlpha
	classNum
)

var preReleaseRank = map[string]int{
	"dev": 0, "snapshot": 1, "alpha": 2, "beta": 3, "pre": 4, "preview": 5, "rc": 6,
}

func cpeTokens(v string) []cpeToken {
	var toks []cpeToken
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case asciiDigit(c):
			j := i
			for j < len(v) && asciiDigit(v[j]) {
				j++
			}
			n := strings.TrimLeft(v[i:j], "0")
			toks = append(toks, cpeToken{text: n, class: classNum})
			i = j
		case asciiLetter(c):
			j := i
			for j < len(v) && asciiLetter(v[j]) {
				j++
			}
			w := strings.ToLower(v[i:j])
			if r, ok := preReleaseRank[w]; ok {
				toks = append(toks, cpeToken{text: w, class: classPre, rank: r})
			} else {
				toks = append(toks, cpeToken{text: w, class: classAlpha})
			}
			i = j
		default:
			i++
		}
	}
	return toks
}

func compareCPETokens(a, b []cpeToken) int {
	end := cpeToken{class: classEnd}
	for i := 0; i < len(a) || i < len(b); i++ {
		x, y := end, end
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x.class != y.class {
			return cmpSign(x.class - y.class)
		}
		switch x.class {
		case classNum:
			if len(x.text) != len(y.text) {
				return cmpSign(len(x.text) - len(y.text))
			}
			if c := strings.Compare(x.text, y.text); c != 0 {
				return c
			}
		case classPre:
			if x.rank != y.rank {
				return cmpSign(x.rank - y.rank)
			}
		case classAlpha:
			if c := strings.Compare(x.text, y.text); c != 0 {
				return c
			}
		}
	}
	return 0
}

func asciiDigit(c byte) bool  { return '0' <= c && c <= '9' }
func asciiLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
