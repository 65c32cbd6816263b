// Package match decides which published vulnerabilities affect which
// installed software across the estate, and keeps the resulting findings'
// lifecycle (open, fixed, reopened, not affected by a vendor's VEX).
//
// Fleets repeat themselves: ten thousand clinic PCs built from the same image
// hold a few thousand distinct (ecosystem, package, version) tuples between
// them, not twenty million. The engine therefore evaluates every distinct
// tuple once against an in-memory Index built once per advisory-set version,
// caches the verdict, and fans it out to the hosts that hold the tuple.
// Re-evaluation is incremental: a new inventory re-matches one host
// (Index.MatchHost), a new feed version re-matches only the package keys
// whose advisories changed (Diff, Index.MatchEstateKeys).
//
// Version ordering, range checks and CPE parsing are not done here: the
// engine calls CompareVersions, Affects and ParseCPE (version.go, affects.go)
// so there is exactly one notion of "affected" in Patchward.
package match

import (
	"context"
	"strings"

	"github.com/patchward/patchward/internal/advisory"
)

// AdvisorySource is what the matcher needs from the feeds pipeline: the
// advisories of the current feed version and the enrichment maps keyed by
// CVE ID. The consumer owns the interface; the feeds store implements it.
type AdvisorySource interface {
	CurrentAdvisories(ctx context.Context, fn func(advisory.Advisory) error) error
	KEV(ctx context.Context) (map[string]advisory.KEV, error)
	EPSS(ctx context.Context) (map[string]advisory.EPSS, error)
}

// Package is one installed package as the matcher sees it. Its fields are
// those of installed.Package, so the agent and SBOM readers' output converts
// field for field.
type Package struct {
	Name    string
	Version string
	Arch    string
	// Ecosystem is the OSV ecosystem including the release where known
	// ("Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.19", "npm").
	Ecosystem string
	PURL      string
	// SourceName and SourceVersion are the Debian/Ubuntu source package the
	// binary was built from (the status file's Source: field). Debian and
	// Ubuntu advisories name source packages, so matching uses these there.
	SourceName    string
	SourceVersion string
}

// HostInventory is everything about one asset that matching looks at.
type HostInventory struct {
	AssetID  string
	Packages []Package
	// CPEs identify the asset's OS or firmware (Asset.CPE) for devices that
	// report no package list.
	CPEs []string
	// Products are the asset's make, model and firmware version, matched
	// against CSAF products that carry no CPE or PURL (every ICSMA medical
	// advisory names its products only by vendor and product name).
	Products []Product
}

// Product is a device or appliance known by maker, product name and
// version. Names are compared after folding case and punctuation, so the
// asset's make must be written as the advisory's vendor writes it.
type Product struct {
	Vendor  string
	Name    string
	Version string
}

// Sources of a verdict, as stored on a finding.
const (
	SourceOSV    = "osv"
	SourceNVDCPE = "nvd-cpe"
	SourceCSAF   = "csaf"
)

// VEX is a vendor's statement about one product and vulnerability, carried
// on a match so a suppressed finding shows who said so and why.
type VEX struct {
	Status        advisory.VEXStatus `json:"status"`
	Justification string             `json:"justification,omitempty"`
	Impact        string             `json:"impact,omitempty"`
	// Document is the CSAF document's tracking ID and publisher.
	Document string `json:"document,omitempty"`
}

// NotAffected reports whether v says the product is not affected.
func (v *VEX) NotAffected() bool { return v != nil && v.Status == advisory.StatusKnownNotAffected }

// Match is one vulnerability affecting one package (or CPE-identified
// product) on one asset, after an advisory and its aliases were merged: a
// DSA and the CVE it fixes are one match, the CVE canonical and the DSA an
// alias.
type Match struct {
	AssetID string
	// Ecosystem, Package and Version are what was matched. For Debian and
	// Ubuntu that is the source package and source version, because that is
	// what their advisories name and fix; Binaries lists the installed
	// binary packages built from it. For CPE matches Ecosystem is "CPE",
	// Package is "vendor:product" and Version the CPE's version.
	Ecosystem string
	Package   string
	Version   string
	Binaries  []string
	// AdvisoryID is the canonical vulnerability ID: the CVE when the
	// advisory names one, else the advisory's own ID. Aliases are the other
	// IDs (DSA, USN, GHSA, …) that described it, sorted.
	AdvisoryID   string
	Aliases      []string
	FixedVersion string
	// FixNote is a vendor's fix that names no version (CSAF vendor_fix).
	FixNote string
	Source  string
	VEX     *VEX
	KEV     bool
	EPSS    float64
}

// Key returns the (ecosystem family, package) key the match falls under.
func (m Match) Key() Key { return KeyOf(m.Ecosystem, m.Package) }

// Key identifies a set of advisories that apply to one package name in one
// ecosystem family, across releases: ("debian", "openssl"), ("npm",
// "lodash"), ("cpe", "siemens:syngo"). A feed change is described as the set
// of keys whose advisories changed.
type Key struct {
	Family string
	Name   string
}

func (k Key) String() string { return k.Family + "/" + k.Name }

// KeyOf returns the key of a package in ecosystem.
func KeyOf(ecosystem, name string) Key {
	fam, _ := splitEcosystem(ecosystem)
	return Key{Family: fam, Name: name}
}

// Key families that are not package ecosystems: CPE-identified products
// ("vendor:product") and CSAF products known only by vendor and product
// name.
const (
	familyCPE     = "cpe"
	familyProduct = "csaf"
)

// splitEcosystem splits an OSV ecosystem into its family, lowercased so
// that "Debian" and "debian" agree, and its release ("12", "22.04:LTS"),
// kept as written because releases are compared exactly.
func splitEcosystem(eco string) (family, release string) {
	fam, rel, _ := strings.Cut(eco, ":")
	return strings.ToLower(strings.TrimSpace(fam)), strings.TrimSpace(rel)
}

// sourceFamilies are the ecosystems whose advisories name source packages
// (Alpine's secdb names the origin package, its source).
var sourceFamilies = map[string]bool{"debian": true, "ubuntu": true, "alpine": true}

// matchName returns the name and version a package is matched under: the
// source package in Debian-like ecosystems when the inventory knows it.
// tupleKey is the package's matching tuple. When it is matched by its
// source package the binary's PURL is left out, so every binary built from
// one source shares one tuple (and one finding lists them all).
func (p Package) tupleKey() tupleKey {
	name, version := p.matchName()
	if name != p.Name || version != p.Version {
		return tupleKey{p.Ecosystem, name, version, ""}
	}
	return tupleKey{p.Ecosystem, name, version, p.PURL}
}

// binary is the installed binary package's name when the package is
// matched by its source package (listed on the finding), else "".
func (p Package) binary() string {
	fam, _ := splitEcosystem(p.Ecosystem)
	if sourceFamilies[fam] && p.SourceName != "" {
		return p.Name
	}
	return ""
}

func (p Package) matchName() (name, version string) {
	fam, _ := splitEcosystem(p.Ecosystem)
	if sourceFamilies[fam] && p.SourceName != "" {
		v := p.SourceVersion
		if v == "" {
			v = p.Version
		}
		return p.SourceName, v
	}
	return p.Name, p.Version
}
