package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	packageurl "github.com/package-url/packageurl-go"
)

// CSAF 2.0 (https://docs.oasis-open.org/csaf/csaf/v2.0/csaf-v2.0.html)
// read with encoding/json into the structs below rather than with
// github.com/gocsaf/csaf/v3: v3.7.0 models
// product_identification_helper.hashes as an object where the schema (and
// CISA's own icsa-24-235-03) has an array, so it rejects valid advisories.
// Only the fields Patchward uses are declared; unknown fields are ignored
// so that vendor extensions do not break an import.
type csafDoc struct {
	Document        *csafDocument `json:"document"`
	ProductTree     *csafTree     `json:"product_tree"`
	Vulnerabilities []csafVuln    `json:"vulnerabilities"`
}

type csafDocument struct {
	Category    string `json:"category"`
	CSAFVersion string `json:"csaf_version"`
	Title       string `json:"title"`
	Publisher   struct {
		Name     string `json:"name"`
		Category string `json:"category"`
	} `json:"publisher"`
	Tracking struct {
		ID                 string `json:"id"`
		CurrentReleaseDate string `json:"current_release_date"`
		InitialReleaseDate string `json:"initial_release_date"`
		Version            string `json:"version"`
	} `json:"tracking"`
	References []csafReference `json:"references"`
}

type csafReference struct {
	URL string `json:"url"`
}

