package risk

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

func TestSSVCTableLoads(t *testing.T) {
	tab, err := LoadSSVCTable("")
	if err != nil {
		t.Fatalf("LoadSSVCTable(\"\") = %v", err)
	}
	if tab.Name != DefaultSSVCTable {
		t.Errorf("Name = %q; want %q", tab.Name, DefaultSSVCTable)
	}
	if len(tab.Rows) != 36 {
		t.Errorf("len(Rows) = %d; want 36", len(tab.Rows))
	}
	counts := map[string]int{}
	for _, r := range tab.Rows {
		counts[r.Decision]++
	}
	// CISA's tree, expanded to all 36 combinations, has 18 Track, 4 Track*,
	// 10 Attend and 4 Act.
	if diff := cmp.Diff(map[string]int{SSVCTrack: 18, SSVCTrackStar: 4, SSVCAttend: 10, SSVCAct: 4}, counts); diff != "" {
		t.Errorf("decisions per outcome (-want +got):\n%s", diff)
	}
}

// TestSSVCSpotRows checks rows against the decision tree figure in CISA's
// SSVC guide (November 2022).
func TestSSVCSpotRows(t *testing.T) {
	tab, err := LoadSSVCTable(DefaultSSVCTable)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ e, a, ti, m, want string }{
		{"none", "no", "partial", "low", SSVCTrack},
		{"none", "no", "total", "high", SSVCTrackStar},
		{"none", "yes", "partial", "high", SSVCAttend},
		{"none", "yes", "total", "medium", SSVCTrack},
		{"poc", "no", "partial", "high", SSVCTrackStar},
		{"poc", "no", "total", "medium", SSVCTrackStar},
		{"poc", "yes", "partial", "medium", SSVCTrack},
		{"poc", "yes", "total", "high", SSVCAttend},
		{"active", "no", "partial", "medium", SSVCTrack},
		{"active", "no", "total", "medium", SSVCAttend},
		{"active", "no", "total", "high", SSVCAct},
		{"active", "yes", "partial", "low", SSVCAttend},
		{"active", "yes", "partial", "high", SSVCAct},
		{"active", "yes", "total", "medium", SSVCAct},
		{"active", "yes", "total", "high", SSVCAct},
	}
	for _, tt := range tests {
		got, err := tab.Decide(tt.e, tt.a, tt.ti, tt.m)
		if err != nil || got != tt.want {
			t.Errorf("Decide(%s, %s, %s, %s) = %q, %v; want %q", tt.e, tt.a, tt.ti, tt.m, got, err, tt.want)
		}
	}
	if _, err := tab.Decide("maybe", "no", "partial", "low"); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("Decide(maybe, …) error = %v; want invalid", err)
	}
}

// TestSSVCTableMonotone: in CISA's table, moving any one decision point to
// a worse value never gives a less urgent decision. The property tests of
// Assess in SSVC mode rely on it.
func TestSSVCTableMonotone(t *testing.T) {
	tab, err := LoadSSVCTable("")
	if err != nil {
		t.Fatal(err)
	}
	sets := [][]string{ssvcExploitation, ssvcAutomatable, ssvcImpact, ssvcMission}
	urgency := func(d string) int { return slices.Index(ssvcDecisions, d) }
	for _, r := range tab.Rows {
		vals := []string{r.Exploitation, r.Automatable, r.TechnicalImpact, r.Mission}
		for i, set := range sets {
			for _, worse := range set[slices.Index(set, vals[i])+1:] {
				up := slices.Clone(vals)
				up[i] = worse
				got, err := tab.Decide(up[0], up[1], up[2], up[3])
				if err != nil {
					t.Fatal(err)
				}
				if urgency(got) < urgency(r.Decision) {
					t.Errorf("%s → %s, but %s → %s", strings.Join(vals, "/"), r.Decision, strings.Join(up, "/"), got)
				}
			}
		}
	}
}

func TestLoadSSVCTableUnknown(t *testing.T) {
	if _, err := LoadSSVCTable("cisa-9.9"); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("LoadSSVCTable(cisa-9.9) error = %v; want not found", err)
	}
}

