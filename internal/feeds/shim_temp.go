package feeds

// TEMPORARY: a stand-in for advisory.ParseAny until the real parsers land in
// internal/advisory. It recognises just enough of each format for the sync
// machinery's tests. Delete this file and switch parse.go's parseFile to
// advisory.ParseAny when they do.

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
)

func shimParseAny(name string, data []byte) (parsedFile, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return parsedFile{}, fmt.Errorf("empty file")
	}
	if trimmed[0] != '{' {
		return shimEPSS(data)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return parsedFile{}, fmt.Errorf("not valid JSON: %w", err)
	}
	switch {
	case probe["catalogVersion"] != nil:
		return shimKEV(data)
	case probe["format"] != nil && probe["vulnerabilities"] != nil:
		return shimNVD(data)
	case probe["document"] != nil:
		return shimCSAF(data)
	case probe["id"] != nil:
		return shimOSV(data)
	}
	return parsedFile{}, fmt.Errorf("unrecognised feed format")
}

func shimOSV(data []byte) (parsedFile, error) {
	var r struct {
		ID        string    `json:"id"`
		Aliases   []string  `json:"aliases"`
		Summary   string    `json:"summary"`
		Details   string    `json:"details"`
		Published time.Time `json:"published"`
		Modified  time.Time `json:"modified"`
		Affected  []struct {
			Package struct{ Ecosystem, Name string } `json:"package"`
			Ranges  []struct {
				Type   string              `json:"type"`
				Events []map[string]string `json:"events"`
			} `json:"ranges"`
			Versions []string `json:"versions"`
		} `json:"affected"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return parsedFile{}, fmt.Errorf("OSV record: %w", err)
	}
	if r.ID == "" || r.Modified.IsZero() {
		return parsedFile{}, fmt.Errorf("OSV record: missing id or modified")
	}
	a := advisory.Advisory{ID: r.ID, Source: "osv", Aliases: r.Aliases, Summary: r.Summary, Details: r.Details,
		Published: r.Published, Modified: r.Modified}
	for _, af := range r.Affected {
		out := advisory.Affected{Ecosystem: af.Package.Ecosystem, Package: af.Package.Name, Vulnerable: true, Versions: af.Versions}
		for _, rg := range af.Ranges {
			cur := advisory.Range{Type: rg.Type}
			for _, ev := range rg.Events {
				if v, ok := ev["introduced"]; ok {
					cur.Introduced = v
				}
				if v, ok := ev["fixed"]; ok {
					cur.Fixed = v
					out.Ranges = append(out.Ranges, cur)
					cur = advisory.Range{Type: rg.Type}
				}
			}
		}
		a.Affected = append(a.Affected, out)
	}
	return parsedFile{kind: OSV, advisories: []advisory.Advisory{a}}, nil
}

func shimKEV(data []byte) (parsedFile, error) {
	var c struct {
		CatalogVersion  string `json:"catalogVersion"`
		DateReleased    string `json:"dateReleased"`
		Vulnerabilities []struct {
			CVE       string `json:"cveID"`
			Vendor    string `json:"vendorProject"`
			Product   string `json:"product"`
			Name      string `json:"vulnerabilityName"`
			DateAdded string `json:"dateAdded"`
			DueDate   string `json:"dueDate"`
			Ransom    string `json:"knownRansomwareCampaignUse"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return parsedFile{}, fmt.Errorf("KEV catalog: %w", err)
	}
	cat := &advisory.KEVCatalog{Version: c.CatalogVersion}
	cat.Released, _ = time.Parse(time.RFC3339Nano, c.DateReleased)
	for i, v := range c.Vulnerabilities {
		added, err := time.Parse(time.DateOnly, v.DateAdded)
		if err != nil || !strings.HasPrefix(v.CVE, "CVE-") {
			return parsedFile{}, fmt.Errorf("KEV catalog: entry %d (%s): bad cveID or dateAdded", i, v.CVE)
		}
		due, _ := time.Parse(time.DateOnly, v.DueDate)
		cat.Entries = append(cat.Entries, advisory.KEV{CVE: v.CVE, VendorProject: v.Vendor, Product: v.Product,
			Name: v.Name, DateAdded: added, DueDate: due, KnownRansomware: v.Ransom == "Known"})
	}
	return parsedFile{kind: KEV, kev: cat}, nil
}

