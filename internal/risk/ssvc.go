package risk

import (
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// SSVC decision point values, spelt as the decision tables and the policy
// spell them, so a table row, a stored decision and a policy outcome map
// can be compared without translation.
const (
	ExploitationNone   = "none"
	ExploitationPoC    = "poc"
	ExploitationActive = "active"

	AutomatableNo  = "no"
	AutomatableYes = "yes"

	TechnicalImpactPartial = "partial"
	TechnicalImpactTotal   = "total"

	MissionLow    = "low"
	MissionMedium = "medium"
	MissionHigh   = "high"
)

// SSVC decisions (CISA's four outcomes), least to most urgent. The policy's
// ssvc.outcomes maps each onto an SLA tier.
const (
	SSVCTrack     = "track"
	SSVCTrackStar = "track*"
	SSVCAttend    = "attend"
	SSVCAct       = "act"
)

// DefaultSSVCTable names the decision table used when the policy names none:
// CISA's coordinator table, version 2.0.3 of CERT/CC's data.
const DefaultSSVCTable = "cisa-2.0.3"

// The value sets of the four decision points, in table order. Their
// positions are the indexes of SSVCTable's lookup array.
var (
	ssvcExploitation = []string{ExploitationNone, ExploitationPoC, ExploitationActive}
	ssvcAutomatable  = []string{AutomatableNo, AutomatableYes}
	ssvcImpact       = []string{TechnicalImpactPartial, TechnicalImpactTotal}
	ssvcMission      = []string{MissionLow, MissionMedium, MissionHigh}
	ssvcDecisions    = []string{SSVCTrack, SSVCTrackStar, SSVCAttend, SSVCAct}
	ssvcHeader       = []string{"exploitation", "automatable", "technical_impact", "mission_wellbeing", "decision"}
)

// ssvcScore is the Assessment.Score an SSVC decision stands for: its place
// on CISA's four-step scale, so that a score-sorted worklist orders findings
// by decision. It is a rank, not a sum of risk factors.
var ssvcScore = map[string]float64{SSVCTrack: 25, SSVCTrackStar: 50, SSVCAttend: 75, SSVCAct: 100}

// SSVCRow is one row of a decision table: one combination of the four
// decision points and its decision.
type SSVCRow struct {
	Exploitation    string
	Automatable     string
	TechnicalImpact string
	Mission         string
	Decision        string
}

// SSVCTable is a validated SSVC decision table. It is data rather than code
// so that the table CISA publishes can be checked row by row against the
// file, and a newer table adopted without touching the engine.
type SSVCTable struct {
	// Name is the table's name ("cisa-2.0.3").
	Name string
	// Rows are the rows in file order.
	Rows  []SSVCRow
	index [3][2][2][3]string
}

//go:embed ssvc/*.csv
var ssvcFiles embed.FS

// ssvcTables parses every embedded table once, on first use. The result is
// immutable; errors are kept per table so one bad file does not hide the
// others.
var ssvcTables = sync.OnceValue(func() map[string]ssvcLoaded {
	out := map[string]ssvcLoaded{}
	entries, err := ssvcFiles.ReadDir("ssvc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".csv")
		if !ok {
			continue
		}
		f, err := ssvcFiles.Open("ssvc/" + e.Name())
		if err != nil {
			out[name] = ssvcLoaded{err: err}
			continue
		}
		t, err := ParseSSVCTable(name, f)
		f.Close()
		out[name] = ssvcLoaded{t, err}
	}
	return out
})

type ssvcLoaded struct {
	t   *SSVCTable
	err error
}

// LoadSSVCTable returns the embedded decision table with that name ("" for
// DefaultSSVCTable). An unknown name is errs.NotFound.
func LoadSSVCTable(name string) (*SSVCTable, error) {
	if name == "" {
		name = DefaultSSVCTable
	}
	l, ok := ssvcTables()[name]
	if !ok {
		return nil, errs.E(errs.NotFound, "SSVC decision table %q is not built in", name)
	}
	return l.t, l.err
}

// ParseSSVCTable reads a decision table in CSV (header exploitation,
// automatable, technical_impact, mission_wellbeing, decision) and checks
// it: every value from its decision point's set, a known decision, and
// every one of the 36 combinations exactly once. A table that fails is
// errs.Invalid, because a gap or a duplicate would silently decide findings.
func ParseSSVCTable(name string, r io.Reader) (*SSVCTable, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(ssvcHeader)
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "SSVC table %s: header", name)
	}
	for i := range head {
		head[i] = strings.ToLower(strings.TrimSpace(head[i]))
	}
	if !slices.Equal(head, ssvcHeader) {
		return nil, errs.E(errs.Invalid, "SSVC table %s: header is %q, want %q", name, head, ssvcHeader)
	}
	t := &SSVCTable{Name: name}
	seen := map[[4]int]int{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "SSVC table %s", name)
		}
		for i := range rec {
			rec[i] = strings.ToLower(strings.TrimSpace(rec[i]))
		}
		var k [4]int
		for i, set := range [][]string{ssvcExploitation, ssvcAutomatable, ssvcImpact, ssvcMission} {
			k[i] = slices.Index(set, rec[i])
			if k[i] < 0 {
				return nil, errs.E(errs.Invalid, "SSVC table %s line %d: %s %q is not one of %q", name, line, ssvcHeader[i], rec[i], set)
			}
		}
		if !slices.Contains(ssvcDecisions, rec[4]) {
			return nil, errs.E(errs.Invalid, "SSVC table %s line %d: decision %q is not one of %q", name, line, rec[4], ssvcDecisions)
		}
		if prev, dup := seen[k]; dup {
			return nil, errs.E(errs.Invalid, "SSVC table %s line %d: %s repeats line %d", name, line, strings.Join(rec[:4], "/"), prev)
		}
		seen[k] = line
		t.index[k[0]][k[1]][k[2]][k[3]] = rec[4]
		t.Rows = append(t.Rows, SSVCRow{rec[0], rec[1], rec[2], rec[3], rec[4]})
	}
	var missing []string
	for a, e := range ssvcExploitation {
		for b, au := range ssvcAutomatable {
			for c, ti := range ssvcImpact {
				for d, m := range ssvcMission {
					if t.index[a][b][c][d] == "" {
						missing = append(missing, e+"/"+au+"/"+ti+"/"+m)
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		return nil, errs.E(errs.Invalid, "SSVC table %s: no row for %s", name, strings.Join(missing, ", "))
	}
	return t, nil
}

// Decide returns the table's decision for one combination of decision point
// values. A value outside its set is errs.Invalid.
func (t *SSVCTable) Decide(exploitation, automatable, technicalImpact, mission string) (string, error) {
	a := slices.Index(ssvcExploitation, exploitation)
	b := slices.Index(ssvcAutomatable, automatable)
	c := slices.Index(ssvcImpact, technicalImpact)
	d := slices.Index(ssvcMission, mission)
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return "", errs.E(errs.Invalid, "SSVC %s: no decision for %s/%s/%s/%s", t.Name, exploitation, automatable, technicalImpact, mission)
	}
	return t.index[a][b][c][d], nil
}

// decideSSVC decides a finding by walking the policy's SSVC table with
// inputs derived from the facts, each with the reason it was chosen. The
// Score it records is the decision's rank (see ssvcScore), not a sum.
func (as *Assessor) decideSSVC(in Input, a *Assessment) error {
	cfg := as.risk.SSVC
	t := as.ssvc
	d := &SSVCDecision{Table: t.Name, Why: make(map[string]string, 4)}
	d.Exploitation, d.Why["exploitation"] = deriveExploitation(cfg, in)
	d.Automatable, d.Why["automatable"] = deriveAutomatable(in.Facts.Vuln)
	d.TechnicalImpact, d.Why["technical_impact"] = deriveTechnicalImpact(in.Facts.Vuln)
	var err error
	d.Mission, err = as.p.Mission(in.Facts)
	if err != nil {
		return fmt.Errorf("assess SSVC mission and well-being: %w", err)
	}
	d.Why["mission_wellbeing"] = missionWhy(d.Mission)
	d.Outcome, err = t.Decide(d.Exploitation, d.Automatable, d.TechnicalImpact, d.Mission)
	if err != nil {
		return fmt.Errorf("assess SSVC: %w", err)
	}
	// NewAssessor checked that every decision maps to a tier.
	tier, rank, ok := as.p.TierByName(cfg.Outcomes[d.Outcome])
	if !ok {
		return errs.E(errs.Invalid, "policy ssvc.outcomes: decision %s maps to no tier", d.Outcome)
	}
	a.SSVC = d
	a.Score = ssvcScore[d.Outcome]
	a.Factors = append(a.Factors,
		Factor{Name: "Exploitation", Input: d.Exploitation, Note: d.Why["exploitation"]},
		Factor{Name: "Automatable", Input: d.Automatable, Note: d.Why["automatable"]},
		Factor{Name: "Technical impact", Input: d.TechnicalImpact, Note: d.Why["technical_impact"]},
		Factor{Name: "Mission & well-being", Input: d.Mission, Note: d.Why["mission_wellbeing"]},
		Factor{Name: "SSVC decision", Input: d.Outcome,
			Note: fmt.Sprintf("table %s; policy maps %s to tier %s", t.Name, d.Outcome, tier.Name)},
	)
	setTier(a, tier, rank)
	return nil
}

// deriveExploitation picks SSVC's Exploitation: a source's own statement,
// else active when CISA lists the CVE as known exploited, else public PoC
// when the EPSS percentile reaches the policy's threshold, else none.
func deriveExploitation(cfg policy.SSVC, in Input) (string, string) {
	v := in.Facts.Vuln
	stated := strings.ToLower(strings.TrimSpace(in.Exploitation))
	if stated == "public poc" || stated == "public_poc" {
		stated = ExploitationPoC
	}
	var note string
	switch {
	case slices.Contains(ssvcExploitation, stated):
		return stated, "stated by the vulnerability's source"
	case stated != "":
		note = fmt.Sprintf("; the stated value %q is not none, poc or active and was ignored", in.Exploitation)
	}
	switch {
	case v.KEV:
		return ExploitationActive, "listed in CISA's Known Exploited Vulnerabilities catalog" + note
	case cfg.PoCEPSSPercentile > 0 && v.EPSSPercentile >= cfg.PoCEPSSPercentile:
		return ExploitationPoC, fmt.Sprintf("EPSS percentile %s is at or above the policy's %s",
			percent(v.EPSSPercentile), percent(cfg.PoCEPSSPercentile)) + note
	case v.EPSS == 0 && v.EPSSPercentile == 0:
		return ExploitationNone, "not in KEV and no EPSS score" + note
	default:
		return ExploitationNone, fmt.Sprintf("not in KEV; EPSS percentile %s is below the policy's %s",
			percent(v.EPSSPercentile), percent(cfg.PoCEPSSPercentile)) + note
	}
}

// deriveAutomatable reads SSVC's Automatable off the CVSS vector: an attack
// that needs no access, no privileges, no special conditions and no user
// can be scripted across the internet (steps 1–4 of the kill chain).
func deriveAutomatable(v policy.VulnFacts) (string, string) {
	ver, vec := cvssVector(v)
	var want []string
	switch ver {
	case "3.0", "3.1":
		want = []string{"AV:N", "AC:L", "PR:N", "UI:N"}
	case "4.0":
		want = []string{"AV:N", "AC:L", "AT:N", "PR:N", "UI:N"}
	case "2.0":
		return AutomatableNo, "CVSS v2 vector has no user-interaction metric, so automation cannot be read from it; taken as no"
	default:
		return AutomatableNo, "no CVSS v3 or v4 vector to read it from; taken as no"
	}
	var miss []string
	for _, m := range want {
		key, val, _ := strings.Cut(m, ":")
		if got := cvssMetric(vec, key); got != val {
			miss = append(miss, key+":"+orDash(got))
		}
	}
	all := strings.Join(want, "/")
	if len(miss) == 0 {
		return AutomatableYes, fmt.Sprintf("CVSS %s vector has %s: reachable over the network with no privileges, conditions or user action", ver, all)
	}
	return AutomatableNo, fmt.Sprintf("CVSS %s vector has %s (automatable needs %s)", ver, strings.Join(miss, "/"), all)
}

// deriveTechnicalImpact reads SSVC's Technical Impact off the CVSS vector:
// total when the vulnerable system's confidentiality, integrity and
// availability are all lost, else partial.
func deriveTechnicalImpact(v policy.VulnFacts) (string, string) {
	ver, vec := cvssVector(v)
	var keys []string
	high := "H"
	switch ver {
	case "3.0", "3.1":
		keys = []string{"C", "I", "A"}
	case "4.0":
		keys = []string{"VC", "VI", "VA"}
	case "2.0":
		keys, high = []string{"C", "I", "A"}, "C"
	default:
		return TechnicalImpactPartial, "no CVSS vector to read it from; taken as partial"
	}
	var got []string
	total := true
	for _, k := range keys {
		val := cvssMetric(vec, k)
		got = append(got, k+":"+orDash(val))
		total = total && val == high
	}
	if total {
		return TechnicalImpactTotal, fmt.Sprintf("CVSS %s vector has %s: confidentiality, integrity and availability all lost", ver, strings.Join(got, "/"))
	}
	return TechnicalImpactPartial, fmt.Sprintf("CVSS %s vector has %s (total needs all three %s)", ver, strings.Join(got, "/"), high)
}

func missionWhy(m string) string {
	switch m {
	case MissionHigh:
		return "the asset matches the policy's ssvc.mission_high"
	case MissionMedium:
		return "the asset matches the policy's ssvc.mission_medium"
	default:
		return "the asset matches neither ssvc.mission_high nor ssvc.mission_medium"
	}
}

// cvssVector returns the CVSS version a vector is written in ("4.0", "3.1",
// "3.0", "2.0", or "" when there is none) and the vector. The vector's own
// prefix wins over the stated version; a bare vector is v2, the only
// version without a prefix.
func cvssVector(v policy.VulnFacts) (string, string) {
	vec := strings.TrimSpace(v.CVSSVector)
	switch {
	case vec == "":
		return "", ""
	case strings.HasPrefix(vec, "CVSS:4.0/"):
		return "4.0", vec
	case strings.HasPrefix(vec, "CVSS:3.1/"):
		return "3.1", vec
	case strings.HasPrefix(vec, "CVSS:3.0/"):
		return "3.0", vec
	case strings.HasPrefix(vec, "CVSS:"):
		return "", vec
	case strings.HasPrefix(vec, "AV:") || strings.HasPrefix(vec, "(AV:"):
		return "2.0", strings.Trim(vec, "()")
	}
	return "", vec
}

// cvssMetric returns one metric's value in a CVSS vector ("" when absent).
// It scans rather than builds a map, because it runs once per finding.
func cvssMetric(vector, key string) string {
	for part := range strings.SplitSeq(vector, "/") {
		if k, val, ok := strings.Cut(part, ":"); ok && k == key {
			return val
		}
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// percent renders a 0–1 fraction as a percentage with one decimal.
func percent(f float64) string {
	return fmt.Sprintf("%.1f%%", f*100)
}
