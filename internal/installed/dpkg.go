package installed

import (
	"bytes"
	"io"
	"regexp"
	"strings"

	"github.com/patchward/patchward/internal/errs"
)

// ParseDpkgStatus reads a dpkg status database (/var/lib/dpkg/status) and
// returns the packages dpkg considers installed: those whose Status field's
// state word is "installed" ("install ok installed", and also "hold ok
// installed" — a held package is still on disk and still vulnerable).
// Removed packages that left configuration files behind are not returned.
//
// Debian and Ubuntu advisories name source packages, so each package
// carries its source as Debian's security tracker derives it:
// "Source: openssl" means source openssl at the binary's version;
// "Source: util-linux (2.38.1-5)" gives the source version outright (dpkg
// writes it when they differ, as after a binNMU); no Source field means the
// source has the binary's name. A binNMU suffix ("+b1") never belongs to a
// source version, so it is stripped whenever the source version is taken
// from the binary's.
//
// release says which distribution release the host runs. It may be an OSV
// ecosystem ("Debian:12", "Ubuntu:22.04:LTS"), a Debian major version or
// code name ("12", "12.11", "bookworm"), or the content of /etc/os-release.
// When it is empty the ecosystem has no release: "Ubuntu" if any installed
// version carries Ubuntu's "ubuntu" revision marker, else "Debian".
func ParseDpkgStatus(r io.Reader, release string) ([]Package, error) {
	eco, err := debEcosystem(release)
	if err != nil {
		return nil, err
	}
	lines := newLineReader(r, MaxInputBytes, "dpkg status")
	var (
		pkgs []Package
		para dpkgParagraph
	)
	flush := func() error {
		if !para.started {
			return nil
		}
		p, ok, err := para.pkg()
		para = dpkgParagraph{}
		if err != nil || !ok {
			return err
		}
		if len(pkgs) == MaxPackages {
			return tooMany("dpkg status")
		}
		pkgs = append(pkgs, p)
		return nil
	}
	// The status file is deb822: paragraphs of "Field: value" lines
	// separated by blank lines, values continued on lines that start with
	// a space or tab. Only five fields matter, so lines are scanned in place
	// without building a map per paragraph.
	var field *string // the field a continuation line would extend
	for {
		line, ok, err := lines.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		n := lines.n
		if len(bytes.Trim(line, " \t")) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			field = nil
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !para.started {
				return nil, errs.E(errs.Invalid, "dpkg status line %d: continuation line outside a paragraph", n)
			}
			if field != nil {
				// None of the fields we keep is multi-line; a continuation
				// of one is malformed rather than ignorable.
				return nil, errs.E(errs.Invalid, "dpkg status line %d: field continues onto a second line", n)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.ContainsAny(line[:colon], " \t") {
			return nil, errs.E(errs.Invalid, "dpkg status line %d is not a \"Field: value\" line", n)
		}
		if !para.started {
			para = dpkgParagraph{started: true, line: n}
		}
		name := line[:colon]
		field = nil
		switch {
		case equalFold(name, "Package"):
			field = &para.name
		case equalFold(name, "Version"):
			field = &para.version
		case equalFold(name, "Architecture"):
			field = &para.arch
		case equalFold(name, "Source"):
			field = &para.source
		case equalFold(name, "Status"):
			field = &para.status
		default:
			continue
		}
		if *field != "" {
			return nil, errs.E(errs.Invalid, "dpkg status line %d: %s given twice in one paragraph", n, name)
		}
		// Only the kept fields' values become strings.
		value := trimSpace(string(line[colon+1:]))
		*field = value
		if value == "" {
			return nil, errs.E(errs.Invalid, "dpkg status line %d: %s is empty", n, name)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if eco == "" {
		eco = "Debian"
		for _, p := range pkgs {
			if strings.Contains(p.Version, "ubuntu") {
				eco = "Ubuntu"
				break
			}
		}
	}
	ns, distro := debPURLParts(eco)
	for i := range pkgs {
		p := &pkgs[i]
		p.Ecosystem = eco
		var upstream string
		if p.SourceName != p.Name || p.SourceVersion != p.Version {
			upstream = p.SourceName
			if p.SourceVersion != p.Version {
				upstream += "@" + p.SourceVersion
			}
		}
		p.PURL = purlString("deb", ns, p.Name, p.Version, "arch", p.Arch, "distro", distro, "upstream", upstream)
	}
	return pkgs, nil
}

// dpkgParagraph holds the fields of one status paragraph that we keep.
type dpkgParagraph struct {
	started                             bool
	line                                int
	name, version, arch, source, status string
}

// sourceField matches "name" or "name (version)".
var sourceField = regexp.MustCompile(`^([^\s()]+)(?:\s+\(([^\s()]+)\))?$`)

// binNMU matches the suffix a binary-only rebuild appends to a version.
var binNMU = regexp.MustCompile(`\+b[0-9]+$`)

func (p dpkgParagraph) pkg() (Package, bool, error) {
	what := at("dpkg status paragraph at", p.line)
	if p.status == "" {
		return Package{}, false, nil
	}
	st := strings.Fields(p.status)
	if len(st) != 3 {
		return Package{}, false, errs.E(errs.Invalid, "%s: Status %q is not \"want flag state\"", what, shorten(p.status))
	}
	if st[2] != "installed" {
		return Package{}, false, nil
	}
	if err := checkField(what, "Package", p.name); err != nil {
		return Package{}, false, err
	}
	if err := checkField(what, "Version", p.version); err != nil {
		return Package{}, false, err
	}
	if p.arch != "" {
		if err := checkField(what, "Architecture", p.arch); err != nil {
			return Package{}, false, err
		}
	}
	pkg := Package{Name: p.name, Version: p.version, Arch: p.arch, SourceName: p.name}
	srcVersion := ""
	if p.source != "" {
		m := sourceField.FindStringSubmatch(p.source)
		if m == nil || len(m[1]) > maxFieldBytes || len(m[2]) > maxFieldBytes {
			return Package{}, false, errs.E(errs.Invalid, "%s: Source %q is not \"name\" or \"name (version)\"", what, shorten(p.source))
		}
		pkg.SourceName, srcVersion = m[1], m[2]
	}
	if srcVersion == "" {
		srcVersion = binNMU.ReplaceAllString(p.version, "")
	}
	pkg.SourceVersion = srcVersion
	return pkg, true, nil
}

// debEcosystem turns ParseDpkgStatus's release argument into an OSV
// ecosystem; "" means decide from the packages.
func debEcosystem(release string) (string, error) {
	release = strings.TrimSpace(release)
	switch {
	case release == "":
		return "", nil
	case strings.Contains(release, "="):
		o, err := ParseOSRelease(strings.NewReader(release))
		if err != nil {
			return "", err
		}
		if f := o.family(); f != "debian" && f != "ubuntu" {
			return "", errs.E(errs.Invalid, "os-release names %q, not Debian or Ubuntu", shorten(o.ID))
		}
		return o.Ecosystem(), nil
	}
	base, rest, _ := strings.Cut(release, ":")
	switch strings.ToLower(base) {
	case "debian":
		base = "Debian"
	case "ubuntu":
		base = "Ubuntu"
	default:
		lower := strings.ToLower(release)
		if n := debianCodenames[lower]; n != "" {
			return "Debian:" + n, nil
		}
		if major, _ := versionParts(release); major != "" && strings.Trim(release, "0123456789.") == "" {
			return "Debian:" + major, nil
		}
		return "", errs.E(errs.Invalid, "release %q is not a Debian or Ubuntu release (want e.g. Debian:12, Ubuntu:22.04:LTS, 12 or bookworm)", shorten(release))
	}
	if len(release) > maxFieldBytes || strings.ContainsAny(release, "\n\t") {
		return "", errs.E(errs.Invalid, "release %q is not a Debian or Ubuntu release", shorten(release))
	}
	if rest == "" {
		return base, nil
	}
	return base + ":" + rest, nil
}

// debPURLParts returns the PURL namespace ("debian", "ubuntu") and distro
// qualifier ("debian-12", "ubuntu-22.04") for an ecosystem.
func debPURLParts(eco string) (namespace, distro string) {
	base, rest, _ := strings.Cut(eco, ":")
	namespace = strings.ToLower(base)
	rest = strings.TrimPrefix(rest, "Pro:") // "Ubuntu:Pro:16.04:LTS"
	rel, _, _ := strings.Cut(rest, ":")
	if rel == "" {
		return namespace, ""
	}
	return namespace, namespace + "-" + rel
}

// equalFold compares an ASCII field name case-insensitively without
// allocating, as deb822 field names are case-insensitive.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// shorten keeps echoed input short in error messages.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
