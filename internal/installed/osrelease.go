package installed

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/errs"
)

// OSRelease is what /etc/os-release (or /usr/lib/os-release) says about a
// host's operating system. The fields are the os-release(5) keys matching
// needs; others are ignored.
type OSRelease struct {
	// ID is the lower-case distribution identifier: debian, ubuntu, alpine,
	// rhel, rocky, almalinux, sles, opensuse-leap, fedora, …
	ID string
	// IDLike lists distributions this one derives from (ID_LIKE), used when
	// ID itself is not one we know.
	IDLike          []string
	Name            string
	PrettyName      string
	Version         string
	VersionID       string
	VersionCodename string
}

// maxOSReleaseBytes caps os-release input; real files are under 1 KiB.
const maxOSReleaseBytes = 64 << 10

var osReleaseKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// ParseOSRelease parses os-release(5) content: KEY=value lines, values
// optionally in single or double quotes with backslash escapes, '#'
// comments and blank lines. Any other line is an errs.Invalid error.
func ParseOSRelease(r io.Reader) (OSRelease, error) {
	b, err := readCapped(r, maxOSReleaseBytes, "os-release")
	if err != nil {
		return OSRelease{}, err
	}
	var o OSRelease
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := trimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok || !osReleaseKey.MatchString(key) {
			return OSRelease{}, errs.E(errs.Invalid, "os-release line %d is not KEY=value", n)
		}
		val, err := unquoteOSRelease(raw)
		if err != nil {
			return OSRelease{}, errs.Wrap(errs.Invalid, err, "os-release line %d: %s", n, key)
		}
		switch key {
		case "ID":
			o.ID = strings.ToLower(val)
		case "ID_LIKE":
			o.IDLike = strings.Fields(strings.ToLower(val))
		case "NAME":
			o.Name = val
		case "PRETTY_NAME":
			o.PrettyName = val
		case "VERSION":
			o.Version = val
		case "VERSION_ID":
			o.VersionID = val
		case "VERSION_CODENAME":
			o.VersionCodename = strings.ToLower(val)
		}
	}
	if err := sc.Err(); err != nil {
		return OSRelease{}, errs.Wrap(errs.Invalid, err, "read os-release")
	}
	if o.ID == "" {
		// os-release(5): "If not set, a default of ID=linux may be used."
		o.ID = "linux"
	}
	return o, nil
}

