// Package installed reads the lists of installed software that hosts and
// device makers publish: a Debian or Ubuntu dpkg status file, an Alpine apk
// database, an RPM database, /etc/os-release, and CycloneDX or SPDX SBOMs.
// The server reads them when an inventory or SBOM is imported and the agent's
// collectors read them on the host; both get the same Package records.
//
// Everything here reads outside data: each reader caps what it reads,
// refuses malformed input with an errs.Invalid (or errs.TooLarge) error that
// says where, returns nothing at all on error rather than a partial list,
// and has a fuzz test.
package installed

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// Package is one installed package as read from a host or an SBOM.
type Package struct {
	// Name and Version are the binary package's, as the package manager
	// reports them (Version is epoch:version-release for RPM).
	Name    string
	Version string
	// Arch is the package architecture ("amd64", "x86_64", "all"); empty
	// when the source does not say.
	Arch string
	// Ecosystem is the OSV ecosystem, with the release where the reader
	// knows it ("Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.19",
	// "Rocky Linux:9", "npm", "PyPI"); empty for components no ecosystem
	// covers (firmware known only by name and CPE).
	Ecosystem string
	// PURL is the package URL (pkg:deb/debian/libssl3@3.0.11-1~deb12u2?…).
	PURL string
	// SourceName and SourceVersion name the source package the binary was
	// built from: dpkg's Source: field, apk's origin, the RPM's source RPM.
	// Debian, Ubuntu and Alpine advisories name source packages, so the
	// matcher looks these up rather than the binary name. They equal Name
	// and Version when the binary and source are the same.
	SourceName    string
	SourceVersion string
}

// Software converts p to the inventory's record of installed software. The
// inventory has no source-package columns yet, so SourceName and
// SourceVersion do not survive the conversion.
func (p Package) Software() inventory.Software {
	return inventory.Software{Name: p.Name, Version: p.Version, Arch: p.Arch, Ecosystem: p.Ecosystem, PURL: p.PURL,
		SourceName: p.SourceName, SourceVersion: p.SourceVersion}
}

// Software converts a list of packages for an asset.
func Software(pkgs []Package) []inventory.Software {
	out := make([]inventory.Software, len(pkgs))
	for i, p := range pkgs {
		out[i] = p.Software()
	}
	return out
}

// Limits on what the readers accept. Real inputs are far below them: a
// desktop's dpkg status is a few MB with a few thousand packages, and the
// inventory refuses more than 20,000 software entries per asset anyway.
const (
	// MaxInputBytes caps dpkg status, apk database and SBOM input.
	MaxInputBytes = 64 << 20
	// MaxPackages caps the packages one reader returns.
	MaxPackages = 20000
	// maxLineBytes caps one line of a text database.
	maxLineBytes = 1 << 20
	// maxFieldBytes caps a name, version or architecture value.
	maxFieldBytes = 256
)

// readCapped reads all of r, failing with errs.TooLarge past limit bytes.
func readCapped(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "read %s", what)
	}
	if int64(len(b)) > limit {
		return nil, errs.E(errs.TooLarge, "%s is larger than %d MiB", what, limit>>20)
	}
	return b, nil
}

// checkField refuses empty, oversized or control-character values of the
// fields every reader must fill.
func checkField(what, field, v string) error {
	if v == "" {
		return errs.E(errs.Invalid, "%s: %s is missing", what, field)
	}
	return checkValue(what, field, v, maxFieldBytes)
}

// checkValue refuses values longer than limit or with control characters,
// which no package database or SBOM field legitimately holds.
func checkValue(what, field, v string, limit int) error {
	if len(v) > limit {
		return errs.E(errs.Invalid, "%s: %s is longer than %d bytes", what, field, limit)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return errs.E(errs.Invalid, "%s: %s contains a control character", what, field)
		}
	}
	return nil
}

// purlString builds a package URL, leaving out empty qualifiers.
func purlString(typ, namespace, name, version string, quals ...string) string {
	var q packageurl.Qualifiers
	for i := 0; i+1 < len(quals); i += 2 {
		if quals[i+1] != "" {
			q = append(q, packageurl.Qualifier{Key: quals[i], Value: quals[i+1]})
		}
	}
	return packageurl.NewPackageURL(typ, namespace, name, version, q, "").ToString()
}

// tooMany is the error for a list past MaxPackages.
func tooMany(what string) error {
	return errs.E(errs.TooLarge, "%s lists more than %d packages", what, MaxPackages)
}

// at formats a position for error messages.
func at(what string, line int) string { return fmt.Sprintf("%s line %d", what, line) }

// trimSpace trims ASCII spaces and tabs only: the text databases use them
// as separators, and anything else is part of the value.
func trimSpace(s string) string { return strings.Trim(s, " \t\r") }

// lineReader streams the lines of a text database without holding the whole
// file, enforcing the input and line caps as it goes.
type lineReader struct {
	what  string
	lr    *io.LimitedReader
	br    *bufio.Reader
	n     int    // number of the line last returned
	long  []byte // assembly buffer for lines longer than br's buffer
	limit int64
}

func newLineReader(r io.Reader, limit int64, what string) *lineReader {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	return &lineReader{what: what, lr: lr, br: bufio.NewReaderSize(lr, 64<<10), limit: limit}
}

// next returns the next line without its "\n" (or "\r\n"). The slice is
// valid until the following call. ok is false at the end of the input.
func (l *lineReader) next() (line []byte, ok bool, err error) {
	line, err = l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		l.long = append(l.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(l.long) > maxLineBytes {
				return nil, false, errs.E(errs.Invalid, "%s line %d is longer than %d bytes", l.what, l.n+1, maxLineBytes)
			}
			line, err = l.br.ReadSlice('\n')
			l.long = append(l.long, line...)
		}
		line = l.long
	}
	switch {
	case err == io.EOF:
		if l.lr.N == 0 {
			return nil, false, errs.E(errs.TooLarge, "%s is larger than %d MiB", l.what, l.limit>>20)
		}
		if len(line) == 0 {
			return nil, false, nil
		}
	case err != nil:
		return nil, false, errs.Wrap(errs.Invalid, err, "read %s", l.what)
	}
	if len(line) > maxLineBytes {
		return nil, false, errs.E(errs.Invalid, "%s line %d is longer than %d bytes", l.what, l.n+1, maxLineBytes)
	}
	l.n++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, true, nil
}
