// Package advisory turns the vulnerability feeds security teams already
// trust — OSV, NVD CVE API 2.0, CISA KEV, FIRST EPSS and CSAF 2.0 (with VEX)
// — into one normalised model. Parsers here read outside data: every one
// refuses malformed input with a clear error and has a fuzz test.
package advisory

import "time"

// Advisory is one published vulnerability record from one source: an OSV
// entry (DSA-…, USN-…, GHSA-…), an NVD CVE, or one vulnerability of a CSAF
// document.
type Advisory struct {
	// ID is the record's own identifier in its source.
	ID string `json:"id"`
	// Source names the feed format: "osv", "nvd" or "csaf".
	Source string `json:"source"`
	// Aliases are other identifiers of the same vulnerability (CVE IDs for a
	// DSA, GHSA IDs, …). Matching and enrichment join on them.
	Aliases []string `json:"aliases,omitempty"`
	Related []string `json:"related,omitempty"`
	// Upstream lists the records this one derives from (OSV "upstream"):
	// a Debian DLA names the CVEs it fixes here rather than as aliases, and
	// KEV/EPSS enrichment must still find them.
	Upstream  []string   `json:"upstream,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Published time.Time  `json:"published"`
	Modified  time.Time  `json:"modified"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Severity  []Severity `json:"severity,omitempty"`
	CWEs      []string   `json:"cwes,omitempty"`
	// References are URLs: vendor advisories, patches, reports.
	References []string   `json:"references,omitempty"`
	Affected   []Affected `json:"affected,omitempty"`
	// Document describes the CSAF document a CSAF advisory came from.
	Document *Document `json:"document,omitempty"`
}

// Severity is one CVSS assessment. Vendor-published scores are kept as
// given; Score is computed from Vector when the source gave none.
type Severity struct {
	// Type is "CVSS_V2", "CVSS_V3" (3.0 and 3.1) or "CVSS_V4".
	Type   string  `json:"type"`
	Vector string  `json:"vector"`
	Score  float64 `json:"score"`
	// Rating is the qualitative rating: NONE, LOW, MEDIUM, HIGH, CRITICAL.
	Rating string `json:"rating,omitempty"`
	// Source is who scored it (e.g. nvd@nist.gov, a CNA, the vendor).
	Source string `json:"source,omitempty"`
}

// Severity types.
const (
	CVSSv2 = "CVSS_V2"
	CVSSv3 = "CVSS_V3"
	CVSSv4 = "CVSS_V4"
)

