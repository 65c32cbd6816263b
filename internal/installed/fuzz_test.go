package installed

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/errs"
)

// Every reader of outside data is fuzzed: arbitrary input must give either
// a result that holds the package invariants, or an Invalid/TooLarge/
// Unsupported error with no result — never a panic or a partial list.

func checkPackages(t *testing.T, pkgs []Package, err error) {
	t.Helper()
	if err != nil {
		if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge && k != errs.Unsupported {
			t.Fatalf("error of kind %v: %v", k, err)
		}
		if pkgs != nil {
			t.Fatalf("error %v came with %d packages", err, len(pkgs))
		}
		return
	}
	for _, p := range pkgs {
		if p.Name == "" || p.SourceName == "" {
			t.Fatalf("package without name or source name: %+v", p)
		}
		if p.PURL != "" {
			if _, err := packageurl.FromString(p.PURL); err != nil {
				t.Fatalf("package %q has an unparsable PURL %q: %v", p.Name, p.PURL, err)
			}
		}
	}
}

func addFileSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	addFileSeeds(f, "osv-scalibr-dpkg-valid")
	f.Add([]byte("Package: a\nStatus: install ok installed\nSource: b (1.0-1)\nVersion: 1.0-1+b1\n\n"))
	f.Add([]byte("Package: a\nStatus: hold ok installed\nVersion: 1\nDescription: x\n y\n .\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := ParseDpkgStatus(bytes.NewReader(b), "Debian:12")
		checkPackages(t, pkgs, err)
		for _, p := range pkgs {
			if p.Version == "" || p.SourceVersion == "" || p.Ecosystem != "Debian:12" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}

func FuzzParseApkInstalled(f *testing.F) {
	addFileSeeds(f, "osv-scalibr-apk-installed")
	f.Add([]byte("P:a\nV:1.0-r0\nA:x86_64\no:b\n\nP:c\nV:2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := ParseApkInstalled(bytes.NewReader(b))
		checkPackages(t, pkgs, err)
		for _, p := range pkgs {
			if p.Version == "" {
				t.Fatalf("package without version %+v", p)
			}
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	addFileSeeds(f, "debian12-os-release")
	f.Add([]byte("ID=ubuntu\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_ID=\"22.04\"\n"))
	f.Add([]byte("ID=alpine\nVERSION_ID=3.19.1\n"))
	f.Add([]byte("ID='sles'\nVERSION_ID=\"15.5\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOSRelease(bytes.NewReader(b))
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("error of kind %v: %v", k, err)
			}
			return
		}
		// Whatever parsed must be usable as a release and in a PURL.
		eco := o.Ecosystem()
		if strings.ContainsAny(eco, "\n\x00") {
			t.Fatalf("Ecosystem() = %q", eco)
		}
		pkgs := []Package{{Name: "a", Version: "1", SourceName: "a", PURL: "pkg:apk/alpine/a@1"}}
		o.Apply(pkgs)
		if _, err := packageurl.FromString(pkgs[0].PURL); err != nil {
			t.Fatalf("Apply made an unparsable PURL %q: %v", pkgs[0].PURL, err)
		}
	})
}

func FuzzParseCycloneDX(f *testing.F) {
	addFileSeeds(f, "sbom/osv-scalibr/sbom-with-nested-comps.cdx.json", "sbom/osv-scalibr/minimal.cdx.json", "sbom/osv-scalibr/sbom-with-locations.cdx.json")
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.4","metadata":{"component":{"type":"device","name":"pump","cpe":"cpe:2.3:h:a:b:1:*:*:*:*:*:*:*"}},` +
		`"components":[{"type":"library","name":"a","version":"1","purl":"pkg:deb/debian/a@1?distro=debian-12&upstream=b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCycloneDX(bytes.NewReader(b))
		checkSBOM(t, s, err)
	})
}

func FuzzParseSPDX(f *testing.F) {
	addFileSeeds(f, "sbom/osv-scalibr/purl_and_cpe.spdx.json", "sbom/osv-scalibr/ancestor_of.spdx.json", "sbom/osv-scalibr/minimal.spdx.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSPDX(bytes.NewReader(b))
		checkSBOM(t, s, err)
	})
}

func FuzzDetectSBOM(f *testing.F) {
	addFileSeeds(f, "sbom/osv-scalibr/sbom.cdx.xml", "sbom/osv-scalibr/sbom.spdx", "sbom/osv-scalibr/sbom.spdx.yml", "sbom/osv-scalibr/sbom.spdx.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSBOM(bytes.NewReader(b))
		checkSBOM(t, s, err)
	})
}

func checkSBOM(t *testing.T, s *SBOM, err error) {
	t.Helper()
	if err != nil {
		if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge && k != errs.Unsupported {
			t.Fatalf("error of kind %v: %v", k, err)
		}
		if s != nil {
			t.Fatalf("error %v came with a result", err)
		}
		return
	}
	pkgs := make([]Package, len(s.Components))
	for i, c := range s.Components {
		pkgs[i] = c.Package
	}
	checkPackages(t, pkgs, nil)
	for _, p := range s.Packages() {
		if p.Version == "" {
			t.Fatalf("Packages() returned %q without a version", p.Name)
		}
	}
}
