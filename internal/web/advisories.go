package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/feeds"
)

// advisoriesPageSize is how many search results one page shows.
const advisoriesPageSize = 50

type advisoriesView struct {
	Q, Package, Ecosystem string
	// Searched is false until the user asks for something: listing every
	// advisory of every feed helps nobody and costs a full count.
	Searched         bool
	Rows             []advisoryRow
	Total            int
	First, Last      int
	PrevURL, NextURL string
	Error            string
}

type advisoryRow struct {
	Feed    string
	ID      string
	Source  string
	Summary string
	Aliases []string
	// MoreAliases counts aliases left out of the row to keep it short.
	MoreAliases int
	Severity    *severityView // the highest score, if any
	Published   time.Time
	Modified    time.Time
	Withdrawn   bool
}

// maxRowAliases bounds the aliases a search result lists.
const maxRowAliases = 4

func (ui *UI) listAdvisories(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	v := advisoriesView{Q: strings.TrimSpace(q.Get("q")), Package: strings.TrimSpace(q.Get("package")),
		Ecosystem: strings.TrimSpace(q.Get("ecosystem"))}
	v.Searched = v.Q != "" || v.Package != "" || v.Ecosystem != ""
	offset := 0
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			v.Error = "offset must be a non-negative whole number"
			ui.render(w, r, http.StatusBadRequest, "advisories", "Advisories", v)
			return nil
		}
		offset = n
	}
	if !v.Searched {
		ui.render(w, r, http.StatusOK, "advisories", "Advisories", v)
		return nil
	}
	page, err := ui.cfg.Advisories.SearchAdvisories(r.Context(),
		feeds.Query{ID: v.Q, Package: v.Package, Ecosystem: v.Ecosystem}, advisoriesPageSize, offset)
	if err != nil {
		return err
	}
	v.Total = page.Total
	for _, h := range page.Hits {
		a := h.Advisory
		row := advisoryRow{Feed: h.Feed, ID: a.ID, Source: a.Source, Summary: advisorySummary(a),
			Published: a.Published, Modified: a.Modified, Withdrawn: a.Withdrawn != nil}
		row.Aliases = a.Aliases[:min(len(a.Aliases), maxRowAliases)]
		row.MoreAliases = len(a.Aliases) - len(row.Aliases)
		if sv := severities(a.Severity); len(sv) > 0 {
			row.Severity = &sv[0]
		}
		v.Rows = append(v.Rows, row)
	}
	if len(v.Rows) > 0 {
		v.First, v.Last = offset+1, offset+len(v.Rows)
	}
	if offset > 0 {
		v.PrevURL = pageURL(q, max(offset-advisoriesPageSize, 0))
	}
	if offset+len(page.Hits) < page.Total {
		v.NextURL = pageURL(q, offset+len(page.Hits))
	}
	ui.render(w, r, http.StatusOK, "advisories", "Advisories", v)
	return nil
}

// advisorySummary is the one line a result row shows: the summary, else
// the start of the details (NVD records have no summary).
func advisorySummary(a advisory.Advisory) string {
	s := a.Summary
	if s == "" {
		s = a.Details
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:199]) + "…"
	}
	return s
}

// severityView is one CVSS assessment as shown. Rating is lower case, the
// form the badge classes and the label table use.
type severityView struct {
	Type, Vector, Rating, Source string
	Score                        string
}

// severities returns the assessments highest score first, so the first is
// the one a row shows.
func severities(ss []advisory.Severity) []severityView {
	ss = slices.Clone(ss)
	slices.SortStableFunc(ss, func(a, b advisory.Severity) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	out := make([]severityView, len(ss))
	for i, s := range ss {
		out[i] = severityView{Type: s.Type, Vector: s.Vector, Rating: strings.ToLower(s.Rating), Source: s.Source,
			Score: strconv.FormatFloat(s.Score, 'f', 1, 64)}
	}
	return out
}

// link is a URL from outside data. Href is set only for http and https
// URLs with a host: a feed is not trusted to put javascript:, data: or
// relative links on our pages, so anything else is shown as text.
type link struct {
	Text, Href string
}

func safeLink(raw string) link {
	raw = strings.TrimSpace(raw)
	l := link{Text: raw}
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		l.Href = u.String()
	}
	return l
}

type advisoryDetailView struct {
	Advisory   advisory.Advisory
	Severity   []severityView
	References []link
	Affected   []affectedView
	// CSAF says whether to show the VEX columns: other sources have none.
	CSAF bool
}

