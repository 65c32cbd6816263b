package installed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	cyclonedx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/patchward/patchward/internal/errs"
)

// SBOM is the software a bill of materials lists: how a device maker
// describes a medical device that cannot run an agent.
type SBOM struct {
	// Format is FormatCycloneDX or FormatSPDX; SpecVersion the document's
	// version of it ("1.4", "SPDX-2.3").
	Format      SBOMFormat
	SpecVersion string
	// Subject is what the SBOM describes (CycloneDX metadata.component),
	// when it says; SPDX documents give only Name.
	Subject *Component
	// Name is the subject's or document's name.
	Name string
	// Components lists every component, nested ones included, in document
	// order.
	Components []Component
}

// Component is one SBOM entry: a package, plus what only an SBOM tells.
type Component struct {
	Package
	// CPE is the component's CPE name as the SBOM gives it (2.3 or 2.2;
	// sometimes truncated). Firmware and appliances are often identified
	// by CPE alone, and NVD's criteria are matched against it.
	CPE string
	// Type is the CycloneDX component type (library, firmware, device,
	// operating-system, …) or the SPDX primary package purpose.
	Type string
}

// Packages returns the components that have a version, the ones that can
// become inventory software and be matched by version. Devices and
// platforms listed without a version are left to their CPE.
func (s *SBOM) Packages() []Package {
	var out []Package
	for _, c := range s.Components {
		if c.Version != "" {
			out = append(out, c.Package)
		}
	}
	return out
}

// CPEs returns the distinct CPE names of the subject and the components, in
// order of first appearance.
func (s *SBOM) CPEs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	if s.Subject != nil {
		add(s.Subject.CPE)
	}
	for _, c := range s.Components {
		add(c.CPE)
	}
	return out
}

// SBOMFormat names an SBOM standard.
type SBOMFormat string

// SBOM formats this package reads (JSON encodings only).
const (
	FormatCycloneDX SBOMFormat = "CycloneDX"
	FormatSPDX      SBOMFormat = "SPDX"
)

// maxComponentDepth bounds CycloneDX component nesting; real SBOMs nest a
// handful of levels.
const maxComponentDepth = 64

// DetectSBOM says which SBOM format b holds, by content rather than file
// name: a JSON object with "bomFormat": "CycloneDX" or an "spdxVersion".
// XML, tag-value, RDF and YAML encodings are errs.Unsupported; anything
// else is errs.Invalid.
func DetectSBOM(b []byte) (SBOMFormat, error) {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) == 0 {
		return "", errs.E(errs.Invalid, "SBOM is empty")
	}
	if t[0] != '{' {
		switch {
		case bytes.HasPrefix(t, []byte("<")):
			return "", errs.E(errs.Unsupported, "XML SBOMs are not supported; export the SBOM as CycloneDX or SPDX JSON")
		case bytes.HasPrefix(t, []byte("SPDXVersion:")):
			return "", errs.E(errs.Unsupported, "SPDX tag-value SBOMs are not supported; export the SBOM as SPDX JSON")
		case bytes.Contains(t[:min(len(t), 4096)], []byte("spdxVersion:")):
			return "", errs.E(errs.Unsupported, "SPDX YAML SBOMs are not supported; export the SBOM as SPDX JSON")
		}
		return "", errs.E(errs.Invalid, "SBOM is not a JSON object")
	}
	var probe struct {
		BOMFormat   *string `json:"bomFormat"`
		SPDXVersion *string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(t, &probe); err != nil {
		return "", errs.Wrap(errs.Invalid, err, "SBOM is not valid JSON")
	}
	switch {
	case probe.BOMFormat != nil && probe.SPDXVersion != nil:
		return "", errs.E(errs.Invalid, "SBOM has both bomFormat and spdxVersion")
	case probe.BOMFormat != nil:
		if *probe.BOMFormat != "CycloneDX" {
			return "", errs.E(errs.Invalid, "bomFormat %q is not CycloneDX", shorten(*probe.BOMFormat))
		}
		return FormatCycloneDX, nil
	case probe.SPDXVersion != nil:
		return FormatSPDX, nil
	}
	return "", errs.E(errs.Invalid, "JSON document is neither CycloneDX (bomFormat) nor SPDX (spdxVersion)")
}

// ParseSBOM reads a CycloneDX or SPDX JSON SBOM, whichever r holds.
func ParseSBOM(r io.Reader) (*SBOM, error) {
	b, err := readCapped(r, MaxInputBytes, "SBOM")
	if err != nil {
		return nil, err
	}
	f, err := DetectSBOM(b)
	if err != nil {
		return nil, err
	}
	if f == FormatSPDX {
		return parseSPDX(b)
	}
	return parseCycloneDX(b)
}

