package installed

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	// go-rpmdb reads SQLite rpmdbs (RHEL 9, Fedora 33+) through
	// database/sql and leaves the choice of driver to the program; the
	// project's pure-Go SQLite registers as "sqlite", the name it opens.
	_ "modernc.org/sqlite"

	"github.com/patchward/patchward/internal/errs"
)

// MaxRpmDBBytes caps the RPM database file ReadRpmDB opens. A large
// server's BerkeleyDB Packages file is a few hundred MB.
const MaxRpmDBBytes = 1 << 30

// ReadRpmDB reads an RPM database — BerkeleyDB (/var/lib/rpm/Packages,
// RHEL 7/8, SLES 12), SQLite (/var/lib/rpm/rpmdb.sqlite, RHEL 9, Fedora) or
// NDB (/var/lib/rpm/Packages.db, SUSE 15) — with go-rpmdb, a pure-Go reader,
// so the agent needs neither librpm nor the rpm binary.
//
// Version is epoch:version-release (the epoch only when non-zero), the form
// RPM advisories use. SourceName and SourceVersion come from the source
// RPM's file name (openssl-3.0.7-27.el9.src.rpm), since Red Hat errata are
// published per source package. The gpg-pubkey entries rpm stores for
// imported signing keys are not software and are left out.
//
// The ecosystem is taken from the packages' vendor where it names a known
// distribution ("Red Hat", "Rocky Linux", "AlmaLinux", "SUSE", …) and
// carries no release; call OSRelease.Apply with the host's os-release to
// add it ("Rocky Linux:9").
func ReadRpmDB(path string) (pkgs []Package, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "open RPM database")
	}
	if !st.Mode().IsRegular() {
		return nil, errs.E(errs.Invalid, "RPM database %s is not a regular file", st.Name())
	}
	if st.Size() > MaxRpmDBBytes {
		return nil, errs.E(errs.TooLarge, "RPM database is larger than %d MiB", MaxRpmDBBytes>>20)
	}
	// go-rpmdb indexes into header blobs it reads from the file; a corrupt
	// database must be an error, not a crash of the agent or the server.
	defer func() {
		if r := recover(); r != nil {
			pkgs, err = nil, errs.E(errs.Invalid, "RPM database is corrupt: %v", r)
		}
	}()
	db, err := rpmdb.Open(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "open RPM database")
	}
	defer db.Close()
	infos, err := db.ListPackages()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "read RPM database")
	}
	for i, info := range infos {
		if info.Name == "gpg-pubkey" {
			continue
		}
		p, err := rpmPackage(info)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "RPM database entry %d", i+1)
		}
		if len(pkgs) == MaxPackages {
			return nil, tooMany("RPM database")
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func rpmPackage(info *rpmdb.PackageInfo) (Package, error) {
	what := "package " + shorten(info.Name)
	if err := checkField(what, "name", info.Name); err != nil {
		return Package{}, err
	}
	if err := checkField(what, "version", info.Version); err != nil {
		return Package{}, err
	}
	vr := info.Version
	if info.Release != "" {
		vr += "-" + info.Release
	}
	version := vr
	epoch := ""
	if e := info.EpochNum(); e != 0 {
		epoch = strconv.Itoa(e)
		version = epoch + ":" + vr
	}
	p := Package{Name: info.Name, Version: version, Arch: info.Arch, SourceName: info.Name, SourceVersion: version}
	if info.SourceRpm != "" && info.SourceRpm != "(none)" {
		name, sv, ok := splitSourceRPM(info.SourceRpm)
		if !ok {
			return Package{}, fmt.Errorf("%s: source RPM %q is not name-version-release.src.rpm", what, shorten(info.SourceRpm))
		}
		if epoch != "" {
			// The source RPM's file name has no epoch; a binary and its
			// source share one.
			sv = epoch + ":" + sv
		}
		p.SourceName, p.SourceVersion = name, sv
	}
	for _, f := range []struct{ field, v string }{{"arch", p.Arch}, {"source name", p.SourceName}, {"source version", p.SourceVersion}} {
		if f.v != "" {
			if err := checkField(what, f.field, f.v); err != nil {
				return Package{}, err
			}
		}
	}
	vendor := rpmVendor(info.Vendor)
	p.Ecosystem = vendor.ecosystem
	p.PURL = purlString("rpm", vendor.namespace, p.Name, vr, "arch", p.Arch, "epoch", epoch, "upstream", info.SourceRpm)
	return p, nil
}

// splitSourceRPM splits "openssl-3.0.7-27.el9.src.rpm" into "openssl" and
// "3.0.7-27.el9". Names may contain '-'; version and release may not.
func splitSourceRPM(s string) (name, versionRelease string, ok bool) {
	s = strings.TrimSuffix(s, ".rpm")
	s, found := strings.CutSuffix(s, ".src")
	if !found {
		if s, found = strings.CutSuffix(s, ".nosrc"); !found {
			return "", "", false
		}
	}
	r := strings.LastIndexByte(s, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(s[:r], '-')
	if v <= 0 || v+1 == r || r+1 == len(s) {
		return "", "", false
	}
	return s[:v], s[v+1:], true
}

type rpmDistro struct{ ecosystem, namespace string }

// rpmVendor recognises the distribution from an RPM's Vendor tag.
func rpmVendor(vendor string) rpmDistro {
	v := strings.ToLower(vendor)
	switch {
	case strings.Contains(v, "red hat"):
		return rpmDistro{"Red Hat", "redhat"}
	case strings.Contains(v, "rocky"):
		return rpmDistro{"Rocky Linux", "rocky"}
	case strings.Contains(v, "almalinux"):
		return rpmDistro{"AlmaLinux", "almalinux"}
	case strings.Contains(v, "opensuse"):
		return rpmDistro{"openSUSE", "opensuse"}
	case strings.Contains(v, "suse"):
		return rpmDistro{"SUSE", "suse"}
	case strings.Contains(v, "fedora"):
		return rpmDistro{"Fedora", "fedora"}
	case strings.Contains(v, "centos"):
		return rpmDistro{"CentOS", "centos"}
	case strings.Contains(v, "oracle"):
		return rpmDistro{"Oracle Linux", "oracle"}
	case strings.Contains(v, "amazon"):
		return rpmDistro{"Amazon Linux", "amazon"}
	case strings.Contains(v, "openeuler"):
		return rpmDistro{"openEuler", "openeuler"}
	case strings.Contains(v, "microsoft"):
		return rpmDistro{"Azure Linux", "microsoft"}
	}
	return rpmDistro{}
}
