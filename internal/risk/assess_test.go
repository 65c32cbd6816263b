package risk

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	yaml "go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// testRisk is the risk section the explanation tests pin, so their
// expected points do not move when the default policy is retuned.
func testRisk() policy.Risk {
	return policy.Risk{
		Mode: policy.ModeScore,
		Weights: policy.Weights{
			CVSS: 30, KEV: 25, Ransomware: 5, EPSS: 15,
			Exposure:            map[string]float64{"internet_facing": 15, "vpn": 10, "internal": 6, "clinical_vlan": 4, "isolated": 0},
			NetworkZone:         map[string]float64{"dmz": 5, "clinical": 2},
			Criticality:         map[string]float64{"low": 0, "medium": 4, "high": 7, "critical": 10},
			PHI:                 5,
			PatientSafety:       map[string]float64{"none": 0, "low": 2, "medium": 4, "high": 7, "direct_patient_care": 10},
			FixAvailable:        3,
			CompensatingControl: 5,
			MaxControlReduction: 10,
		},
		Rules: []policy.Rule{{
			Name:        "kev-internet",
			Description: "Known exploited and reachable from the internet",
			When:        `vuln.kev && asset.exposure == "internet_facing"`,
			MinTier:     "critical",
		}, {
			Name:        "unsupported-os",
			Description: "No vendor patches: the risk stays until the system is replaced",
			When:        `"unsupported" in asset.tags`,
			Add:         8,
		}},
		Tiers: []policy.Tier{
			{Name: "critical", MinScore: 85, MaxScore: 100, Due: policy.Hours(72), DueSoon: policy.Hours(24)},
			{Name: "high", MinScore: 65, MaxScore: 85, Due: policy.Days(14), DueSoon: policy.Days(3)},
			{Name: "medium", MinScore: 40, MaxScore: 65, Due: policy.Days(30), DueSoon: policy.Days(7)},
			{Name: "low", MinScore: 0, MaxScore: 40, Due: policy.Days(90), DueSoon: policy.Days(14)},
		},
		SSVC: policy.SSVC{
			Table:             "cisa-2.0.3",
			Outcomes:          map[string]string{"act": "critical", "attend": "high", "track*": "medium", "track": "low"},
			PoCEPSSPercentile: 0.95,
			MissionHigh:       `asset.criticality == "critical" || asset.patient_safety_impact == "direct_patient_care"`,
			MissionMedium:     `asset.criticality == "high" || asset.handles_phi`,
		},
		KEVBands: policy.KEVBands{
			UseCatalogDueDate: true,
			KEV:               policy.Days(14),
			Critical:          policy.Days(15),
			High:              policy.Days(30),
			Other:             policy.Days(90),
			Tiers:             map[string]string{"kev": "critical", "critical": "critical", "high": "high", "other": "low"},
		},
	}
}

// testClasses are stricter targets for EHR servers, as the seeds ask.
func testClasses() []policy.AssetClass {
	return []policy.AssetClass{{
		Name:  "ehr_server",
		Match: `asset.type == "server" && "ehr" in asset.tags`,
		Due:   map[string]policy.Duration{"critical": policy.Hours(48), "high": policy.Days(7)},
	}, {
		Name:  "phi_systems",
		Match: `asset.handles_phi`,
		Due:   map[string]policy.Duration{"critical": policy.Hours(60), "low": policy.Days(60)},
	}}
}

// compileTest compiles the default policy with the test risk section (and
// mode) and asset classes, through the same Load that reads policy files.
func compileTest(t testing.TB, mode string) *policy.Compiled {
	t.Helper()
	r := testRisk()
	r.Mode = mode
	return compileRisk(t, r)
}

// compileRisk compiles the default policy with r as its risk section and
// the test asset classes.
func compileRisk(t testing.TB, r policy.Risk) *policy.Compiled {
	t.Helper()
	pol := policy.Default().Policy()
	pol.Risk = r
	pol.AssetClasses = testClasses()
	for i := range pol.Testing.Cases {
		pol.Testing.Cases[i].AppliesTo = nil // they name the default classes
	}
	return compilePolicy(t, pol)
}