// ParseCycloneDX reads a CycloneDX JSON SBOM (spec 1.0–1.7) with
// cyclonedx-go, walking nested components. Each component's PURL decides
// its ecosystem (deb → Debian/Ubuntu, rpm → Red Hat, Rocky Linux, …, apk →
// Alpine, npm, pypi → PyPI, golang → Go, maven → Maven, nuget → NuGet, …)
// and, for language ecosystems, the package name as OSV writes it
// ("group:artifact" for Maven, "@scope/name" for npm). A component whose
// PURL does not parse makes the whole SBOM invalid.
func ParseCycloneDX(r io.Reader) (*SBOM, error) {
	b, err := readCapped(r, MaxInputBytes, "CycloneDX SBOM")
	if err != nil {
		return nil, err
	}
	return parseCycloneDX(b)
}

func parseCycloneDX(b []byte) (s *SBOM, err error) {
	defer recoverInvalid(&s, &err, "CycloneDX SBOM")
	if f, err := DetectSBOM(b); err != nil {
		return nil, err
	} else if f != FormatCycloneDX {
		return nil, errs.E(errs.Invalid, "document is %s, not CycloneDX", f)
	}
	var bom cyclonedx.BOM
	if err := cyclonedx.NewBOMDecoder(bytes.NewReader(b), cyclonedx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "decode CycloneDX SBOM")
	}
	if bom.SpecVersion == 0 {
		return nil, errs.E(errs.Invalid, "CycloneDX SBOM has no specVersion")
	}
	s = &SBOM{Format: FormatCycloneDX, SpecVersion: bom.SpecVersion.String()}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		mc := bom.Metadata.Component
		s.Name = mc.Name
		c, err := cdxComponent(mc, "metadata.component")
		if err != nil {
			return nil, err
		}
		s.Subject = &c
		if mc.Components != nil {
			if err := s.walkCDX(*mc.Components, "metadata.component", 1); err != nil {
				return nil, err
			}
		}
	}
	if bom.Components != nil {
		if err := s.walkCDX(*bom.Components, "components", 0); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *SBOM) walkCDX(list []cyclonedx.Component, path string, depth int) error {
	if depth > maxComponentDepth {
		return errs.E(errs.Invalid, "CycloneDX components nest deeper than %d levels", maxComponentDepth)
	}
	for i := range list {
		cc := &list[i]
		where := path + "[" + strconv.Itoa(i) + "]"
		c, err := cdxComponent(cc, where)
		if err != nil {
			return err
		}
		if len(s.Components) == MaxPackages {
			return tooMany("CycloneDX SBOM")
		}
		s.Components = append(s.Components, c)
		if cc.Components != nil {
			if err := s.walkCDX(*cc.Components, where+".components", depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func cdxComponent(cc *cyclonedx.Component, where string) (Component, error) {
	what := "CycloneDX " + where
	if cc.Name == "" {
		return Component{}, errs.E(errs.Invalid, "%s has no name", what)
	}
	p, err := sbomPackage(what, cc.Name, cc.Version, cc.PackageURL)
	if err != nil {
		return Component{}, err
	}
	c := Component{Package: p, CPE: strings.TrimSpace(cc.CPE), Type: string(cc.Type)}
	if err := checkOptional(what, "cpe", c.CPE); err != nil {
		return Component{}, err
	}
	return c, nil
}

// ParseSPDX reads an SPDX 2.1–2.3 JSON SBOM with spdx/tools-golang. Each
// package's "purl" external reference decides its ecosystem as in
// ParseCycloneDX; its "cpe23Type" (or "cpe22Type") reference is kept.
func ParseSPDX(r io.Reader) (*SBOM, error) {
	b, err := readCapped(r, MaxInputBytes, "SPDX SBOM")
	if err != nil {
		return nil, err
	}
	return parseSPDX(b)
}

func parseSPDX(b []byte) (s *SBOM, err error) {
	defer recoverInvalid(&s, &err, "SPDX SBOM")
	if f, err := DetectSBOM(b); err != nil {
		return nil, err
	} else if f != FormatSPDX {
		return nil, errs.E(errs.Invalid, "document is %s, not SPDX", f)
	}
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "decode SPDX SBOM")
	}
	s = &SBOM{Format: FormatSPDX, SpecVersion: doc.SPDXVersion, Name: doc.DocumentName}
	for i, pkg := range doc.Packages {
		if pkg == nil {
			continue
		}
		what := fmt.Sprintf("SPDX package %d (%s)", i+1, shorten(string(pkg.PackageSPDXIdentifier)))
		if pkg.PackageName == "" {
			return nil, errs.E(errs.Invalid, "%s has no name", what)
		}
		var purl, cpe23, cpe22 string
		for _, ref := range pkg.PackageExternalReferences {
			if ref == nil {
				continue
			}
			switch ref.RefType {
			case "purl":
				if purl == "" {
					purl = ref.Locator
				}
			case "cpe23Type":
				if cpe23 == "" {
					cpe23 = ref.Locator
				}
			case "cpe22Type":
				if cpe22 == "" {
					cpe22 = ref.Locator
				}
			}
		}
		p, err := sbomPackage(what, pkg.PackageName, pkg.PackageVersion, purl)
		if err != nil {
			return nil, err
		}
		c := Component{Package: p, CPE: strings.TrimSpace(cpe23), Type: pkg.PrimaryPackagePurpose}
		if c.CPE == "" {
			c.CPE = strings.TrimSpace(cpe22)
		}
		if err := checkOptional(what, "cpe", c.CPE); err != nil {
			return nil, err
		}
		if len(s.Components) == MaxPackages {
			return nil, tooMany("SPDX SBOM")
		}
		s.Components = append(s.Components, c)
	}
	return s, nil
}

// recoverInvalid turns a panic inside a third-party decoder into an
// Invalid error: an SBOM upload must never take the server down.
func recoverInvalid(s **SBOM, err *error, what string) {
	if r := recover(); r != nil {
		*s, *err = nil, errs.E(errs.Invalid, "%s could not be decoded: %v", what, r)
	}
}

// checkOptional validates a field that may be empty. CPE names are allowed
// more room than names and versions.
func checkOptional(what, field, v string) error {
	limit := maxFieldBytes
	if field == "cpe" {
		limit = 1024
	}
	return checkValue(what, field, v, limit)
}

// sbomPackage builds a Package from an SBOM entry's name, version and PURL.
func sbomPackage(what, name, version, purl string) (Package, error) {
	name, version, purl = strings.TrimSpace(name), strings.TrimSpace(version), strings.TrimSpace(purl)
	p := Package{Name: name, Version: version}
	if purl != "" {
		if len(purl) > 2*maxFieldBytes {
			return Package{}, errs.E(errs.Invalid, "%s: purl is longer than %d bytes", what, 2*maxFieldBytes)
		}
		u, err := packageurl.FromString(purl)
		if err != nil {
			return Package{}, errs.Wrap(errs.Invalid, err, "%s: %q is not a package URL", what, shorten(purl))
		}
		p.PURL = u.ToString()
		eco, ecoName := purlEcosystem(u)
		p.Ecosystem = eco
		if ecoName != "" {
			p.Name = ecoName
		}
		if p.Version == "" {
			p.Version = u.Version
		}
		q := u.Qualifiers.Map()
		p.Arch = q["arch"]
		p.SourceName, p.SourceVersion = purlSource(u.Type, q["upstream"], p.Version)
		if e := q["epoch"]; u.Type == packageurl.TypeRPM && e != "" && e != "0" && !strings.Contains(p.Version, ":") {
			p.Version = e + ":" + p.Version
			if !strings.Contains(p.SourceVersion, ":") {
				p.SourceVersion = e + ":" + p.SourceVersion
			}
		}
	}
	if p.SourceName == "" {
		p.SourceName = p.Name
	}
	if p.SourceVersion == "" {
		p.SourceVersion = p.Version
	}
	if err := checkField(what, "name", p.Name); err != nil {
		return Package{}, err
	}
	for _, f := range []struct{ field, v string }{{"version", p.Version}, {"arch", p.Arch}, {"source name", p.SourceName}, {"source version", p.SourceVersion}} {
		if err := checkOptional(what, f.field, f.v); err != nil {
			return Package{}, err
		}
	}
	return p, nil
}

// purlSource derives the source package from a PURL's "upstream" qualifier
// (syft and others write "openssl", "util-linux@2.38.1-5" for deb, the
// source RPM file name for rpm, the origin for apk).
func purlSource(typ, upstream, version string) (name, srcVersion string) {
	if upstream == "" {
		if typ == packageurl.TypeDebian {
			return "", binNMU.ReplaceAllString(version, "")
		}
		return "", version
	}
	switch typ {
	case packageurl.TypeDebian:
		n, v, ok := strings.Cut(upstream, "@")
		if !ok {
			v = binNMU.ReplaceAllString(version, "")
		}
		return n, v
	case packageurl.TypeRPM:
		if n, v, ok := splitSourceRPM(upstream); ok {
			return n, v
		}
	}
	return upstream, version
}

// languageEcosystems maps PURL types to OSV ecosystems.
var languageEcosystems = map[string]string{
	packageurl.TypeNPM: "npm", packageurl.TypePyPi: "PyPI", packageurl.TypeGolang: "Go",
	packageurl.TypeMaven: "Maven", packageurl.TypeNuget: "NuGet", packageurl.TypeCargo: "crates.io",
	packageurl.TypeGem: "RubyGems", packageurl.TypeComposer: "Packagist", packageurl.TypeHex: "Hex",
	packageurl.TypePub: "Pub", packageurl.TypeCran: "CRAN", packageurl.TypeHackage: "Hackage",
	packageurl.TypeSwift: "SwiftURL", packageurl.TypeConan: "ConanCenter", packageurl.TypeBitnami: "Bitnami",
}

// purlNamespaceOS maps the namespace of deb, rpm and apk PURLs to the
// os-release ID whose ecosystem they belong to.
var purlNamespaceOS = map[string]string{
	"debian": "debian", "ubuntu": "ubuntu",
	"redhat": "rhel", "rhel": "rhel", "rocky": "rocky", "rockylinux": "rocky", "almalinux": "almalinux",
	"suse": "sles", "sles": "sles", "opensuse": "opensuse-leap", "fedora": "fedora", "centos": "centos",
	"oracle": "ol", "amazon": "amzn", "amzn": "amzn", "openeuler": "openeuler", "mageia": "mageia",
	"alpine": "alpine", "wolfi": "wolfi", "chainguard": "chainguard",
}

// purlEcosystem returns the OSV ecosystem of a PURL and, for language
// ecosystems, the package name as OSV writes it.
func purlEcosystem(u packageurl.PackageURL) (ecosystem, name string) {
	if eco, ok := languageEcosystems[u.Type]; ok {
		switch u.Type {
		case packageurl.TypeMaven:
			if u.Namespace != "" {
				return eco, u.Namespace + ":" + u.Name
			}
		case packageurl.TypeNPM, packageurl.TypeGolang, packageurl.TypeComposer, packageurl.TypeSwift:
			if u.Namespace != "" {
				return eco, u.Namespace + "/" + u.Name
			}
		}
		return eco, u.Name
	}
	switch u.Type {
	case packageurl.TypeDebian, packageurl.TypeRPM, packageurl.TypeApk:
	default:
		return "", ""
	}
	id := purlNamespaceOS[strings.ToLower(u.Namespace)]
	o := OSRelease{ID: id}
	if d := u.Qualifiers.Map()["distro"]; d != "" {
		o = distroRelease(d, id)
	}
	if o.ID == "" {
		switch u.Type {
		case packageurl.TypeDebian:
			o.ID = "debian"
		case packageurl.TypeApk:
			o.ID = "alpine"
		default:
			return "", u.Name
		}
	}
	return o.Ecosystem(), u.Name
}

// distroRelease reads a PURL distro qualifier ("debian-12", "bookworm",
// "ubuntu-22.04", "alpine-3.19.1", "rocky-9.3", "opensuse-leap-15.5",
// "el9") as an OSRelease; id is the namespace's guess when the qualifier
// names no distribution.
func distroRelease(d, id string) OSRelease {
	d = strings.ToLower(d)
	if n := debianCodenames[d]; n != "" {
		return OSRelease{ID: "debian", VersionID: n}
	}
	o := OSRelease{ID: id}
	// The version is what follows the last '-' when it starts with a digit.
	if i := strings.LastIndexByte(d, '-'); i > 0 && i+1 < len(d) && '0' <= d[i+1] && d[i+1] <= '9' {
		if _, known := osvDistroName[d[:i]]; known {
			o.ID = d[:i]
		}
		o.VersionID = d[i+1:]
	} else if strings.HasPrefix(d, "el") && len(d) > 2 && '0' <= d[2] && d[2] <= '9' {
		o.VersionID = d[2:]
	}
	if o.ID == "ubuntu" {
		// Ubuntu's April releases of even years are LTS, and OSV names them so.
		major, minor := versionParts(o.VersionID)
		if y, err := strconv.Atoi(major); err == nil && y%2 == 0 && minor == "04" {
			o.Version = "LTS"
		}
	}
	return o
}