func TestParseSSVCTableRejects(t *testing.T) {
	tab, err := LoadSSVCTable("")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range tab.Rows {
		rows = append(rows, strings.Join([]string{r.Exploitation, r.Automatable, r.TechnicalImpact, r.Mission, r.Decision}, ","))
	}
	header := "exploitation,automatable,technical_impact,mission_wellbeing,decision"
	build := func(head string, rs []string) string { return head + "\n" + strings.Join(rs, "\n") + "\n" }
	replace := func(i int, row string) []string {
		out := append([]string(nil), rows...)
		out[i] = row
		return out
	}
	tests := []struct {
		name, csv, want string
	}{
		{"missing row", build(header, rows[1:]), "no row for none/no/partial/low"},
		{"duplicate row", build(header, replace(0, rows[1])), "line 3: none/no/partial/medium repeats line 2"},
		{"unknown value", build(header, replace(0, "public poc,no,partial,low,track")), `exploitation "public poc"`},
		{"unknown decision", build(header, replace(0, "none,no,partial,low,defer")), `decision "defer"`},
		{"wrong header", build("e,a,t,m,d", rows), "header"},
		{"short row", build(header, replace(0, "none,no,partial,low")), "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSSVCTable("test", strings.NewReader(tt.csv))
			if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSSVCTable() error = %v; want invalid containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseSSVCTable("copy", strings.NewReader(build(header, rows))); err != nil {
		t.Errorf("ParseSSVCTable(round trip) = %v", err)
	}
}

func TestDeriveAutomatable(t *testing.T) {
	tests := []struct {
		name, vector, want, why string
	}{
		{"v3.1 wormable", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", AutomatableYes, "AV:N/AC:L/PR:N/UI:N"},
		{"v3.0 needs user", "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", AutomatableNo, "UI:R"},
		{"v3.1 local", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", AutomatableNo, "AV:L/PR:L"},
		{"v4 wormable", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", AutomatableYes, "AT:N"},
		{"v4 attack requirements", "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", AutomatableNo, "AT:P"},
		{"v2", "AV:N/AC:L/Au:N/C:C/I:C/A:C", AutomatableNo, "v2"},
		{"none", "", AutomatableNo, "no CVSS v3 or v4 vector"},
		{"garbage", "CVSS:9/XX", AutomatableNo, "no CVSS v3 or v4 vector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := deriveAutomatable(policy.VulnFacts{CVSSVector: tt.vector})
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("deriveAutomatable(%q) = %q, %q; want %q, …%s…", tt.vector, got, why, tt.want, tt.why)
			}
		})
	}
}

func TestDeriveTechnicalImpact(t *testing.T) {
	tests := []struct {
		name, vector, want, why string
	}{
		{"v3 total", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", TechnicalImpactTotal, "C:H/I:H/A:H"},
		{"v3 partial", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", TechnicalImpactPartial, "C:H/I:N/A:N"},
		{"v4 total", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", TechnicalImpactTotal, "VC:H/VI:H/VA:H"},
		{"v4 subsequent only", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:H/SI:H/SA:H", TechnicalImpactPartial, "VC:N"},
		{"v2 complete", "AV:N/AC:L/Au:N/C:C/I:C/A:C", TechnicalImpactTotal, "C:C/I:C/A:C"},
		{"none", "", TechnicalImpactPartial, "no CVSS vector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := deriveTechnicalImpact(policy.VulnFacts{CVSSVector: tt.vector})
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("deriveTechnicalImpact(%q) = %q, %q; want %q, …%s…", tt.vector, got, why, tt.want, tt.why)
			}
		})
	}
}

func TestDeriveExploitation(t *testing.T) {
	cfg := policy.SSVC{PoCEPSSPercentile: 0.9}
	tests := []struct {
		name string
		in   Input
		want string
		why  string
	}{
		{"stated wins over KEV", Input{Exploitation: "poc", Facts: policy.Facts{Vuln: policy.VulnFacts{KEV: true}}}, ExploitationPoC, "stated"},
		{"CERT/CC spelling", Input{Exploitation: "Public PoC"}, ExploitationPoC, "stated"},
		{"KEV", Input{Facts: policy.Facts{Vuln: policy.VulnFacts{KEV: true}}}, ExploitationActive, "Known Exploited"},
		{"bad statement falls back", Input{Exploitation: "yes", Facts: policy.Facts{Vuln: policy.VulnFacts{KEV: true}}}, ExploitationActive, `"yes" is not`},
		{"EPSS at threshold", Input{Facts: policy.Facts{Vuln: policy.VulnFacts{EPSS: 0.2, EPSSPercentile: 0.9}}}, ExploitationPoC, "90.0%"},
		{"EPSS below", Input{Facts: policy.Facts{Vuln: policy.VulnFacts{EPSS: 0.001, EPSSPercentile: 0.3}}}, ExploitationNone, "below"},
		{"nothing known", Input{}, ExploitationNone, "no EPSS score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := deriveExploitation(cfg, tt.in)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("deriveExploitation() = %q, %q; want %q, …%s…", got, why, tt.want, tt.why)
			}
		})
	}
}