// compilePolicy compiles pol through policy.Load, the path every policy
// file takes, so tests see the same validation and CEL checks.
func compilePolicy(t testing.TB, pol policy.Policy) *policy.Compiled {
	t.Helper()
	src, err := yaml.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(src)
	if err != nil {
		t.Fatalf("policy.Load(test policy) = %v", err)
	}
	return c
}

func date(s string) *time.Time {
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return &d
}

// ehrKEV is CVE-2023-46604 (Apache ActiveMQ OpenWire RCE, CVSS 3.1 9.8,
// in KEV with known ransomware use) on the EHR's internet-facing
// integration server.
func ehrKEV() Input {
	return Input{
		Facts: policy.Facts{
			Asset: policy.AssetFacts{
				ID: "a-ehr-01", Name: "ehr-app-01", Type: "server", Site: "main",
				NetworkZone: "dmz", Exposure: "internet_facing", Criticality: "critical",
				SafetyImpact: "high", DataClass: "phi", PHI: true, OSName: "Ubuntu",
				Tags: []string{"ehr"},
			},
			Vuln: policy.VulnFacts{
				ID: "CVE-2023-46604", CVSS: 9.8, CVSSVersion: "3.1",
				CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
				KEV:        true, Ransomware: true, EPSS: 0.94, EPSSPercentile: 0.999,
			},
			Finding: policy.FindingFacts{Ecosystem: "Maven", Package: "org.apache.activemq:activemq-client",
				Version: "5.15.15", FixAvailable: true},
		},
		KEVDateAdded: date("2023-11-02"),
		KEVDueDate:   date("2023-11-23"),
	}
}

// analyzerLowEPSS is a local, high-complexity CVSS 6.7 flaw with a low EPSS
// on an isolated chemistry analyzer that the maker has not yet validated a
// fix for, behind two compensating controls.
func analyzerLowEPSS() Input {
	return Input{
		Facts: policy.Facts{
			Asset: policy.AssetFacts{
				ID: "a-chem-02", Name: "chem-analyzer-02", Type: "analyzer", Site: "lab",
				NetworkZone: "lab-instruments", Exposure: "isolated", Criticality: "high",
				SafetyImpact: "medium", DataClass: "phi", PHI: true, RegulatedDevice: true,
				Restriction: "vendor_only", OSName: "Windows", Make: "Roche", Model: "cobas c 311",
			},
			Vuln: policy.VulnFacts{
				ID: "CVE-2023-24932", CVSS: 6.7, CVSSVersion: "3.1",
				CVSSVector: "CVSS:3.1/AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H",
				EPSS:       0.0045, EPSSPercentile: 0.62,
			},
			Finding: policy.FindingFacts{Ecosystem: "windows", Package: "Windows Boot Manager",
				Controls: []string{policy.ControlSegmentation, policy.ControlAllowlisting}},
		},
	}
}

