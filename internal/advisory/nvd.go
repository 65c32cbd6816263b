package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/patchward/patchward/internal/errs"
)

// NVD CVE API 2.0 shapes (https://csrc.nist.gov/schema/nvd/api/2.0/cve_api_json_2.0.schema).
// Only what Patchward uses is declared; encoding/json ignores the rest so
// NVD can add fields without breaking a sync.
type nvdPage struct {
	Format          string         `json:"format"`
	Version         string         `json:"version"`
	TotalResults    *int           `json:"totalResults"`
	ResultsPerPage  *int           `json:"resultsPerPage"`
	Vulnerabilities []nvdVulnEntry `json:"vulnerabilities"`
}

type nvdVulnEntry struct {
	CVE *nvdCVE `json:"cve"`
}

type nvdCVE struct {
	ID             string          `json:"id"`
	Published      string          `json:"published"`
	LastModified   string          `json:"lastModified"`
	VulnStatus     string          `json:"vulnStatus"`
	Descriptions   []nvdLangString `json:"descriptions"`
	Metrics        nvdMetrics      `json:"metrics"`
	Weaknesses     []nvdWeakness   `json:"weaknesses"`
	Configurations []nvdConfig     `json:"configurations"`
	References     []nvdReference  `json:"references"`
}

type nvdLangString struct {
	Lang  string `json:"lang"`
	Value string `json:"value"`
}

type nvdMetrics struct {
	V40 []nvdMetric `json:"cvssMetricV40"`
	V31 []nvdMetric `json:"cvssMetricV31"`
	V30 []nvdMetric `json:"cvssMetricV30"`
	V2  []nvdMetric `json:"cvssMetricV2"`
}

type nvdMetric struct {
	Source   string `json:"source"`
	Type     string `json:"type"`
	CVSSData struct {
		Version      string   `json:"version"`
		VectorString string   `json:"vectorString"`
		BaseScore    *float64 `json:"baseScore"`
		BaseSeverity string   `json:"baseSeverity"`
	} `json:"cvssData"`
	// v2 keeps its severity beside cvssData rather than in it.
	BaseSeverity string `json:"baseSeverity"`
}

type nvdWeakness struct {
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Description []nvdLangString `json:"description"`
}

type nvdConfig struct {
	Operator string    `json:"operator"`
	Negate   bool      `json:"negate"`
	Nodes    []nvdNode `json:"nodes"`
}

type nvdNode struct {
	Operator string        `json:"operator"`
	Negate   bool          `json:"negate"`
	CPEMatch []nvdCPEMatch `json:"cpeMatch"`
}

type nvdCPEMatch struct {
	Vulnerable            bool   `json:"vulnerable"`
	Criteria              string `json:"criteria"`
	MatchCriteriaID       string `json:"matchCriteriaId"`
	VersionStartIncluding string `json:"versionStartIncluding"`
	VersionStartExcluding string `json:"versionStartExcluding"`
	VersionEndIncluding   string `json:"versionEndIncluding"`
	VersionEndExcluding   string `json:"versionEndExcluding"`
}

type nvdReference struct {
	URL string `json:"url"`
}

// ParseNVD parses an NVD CVE API 2.0 response
// ({"vulnerabilities":[{"cve":{...}}], ...}), a single {"cve":{...}}
// entry, or a bare CVE object, into one Advisory per CVE.
//
// Published CVSS scores are kept exactly as NVD and the CNAs published
// them; a score is computed only where one is missing. Every vector is
// still parsed, so a corrupt vector is caught at import. Configurations
// become one Affected per CPE match with the version bounds as a "CPE"
// Range; an exact-version CPE without bounds lists that version instead.
// Configuration nodes' AND/OR structure is flattened: platform CPEs in an
// AND node (e.g. "runs on Windows") come out with Vulnerable false.
func ParseNVD(r io.Reader) ([]Advisory, error) {
	b, err := readLimited(r, MaxDocumentSize, "NVD input")
	if err != nil {
		return nil, err
	}
	return parseNVDBytes(b)
}

