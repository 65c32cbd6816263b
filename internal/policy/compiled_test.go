package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/inventory"
)

func loadBase(t *testing.T, edits ...edit) *Compiled {
	t.Helper()
	c, err := Load([]byte(applyEdits(t, readBase(t), edits)))
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	return c
}

func TestDefaultLoadsCleanly(t *testing.T) {
	c, err := Load(defaultYAML)
	if err != nil {
		t.Fatalf("Load(default.yaml):\n%v", err)
	}
	if Default() != Default() {
		t.Error("Default() returned different values; want one shared *Compiled")
	}
	if !bytes.Equal(Default().Source(), defaultYAML) || !bytes.Equal(DefaultSource(), defaultYAML) {
		t.Error("Default().Source() differs from default.yaml")
	}
	if c.SHA256() != Default().SHA256() {
		t.Error("SHA256 differs between loads of the same source")
	}
}

// TestDefaultPolicy checks the properties the brief asks of the shipped
// policy, so an edit to default.yaml that breaks one fails here.
func TestDefaultPolicy(t *testing.T) {
	c := Default()
	p := c.Policy()
	var tiers []string
	for _, tr := range p.Risk.Tiers {
		tiers = append(tiers, fmt.Sprintf("%s %g-%g %s/%s", tr.Name, tr.MinScore, tr.MaxScore, tr.Due, tr.DueSoon))
	}
	want := []string{"critical 70-100 72h/24h", "high 50-70 14d/3d", "medium 25-50 30d/7d", "low 0-25 90d/14d"}
	if diff := cmp.Diff(want, tiers); diff != "" {
		t.Errorf("default tiers (-want +got):\n%s", diff)
	}
	// A KEV-listed, internet-exposed finding on a critical asset lands in
	// the top tier on weights alone, even at CVSS 0 with every
	// compensating control counted.
	w := p.Risk.Weights
	floor := w.KEV + w.Exposure["internet_facing"] + w.Criticality["critical"] - w.MaxControlReduction
	if top, _ := c.TierForScore(floor); top.Name != "critical" {
		t.Errorf("KEV + internet + critical - controls = %g lands in %q; want critical", floor, top.Name)
	}
	hits, err := c.RuleHits(Facts{Asset: AssetFacts{Exposure: "internet_facing"}, Vuln: VulnFacts{KEV: true}})
	if err != nil || len(hits) == 0 || hits[0].Rule.Name != "known-exploited-exposed" || hits[0].Rule.MinTier != "critical" {
		t.Errorf("RuleHits(KEV, internet-facing) = %+v, %v; want known-exploited-exposed lifting to critical", hits, err)
	}
	for _, name := range []string{"domain-controllers", "ehr-servers", "lis-and-analyzers", "vpn-gateways", "patient-care-devices"} {
		found := false
		for _, ac := range p.AssetClasses {
			found = found || ac.Name == name
		}
		if !found {
			t.Errorf("default policy has no asset class %q", name)
		}
	}
	lab, err := c.ClassesOf(AssetFacts{Type: "analyzer"})
	if err != nil || len(lab) != 1 || !cmp.Equal(lab[0].Approvers, []string{"laboratory-director"}) {
		t.Errorf("ClassesOf(analyzer) = %+v, %v; want lis-and-analyzers with the laboratory director", lab, err)
	}
	if w, ok := c.Window("monthly-baseline"); !ok || w.Schedule != "FREQ=MONTHLY;BYDAY=2TU" {
		t.Errorf("Window(monthly-baseline) = %+v, %v", w, ok)
	}
	for _, id := range []string{"order-entry", "result-routing", "instrument-communication", "qc-run", "result-verification", "interface-messaging", "boot-time", "edr-compatibility"} {
		if _, ok := c.TestCase(id); !ok {
			t.Errorf("TestCase(%q) missing from the default policy", id)
		}
	}
	if !p.Approvals.SeparationOfDuties || !p.Approvals.ExpireOnEdit {
		t.Error("default approvals: want separation_of_duties and expire_on_edit")
	}
	if p.Approvals.Types[ChangeEmergency].Quorum >= p.Approvals.Types[ChangeNormal].Quorum {
		t.Error("default approvals: emergency should need fewer approvers than normal")
	}
	if p.Retention.Audit.Approx() < 6*365*24*time.Hour || p.Retention.Evidence.Approx() < 6*365*24*time.Hour {
		t.Error("default retention: HIPAA asks six years for audit and evidence")
	}
}