func TestAssessScoreExplains(t *testing.T) {
	p := compileTest(t, policy.ModeScore)
	unknownZone := analyzerLowEPSS()
	unknownZone.Facts.Asset.Exposure = ""
	unknownZone.Facts.Asset.SafetyImpact = "catastrophic"
	unknownZone.Facts.Asset.Tags = []string{"unsupported"}
	unknownZone.Facts.Finding.Controls = []string{"segmentation", "monitoring", "allowlisting", "segmentation"}
	floor := analyzerLowEPSS()
	floor.Facts.Asset.Exposure = "internet_facing"
	floor.Facts.Vuln.KEV = true

	tests := []struct {
		name string
		in   Input
		want Assessment
	}{{
		name: "KEV-listed 9.8 on an internet-facing EHR server",
		in:   ehrKEV(),
		want: Assessment{
			Mode: policy.ModeScore, Score: 100, Tier: "critical", Rank: 0,
			Factors: []Factor{
				{Name: "CVSS base severity", Input: "CVSS 3.1 9.8 (AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H)", Points: 29.4, Note: "30 points at 10, scaled by the base score"},
				{Name: "Known exploited (CISA KEV)", Input: "listed 2023-11-02", Points: 25},
				{Name: "Known ransomware use", Input: "known (CISA KEV)", Points: 5},
				{Name: "Exploit probability (EPSS)", Input: "probability 0.94, percentile 99.9%", Points: 14.1, Note: "15 points at probability 1, scaled by the probability"},
				{Name: "Exposure", Input: "internet_facing", Points: 15},
				{Name: "Network zone", Input: "dmz", Points: 5},
				{Name: "Asset criticality", Input: "critical", Points: 10},
				{Name: "Protected health information", Input: "handled", Points: 5},
				{Name: "Patient-safety impact", Input: "high", Points: 7},
				{Name: "Fix available", Input: "fixed version available", Points: 3, Note: "actionable now"},
				{Name: "Compensating controls", Input: "none"},
				{Name: "Rule: kev-internet", Input: `vuln.kev && asset.exposure == "internet_facing"`,
					Note: "Known exploited and reachable from the internet; at least tier critical"},
				{Name: "Score cap", Input: "118.50", Points: -18.5, Note: "scores are capped at 100"},
			},
			Classes:    []string{"ehr_server", "phi_systems"},
			Target:     policy.Hours(48),
			TargetText: "48h",
			TargetWhy:  "asset class ehr_server: 48h for tier critical, stricter than tier critical: 72h",
			DueSoon:    policy.Hours(24),
		},
	}, {
		name: "low-EPSS flaw on an isolated analyzer behind two controls",
		in:   analyzerLowEPSS(),
		want: Assessment{
			Mode: policy.ModeScore, Score: 26.2, Tier: "low", Rank: 3,
			Factors: []Factor{
				{Name: "CVSS base severity", Input: "CVSS 3.1 6.7 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Points: 20.1, Note: "30 points at 10, scaled by the base score"},
				{Name: "Known exploited (CISA KEV)", Input: "not listed"},
				{Name: "Known ransomware use", Input: "not known"},
				{Name: "Exploit probability (EPSS)", Input: "probability 0.0045, percentile 62.0%", Points: 0.07, Note: "15 points at probability 1, scaled by the probability"},
				{Name: "Exposure", Input: "isolated"},
				{Name: "Network zone", Input: "lab-instruments", Note: `the policy gives network zone "lab-instruments" no weight: adds nothing`},
				{Name: "Asset criticality", Input: "high", Points: 7},
				{Name: "Protected health information", Input: "handled", Points: 5},
				{Name: "Patient-safety impact", Input: "medium", Points: 4},
				{Name: "Fix available", Input: "no fixed version yet"},
				{Name: "Compensating controls", Input: "2: segmentation, allowlisting", Points: -10, Note: "5 points each"},
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(60),
			TargetText: "60d",
			TargetWhy:  "asset class phi_systems: 60d for tier low, stricter than tier low: 90d",
			DueSoon:    policy.Days(14),
		},
	}, {
		name: "unknown and missing values add nothing; controls capped; a rule adds points",
		in:   unknownZone,
		want: Assessment{
			Mode: policy.ModeScore, Score: 30.2, Tier: "low", Rank: 3,
			Factors: []Factor{
				{Name: "CVSS base severity", Input: "CVSS 3.1 6.7 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Points: 20.1, Note: "30 points at 10, scaled by the base score"},
				{Name: "Known exploited (CISA KEV)", Input: "not listed"},
				{Name: "Known ransomware use", Input: "not known"},
				{Name: "Exploit probability (EPSS)", Input: "probability 0.0045, percentile 62.0%", Points: 0.07, Note: "15 points at probability 1, scaled by the probability"},
				{Name: "Exposure", Input: "not recorded", Note: "no exposure recorded: adds nothing"},
				{Name: "Network zone", Input: "lab-instruments", Note: `the policy gives network zone "lab-instruments" no weight: adds nothing`},
				{Name: "Asset criticality", Input: "high", Points: 7},
				{Name: "Protected health information", Input: "handled", Points: 5},
				{Name: "Patient-safety impact", Input: "catastrophic", Note: `the policy gives patient-safety impact "catastrophic" no weight: adds nothing`},
				{Name: "Fix available", Input: "no fixed version yet"},
				{Name: "Compensating controls", Input: "3: segmentation, monitoring, allowlisting", Points: -10, Note: "5 points each, capped at 10"},
				{Name: "Rule: unsupported-os", Input: `"unsupported" in asset.tags`, Points: 8, Note: "No vendor patches: the risk stays until the system is replaced"},
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(60),
			TargetText: "60d",
			TargetWhy:  "asset class phi_systems: 60d for tier low, stricter than tier low: 90d",
			DueSoon:    policy.Days(14),
		},
	}, {
		name: "a rule's min_tier lifts a low score",
		in:   floor,
		want: Assessment{
			Mode: policy.ModeScore, Score: 66.2, Tier: "critical", Rank: 0,
			Factors: []Factor{
				{Name: "CVSS base severity", Input: "CVSS 3.1 6.7 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Points: 20.1, Note: "30 points at 10, scaled by the base score"},
				{Name: "Known exploited (CISA KEV)", Input: "listed", Points: 25},
				{Name: "Known ransomware use", Input: "not known"},
				{Name: "Exploit probability (EPSS)", Input: "probability 0.0045, percentile 62.0%", Points: 0.07, Note: "15 points at probability 1, scaled by the probability"},
				{Name: "Exposure", Input: "internet_facing", Points: 15},
				{Name: "Network zone", Input: "lab-instruments", Note: `the policy gives network zone "lab-instruments" no weight: adds nothing`},
				{Name: "Asset criticality", Input: "high", Points: 7},
				{Name: "Protected health information", Input: "handled", Points: 5},
				{Name: "Patient-safety impact", Input: "medium", Points: 4},
				{Name: "Fix available", Input: "no fixed version yet"},
				{Name: "Compensating controls", Input: "2: segmentation, allowlisting", Points: -10, Note: "5 points each"},
				{Name: "Rule: kev-internet", Input: `vuln.kev && asset.exposure == "internet_facing"`,
					Note: "Known exploited and reachable from the internet; at least tier critical"},
				{Name: "Tier floor", Input: "rule kev-internet: at least critical",
					Note: "score 66.2 falls in tier high; the rule lifts it to critical"},
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Hours(60),
			TargetText: "60h",
			TargetWhy:  "asset class phi_systems: 60h for tier critical, stricter than tier critical: 72h",
			DueSoon:    policy.Hours(24),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Assess(p, tt.in)
			if err != nil {
				t.Fatalf("Assess() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("Assess() (-want +got):\n%s", diff)
			}
			var sum float64
			for _, f := range got.Factors {
				sum += f.Points
			}
			if round1(round2(sum)) != got.Score {
				t.Errorf("factors add up to %.2f; score is %.1f", sum, got.Score)
			}
		})
	}
}

func TestAssessSSVC(t *testing.T) {
	p := compileTest(t, policy.ModeSSVC)
	poc := analyzerLowEPSS()
	poc.Exploitation = "poc"
	poc.Facts.Asset.Criticality = "critical"
	tests := []struct {
		name string
		in   Input
		want Assessment
	}{{
		name: "KEV, wormable, total, mission high: act",
		in:   ehrKEV(),
		want: Assessment{
			Mode: policy.ModeSSVC, Score: 100, Tier: "critical", Rank: 0,
			Factors: []Factor{
				{Name: "Exploitation", Input: "active", Note: "listed in CISA's Known Exploited Vulnerabilities catalog"},
				{Name: "Automatable", Input: "yes", Note: "CVSS 3.1 vector has AV:N/AC:L/PR:N/UI:N: reachable over the network with no privileges, conditions or user action"},
				{Name: "Technical impact", Input: "total", Note: "CVSS 3.1 vector has C:H/I:H/A:H: confidentiality, integrity and availability all lost"},
				{Name: "Mission & well-being", Input: "high", Note: "the asset matches the policy's ssvc.mission_high"},
				{Name: "SSVC decision", Input: "act", Note: "table cisa-2.0.3; policy maps act to tier critical"},
			},
			SSVC: &SSVCDecision{
				Table: "cisa-2.0.3", Exploitation: "active", Automatable: "yes", TechnicalImpact: "total",
				Mission: "high", Outcome: "act",
				Why: map[string]string{
					"exploitation":      "listed in CISA's Known Exploited Vulnerabilities catalog",
					"automatable":       "CVSS 3.1 vector has AV:N/AC:L/PR:N/UI:N: reachable over the network with no privileges, conditions or user action",
					"technical_impact":  "CVSS 3.1 vector has C:H/I:H/A:H: confidentiality, integrity and availability all lost",
					"mission_wellbeing": "the asset matches the policy's ssvc.mission_high",
				},
			},
			Classes:    []string{"ehr_server", "phi_systems"},
			Target:     policy.Hours(48),
			TargetText: "48h",
			TargetWhy:  "asset class ehr_server: 48h for tier critical, stricter than tier critical: 72h",
			DueSoon:    policy.Hours(24),
		},
	}, {
		name: "low EPSS, local, PHI analyzer: track",
		in:   analyzerLowEPSS(),
		want: Assessment{
			Mode: policy.ModeSSVC, Score: 25, Tier: "low", Rank: 3,
			Factors: []Factor{
				{Name: "Exploitation", Input: "none", Note: "not in KEV; EPSS percentile 62.0% is below the policy's 95.0%"},
				{Name: "Automatable", Input: "no", Note: "CVSS 3.1 vector has AV:L/AC:H/PR:H (automatable needs AV:N/AC:L/PR:N/UI:N)"},
				{Name: "Technical impact", Input: "total", Note: "CVSS 3.1 vector has C:H/I:H/A:H: confidentiality, integrity and availability all lost"},
				{Name: "Mission & well-being", Input: "medium", Note: "the asset matches the policy's ssvc.mission_medium"},
				{Name: "SSVC decision", Input: "track", Note: "table cisa-2.0.3; policy maps track to tier low"},
			},
			SSVC: &SSVCDecision{
				Table: "cisa-2.0.3", Exploitation: "none", Automatable: "no", TechnicalImpact: "total",
				Mission: "medium", Outcome: "track",
				Why: map[string]string{
					"exploitation":      "not in KEV; EPSS percentile 62.0% is below the policy's 95.0%",
					"automatable":       "CVSS 3.1 vector has AV:L/AC:H/PR:H (automatable needs AV:N/AC:L/PR:N/UI:N)",
					"technical_impact":  "CVSS 3.1 vector has C:H/I:H/A:H: confidentiality, integrity and availability all lost",
					"mission_wellbeing": "the asset matches the policy's ssvc.mission_medium",
				},
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(60),
			TargetText: "60d",
			TargetWhy:  "asset class phi_systems: 60d for tier low, stricter than tier low: 90d",
			DueSoon:    policy.Days(14),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Assess(p, tt.in)
			if err != nil {
				t.Fatalf("Assess() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Assess() (-want +got):\n%s", diff)
			}
		})
	}

	// A stated exploitation and a critical asset: poc/no/total/high is
	// attend in CISA's table.
	got, err := Assess(p, poc)
	if err != nil {
		t.Fatal(err)
	}
	if got.SSVC.Outcome != SSVCAttend || got.Tier != "high" || got.SSVC.Why["exploitation"] != "stated by the vulnerability's source" {
		t.Errorf("Assess(stated poc) = %s → %s (%q); want attend → high, stated", got.SSVC.Outcome, got.Tier, got.SSVC.Why["exploitation"])
	}
}

func TestAssessNoPolicy(t *testing.T) {
	if _, err := Assess(nil, ehrKEV()); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("Assess(nil policy) error = %v; want invalid", err)
	}
}
