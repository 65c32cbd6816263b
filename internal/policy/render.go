package policy

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"

	"github.com/patchward/patchward/internal/inventory"
)

// Document formats Render writes.
const (
	FormatMarkdown = "md"
	FormatHTML     = "html"
)

// RenderMeta is the document control data that is not in the policy file:
// which applied version this is, and who applied it when. A zero Version
// means the built-in default, never applied.
type RenderMeta struct {
	Version   int
	AppliedAt time.Time
	AppliedBy string
	// Draft names the file a not-yet-applied policy was read from; the
	// document then says it is a draft rather than the built-in default.
	Draft string
}

//go:embed document.md.tmpl
var documentTemplate string

//go:embed document.css
var documentCSS string

// docTemplate is parsed once; parsing is deterministic and the template is
// read-only afterwards.
var docTemplate = template.Must(template.New("document.md.tmpl").Funcs(template.FuncMap{
	"text":     mdText,
	"cell":     mdCell,
	"code":     mdCode,
	"cellcode": mdCellCode,
	"dur":      func(d Duration) string { return d.Human() },
	"num":      fmtNum,
	"pct":      func(f float64) string { return fmtNum(f*100) + "%" },
	"every":    every,
	"list":     mdList,
	"codes":    mdCodes,
	"orCodes":  mdOrCodes,
	"points":   func(f float64) string { return fmtNum(f*100) + " percentage points" },
}).Parse(documentTemplate))

// every spells a period: "every year", "every 90 days".
func every(d Duration) string {
	h := d.Human()
	if strings.HasPrefix(h, "1 ") && !strings.Contains(h[2:], " ") {
		return "every " + h[2:]
	}
	return "every " + h
}

// mdList joins escaped items as prose: "a", "a and b", "a, b and c".
func mdList(items []string) string {
	esc := make([]string, len(items))
	for i, s := range items {
		esc[i] = mdText(s)
	}
	return joinAnd(esc)
}

// mdCodes joins items as code spans: machine values such as role names.
func mdCodes(items []string) string {
	cs := make([]string, len(items))
	for i, s := range items {
		cs[i] = mdCode(s)
	}
	return joinAnd(cs)
}

// mdOrCodes is mdCodes joined with "or": alternatives.
func mdOrCodes(items []string) string {
	cs := make([]string, len(items))
	for i, s := range items {
		cs[i] = mdCode(s)
	}
	return joinWord(cs, "or")
}

func joinAnd(items []string) string { return joinWord(items, "and") }

func joinWord(items []string, word string) string {
	switch len(items) {
	case 0:
		return "—"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + word + " " + items[len(items)-1]
}

// Render writes the Patch Management Policy document for c: the written
// policy auditors ask for, generated from the same configuration that
// Patchward enforces. Format "md" is Markdown; "html" is that same Markdown
// rendered as a standalone, print-friendly page, so the two never differ
// in content. Output depends only on c and meta.
func Render(c *Compiled, format string, meta RenderMeta) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("render policy: no policy")
	}
	var md bytes.Buffer
	if err := docTemplate.Execute(&md, newDocView(c, meta)); err != nil {
		return nil, fmt.Errorf("render policy document: %w", err)
	}
	switch format {
	case FormatMarkdown:
		return md.Bytes(), nil
	case FormatHTML:
		return renderHTML(c, md.Bytes())
	default:
		return nil, fmt.Errorf("render policy: unknown format %q (want %q or %q)", format, FormatMarkdown, FormatHTML)
	}
}