// Affected says which versions of one package or product a vulnerability
// affects, or (for VEX) what the vendor states about it.
type Affected struct {
	// Ecosystem is the OSV ecosystem ("Debian:12", "Ubuntu:22.04:LTS",
	// "AlmaLinux:9", "npm", "PyPI", "Go", "Maven", …), EcosystemCPE for NVD
	// CPE matches, or EcosystemCSAF for a CSAF product.
	Ecosystem string `json:"ecosystem"`
	// Package is the package name as the ecosystem names it. Debian and
	// Ubuntu advisories name source packages.
	Package string `json:"package,omitempty"`
	// Vendor is the maker named by a CSAF vendor branch or an NVD CPE; with
	// Package it is what an asset's make and model are matched against.
	Vendor string `json:"vendor,omitempty"`
	PURL   string `json:"purl,omitempty"`
	// CPE is the CPE 2.3 match criteria (NVD) or the product's CPE (CSAF).
	CPE string `json:"cpe,omitempty"`
	// Vulnerable is false for NVD configuration nodes that name a platform
	// rather than the vulnerable software, and for CSAF products whose
	// status is anything but known_affected.
	Vulnerable bool `json:"vulnerable"`
	// Ranges are version intervals; Versions lists individual affected
	// versions. Either may be empty. For a CSAF product they delimit the
	// product that Status speaks about (a fixed product's Versions are
	// the fixed versions).
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`

	// The remaining fields come from CSAF product status and remediations.
	ProductID   string `json:"product_id,omitempty"`
	ProductName string `json:"product_name,omitempty"`
	// Status is the VEX status of this product.
	Status VEXStatus `json:"status,omitempty"`
	// Justification explains known_not_affected (CSAF flag labels such as
	// vulnerable_code_not_present).
	Justification string `json:"justification,omitempty"`
	// Impact is the free-text impact statement that may accompany it.
	Impact string `json:"impact,omitempty"`
	// Remediations are the vendor's fixes, mitigations and workarounds.
	Remediations []Remediation `json:"remediations,omitempty"`
}

// Ecosystems for records that are not package-based.
const (
	EcosystemCPE  = "CPE"
	EcosystemCSAF = "CSAF"
)

// Range is one affected interval of versions in the ecosystem's ordering.
// Introduced "" or "0" means from the first version. Fixed is the first
// unaffected version (exclusive); LastAffected is the last affected one
// (inclusive); at most one of the two is set, and neither means no fix yet.
type Range struct {
	// Type is the OSV range type: "ECOSYSTEM", "SEMVER" or "GIT"; "CPE" for
	// NVD version bounds; "CSAF" for bounds read from a CSAF
	// product_version_range (in the vendor's own version scheme).
	Type                string `json:"type"`
	Introduced          string `json:"introduced,omitempty"`
	IntroducedExclusive bool   `json:"introduced_exclusive,omitempty"`
	Fixed               string `json:"fixed,omitempty"`
	LastAffected        string `json:"last_affected,omitempty"`
	// Limit is an OSV "limit" event: versions at or above it are outside
	// this range, yet it is not a fix (mostly GIT ranges).
	Limit string `json:"limit,omitempty"`
}

// VEXStatus is a CSAF/VEX product status.
type VEXStatus string

// VEX statuses (CSAF 2.0 product_status groups, normalised).
const (
	StatusKnownAffected      VEXStatus = "known_affected"
	StatusKnownNotAffected   VEXStatus = "known_not_affected"
	StatusFixed              VEXStatus = "fixed"
	StatusUnderInvestigation VEXStatus = "under_investigation"
	// StatusRecommended marks the version a vendor recommends (a fix).
	StatusRecommended VEXStatus = "recommended"
)

// Remediation is one CSAF remediation.
type Remediation struct {
	// Category is vendor_fix, mitigation, workaround, none_available or
	// no_fix_planned.
	Category string `json:"category"`
	Details  string `json:"details"`
	URL      string `json:"url,omitempty"`
}

// Document identifies the CSAF document an advisory came from.
type Document struct {
	Title     string `json:"title"`
	Tracking  string `json:"tracking_id"`
	Publisher string `json:"publisher"`
	Version   string `json:"version,omitempty"`
}

// KEV is one CISA Known Exploited Vulnerabilities catalog entry.
type KEV struct {
	CVE           string    `json:"cve"`
	VendorProject string    `json:"vendor_project"`
	Product       string    `json:"product"`
	Name          string    `json:"name"`
	DateAdded     time.Time `json:"date_added"`
	DueDate       time.Time `json:"due_date"`
	// KnownRansomware is true when CISA lists known ransomware campaign use.
	KnownRansomware bool     `json:"known_ransomware"`
	RequiredAction  string   `json:"required_action,omitempty"`
	Notes           string   `json:"notes,omitempty"`
	CWEs            []string `json:"cwes,omitempty"`
}

// KEVCatalog is a parsed KEV catalog.
type KEVCatalog struct {
	Version  string    `json:"version"`
	Released time.Time `json:"released"`
	Entries  []KEV     `json:"entries"`
}

// EPSS is one FIRST EPSS score.
type EPSS struct {
	CVE        string  `json:"cve"`
	Score      float64 `json:"score"`
	Percentile float64 `json:"percentile"`
}

// EPSSSet is a parsed EPSS file: the scores and the model that made them.
type EPSSSet struct {
	ModelVersion string    `json:"model_version"`
	ScoreDate    time.Time `json:"score_date"`
	Scores       []EPSS    `json:"scores"`
}

// Headline picks the assessment that stands for a vulnerability's severity:
// CVSS v4.0 when present, else v3.x, else v2, the highest score within a
// version. Unscored entries are ignored.
func Headline(ss []Severity) (Severity, bool) {
	rank := map[string]int{CVSSv4: 3, CVSSv3: 2, CVSSv2: 1}
	var best Severity
	found := false
	for _, s := range ss {
		if s.Score <= 0 {
			continue
		}
		if !found || rank[s.Type] > rank[best.Type] || (rank[s.Type] == rank[best.Type] && s.Score > best.Score) {
			best, found = s, true
		}
	}
	return best, found
}
