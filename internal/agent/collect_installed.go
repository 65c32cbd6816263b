package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/installed"
)

// osRelease is the part of /etc/os-release the agent reports.
type osRelease struct {
	ID        string
	IDLike    []string
	Name      string
	Version   string
	Ecosystem string
	parsed    installed.OSRelease
}

// readOSReleaseFile reads os-release with the parser the server also uses.
func readOSReleaseFile(path string) (osRelease, error) {
	f, err := os.Open(path)
	if err != nil {
		return osRelease{}, err
	}
	defer f.Close()
	o, err := installed.ParseOSRelease(f)
	if err != nil {
		return osRelease{}, fmt.Errorf("%s: %w", path, err)
	}
	name := o.PrettyName
	if name == "" {
		name = strings.TrimSpace(o.Name + " " + o.Version)
	}
	return osRelease{ID: o.ID, IDLike: o.IDLike, Name: name, Version: o.VersionID, Ecosystem: o.Ecosystem(), parsed: o}, nil
}

// readPackageDB reads a dpkg status file, an RPM database or Alpine's
// installed database with internal/installed, so agent and server read
// package lists identically.
func readPackageDB(path string, osr osRelease) ([]agentapi.Package, error) {
	var pkgs []installed.Package
	var err error
	switch {
	case filepath.Base(path) == "status":
		var f *os.File
		if f, err = os.Open(path); err == nil {
			pkgs, err = installed.ParseDpkgStatus(f, osr.Ecosystem)
			f.Close()
		}
	case filepath.Base(path) == "installed":
		var f *os.File
		if f, err = os.Open(path); err == nil {
			pkgs, err = installed.ParseApkInstalled(f)
			f.Close()
		}
		osr.parsed.Apply(pkgs)
	default:
		pkgs, err = installed.ReadRpmDB(path)
		osr.parsed.Apply(pkgs)
	}
	if err != nil {
		return nil, err
	}
	out := make([]agentapi.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = agentapi.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, Ecosystem: p.Ecosystem,
			PURL: p.PURL, SourceName: p.SourceName, SourceVersion: p.SourceVersion}
	}
	return out, nil
}