func shimNVD(data []byte) (parsedFile, error) {
	var p struct {
		Vulnerabilities []struct {
			CVE struct {
				ID           string `json:"id"`
				Published    string `json:"published"`
				LastModified string `json:"lastModified"`
				Descriptions []struct{ Lang, Value string }
			} `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return parsedFile{}, fmt.Errorf("NVD page: %w", err)
	}
	var out parsedFile
	out.kind = NVD
	for _, v := range p.Vulnerabilities {
		if v.CVE.ID == "" {
			return parsedFile{}, fmt.Errorf("NVD page: record without id")
		}
		a := advisory.Advisory{ID: v.CVE.ID, Source: "nvd"}
		a.Published, _ = time.Parse("2006-01-02T15:04:05.999", v.CVE.Published)
		a.Modified, _ = time.Parse("2006-01-02T15:04:05.999", v.CVE.LastModified)
		for _, d := range v.CVE.Descriptions {
			if d.Lang == "en" {
				a.Summary = d.Value
			}
		}
		out.advisories = append(out.advisories, a)
	}
	return out, nil
}

func shimCSAF(data []byte) (parsedFile, error) {
	var d struct {
		Document struct {
			Title    string `json:"title"`
			Tracking struct {
				ID string `json:"id"`
			} `json:"tracking"`
		} `json:"document"`
		Vulnerabilities []struct {
			CVE string `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return parsedFile{}, fmt.Errorf("CSAF document: %w", err)
	}
	out := parsedFile{kind: CSAF}
	for _, v := range d.Vulnerabilities {
		out.advisories = append(out.advisories, advisory.Advisory{ID: v.CVE, Source: "csaf",
			Document: &advisory.Document{Title: d.Document.Title, Tracking: d.Document.Tracking.ID}})
	}
	return out, nil
}

func shimEPSS(data []byte) (parsedFile, error) {
	set := &advisory.EPSSSet{}
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	if !bytes.HasPrefix(first, []byte("#")) {
		return parsedFile{}, fmt.Errorf("EPSS CSV: missing #model_version header")
	}
	for _, kv := range strings.Split(strings.TrimSpace(strings.TrimPrefix(string(first), "#")), ",") {
		k, v, _ := strings.Cut(kv, ":")
		switch k {
		case "model_version":
			set.ModelVersion = v
		case "score_date":
			set.ScoreDate, _ = time.Parse("2006-01-02T15:04:05-0700", v)
		}
	}
	r := csv.NewReader(bytes.NewReader(rest))
	r.FieldsPerRecord = 3
	head, err := r.Read()
	if err != nil || strings.Join(head, ",") != "cve,epss,percentile" {
		return parsedFile{}, fmt.Errorf("EPSS CSV: header is not cve,epss,percentile")
	}
	for {
		rec, err := r.Read()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			return parsedFile{}, fmt.Errorf("EPSS CSV: %w", err)
		}
		line, _ := r.FieldPos(0)
		s, err1 := strconv.ParseFloat(rec[1], 64)
		p, err2 := strconv.ParseFloat(rec[2], 64)
		if err1 != nil || err2 != nil || !strings.HasPrefix(rec[0], "CVE-") {
			return parsedFile{}, fmt.Errorf("EPSS CSV line %d: bad row %q", line+1, strings.Join(rec, ","))
		}
		set.Scores = append(set.Scores, advisory.EPSS{CVE: rec[0], Score: s, Percentile: p})
	}
	return parsedFile{kind: EPSS, epss: set}, nil
}