// affectedView is one affected package or product.
type affectedView struct {
	advisory.Affected
	// Name is what the package or product is called: the package, or the
	// CSAF product name, with the vendor in front when known.
	Name   string
	Ranges []string
	// Fixed lists the versions that fix it: range ends, and for a CSAF
	// product in status fixed, its versions.
	Fixed        []string
	Remediations []remediationView
}

type remediationView struct {
	Category, Details string
	URL               link
}

func (ui *UI) showAdvisory(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	a, err := ui.cfg.Advisories.Advisory(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	v := advisoryDetailView{Advisory: a, Severity: severities(a.Severity), CSAF: a.Source == "csaf" || a.Document != nil}
	for _, ref := range a.References {
		v.References = append(v.References, safeLink(ref))
	}
	for _, af := range a.Affected {
		av := affectedView{Affected: af, Name: orDefault(af.ProductName, af.Package)}
		if af.Vendor != "" && !strings.HasPrefix(strings.ToLower(av.Name), strings.ToLower(af.Vendor)) {
			av.Name = strings.TrimSpace(af.Vendor + " " + av.Name)
		}
		for _, rg := range af.Ranges {
			av.Ranges = append(av.Ranges, describeRange(rg))
			if rg.Fixed != "" && !slices.Contains(av.Fixed, rg.Fixed) {
				av.Fixed = append(av.Fixed, rg.Fixed)
			}
		}
		if af.Status == advisory.StatusFixed || af.Status == advisory.StatusRecommended {
			for _, ver := range af.Versions {
				if !slices.Contains(av.Fixed, ver) {
					av.Fixed = append(av.Fixed, ver)
				}
			}
		}
		for _, rm := range af.Remediations {
			av.Remediations = append(av.Remediations, remediationView{Category: rm.Category, Details: rm.Details, URL: safeLink(rm.URL)})
		}
		v.Affected = append(v.Affected, av)
	}
	ui.render(w, r, http.StatusOK, "advisory", a.ID, v)
	return nil
}

// describeRange says in words which versions a range covers, e.g.
// "≥ 2.0, < 2.4.1" or "all versions, no fix yet".
func describeRange(rg advisory.Range) string {
	var from string
	switch {
	case rg.Introduced == "" || rg.Introduced == "0":
		from = "all versions"
	case rg.IntroducedExclusive:
		from = "> " + rg.Introduced
	default:
		from = "≥ " + rg.Introduced
	}
	var to string
	switch {
	case rg.Fixed != "":
		to = "< " + rg.Fixed
	case rg.LastAffected != "":
		to = "≤ " + rg.LastAffected
	case rg.Limit != "":
		to = "< " + rg.Limit + " (limit)"
	default:
		to = "no fix yet"
	}
	s := from + ", " + to
	if rg.Type != "" && rg.Type != "ECOSYSTEM" {
		// SEMVER, GIT, CPE and CSAF bounds order versions differently
		// from the ecosystem's own scheme; say which applies.
		s += " (" + rg.Type + ")"
	}
	return s
}

type feedsView struct {
	Rows []feedRow
}

type feedRow struct {
	feeds.Status
	// SourceShown is Source without credentials or query: a feed URL may
	// carry an API key, and this page is open to every reader.
	SourceShown string
	Records     string
	// Fetched, LastSuccess and LastAttempt are in the policy's time zone.
	Fetched, LastSuccess, LastAttempt when
}

func (ui *UI) feedsPage(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	st, err := ui.cfg.Advisories.FeedStatus(r.Context())
	if err != nil {
		return err
	}
	c, err := ui.siteClock(r.Context())
	if err != nil {
		return err
	}
	var v feedsView
	for _, s := range st {
		v.Rows = append(v.Rows, feedRow{Status: s, SourceShown: redactSource(s.Source), Records: feedRecords(s),
			Fetched: c.atp(s.FetchedAt), LastSuccess: c.atp(s.LastSuccessAt), LastAttempt: c.atp(s.LastAttemptAt)})
	}
	ui.render(w, r, http.StatusOK, "feeds", "Feeds", v)
	return nil
}

// feedRecords counts what the feed's current version holds, in the unit
// its kind publishes.
func feedRecords(s feeds.Status) string {
	if s.Version == 0 {
		return "none yet"
	}
	var parts []string
	add := func(n int, unit string) {
		if n > 0 {
			parts = append(parts, thousands(n)+" "+unit)
		}
	}
	add(s.Advisories, "advisories")
	add(s.KEV, "KEV entries")
	add(s.EPSS, "EPSS scores")
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// thousands formats n with comma separators: record counts run to
// hundreds of thousands.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func redactSource(src string) string {
	u, err := url.Parse(src)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return src
	}
	return fmt.Sprintf("%s://%s%s", u.Scheme, u.Host, u.EscapedPath())
}