func parseNVDBytes(b []byte) ([]Advisory, error) {
	if firstNonSpace(b) != '{' {
		return nil, invalid("NVD input is not a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, invalid("NVD input: %s", jsonProblem(err))
	}
	var cves []*nvdCVE
	switch {
	case top["vulnerabilities"] != nil:
		var page nvdPage
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, invalid("NVD response: %s", jsonProblem(err))
		}
		if page.Format != "" && page.Format != "NVD_CVE" {
			return nil, invalid("NVD response: format %s is not NVD_CVE", quoteShort(page.Format))
		}
		if page.Version != "" && page.Version != "2.0" {
			return nil, invalid("NVD response: API version %s is not 2.0", quoteShort(page.Version))
		}
		for i, e := range page.Vulnerabilities {
			if e.CVE == nil {
				return nil, invalid("NVD response: vulnerabilities[%d] has no cve object", i)
			}
			cves = append(cves, e.CVE)
		}
	case top["cve"] != nil:
		var e nvdVulnEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, invalid("NVD CVE: %s", jsonProblem(err))
		}
		cves = append(cves, e.CVE)
	case top["id"] != nil:
		var c nvdCVE
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, invalid("NVD CVE: %s", jsonProblem(err))
		}
		cves = append(cves, &c)
	default:
		return nil, invalid("NVD input has neither vulnerabilities, cve nor id")
	}
	out := make([]Advisory, 0, len(cves))
	for i, c := range cves {
		a, err := convertNVD(c)
		if err != nil {
			if c != nil && c.ID != "" {
				return nil, invalid("NVD %s: %v", quoteShort(c.ID), err)
			}
			return nil, invalid("NVD vulnerabilities[%d]: %v", i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func convertNVD(c *nvdCVE) (Advisory, error) {
	if c == nil {
		return Advisory{}, errors.New("cve is null")
	}
	if !isCVE(c.ID) {
		return Advisory{}, fmt.Errorf("id %s is not a CVE ID", quoteShort(c.ID))
	}
	a := Advisory{ID: c.ID, Source: SourceNVD}
	var err error
	if a.Published, err = parseTime(c.Published); err != nil {
		return Advisory{}, fmt.Errorf("published: %v", err)
	}
	if a.Modified, err = parseTime(c.LastModified); err != nil {
		return Advisory{}, fmt.Errorf("lastModified: %v", err)
	}
	// A rejected CVE is NVD's withdrawal: keep it (so a finding can be
	// closed with a reason) but mark it.
	if c.VulnStatus == "Rejected" {
		t := a.Modified
		a.Withdrawn = &t
	}
	for _, d := range c.Descriptions {
		if d.Lang == "en" {
			a.Details = d.Value
			break
		}
	}
	for _, group := range []struct {
		metrics []nvdMetric
		prefix  string
	}{{c.Metrics.V40, "CVSS:4.0/"}, {c.Metrics.V31, "CVSS:3.1/"}, {c.Metrics.V30, "CVSS:3.0/"}, {c.Metrics.V2, ""}} {
		for _, m := range group.metrics {
			s, err := nvdSeverity(m, group.prefix)
			if err != nil {
				return Advisory{}, err
			}
			if !hasSeverity(a.Severity, s) {
				a.Severity = append(a.Severity, s)
			}
		}
	}
	for _, w := range c.Weaknesses {
		for _, d := range w.Description {
			// NVD-CWE-Other and NVD-CWE-noinfo say "no CWE": skip them.
			if isCWE(d.Value) {
				a.CWEs = appendUnique(a.CWEs, d.Value)
			}
		}
	}
	for _, ref := range c.References {
		a.References = appendUnique(a.References, ref.URL)
	}
	for ci, cfg := range c.Configurations {
		for ni, node := range cfg.Nodes {
			for mi, m := range node.CPEMatch {
				af, err := nvdAffected(m)
				if err != nil {
					return Advisory{}, fmt.Errorf("configurations[%d].nodes[%d].cpeMatch[%d]: %v", ci, ni, mi, err)
				}
				if !hasAffected(a.Affected, af) {
					a.Affected = append(a.Affected, af)
				}
			}
		}
	}
	return a, nil
}

// nvdSeverity keeps the published score and rating; it computes them only
// when NVD left them out. The vector must parse either way.
func nvdSeverity(m nvdMetric, prefix string) (Severity, error) {
	vec := strings.TrimSpace(m.CVSSData.VectorString)
	if vec == "" {
		return Severity{}, errors.New("CVSS metric without vectorString")
	}
	if prefix != "" && !strings.HasPrefix(vec, prefix) {
		return Severity{}, fmt.Errorf("CVSS vector %s under the metric for %s", quoteShort(vec), strings.TrimSuffix(prefix, "/"))
	}
	typ, score, rating, err := ScoreVector(vec)
	if err != nil {
		return Severity{}, errors.New(errs.Public(err))
	}
	if prefix == "" && typ != CVSSv2 {
		return Severity{}, fmt.Errorf("CVSS vector %s under cvssMetricV2", quoteShort(vec))
	}
	s := Severity{Type: typ, Vector: vec, Score: score, Rating: rating, Source: m.Source}
	if p := m.CVSSData.BaseScore; p != nil {
		if *p < 0 || *p > 10 {
			return Severity{}, fmt.Errorf("CVSS base score %v out of range", *p)
		}
		s.Score = *p
		s.Rating = ratingFor(typ, *p)
	}
	if sev := firstNonEmpty(m.CVSSData.BaseSeverity, m.BaseSeverity); sev != "" {
		s.Rating = strings.ToUpper(sev)
	}
	return s, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func nvdAffected(m nvdCPEMatch) (Affected, error) {
	parts, err := splitCPE23(m.Criteria)
	if err != nil {
		return Affected{}, err
	}
	af := Affected{
		Ecosystem:  EcosystemCPE,
		CPE:        m.Criteria,
		Vendor:     cpeUnescape(parts[3]),
		Package:    cpeUnescape(parts[4]),
		Vulnerable: m.Vulnerable,
	}
	if m.VersionStartIncluding != "" && m.VersionStartExcluding != "" {
		return Affected{}, errors.New("both versionStartIncluding and versionStartExcluding")
	}
	if m.VersionEndIncluding != "" && m.VersionEndExcluding != "" {
		return Affected{}, errors.New("both versionEndIncluding and versionEndExcluding")
	}
	if m.VersionStartIncluding != "" || m.VersionStartExcluding != "" || m.VersionEndIncluding != "" || m.VersionEndExcluding != "" {
		af.Ranges = []Range{{
			Type:                EcosystemCPE,
			Introduced:          firstNonEmpty(m.VersionStartIncluding, m.VersionStartExcluding),
			IntroducedExclusive: m.VersionStartExcluding != "",
			Fixed:               m.VersionEndExcluding,
			LastAffected:        m.VersionEndIncluding,
		}}
	} else if v := parts[5]; v != "*" && v != "-" && v != "" {
		// An exact-version match (cpe:2.3:a:tukaani:xz:5.6.0:…) names one
		// version; "-" means "no version" and "*" any.
		af.Versions = []string{cpeUnescape(v)}
	}
	return af, nil
}

func hasAffected(list []Affected, af Affected) bool {
	for _, x := range list {
		if x.CPE == af.CPE && x.Vulnerable == af.Vulnerable && rangesEqual(x.Ranges, af.Ranges) {
			return true
		}
	}
	return false
}

func rangesEqual(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// splitCPE23 splits a CPE 2.3 formatted string into its 13 components
// ("cpe", "2.3", part, vendor, product, version, …), honouring backslash
// escapes so that "1.0\:beta" stays one component.
func splitCPE23(s string) ([]string, error) {
	if !strings.HasPrefix(s, "cpe:2.3:") {
		return nil, fmt.Errorf("criteria %s is not a CPE 2.3 name", quoteShort(s))
	}
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ':':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	parts = append(parts, s[start:])
	if len(parts) != 13 {
		return nil, fmt.Errorf("criteria %s has %d components; CPE 2.3 has 13", quoteShort(s), len(parts))
	}
	switch parts[2] {
	case "a", "o", "h", "*", "-":
	default:
		return nil, fmt.Errorf("criteria %s: part %s is not a, o or h", quoteShort(s), quoteShort(parts[2]))
	}
	return parts, nil
}

// cpeUnescape removes CPE 2.3 formatted-string quoting ("1.2\(3\)" is
// version "1.2(3)"), so versions compare as the vendor writes them.
func cpeUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