func renderHTML(c *Compiled, md []byte) ([]byte, error) {
	gm := goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough),
		goldmark.WithParserOptions(parser.WithAutoHeadingID()),
		// Raw HTML in the policy file's text stays inert: goldmark's
		// default renderer omits it.
	)
	var body bytes.Buffer
	if err := gm.Convert(md, &body); err != nil {
		return nil, fmt.Errorf("render policy document as HTML: %w", err)
	}
	var out bytes.Buffer
	title := "Patch Management Policy — " + c.policy.Organization.Name
	fmt.Fprintf(&out, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Patchward">
<meta name="policy-sha256" content="%s">
<title>%s</title>
<style>
%s</style>
</head>
<body>
<main>
`, c.sum, html.EscapeString(title), documentCSS)
	out.Write(body.Bytes())
	out.WriteString("</main>\n</body>\n</html>\n")
	return out.Bytes(), nil
}

// docView is what the document template reads: the policy plus rows
// worked out in Go, so the template stays a layout.
type docView struct {
	P        Policy
	Meta     RenderMeta
	Applied  string
	SHA256   string
	Mode     string
	ModeName string
	Weights  []weightRow
	Tiers    []tierRow
	Classes  []classRow
	Approval []approvalRow
	// ClassApprovers lists classes with extra approvers.
	ClassApprovers []classRow
	SSVC           []kvRow
	KEVBands       []kevBandRow
	Windows        []windowRow
	EmergencyTests []TestCase
	Rings          []ringRow
	Cases          []caseRow
	Decisions      []kvRow
	Controls       []string
	ClockStart     string
	TierNames      []string
	RoleGrants     map[string]string
}

type weightRow struct{ Factor, Points, Basis string }

type tierRow struct {
	Tier Tier
	Band string
}

type classRow struct {
	Class     AssetClass
	Targets   string
	Approvers string
}

type approvalRow struct {
	Type   string
	Rule   ApprovalRule
	Roles  string
	Needed string
}

type kvRow struct{ Key, Value string }

type kevBandRow struct{ Band, Target, Tier string }

type windowRow struct {
	Window   Window
	Schedule string
	TimeZone string
}

type ringRow struct {
	Ring   Ring
	Select string
	Gate   string
	Halt   string
	Max    string
}

type caseRow struct {
	Case      TestCase
	AppliesTo string
	Emergency bool
}

func newDocView(c *Compiled, meta RenderMeta) docView {
	p := c.Policy()
	v := docView{P: p, Meta: meta, SHA256: c.sum, Mode: p.Risk.Mode, RoleGrants: map[string]string{}}
	if !meta.AppliedAt.IsZero() {
		v.Applied = meta.AppliedAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	v.ModeName = map[string]string{
		ModeScore:    "weighted risk score",
		ModeSSVC:     "CISA SSVC decision tree",
		ModeKEVBands: "CISA KEV and CVSS bands",
	}[p.Risk.Mode]
	for _, r := range p.Roles {
		v.RoleGrants[r.Name] = r.Grants
	}
	for _, t := range p.Risk.Tiers {
		v.TierNames = append(v.TierNames, t.Name)
	}
	v.ClockStart = map[string]string{
		ClockFirstSeen:    "when the finding is first detected",
		ClockFixAvailable: "when a fixed version becomes available (or when the finding is detected, if later)",
	}[p.SLA.ClockStart]

	w := p.Risk.Weights
	v.Weights = []weightRow{
		{"CVSS base score", "up to " + fmtNum(w.CVSS), fmtNum(w.CVSS) + " × CVSS base score ÷ 10 (the headline score: v4.0, else v3.x, else v2)"},
		{"Known exploited (CISA KEV)", fmtNum(w.KEV), "the vulnerability is in CISA's Known Exploited Vulnerabilities catalog"},
		{"Known ransomware use", fmtNum(w.Ransomware), "CISA records known ransomware campaign use"},
		{"Exploit probability (EPSS)", "up to " + fmtNum(w.EPSS), fmtNum(w.EPSS) + " × the EPSS probability of exploitation in the next 30 days"},
		{"Exposure", levelRange(w.Exposure, ExposureOrder()), levelList(w.Exposure, ExposureOrder())},
	}
	if len(w.NetworkZone) > 0 {
		v.Weights = append(v.Weights, weightRow{"Network zone", levelRange(w.NetworkZone, sortedKeys(w.NetworkZone)), levelList(w.NetworkZone, sortedKeys(w.NetworkZone)) + "; other zones 0"})
	}
	v.Weights = append(v.Weights,
		weightRow{"Asset criticality", levelRange(w.Criticality, strs(inventory.Levels)), levelList(w.Criticality, strs(inventory.Levels))},
		weightRow{"Protected health information", fmtNum(w.PHI), "the asset stores or processes PHI"},
		weightRow{"Patient-safety impact", levelRange(w.PatientSafety, strs(inventory.SafetyImpacts)), levelList(w.PatientSafety, strs(inventory.SafetyImpacts))},
		weightRow{"Fix available", fmtNum(w.FixAvailable), "a fixed version exists, so the finding can be acted on now"},
		weightRow{"Compensating controls", "−" + fmtNum(w.CompensatingControl) + " each, at most −" + fmtNum(w.MaxControlReduction), "per compensating control in force (segmentation, allowlisting, monitoring…)"},
	)

	for _, t := range p.Risk.Tiers {
		band := "—"
		if t.MaxScore > t.MinScore {
			band = fmtNum(t.MinScore) + "–" + fmtNum(t.MaxScore)
		}
		v.Tiers = append(v.Tiers, tierRow{Tier: t, Band: band})
	}
	for _, ac := range p.AssetClasses {
		var targets []string
		for _, t := range p.Risk.Tiers {
			if d, ok := ac.Due[t.Name]; ok {
				targets = append(targets, t.Name+": "+d.Human())
			}
		}
		row := classRow{Class: ac, Targets: strings.Join(targets, "; "), Approvers: strings.Join(ac.Approvers, ", ")}
		if row.Targets == "" {
			row.Targets = "the tier's own"
		}
		v.Classes = append(v.Classes, row)
		if len(ac.Approvers) > 0 {
			v.ClassApprovers = append(v.ClassApprovers, row)
		}
	}
	for _, ct := range ChangeTypes {
		rule, ok := p.Approvals.Types[ct]
		if !ok {
			continue
		}
		row := approvalRow{Type: ct, Rule: rule, Roles: strings.Join(rule.Roles, ", ")}
		switch {
		case rule.PreApproved:
			row.Needed = "pre-approved"
		case rule.Quorum == len(rule.Roles):
			row.Needed = "all " + strconv.Itoa(rule.Quorum)
		default:
			row.Needed = strconv.Itoa(rule.Quorum) + " of " + strconv.Itoa(len(rule.Roles))
		}
		v.Approval = append(v.Approval, row)
	}
	for _, d := range slices.Backward(SSVCDecisions) { // most urgent first
		if t, ok := p.Risk.SSVC.Outcomes[d]; ok {
			v.SSVC = append(v.SSVC, kvRow{ssvcDecisionName(d), t})
		}
	}
	kb := p.Risk.KEVBands
	kevTarget := kb.KEV.Human()
	if kb.UseCatalogDueDate {
		kevTarget = "the KEV catalog's due date; " + kevTarget + " when it gives none"
	}
	for _, b := range []kevBandRow{
		{"Listed in CISA KEV", kevTarget, kb.Tiers[BandKEV]},
		{"CVSS critical (9.0–10.0)", kb.Critical.Human(), kb.Tiers[BandCritical]},
		{"CVSS high (7.0–8.9)", kb.High.Human(), kb.Tiers[BandHigh]},
		{"Everything else", kb.Other.Human(), kb.Tiers[BandOther]},
	} {
		if b.Tier == "" {
			b.Tier = "—"
		}
		v.KEVBands = append(v.KEVBands, b)
	}
	for _, win := range p.Windows {
		tz := win.TimeZone
		if tz == TimeZoneSite {
			tz = "each asset's site"
		}
		v.Windows = append(v.Windows, windowRow{Window: win, Schedule: describeSchedule(win), TimeZone: tz})
	}
	for _, id := range p.Emergency.Tests {
		if tc, ok := c.TestCase(id); ok {
			v.EmergencyTests = append(v.EmergencyTests, tc)
		}
	}
	for i, r := range p.Rings {
		row := ringRow{Ring: r, Select: r.Select, Max: "no limit"}
		if strings.TrimSpace(r.Select) == "" {
			row.Select = ""
		}
		if i == len(p.Rings)-1 {
			row.Gate = "— (last ring)"
		} else {
			row.Gate = fmt.Sprintf("at least %d assets and %s of the ring succeeded", r.MinSuccess, fmtNum(r.SuccessRate*100)+"%")
			if !r.Soak.IsZero() {
				row.Gate += ", then " + r.Soak.Human() + " soak"
			}
		}
		row.Halt = "failure rate above " + fmtNum(r.HaltFailureRate*100) + "%"
		if r.MaxConcurrent > 0 {
			row.Max = strconv.Itoa(r.MaxConcurrent)
		}
		v.Rings = append(v.Rings, row)
	}
	for _, tc := range p.Testing.Cases {
		row := caseRow{Case: tc, AppliesTo: strings.Join(tc.AppliesTo, ", "), Emergency: slices.Contains(p.Emergency.Tests, tc.ID)}
		if row.AppliesTo == "" {
			row.AppliesTo = "every change"
		}
		v.Cases = append(v.Cases, row)
	}
	decisions := p.Exceptions.Decisions
	if len(decisions) == 0 {
		decisions = Decisions
	}
	for _, d := range Decisions {
		if slices.Contains(decisions, d) {
			v.Decisions = append(v.Decisions, kvRow{d, decisionMeaning[d]})
		}
	}
	v.Controls = ControlKinds
	return v
}

var decisionMeaning = map[string]string{
	DecisionAccept:   "the risk is accepted as it is until the exception expires",
	DecisionMitigate: "compensating controls reduce the risk until a fix can be applied",
	DecisionTransfer: "another party (a vendor, an insurer) takes on the risk",
	DecisionAvoid:    "the vulnerable function or system is withdrawn from use",
}

func ssvcDecisionName(d string) string {
	switch d {
	case SSVCTrackStar:
		return "Track*"
	default:
		return strings.ToUpper(d[:1]) + d[1:]
	}
}

// levelRange gives "0–25" for an ordinal table.
func levelRange(m map[string]float64, order []string) string {
	if len(m) == 0 {
		return "0"
	}
	lo, hi := m[order[0]], m[order[0]]
	for _, k := range order {
		lo, hi = min(lo, m[k]), max(hi, m[k])
	}
	if lo == hi {
		return fmtNum(hi)
	}
	return fmtNum(lo) + "–" + fmtNum(hi)
}

// levelList gives "isolated 0, clinical_vlan 5, …" in the given order.
func levelList(m map[string]float64, order []string) string {
	if len(m) == 0 {
		return "not weighed"
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = strings.ReplaceAll(k, "_", " ") + " " + fmtNum(m[k])
	}
	return strings.Join(parts, ", ")
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

var (
	ordinals = map[int]string{1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second-to-last"}
	dayNames = map[string]string{"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday", "SA": "Saturday", "SU": "Sunday"}
)

// describeSchedule spells a window's RRULE for people for the common
// shapes ("monthly on the second Tuesday, then 2 days later"), and quotes
// the rule itself either way.
func describeSchedule(w Window) string {
	rule := strings.TrimPrefix(strings.TrimSpace(w.Schedule), "RRULE:")
	parts := map[string]string{}
	for _, p := range strings.Split(rule, ";") {
		k, val, _ := strings.Cut(p, "=")
		parts[strings.ToUpper(k)] = val
	}
	human := ""
	interval, _ := strconv.Atoi(parts["INTERVAL"])
	known := true
	for k := range parts {
		if !slices.Contains([]string{"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH"}, k) {
			known = false
		}
	}
	unit := map[string]string{"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}[parts["FREQ"]]
	if known && unit != "" {
		if interval > 1 {
			human = fmt.Sprintf("every %d %ss", interval, unit)
		} else {
			human = map[string]string{"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}[unit]
		}
		if days := parts["BYDAY"]; days != "" {
			var names []string
			for _, d := range strings.Split(days, ",") {
				n := 0
				if len(d) > 2 {
					n, _ = strconv.Atoi(d[:len(d)-2])
				}
				name, ok := dayNames[strings.ToUpper(d[len(d)-2:])]
				if !ok {
					known = false
					break
				}
				if n != 0 {
					o, ok := ordinals[n]
					if !ok {
						known = false
						break
					}
					name = "the " + o + " " + name
				}
				names = append(names, name)
			}
			human += " on " + strings.Join(names, ", ")
		}
		if mdays := parts["BYMONTHDAY"]; mdays != "" {
			var names []string
			for _, d := range strings.Split(mdays, ",") {
				n, err := strconv.Atoi(d)
				switch {
				case err != nil || n == 0 || n < -31 || n > 31:
					known = false
				case n == -1:
					names = append(names, "the last day")
				case n < 0:
					names = append(names, fmt.Sprintf("day %d from the end", -n))
				default:
					names = append(names, "day "+strconv.Itoa(n))
				}
			}
			human += " on " + strings.Join(names, ", ")
		}
		if months := parts["BYMONTH"]; months != "" {
			var names []string
			for _, m := range strings.Split(months, ",") {
				n, err := strconv.Atoi(m)
				if err != nil || n < 1 || n > 12 {
					known = false
					break
				}
				names = append(names, time.Month(n).String())
			}
			human += " in " + strings.Join(names, ", ")
		}
	}
	if w.OffsetDays != 0 && known && human != "" {
		if w.OffsetDays > 0 {
			human += fmt.Sprintf(", then %d day(s) later", w.OffsetDays)
		} else {
			human += fmt.Sprintf(", then %d day(s) earlier", -w.OffsetDays)
		}
	}
	if !known || human == "" {
		human = "per the rule"
		if w.OffsetDays != 0 {
			human += fmt.Sprintf(", shifted %+d day(s)", w.OffsetDays)
		}
	}
	return strings.ToUpper(human[:1]) + human[1:]
}

// Markdown escaping. Text from the policy file is data, never markup: a
// description cannot add links, emphasis or HTML to the document.

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "|", `\|`, "~", `\~`, "#", `\#`,
)

// oneLine collapses a (possibly multi-line) value to one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func mdText(s string) string { return mdEscaper.Replace(oneLine(s)) }

// mdCell is mdText for a table cell; an empty cell shows a dash.
func mdCell(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return mdText(s)
}

// mdCode writes s as an inline code span, with a fence longer than any
// backtick run inside it.
func mdCode(s string) string {
	s = oneLine(s)
	if s == "" {
		return "—"
	}
	run, longest := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdCellCode is mdCode for a table cell, where GFM needs "|" escaped even
// inside a code span.
func mdCellCode(s string) string { return strings.ReplaceAll(mdCode(s), "|", `\|`) }