// unquoteOSRelease undoes shell-style quoting of one os-release value.
func unquoteOSRelease(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	q := s[0]
	if q != '"' && q != '\'' {
		if strings.ContainsAny(s, "\"'`$\\ \t") {
			return "", errs.E(errs.Invalid, "unquoted value with special characters")
		}
		return s, nil
	}
	if len(s) < 2 || s[len(s)-1] != q {
		return "", errs.E(errs.Invalid, "unterminated quote")
	}
	body := s[1 : len(s)-1]
	if q == '\'' {
		if strings.ContainsRune(body, '\'') {
			return "", errs.E(errs.Invalid, "quote inside single-quoted value")
		}
		return body, nil
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case '\\':
			if i+1 == len(body) {
				return "", errs.E(errs.Invalid, "trailing backslash")
			}
			i++
			b.WriteByte(body[i])
		case '"':
			return "", errs.E(errs.Invalid, "unescaped quote inside value")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// family returns the first of ID and ID_LIKE that names a distribution we
// map to an OSV ecosystem.
func (o OSRelease) family() string {
	for _, id := range append([]string{o.ID}, o.IDLike...) {
		if _, ok := osvDistroName[id]; ok {
			return id
		}
	}
	return o.ID
}

// osvDistroName maps os-release IDs to OSV ecosystem base names. Fedora,
// CentOS, Oracle and Amazon have no OSV ecosystem of their own; their names
// still select rpm ordering in the matcher.
var osvDistroName = map[string]string{
	"debian": "Debian", "ubuntu": "Ubuntu", "alpine": "Alpine",
	"rhel": "Red Hat", "rocky": "Rocky Linux", "almalinux": "AlmaLinux",
	"sles": "SUSE", "sled": "SUSE", "sles_sap": "SUSE",
	"opensuse-leap": "openSUSE", "opensuse-tumbleweed": "openSUSE", "opensuse": "openSUSE",
	"fedora": "Fedora", "centos": "CentOS", "ol": "Oracle Linux", "amzn": "Amazon Linux",
	"wolfi": "Wolfi", "chainguard": "Chainguard", "mageia": "Mageia", "openeuler": "openEuler",
	"azurelinux": "Azure Linux", "mariner": "Azure Linux", "photon": "Photon OS",
}

// Ecosystem returns the OSV ecosystem, with release, that advisories for
// this OS's packages use: "Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.19",
// "Rocky Linux:9", "AlmaLinux:8", "SUSE:Linux Enterprise Server 15 SP5",
// "openSUSE:Leap 15.5". For RHEL it is plain "Red Hat": Red Hat's OSV
// ecosystems name a product stream per repository
// ("Red Hat:enterprise_linux:9::appstream") that os-release cannot tell.
// Empty when the OS is not one OSV covers.
func (o OSRelease) Ecosystem() string {
	fam := o.family()
	base, ok := osvDistroName[fam]
	if !ok {
		return ""
	}
	if fam != o.ID {
		// A derivative (Linux Mint, Raspberry Pi OS, …) known only through
		// ID_LIKE numbers its own releases; its VERSION_ID says nothing about
		// the parent's release, so only the family is claimed.
		return base
	}
	major, minor := versionParts(o.VersionID)
	switch fam {
	case "debian":
		if major == "" {
			if n := debianCodenames[o.VersionCodename]; n != "" {
				return "Debian:" + n
			}
			return "Debian"
		}
		return "Debian:" + major
	case "ubuntu":
		if o.VersionID == "" {
			return "Ubuntu"
		}
		eco := "Ubuntu:" + o.VersionID
		if strings.Contains(o.Version, "LTS") {
			eco += ":LTS"
		}
		return eco
	case "alpine":
		if major == "" || minor == "" {
			return "Alpine"
		}
		return "Alpine:v" + major + "." + minor
	case "rhel":
		return "Red Hat"
	case "sles", "sled", "sles_sap":
		if major == "" {
			return "SUSE"
		}
		eco := "SUSE:Linux Enterprise Server " + major
		if minor != "" && minor != "0" {
			eco += " SP" + minor
		}
		return eco
	case "opensuse-leap":
		return "openSUSE:Leap " + o.VersionID
	case "opensuse-tumbleweed":
		return "openSUSE:Tumbleweed"
	}
	if major == "" {
		return base
	}
	return base + ":" + major
}

// Distro returns the value of the PURL "distro" qualifier, "debian-12" or
// "alpine-3.19.1": the os-release ID and VERSION_ID.
func (o OSRelease) Distro() string {
	if o.VersionID == "" {
		return o.ID
	}
	return o.ID + "-" + o.VersionID
}

// Apply stamps the OS onto packages read without knowing it — the apk and
// RPM databases do not say which release they belong to — setting each
// package's Ecosystem and the PURL's distro qualifier (and, for RPMs, the
// PURL namespace). Packages from SBOMs keep the ecosystem their PURL gave.
func (o OSRelease) Apply(pkgs []Package) {
	eco := o.Ecosystem()
	for i := range pkgs {
		p := &pkgs[i]
		u, err := packageurl.FromString(p.PURL)
		if err != nil || (u.Type != packageurl.TypeDebian && u.Type != packageurl.TypeRPM && u.Type != packageurl.TypeApk) {
			continue
		}
		if eco != "" {
			p.Ecosystem = eco
		}
		if u.Type == packageurl.TypeRPM {
			if ns := rpmNamespace(o.family()); ns != "" {
				u.Namespace = ns
			}
		}
		q := slices.DeleteFunc(slices.Clone(u.Qualifiers), func(q packageurl.Qualifier) bool { return q.Key == "distro" })
		q = append(q, packageurl.Qualifier{Key: "distro", Value: o.Distro()})
		slices.SortFunc(q, func(a, b packageurl.Qualifier) int { return strings.Compare(a.Key, b.Key) })
		u.Qualifiers = q
		p.PURL = u.ToString()
	}
}

// rpmNamespace returns the PURL namespace of an RPM distribution's
// packages (the vendor, as in pkg:rpm/redhat/openssl@…).
func rpmNamespace(id string) string {
	switch id {
	case "rhel", "centos":
		return "redhat"
	case "sles", "sled", "sles_sap":
		return "suse"
	case "opensuse-leap", "opensuse-tumbleweed", "opensuse":
		return "opensuse"
	case "", "linux":
		return ""
	}
	return id
}

// debianCodenames maps release code names to major versions, for hosts
// and arguments that give only the name ("bookworm").
var debianCodenames = map[string]string{
	"stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}

// versionParts returns the first two dot-separated numeric parts of a
// VERSION_ID ("3.19.1" → "3", "19"; "12" → "12", "").
func versionParts(v string) (major, minor string) {
	parts := strings.SplitN(v, ".", 3)
	major = leadingDigits(parts[0])
	if len(parts) > 1 {
		minor = leadingDigits(parts[1])
	}
	return major, minor
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return s[:i]
}