type csafTree struct {
	Branches         []csafBranch       `json:"branches"`
	FullProductNames []csafProduct      `json:"full_product_names"`
	Relationships    []csafRelationship `json:"relationships"`
	ProductGroups    []csafGroup        `json:"product_groups"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Branches []csafBranch `json:"branches"`
	Product  *csafProduct `json:"product"`
}

type csafProduct struct {
	Name      string      `json:"name"`
	ProductID string      `json:"product_id"`
	Helper    *csafHelper `json:"product_identification_helper"`
}

type csafHelper struct {
	CPE  string `json:"cpe"`
	PURL string `json:"purl"`
}

type csafRelationship struct {
	Category         string      `json:"category"`
	FullProductName  csafProduct `json:"full_product_name"`
	ProductReference string      `json:"product_reference"`
	RelatesTo        string      `json:"relates_to_product_reference"`
}

type csafGroup struct {
	GroupID    string   `json:"group_id"`
	ProductIDs []string `json:"product_ids"`
}

type csafVuln struct {
	CVE string `json:"cve"`
	IDs []struct {
		SystemName string `json:"system_name"`
		Text       string `json:"text"`
	} `json:"ids"`
	Title string `json:"title"`
	CWE   *struct {
		ID string `json:"id"`
	} `json:"cwe"`
	Notes []struct {
		Category string `json:"category"`
		Text     string `json:"text"`
	} `json:"notes"`
	ProductStatus *csafStatus       `json:"product_status"`
	Flags         []csafProductRefs `json:"flags"`
	Threats       []csafProductRefs `json:"threats"`
	Remediations  []csafProductRefs `json:"remediations"`
	Scores        []struct {
		CVSSv3   *csafCVSS `json:"cvss_v3"`
		CVSSv2   *csafCVSS `json:"cvss_v2"`
		Products []string  `json:"products"`
	} `json:"scores"`
	References  []csafReference `json:"references"`
	ReleaseDate string          `json:"release_date"`
}

// csafProductRefs is the shape flags, threats and remediations share: a
// statement about the products and product groups it names.
type csafProductRefs struct {
	Label      string   `json:"label"`    // flags
	Category   string   `json:"category"` // threats, remediations
	Details    string   `json:"details"`
	URL        string   `json:"url"`
	ProductIDs []string `json:"product_ids"`
	GroupIDs   []string `json:"group_ids"`
}

type csafStatus struct {
	FirstAffected      []string `json:"first_affected"`
	FirstFixed         []string `json:"first_fixed"`
	Fixed              []string `json:"fixed"`
	KnownAffected      []string `json:"known_affected"`
	KnownNotAffected   []string `json:"known_not_affected"`
	LastAffected       []string `json:"last_affected"`
	Recommended        []string `json:"recommended"`
	UnderInvestigation []string `json:"under_investigation"`
}

type csafCVSS struct {
	Version      string   `json:"version"`
	VectorString string   `json:"vectorString"`
	BaseScore    *float64 `json:"baseScore"`
	BaseSeverity string   `json:"baseSeverity"`
}

// csafProductInfo is what Patchward knows of one product ID once branches
// and relationships are resolved.
type csafProductInfo struct {
	name, vendor, pkg, cpe, purl string
	version, versionRange        string
}

// CSAF vocabularies (CSAF 2.0 sections 3.2.3.5, 3.2.3.12, 3.2.3.14).
var (
	csafFlagLabels = []string{"component_not_present", "inline_mitigations_already_exist",
		"vulnerable_code_cannot_be_controlled_by_adversary", "vulnerable_code_not_in_execute_path",
		"vulnerable_code_not_present"}
	csafRemediationCategories = []string{"mitigation", "no_fix_planned", "none_available", "vendor_fix", "workaround"}
	csafThreatCategories      = []string{"exploit_status", "impact", "target_set"}
)

// ParseCSAF parses a CSAF 2.0 document — a vendor security advisory, a CISA
// ICS medical advisory (ICSMA) or a VEX document — into one Advisory per
// vulnerability. The ID is the CVE, else the first ids[] entry, else the
// tracking ID with the vulnerability's position; the document's tracking
// ID is always among the aliases so the advisory can be found by it.
//
// Each product named in product_status becomes an Affected with the
// normalised VEX status (first_/last_affected count as known_affected,
// first_fixed as fixed), resolved through branches and relationships to
// its name, vendor, product, version or version range, CPE and PURL. A
// flag's label becomes the Justification of the products it names that
// are known_not_affected, an "impact" threat their Impact statement, and
// remediations are attached to every product they name.
//
// A reference to an undefined product or group, a vocabulary value the
// standard does not have, or a score whose vector does not parse makes
// the whole document invalid: a VEX statement that cannot be tied to a
// product must not silently vanish.
func ParseCSAF(r io.Reader) ([]Advisory, error) {
	b, err := readLimited(r, MaxDocumentSize, "CSAF document")
	if err != nil {
		return nil, err
	}
	return parseCSAFBytes(b)
}

func parseCSAFBytes(b []byte) ([]Advisory, error) {
	if firstNonSpace(b) != '{' {
		return nil, invalid("CSAF document is not a JSON object")
	}
	var d csafDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, invalid("CSAF document: %s", jsonProblem(err))
	}
	out, err := convertCSAF(&d)
	if err != nil {
		if d.Document != nil && d.Document.Tracking.ID != "" {
			return nil, invalid("CSAF %s: %v", quoteShort(d.Document.Tracking.ID), err)
		}
		return nil, invalid("CSAF document: %v", err)
	}
	return out, nil
}

func convertCSAF(d *csafDoc) ([]Advisory, error) {
	doc := d.Document
	if doc == nil {
		return nil, errors.New("missing document")
	}
	switch {
	case doc.CSAFVersion != "2.0":
		return nil, fmt.Errorf("csaf_version %s is not 2.0", quoteShort(doc.CSAFVersion))
	case strings.TrimSpace(doc.Category) == "":
		return nil, errors.New("missing document.category")
	case strings.TrimSpace(doc.Tracking.ID) == "":
		return nil, errors.New("missing document.tracking.id")
	case strings.TrimSpace(doc.Publisher.Name) == "":
		return nil, errors.New("missing document.publisher.name")
	case strings.TrimSpace(doc.Title) == "":
		return nil, errors.New("missing document.title")
	}
	initial, err := parseTime(doc.Tracking.InitialReleaseDate)
	if err != nil {
		return nil, fmt.Errorf("tracking.initial_release_date: %v", err)
	}
	current, err := parseTime(doc.Tracking.CurrentReleaseDate)
	if err != nil {
		return nil, fmt.Errorf("tracking.current_release_date: %v", err)
	}
	products, groups, err := csafProducts(d.ProductTree)
	if err != nil {
		return nil, err
	}
	document := &Document{Title: doc.Title, Tracking: doc.Tracking.ID, Publisher: doc.Publisher.Name, Version: doc.Tracking.Version}
	var docRefs []string
	for _, ref := range doc.References {
		docRefs = appendUnique(docRefs, ref.URL)
	}

	out := make([]Advisory, 0, len(d.Vulnerabilities))
	for i := range d.Vulnerabilities {
		v := &d.Vulnerabilities[i]
		a, err := convertCSAFVuln(v, i, doc, document, products, groups)
		if err != nil {
			name := v.CVE
			if name == "" && len(v.IDs) > 0 {
				name = v.IDs[0].Text
			}
			if name != "" {
				return nil, fmt.Errorf("vulnerabilities[%d] (%s): %v", i, quoteShort(name), err)
			}
			return nil, fmt.Errorf("vulnerabilities[%d]: %v", i, err)
		}
		if a.Published.IsZero() {
			a.Published = initial
		}
		a.Modified = current
		a.References = appendUnique(a.References, docRefs...)
		out = append(out, a)
	}
	return out, nil
}

func convertCSAFVuln(v *csafVuln, i int, doc *csafDocument, document *Document, products map[string]csafProductInfo, groups map[string][]string) (Advisory, error) {
	a := Advisory{Source: SourceCSAF, Document: document}
	switch {
	case v.CVE != "":
		if !isCVE(v.CVE) {
			return Advisory{}, fmt.Errorf("cve %s is not a CVE ID", quoteShort(v.CVE))
		}
		a.ID = v.CVE
	case len(v.IDs) > 0 && strings.TrimSpace(v.IDs[0].Text) != "":
		a.ID = v.IDs[0].Text
	default:
		// CSAF allows a vulnerability with neither; the position in the
		// document is then its only stable name.
		a.ID = fmt.Sprintf("%s#%d", doc.Tracking.ID, i+1)
	}
	for _, id := range v.IDs {
		if id.Text != a.ID {
			a.Aliases = appendUnique(a.Aliases, id.Text)
		}
	}
	if a.ID != doc.Tracking.ID {
		a.Aliases = appendUnique(a.Aliases, doc.Tracking.ID)
	}
	a.Summary = v.Title
	for _, n := range v.Notes {
		switch n.Category {
		case "summary":
			if a.Summary == "" {
				a.Summary = n.Text
			}
		case "description":
			if a.Details == "" {
				a.Details = n.Text
			}
		}
	}
	if v.ReleaseDate != "" {
		t, err := parseTime(v.ReleaseDate)
		if err != nil {
			return Advisory{}, fmt.Errorf("release_date: %v", err)
		}
		a.Published = t
	}
	if v.CWE != nil && isCWE(v.CWE.ID) {
		a.CWEs = []string{v.CWE.ID}
	}
	for _, ref := range v.References {
		a.References = appendUnique(a.References, ref.URL)
	}

	// expand resolves product and group references to product IDs and
	// refuses references to nothing (CSAF mandatory tests 6.1.1, 6.1.4).
	expand := func(what string, ids, gids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			if _, ok := products[id]; !ok {
				return nil, fmt.Errorf("%s names undefined product %s", what, quoteShort(id))
			}
			out = appendUnique(out, id)
		}
		for _, g := range gids {
			members, ok := groups[g]
			if !ok {
				return nil, fmt.Errorf("%s names undefined product group %s", what, quoteShort(g))
			}
			out = appendUnique(out, members...)
		}
		return out, nil
	}

	for si, s := range v.Scores {
		if _, err := expand(fmt.Sprintf("scores[%d]", si), s.Products, nil); err != nil {
			return Advisory{}, err
		}
		for _, c := range []*csafCVSS{s.CVSSv3, s.CVSSv2} {
			if c == nil {
				continue
			}
			sev, err := csafSeverity(c, doc.Publisher.Name)
			if err != nil {
				return Advisory{}, fmt.Errorf("scores[%d]: %v", si, err)
			}
			if !hasSeverity(a.Severity, sev) {
				a.Severity = append(a.Severity, sev)
			}
		}
	}

	justification := map[string]string{}
	for fi, f := range v.Flags {
		if !slices.Contains(csafFlagLabels, f.Label) {
			return Advisory{}, fmt.Errorf("flags[%d]: label %s is not a CSAF 2.0 flag label", fi, quoteShort(f.Label))
		}
		ids, err := expand(fmt.Sprintf("flags[%d]", fi), f.ProductIDs, f.GroupIDs)
		if err != nil {
			return Advisory{}, err
		}
		for _, id := range ids {
			if justification[id] == "" {
				justification[id] = f.Label
			}
		}
	}
	impact := map[string]string{}
	for ti, t := range v.Threats {
		if !slices.Contains(csafThreatCategories, t.Category) {
			return Advisory{}, fmt.Errorf("threats[%d]: category %s is not a CSAF 2.0 threat category", ti, quoteShort(t.Category))
		}
		ids, err := expand(fmt.Sprintf("threats[%d]", ti), t.ProductIDs, t.GroupIDs)
		if err != nil {
			return Advisory{}, err
		}
		if t.Category != "impact" {
			continue
		}
		for _, id := range ids {
			if impact[id] == "" {
				impact[id] = t.Details
			} else if !strings.Contains(impact[id], t.Details) {
				impact[id] += "\n" + t.Details
			}
		}
	}
	remediations := map[string][]Remediation{}
	for ri, r := range v.Remediations {
		if !slices.Contains(csafRemediationCategories, r.Category) {
			return Advisory{}, fmt.Errorf("remediations[%d]: category %s is not a CSAF 2.0 remediation category", ri, quoteShort(r.Category))
		}
		ids, err := expand(fmt.Sprintf("remediations[%d]", ri), r.ProductIDs, r.GroupIDs)
		if err != nil {
			return Advisory{}, err
		}
		for _, id := range ids {
			remediations[id] = append(remediations[id], Remediation{Category: r.Category, Details: r.Details, URL: r.URL})
		}
	}

	if st := v.ProductStatus; st != nil {
		for _, group := range []struct {
			name   string
			ids    []string
			status VEXStatus
		}{
			{"known_affected", st.KnownAffected, StatusKnownAffected},
			{"first_affected", st.FirstAffected, StatusKnownAffected},
			{"last_affected", st.LastAffected, StatusKnownAffected},
			{"known_not_affected", st.KnownNotAffected, StatusKnownNotAffected},
			{"fixed", st.Fixed, StatusFixed},
			{"first_fixed", st.FirstFixed, StatusFixed},
			{"under_investigation", st.UnderInvestigation, StatusUnderInvestigation},
			{"recommended", st.Recommended, StatusRecommended},
		} {
			ids, err := expand("product_status."+group.name, group.ids, nil)
			if err != nil {
				return Advisory{}, err
			}
			for _, id := range ids {
				if hasProductStatus(a.Affected, id, group.status) {
					continue
				}
				af := csafAffected(id, products[id], group.status)
				if group.status == StatusKnownNotAffected {
					af.Justification = justification[id]
				}
				af.Impact = impact[id]
				af.Remediations = remediations[id]
				a.Affected = append(a.Affected, af)
			}
		}
	}
	return a, nil
}

func hasProductStatus(list []Affected, id string, st VEXStatus) bool {
	for _, af := range list {
		if af.ProductID == id && af.Status == st {
			return true
		}
	}
	return false
}

// csafAffected builds the Affected of one product with one status.
// Vulnerable is true only for known_affected, the one status that says
// the product is exposed.
func csafAffected(id string, p csafProductInfo, st VEXStatus) Affected {
	af := Affected{
		Ecosystem:   EcosystemCSAF,
		Package:     p.pkg,
		Vendor:      p.vendor,
		PURL:        p.purl,
		CPE:         p.cpe,
		Vulnerable:  st == StatusKnownAffected,
		ProductID:   id,
		ProductName: p.name,
		Status:      st,
	}
	if af.Package == "" && af.PURL != "" {
		// Red Hat-style trees name an RPM only by its NEVRA under an
		// architecture branch; the PURL carries the package name that
		// inventories match on.
		if pu, err := packageurl.FromString(af.PURL); err == nil {
			af.Package = pu.Name
		}
	}
	if p.version != "" {
		af.Versions = []string{p.version}
	}
	if p.versionRange != "" {
		if r, ok := parseCSAFVersionRange(p.versionRange); ok {
			af.Ranges = []Range{r}
		} else if vs, ok := csafVersionList(p.versionRange); ok {
			af.Versions = vs
		}
	}
	return af
}

// csafVersionList reads a range written as a list of versions ("5.0|5.1",
// the "vls" style CSAF also mentions): tokens without spaces or operators.
func csafVersionList(s string) ([]string, bool) {
	if !strings.Contains(s, "|") {
		return nil, false
	}
	var out []string
	for _, v := range strings.Split(s, "|") {
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsAny(v, " <>=*") {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// csafSeverity keeps the published base score and rating, computing them
// only where missing; the vector must parse either way.
func csafSeverity(c *csafCVSS, publisher string) (Severity, error) {
	vec := strings.TrimSpace(c.VectorString)
	if vec == "" {
		return Severity{}, errors.New("CVSS score without vectorString")
	}
	typ, score, rating, err := ScoreVector(vec)
	if err != nil {
		return Severity{}, err
	}
	s := Severity{Type: typ, Vector: vec, Score: score, Rating: rating, Source: publisher}
	if c.BaseScore != nil {
		if *c.BaseScore < 0 || *c.BaseScore > 10 {
			return Severity{}, fmt.Errorf("CVSS base score %v out of range", *c.BaseScore)
		}
		s.Score = *c.BaseScore
		s.Rating = ratingFor(typ, *c.BaseScore)
	}
	if c.BaseSeverity != "" {
		s.Rating = strings.ToUpper(c.BaseSeverity)
	}
	return s, nil
}

// csafProducts resolves every product ID in the tree: branch products
// inherit vendor, product name and version from the branches above them,
// and relationship products ("X as a component of Y") take the
// component's identity with the platform's CPE or PURL where the
// component has none. It also returns the product groups.
func csafProducts(t *csafTree) (map[string]csafProductInfo, map[string][]string, error) {
	products := map[string]csafProductInfo{}
	groups := map[string][]string{}
	if t == nil {
		return products, groups, nil
	}
	define := func(p csafProduct, info csafProductInfo) error {
		if strings.TrimSpace(p.ProductID) == "" {
			return fmt.Errorf("product_tree: product %s has no product_id", quoteShort(p.Name))
		}
		if _, dup := products[p.ProductID]; dup {
			// CSAF mandatory test 6.1.2: a product ID is defined once.
			return fmt.Errorf("product_tree: product_id %s defined twice", quoteShort(p.ProductID))
		}
		info.name = p.Name
		if p.Helper != nil {
			info.cpe = firstNonEmpty(p.Helper.CPE, info.cpe)
			info.purl = firstNonEmpty(p.Helper.PURL, info.purl)
		}
		products[p.ProductID] = info
		return nil
	}
	var walk func(bs []csafBranch, ctx csafProductInfo, depth int) error
	walk = func(bs []csafBranch, ctx csafProductInfo, depth int) error {
		// The schema allows 30 levels; deeper is hostile input.
		if depth > 30 {
			return errors.New("product_tree: branches nested deeper than 30 levels")
		}
		for _, b := range bs {
			c := ctx
			switch b.Category {
			case "vendor":
				c.vendor = b.Name
			case "product_name":
				c.pkg = b.Name
			case "product_family":
				if c.pkg == "" {
					c.pkg = b.Name
				}
			case "product_version":
				c.version = b.Name
			case "product_version_range":
				c.versionRange = b.Name
			}
			if b.Product != nil {
				if err := define(*b.Product, c); err != nil {
					return err
				}
			}
			if err := walk(b.Branches, c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(t.Branches, csafProductInfo{}, 0); err != nil {
		return nil, nil, err
	}
	for _, p := range t.FullProductNames {
		if err := define(p, csafProductInfo{}); err != nil {
			return nil, nil, err
		}
	}
	// Relationships may build on each other in any order: resolve in
	// passes until nothing changes.
	pending := t.Relationships
	for len(pending) > 0 {
		var next []csafRelationship
		for _, r := range pending {
			comp, ok1 := products[r.ProductReference]
			plat, ok2 := products[r.RelatesTo]
			if !ok1 || !ok2 {
				next = append(next, r)
				continue
			}
			info := comp
			info.cpe = firstNonEmpty(comp.cpe, plat.cpe)
			info.purl = firstNonEmpty(comp.purl, plat.purl)
			if err := define(r.FullProductName, info); err != nil {
				return nil, nil, err
			}
		}
		if len(next) == len(pending) {
			r := next[0]
			missing := r.ProductReference
			if _, ok := products[missing]; ok {
				missing = r.RelatesTo
			}
			return nil, nil, fmt.Errorf("product_tree: relationship for %s refers to undefined product %s", quoteShort(r.FullProductName.ProductID), quoteShort(missing))
		}
		pending = next
	}
	for _, g := range t.ProductGroups {
		for _, id := range g.ProductIDs {
			if _, ok := products[id]; !ok {
				return nil, nil, fmt.Errorf("product_tree: group %s names undefined product %s", quoteShort(g.GroupID), quoteShort(id))
			}
		}
		groups[g.GroupID] = g.ProductIDs
	}
	return products, groups, nil
}

// parseCSAFVersionRange reads the version bounds out of a
// product_version_range branch name. CSAF recommends "vers:" URIs, but
// real advisories also write "<2024.2", "<= 3.07.11", ">= R5.01.00 |
// <= R6.06.00" or "All versions < V4.33". Those shapes become a Range of
// type "CSAF" (bounds in the vendor's own version scheme); anything else
// ("16 <= 20", "All versions with Fortinet NGFW") reports false, and the
// product then matches by name only.
func parseCSAFVersionRange(s string) (Range, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 5 && strings.EqualFold(s[:5], "vers:") {
		_, cons, ok := strings.Cut(s[5:], "/")
		if !ok {
			return Range{}, false
		}
		s = strings.TrimSpace(cons)
	}
	lower := strings.ToLower(s)
	for _, p := range []string{"all firmware versions", "all software versions", "all versions", "all"} {
		if strings.HasPrefix(lower, p) {
			s = strings.TrimSpace(s[len(p):])
			break
		}
	}
	r := Range{Type: EcosystemCSAF}
	if s == "" || s == "*" {
		r.Introduced = "0"
		return r, true
	}
	for s != "" {
		s = strings.TrimLeft(s, " |,")
		if l := strings.ToLower(s); strings.HasPrefix(l, "and ") {
			s = strings.TrimSpace(s[4:])
		}
		if s == "" {
			break
		}
		op := ""
		for _, o := range []string{">=", "<=", ">", "<"} {
			if strings.HasPrefix(s, o) {
				op = o
				break
			}
		}
		if op == "" {
			return Range{}, false
		}
		s = s[len(op):]
		end := strings.IndexAny(s, "<>=|,")
		if end < 0 {
			end = len(s)
		}
		ver := s[:end]
		if i := strings.Index(strings.ToLower(ver), " and "); i >= 0 {
			ver, end = ver[:i], i
		}
		ver = strings.TrimSpace(ver)
		s = s[end:]
		if ver == "" {
			return Range{}, false
		}
		if prefix, wild := wildcardPrefix(ver); wild && prefix == "" {
			if op != "<=" {
				return Range{}, false
			}
			continue // "<= x.x": every version
		} else if wild {
			// CISA writes a release line as "12.2.x.x": a bound on every
			// version of it, not a version to compare letter by letter.
			switch op {
			case "<=":
				// Up to and including every 12.2.*: below 12.3, which
				// is a limit, not a fix.
				if r.Fixed != "" || r.LastAffected != "" || r.Limit != "" {
					return Range{}, false
				}
				next, ok := nextRelease(prefix)
				if !ok {
					return Range{}, false
				}
				r.Limit = next
				continue
			case "<":
				if r.Fixed != "" || r.LastAffected != "" || r.Limit != "" {
					return Range{}, false
				}
				r.Limit = prefix
				continue
			case ">=":
				ver = prefix
			case ">":
				next, ok := nextRelease(prefix)
				if !ok {
					return Range{}, false
				}
				ver, op = next, ">="
			}
		}
		switch op {
		case ">=", ">":
			if r.Introduced != "" {
				return Range{}, false
			}
			r.Introduced, r.IntroducedExclusive = ver, op == ">"
		case "<":
			if r.Fixed != "" || r.LastAffected != "" {
				return Range{}, false
			}
			r.Fixed = ver
		case "<=":
			if r.Fixed != "" || r.LastAffected != "" || r.Limit != "" {
				return Range{}, false
			}
			r.LastAffected = ver
		}
	}
	if r.Introduced == "" {
		r.Introduced = "0"
	}
	return r, true
}

// wildcardPrefix splits a release-line version such as "12.2.x.x" or
// "3.*" into its fixed prefix ("12.2", "3"); wild is false unless every
// segment after the prefix is a wildcard and the prefix is all digits. An
// empty prefix ("x.x") is every version.
func wildcardPrefix(v string) (prefix string, wild bool) {
	parts := strings.Split(v, ".")
	i := 0
	for i < len(parts) && parts[i] != "x" && parts[i] != "X" && parts[i] != "*" {
		if parts[i] == "" || strings.Trim(parts[i], "0123456789") != "" {
			return "", false
		}
		i++
	}
	if i == len(parts) {
		return "", false
	}
	for _, p := range parts[i:] {
		if p != "x" && p != "X" && p != "*" {
			return "", false
		}
	}
	return strings.Join(parts[:i], "."), true
}

// nextRelease returns the release line after prefix: "12.2" → "12.3".
func nextRelease(prefix string) (string, bool) {
	parts := strings.Split(prefix, ".")
	n, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		return "", false
	}
	parts[len(parts)-1] = strconv.Itoa(n + 1)
	return strings.Join(parts, "."), true
}
