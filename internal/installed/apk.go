package installed

import (
	"io"

	"github.com/patchward/patchward/internal/errs"
)

// ParseApkInstalled reads Alpine's installed-package database
// (/lib/apk/db/installed): one paragraph per installed package, one
// "K:value" line per attribute. It keeps P (name), V (version), A (arch)
// and o (origin: the aports source package, which Alpine's security data
// names, carried as SourceName).
//
// The database does not say which Alpine release it belongs to, so the
// packages get the bare ecosystem "Alpine"; call OSRelease.Apply with the
// host's /etc/os-release to make it "Alpine:v3.19".
func ParseApkInstalled(r io.Reader) ([]Package, error) {
	lines := newLineReader(r, MaxInputBytes, "apk installed database")
	var (
		pkgs []Package
		cur  Package
		open bool
		from int
	)
	flush := func() error {
		if !open {
			return nil
		}
		what := at("apk installed database package at", from)
		if err := checkField(what, "P (name)", cur.Name); err != nil {
			return err
		}
		if err := checkField(what, "V (version)", cur.Version); err != nil {
			return err
		}
		if cur.Arch != "" {
			if err := checkField(what, "A (arch)", cur.Arch); err != nil {
				return err
			}
		}
		if cur.SourceName == "" {
			cur.SourceName = cur.Name
		} else if err := checkField(what, "o (origin)", cur.SourceName); err != nil {
			return err
		}
		// An origin is built at the same version as its subpackages.
		cur.SourceVersion = cur.Version
		cur.Ecosystem = "Alpine"
		upstream := ""
		if cur.SourceName != cur.Name {
			upstream = cur.SourceName
		}
		cur.PURL = purlString("apk", "alpine", cur.Name, cur.Version, "arch", cur.Arch, "upstream", upstream)
		if len(pkgs) == MaxPackages {
			return tooMany("apk installed database")
		}
		pkgs = append(pkgs, cur)
		cur, open = Package{}, false
		return nil
	}
	for {
		line, ok, err := lines.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		n := lines.n
		if len(line) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, errs.E(errs.Invalid, "apk installed database line %d is not a \"K:value\" line", n)
		}
		if !open {
			open, from = true, n
		}
		var field *string
		switch line[0] {
		case 'P':
			field = &cur.Name
		case 'V':
			field = &cur.Version
		case 'A':
			field = &cur.Arch
		case 'o':
			field = &cur.SourceName
		default:
			continue
		}
		if *field != "" {
			return nil, errs.E(errs.Invalid, "apk installed database line %d: %c given twice for one package", n, line[0])
		}
		*field = string(line[2:])
		if *field == "" {
			return nil, errs.E(errs.Invalid, "apk installed database line %d: %c is empty", n, line[0])
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}