// TestDefaultEvaluates runs every rule, class, ring and mission expression
// in default.yaml over a spread of facts: none may fail at run time.
func TestDefaultEvaluates(t *testing.T) {
	c := Default()
	var assets []AssetFacts
	for _, e := range inventory.Exposures {
		for _, l := range inventory.Levels {
			for _, s := range inventory.SafetyImpacts {
				assets = append(assets, AssetFacts{
					ID: "a1", Name: "host", Type: "server", Exposure: string(e), Criticality: string(l),
					SafetyImpact: string(s), PHI: l == inventory.LevelHigh, RegulatedDevice: s == inventory.SafetyDirect,
				})
			}
		}
	}
	assets = append(assets,
		AssetFacts{}, // everything empty, nil tags
		AssetFacts{Type: "analyzer", Tags: []string{"lis", "tier1"}},
		AssetFacts{Type: "network_device", Exposure: "internet_facing", Tags: []string{"vpn"}},
		AssetFacts{Type: "server", Tags: []string{"domain-controller", "pilot"}},
		AssetFacts{Type: "clinical_system", Tags: []string{"ehr"}},
	)
	vulns := []VulnFacts{{}, {ID: "CVE-2024-1", CVSS: 9.8, KEV: true, Ransomware: true, EPSS: 0.97, EPSSPercentile: 0.99}, {CVSS: 4.3, EPSS: 0.001}}
	findings := []FindingFacts{{}, {FixAvailable: true, Controls: []string{ControlSegmentation}, AgeDays: 40}}
	ringsSeen := map[string]bool{}
	for _, a := range assets {
		if _, err := c.ClassesOf(a); err != nil {
			t.Fatalf("ClassesOf(%+v): %v", a, err)
		}
		r, i, err := c.RingOf(a)
		if err != nil || i < 0 {
			t.Fatalf("RingOf(%+v) = %d, %v", a, i, err)
		}
		ringsSeen[r.Name] = true
		for _, v := range vulns {
			for _, f := range findings {
				facts := Facts{Asset: a, Vuln: v, Finding: f}
				if _, err := c.RuleHits(facts); err != nil {
					t.Fatalf("RuleHits(%+v): %v", facts, err)
				}
				if _, err := c.Mission(facts); err != nil {
					t.Fatalf("Mission(%+v): %v", facts, err)
				}
			}
		}
	}
	for _, r := range c.Policy().Rings {
		if !ringsSeen[r.Name] {
			t.Errorf("no sample asset landed in ring %q", r.Name)
		}
	}
}

