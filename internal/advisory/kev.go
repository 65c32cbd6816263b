package advisory

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// kevFile is the CISA KEV catalog JSON
// (https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities_schema.json).
type kevFile struct {
	CatalogVersion  string     `json:"catalogVersion"`
	DateReleased    string     `json:"dateReleased"`
	Count           *int       `json:"count"`
	Vulnerabilities []kevEntry `json:"vulnerabilities"`
}

type kevEntry struct {
	CVEID                      string   `json:"cveID"`
	VendorProject              string   `json:"vendorProject"`
	Product                    string   `json:"product"`
	VulnerabilityName          string   `json:"vulnerabilityName"`
	DateAdded                  string   `json:"dateAdded"`
	ShortDescription           string   `json:"shortDescription"`
	RequiredAction             string   `json:"requiredAction"`
	DueDate                    string   `json:"dueDate"`
	KnownRansomwareCampaignUse *string  `json:"knownRansomwareCampaignUse"`
	Notes                      string   `json:"notes"`
	CWEs                       []string `json:"cwes"`
}

// ParseKEV parses the CISA Known Exploited Vulnerabilities catalog JSON.
//
// The catalog states its own entry count; a mismatch means a truncated or
// spliced download and is refused, as are a CVE listed twice, a malformed
// CVE ID or date, and a ransomware flag other than "Known" or "Unknown"
// (a missing flag, as in catalogs before October 2022, reads as unknown).
func ParseKEV(r io.Reader) (KEVCatalog, error) {
	b, err := readLimited(r, MaxDocumentSize, "KEV catalog")
	if err != nil {
		return KEVCatalog{}, err
	}
	return parseKEVBytes(b)
}

func parseKEVBytes(b []byte) (KEVCatalog, error) {
	if firstNonSpace(b) != '{' {
		return KEVCatalog{}, invalid("KEV catalog is not a JSON object")
	}
	var f kevFile
	if err := json.Unmarshal(b, &f); err != nil {
		return KEVCatalog{}, invalid("KEV catalog: %s", jsonProblem(err))
	}
	if strings.TrimSpace(f.CatalogVersion) == "" {
		return KEVCatalog{}, invalid("KEV catalog: missing catalogVersion")
	}
	if f.Vulnerabilities == nil {
		return KEVCatalog{}, invalid("KEV catalog: missing vulnerabilities")
	}
	cat := KEVCatalog{Version: f.CatalogVersion, Entries: make([]KEV, 0, len(f.Vulnerabilities))}
	var err error
	if cat.Released, err = parseTime(f.DateReleased); err != nil {
		return KEVCatalog{}, invalid("KEV catalog: dateReleased: %v", err)
	}
	if f.Count != nil && *f.Count != len(f.Vulnerabilities) {
		return KEVCatalog{}, invalid("KEV catalog: count says %d entries but %d are present (truncated?)", *f.Count, len(f.Vulnerabilities))
	}
	seen := make(map[string]int, len(f.Vulnerabilities))
	for i, v := range f.Vulnerabilities {
		k, err := convertKEV(v)
		if err != nil {
			if v.CVEID != "" {
				return KEVCatalog{}, invalid("KEV catalog entry %d (%s): %v", i, quoteShort(v.CVEID), err)
			}
			return KEVCatalog{}, invalid("KEV catalog entry %d: %v", i, err)
		}
		if j, dup := seen[k.CVE]; dup {
			return KEVCatalog{}, invalid("KEV catalog: %s is listed twice (entries %d and %d)", k.CVE, j, i)
		}
		seen[k.CVE] = i
		cat.Entries = append(cat.Entries, k)
	}
	return cat, nil
}

func convertKEV(v kevEntry) (KEV, error) {
	if !isCVE(v.CVEID) {
		return KEV{}, fmt.Errorf("cveID %s is not a CVE ID", quoteShort(v.CVEID))
	}
	k := KEV{
		CVE:            v.CVEID,
		VendorProject:  v.VendorProject,
		Product:        v.Product,
		Name:           v.VulnerabilityName,
		RequiredAction: v.RequiredAction,
		Notes:          v.Notes,
	}
	var err error
	if k.DateAdded, err = parseDate(v.DateAdded); err != nil {
		return KEV{}, fmt.Errorf("dateAdded: %v", err)
	}
	if k.DueDate, err = parseDate(v.DueDate); err != nil {
		return KEV{}, fmt.Errorf("dueDate: %v", err)
	}
	if v.KnownRansomwareCampaignUse != nil {
		switch *v.KnownRansomwareCampaignUse {
		case "Known":
			k.KnownRansomware = true
		case "Unknown":
		default:
			return KEV{}, fmt.Errorf("knownRansomwareCampaignUse %s is neither Known nor Unknown", quoteShort(*v.KnownRansomwareCampaignUse))
		}
	}
	// CWEs are informative; NVD's placeholders ("NVD-CWE-noinfo") are
	// dropped rather than costing a clinic its KEV update.
	for _, c := range v.CWEs {
		if isCWE(c) {
			k.CWEs = appendUnique(k.CWEs, c)
		}
	}
	return k, nil
}