func TestRuleHits(t *testing.T) {
	c := loadBase(t)
	tests := []struct {
		name string
		f    Facts
		want []int
	}{
		{"none", Facts{}, nil},
		{"kev exposed", Facts{Asset: AssetFacts{Exposure: "internet_facing"}, Vuln: VulnFacts{KEV: true}}, []int{0}},
		{"both, in file order", Facts{Asset: AssetFacts{Exposure: "internet_facing", PHI: true}, Vuln: VulnFacts{KEV: true, Ransomware: true}}, []int{0, 1}},
		{"ransomware only", Facts{Asset: AssetFacts{PHI: true}, Vuln: VulnFacts{Ransomware: true}}, []int{1}},
	}
	for _, tt := range tests {
		hits, err := c.RuleHits(tt.f)
		if err != nil {
			t.Fatalf("%s: RuleHits: %v", tt.name, err)
		}
		var got []int
		for _, h := range hits {
			got = append(got, h.Index)
			if h.Rule.Name != c.Policy().Risk.Rules[h.Index].Name {
				t.Errorf("%s: hit %d carries rule %q", tt.name, h.Index, h.Rule.Name)
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: RuleHits indexes (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestClassesRingsMission(t *testing.T) {
	c := loadBase(t)
	names := func(cs []AssetClass) []string {
		var out []string
		for _, ac := range cs {
			out = append(out, ac.Name)
		}
		return out
	}
	got, err := c.ClassesOf(AssetFacts{Type: "analyzer", Tags: []string{"domain-controller"}})
	if err != nil || !cmp.Equal(names(got), []string{"dc", "lab"}) {
		t.Errorf("ClassesOf = %v, %v; want [dc lab]", names(got), err)
	}
	if got, _ := c.ClassesOf(AssetFacts{}); len(got) != 0 {
		t.Errorf("ClassesOf(empty) = %v; want none", names(got))
	}

	r, i, err := c.RingOf(AssetFacts{Tags: []string{"pilot"}})
	if err != nil || r.Name != "pilot" || i != 0 {
		t.Errorf("RingOf(pilot) = %q, %d, %v; want pilot, 0", r.Name, i, err)
	}
	r, i, err = c.RingOf(AssetFacts{})
	if err != nil || r.Name != "rest" || i != 1 {
		t.Errorf("RingOf(other) = %q, %d, %v; want rest, 1", r.Name, i, err)
	}
	// With every ring selective, an asset none selects goes to the last.
	c2 := loadBase(t, edit{old: "  - name: rest\n", new: "  - name: rest\n    select: asset.type == \"server\"\n"})
	r, i, err = c2.RingOf(AssetFacts{Type: "endpoint"})
	if err != nil || r.Name != "rest" || i != 1 {
		t.Errorf("RingOf(unselected) = %q, %d, %v; want rest, 1", r.Name, i, err)
	}

	for _, tt := range []struct {
		a    AssetFacts
		want string
	}{
		{AssetFacts{Criticality: "critical", PHI: true}, MissionHigh},
		{AssetFacts{PHI: true}, MissionMedium},
		{AssetFacts{}, MissionLow},
	} {
		if got, err := c.Mission(Facts{Asset: tt.a}); err != nil || got != tt.want {
			t.Errorf("Mission(%+v) = %q, %v; want %q", tt.a, got, err, tt.want)
		}
	}
	c3 := loadBase(t, edit{old: "    mission_high: asset.criticality == \"critical\"\n    mission_medium: asset.handles_phi\n", new: ""})
	if got, err := c3.Mission(Facts{Asset: AssetFacts{Criticality: "critical"}}); err != nil || got != MissionLow {
		t.Errorf("Mission without expressions = %q, %v; want low", got, err)
	}
}

func TestTiers(t *testing.T) {
	c := loadBase(t)
	tier, i, ok := c.TierByName("high")
	if !ok || i != 1 || tier.Due != Days(14) {
		t.Errorf("TierByName(high) = %+v, %d, %v", tier, i, ok)
	}
	if _, i, ok := c.TierByName("urgent"); ok || i != -1 {
		t.Errorf("TierByName(urgent) = %d, %v; want -1, false", i, ok)
	}
	for _, tt := range []struct {
		score float64
		want  string
	}{
		{100, "critical"}, {150, "critical"}, {70, "critical"}, {69.99, "high"}, {50, "high"},
		{49.5, "medium"}, {25, "medium"}, {24.9, "low"}, {0, "low"}, {-5, "low"},
	} {
		if got, _ := c.TierForScore(tt.score); got.Name != tt.want {
			t.Errorf("TierForScore(%g) = %q; want %q", tt.score, got.Name, tt.want)
		}
	}
}

func TestLookups(t *testing.T) {
	c := loadBase(t)
	if w, ok := c.Window("nightly"); !ok || !w.Emergency {
		t.Errorf("Window(nightly) = %+v, %v", w, ok)
	}
	if _, ok := c.Window("weekend"); ok {
		t.Error("Window(weekend) found; want none")
	}
	if tc, ok := c.TestCase("qc"); !ok || tc.Name != "QC run" {
		t.Errorf("TestCase(qc) = %+v, %v", tc, ok)
	}
	if _, ok := c.TestCase("ekg"); ok {
		t.Error("TestCase(ekg) found; want none")
	}
	sum := sha256.Sum256([]byte(readBase(t)))
	if got := c.SHA256(); got != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 = %s; want hex SHA-256 of the source", got)
	}
}

// TestPolicyIsACopy checks that changing what Policy and Source return
// cannot change the shared *Compiled.
func TestPolicyIsACopy(t *testing.T) {
	c := loadBase(t)
	p := c.Policy()
	p.Risk.Tiers[0].Name = "changed"
	p.Risk.Weights.Exposure["vpn"] = 99
	p.AssetClasses[0].Due["critical"] = Days(99)
	p.Organization.Scope[0] = "changed"
	src := c.Source()
	src[0] = 'X'
	q := c.Policy()
	if q.Risk.Tiers[0].Name != "critical" || q.Risk.Weights.Exposure["vpn"] != 15 ||
		q.AssetClasses[0].Due["critical"] != Hours(48) || q.Organization.Scope[0] != "everything" {
		t.Error("changing Policy()'s result changed the compiled policy")
	}
	if c.Source()[0] == 'X' {
		t.Error("changing Source()'s result changed the compiled policy")
	}
	if !cmp.Equal(c.Policy(), c.Policy()) {
		t.Error("Policy() is not stable")
	}
}

// TestHostileExpressions checks that an expression cannot hang the
// server: one too costly whatever the data is refused at load, and one
// made costly by the data is stopped at run time.
func TestHostileExpressions(t *testing.T) {
	list := "[" + strings.Repeat("1,", 49) + "1]"
	nested := fmt.Sprintf("%s.all(a, %s.all(b, %s.all(c, %s.all(d, a + b + c + d > 0))))", list, list, list, list)
	src := applyEdits(t, readBase(t), []edit{{old: `      when: vuln.kev && asset.exposure == "internet_facing"`, new: "      when: '" + nested + "'"}})
	start := time.Now()
	_, err := Load([]byte(src))
	got := problemsOf(t, err)
	if len(got) != 1 || got[0].Path != "risk.rules[0].when" || !strings.Contains(got[0].Message, "too expensive") {
		t.Errorf("Load(nested comprehension) problems = %+v; want one saying too expensive", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Load took %v", d)
	}

	// Cheap on empty tags, costly on many.
	c := loadBase(t, edit{old: `      when: vuln.kev && asset.exposure == "internet_facing"`,
		new: `      when: asset.tags.all(a, asset.tags.all(b, asset.tags.all(c, a + b + c != "")))`})
	tags := make([]string, 300)
	for i := range tags {
		tags[i] = fmt.Sprint("t", i)
	}
	start = time.Now()
	_, err = c.RuleHits(Facts{Asset: AssetFacts{Tags: tags}})
	if err == nil {
		t.Error("RuleHits over 300³ tag combinations succeeded; want it stopped")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("RuleHits took %v; want it stopped early", d)
	}
	if _, err := c.RuleHits(Facts{Asset: AssetFacts{Tags: tags[:3]}}); err != nil {
		t.Errorf("RuleHits with 3 tags: %v", err)
	}
}

func TestRoleGrantsMatchAuth(t *testing.T) {
	for _, r := range Default().Policy().Roles {
		if !auth.Role(r.Grants).Valid() {
			t.Errorf("role %q grants %q, not a Patchward role", r.Name, r.Grants)
		}
	}
}

func BenchmarkRuleHits(b *testing.B) {
	c := Default()
	f := Facts{Asset: AssetFacts{Exposure: "internet_facing", Criticality: "high", PHI: true, Tags: []string{"ehr", "tier1"}},
		Vuln: VulnFacts{KEV: true, EPSS: 0.6, Ransomware: true}}
	for b.Loop() {
		if _, err := c.RuleHits(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Load(defaultYAML); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMarshalRoundTrip checks that a Policy written back out as YAML loads
// to the same settings, so code may build a policy as a value, marshal it
// and Load it.
func TestMarshalRoundTrip(t *testing.T) {
	for _, c := range []*Compiled{Default(), loadBase(t)} {
		out, err := yaml.Marshal(c.Policy())
		if err != nil {
			t.Fatal(err)
		}
		back, err := Load(out)
		if err != nil {
			t.Fatalf("Load(yaml.Marshal(policy)):\n%v\n%s", err, out)
		}
		if diff := cmp.Diff(c.Policy(), back.Policy(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}
