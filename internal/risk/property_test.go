package risk

import (
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/patchward/patchward/internal/policy"
)

// The inventory's ordinal values, least to most risky, as the property
// tests raise them.
var (
	exposureOrder    = []string{"isolated", "clinical_vlan", "internal", "vpn", "internet_facing"}
	criticalityOrder = []string{"low", "medium", "high", "critical"}
	safetyOrder      = []string{"none", "low", "medium", "high", "direct_patient_care"}
)

// genInput draws a finding with every fact the default policy's rules and
// weights can look at, including values the policy does not know.
func genInput(t *rapid.T) Input {
	str := func(label string, vs ...string) string { return rapid.SampledFrom(vs).Draw(t, label) }
	version := str("cvss_version", "3.1", "3.0", "4.0", "2.0", "")
	var cvss float64
	if version != "" {
		cvss = math.Round(rapid.Float64Range(0.1, 10).Draw(t, "cvss")*10) / 10
	}
	vector := genVector(t, version)
	epss := rapid.Float64Range(0, 1).Draw(t, "epss")
	kinds := rapid.SliceOfNDistinct(rapid.SampledFrom(policy.ControlKinds), 0, 4, rapid.ID[string]).Draw(t, "controls")
	return Input{
		Facts: policy.Facts{
			Asset: policy.AssetFacts{
				ID:              "a-1",
				Name:            "asset-1",
				Type:            str("type", "endpoint", "server", "vm", "network_device", "clinical_system", "analyzer", "instrument_controller", "imaging", "iomt", "mobile", "unknown"),
				Site:            str("site", "main", "lab", ""),
				NetworkZone:     str("zone", "dmz", "clinical", "lab", "corporate", "guest", "", "unlisted-zone"),
				Exposure:        str("exposure", exposureOrder...),
				Criticality:     str("criticality", criticalityOrder...),
				SafetyImpact:    str("safety", safetyOrder...),
				DataClass:       str("data_class", "public", "internal", "confidential", "phi", ""),
				PHI:             rapid.Bool().Draw(t, "phi"),
				RegulatedDevice: rapid.Bool().Draw(t, "regulated"),
				Restriction:     str("restriction", "", "vendor_only", "vendor_approval", "none"),
				OSName:          str("os", "Windows", "Ubuntu", "RHEL", ""),
				Tags:            rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"ehr", "lis", "pacs", "domain-controller", "vpn", "pilot", "unsupported", "lis-middleware", "analyzer"}), 0, 3, rapid.ID[string]).Draw(t, "tags"),
				Groups:          rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"lab", "radiology", "front-desk"}), 0, 2, rapid.ID[string]).Draw(t, "groups"),
			},
			Vuln: policy.VulnFacts{
				ID:             "CVE-2024-0001",
				CVSS:           cvss,
				CVSSVersion:    version,
				CVSSVector:     vector,
				KEV:            rapid.Bool().Draw(t, "kev"),
				Ransomware:     rapid.Bool().Draw(t, "ransomware"),
				EPSS:           epss,
				EPSSPercentile: rapid.Float64Range(0, 1).Draw(t, "epss_percentile"),
			},
			Finding: policy.FindingFacts{
				Ecosystem:    str("ecosystem", "Debian", "npm", "windows"),
				Package:      "pkg",
				Version:      "1.0",
				FixAvailable: rapid.Bool().Draw(t, "fix"),
				Controls:     kinds,
				AgeDays:      rapid.Float64Range(0, 400).Draw(t, "age"),
			},
		},
	}
}

// genVector draws a base vector in the given CVSS version ("" for none).
// The score drawn beside it need not match: Assess takes published scores
// as given and reads the vector only for SSVC's inputs.
func genVector(t *rapid.T, version string) string {
	m := func(metric string, values ...string) string {
		return metric + ":" + rapid.SampledFrom(values).Draw(t, metric)
	}
	parts := []string{}
	switch version {
	case "3.0", "3.1":
		parts = append(parts, "CVSS:"+version, m("AV", "N", "A", "L", "P"), m("AC", "L", "H"), m("PR", "N", "L", "H"),
			m("UI", "N", "R"), m("S", "U", "C"), m("C", "H", "L", "N"), m("I", "H", "L", "N"), m("A", "H", "L", "N"))
	case "4.0":
		parts = append(parts, "CVSS:4.0", m("AV", "N", "A", "L", "P"), m("AC", "L", "H"), m("AT", "N", "P"), m("PR", "N", "L", "H"),
			m("UI", "N", "P", "A"), m("VC", "H", "L", "N"), m("VI", "H", "L", "N"), m("VA", "H", "L", "N"),
			"SC:N", "SI:N", "SA:N")
	case "2.0":
		parts = append(parts, m("AV", "N", "A", "L"), m("AC", "L", "M", "H"), m("Au", "N", "S", "M"),
			m("C", "C", "P", "N"), m("I", "C", "P", "N"), m("A", "C", "P", "N"))
	}
	return strings.Join(parts, "/")
}

// raiseOrdinal moves v to a strictly riskier value of order when there is
// one.
func raiseOrdinal(t *rapid.T, label, v string, order []string) string {
	i := slices.Index(order, v)
	if i < 0 || i == len(order)-1 {
		return v
	}
	return rapid.SampledFrom(order[i+1:]).Draw(t, label)
}

// raises are the single-input changes that must never make a finding less
// urgent.
var raises = map[string]func(t *rapid.T, in *Input){
	"cvss up": func(t *rapid.T, in *Input) {
		v := &in.Facts.Vuln
		if v.CVSSVersion == "" {
			v.CVSSVersion = "3.1"
		}
		v.CVSS = math.Round(rapid.Float64Range(v.CVSS, 10).Draw(t, "new_cvss")*10) / 10
	},
	"kev":        func(t *rapid.T, in *Input) { in.Facts.Vuln.KEV = true },
	"ransomware": func(t *rapid.T, in *Input) { in.Facts.Vuln.Ransomware = true },
	"epss up": func(t *rapid.T, in *Input) {
		v := &in.Facts.Vuln
		v.EPSS = rapid.Float64Range(v.EPSS, 1).Draw(t, "new_epss")
		v.EPSSPercentile = rapid.Float64Range(v.EPSSPercentile, 1).Draw(t, "new_percentile")
	},
	"more exposed": func(t *rapid.T, in *Input) {
		in.Facts.Asset.Exposure = raiseOrdinal(t, "new_exposure", in.Facts.Asset.Exposure, exposureOrder)
	},
	"more critical": func(t *rapid.T, in *Input) {
		in.Facts.Asset.Criticality = raiseOrdinal(t, "new_criticality", in.Facts.Asset.Criticality, criticalityOrder)
	},
	"phi": func(t *rapid.T, in *Input) { in.Facts.Asset.PHI = true },
	"more safety impact": func(t *rapid.T, in *Input) {
		in.Facts.Asset.SafetyImpact = raiseOrdinal(t, "new_safety", in.Facts.Asset.SafetyImpact, safetyOrder)
	},
	"fix available": func(t *rapid.T, in *Input) { in.Facts.Finding.FixAvailable = true },
	"fewer controls": func(t *rapid.T, in *Input) {
		c := in.Facts.Finding.Controls
		if len(c) == 0 {
			return
		}
		i := rapid.IntRange(0, len(c)-1).Draw(t, "drop_control")
		in.Facts.Finding.Controls = slices.Delete(slices.Clone(c), i, i+1)
	},
}

// TestPropertyRaisingRiskNeverLowersPriority: under the default policy,
// raising any one risk input never lowers the score and never moves the
// finding to a less urgent tier, so no one can make a finding look safer
// by making it worse. The default runs score mode; SSVC and KEV bands are
// held to the same rule with the default's settings for them.
func TestPropertyRaisingRiskNeverLowersPriority(t *testing.T) {
	names := make([]string, 0, len(raises))
	for n := range raises {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, mode := range []string{policy.ModeScore, policy.ModeSSVC, policy.ModeKEVBands} {
		t.Run(mode, func(t *testing.T) {
			as, err := NewAssessor(defaultInMode(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			rapid.Check(t, func(t *rapid.T) {
				base := genInput(t)
				name := rapid.SampledFrom(names).Draw(t, "raise")
				raised := base
				raised.Facts.Finding.Controls = slices.Clone(base.Facts.Finding.Controls)
				raises[name](t, &raised)

				before, err := as.Assess(base)
				if err != nil {
					t.Fatalf("Assess(base) = %v", err)
				}
				after, err := as.Assess(raised)
				if err != nil {
					t.Fatalf("Assess(raised) = %v", err)
				}
				checkBounds(t, before)
				if after.Score < before.Score {
					t.Fatalf("%s lowered the score: %.1f → %.1f\nbefore: %+v\nafter: %+v", name, before.Score, after.Score, before.Factors, after.Factors)
				}
				if after.Rank > before.Rank {
					t.Fatalf("%s made the tier less urgent: %s → %s\nbefore: %+v\nafter: %+v", name, before.Tier, after.Tier, before.Factors, after.Factors)
				}
			})
		})
	}
}

// defaultInMode is the default policy switched to another risk mode, so
// the mode's own defaults (SSVC outcomes, KEV bands) are what is tested.
func defaultInMode(t testing.TB, mode string) *policy.Compiled {
	t.Helper()
	if policy.Default().Policy().Risk.Mode == mode {
		return policy.Default()
	}
	pol := policy.Default().Policy()
	pol.Risk.Mode = mode
	return compilePolicy(t, pol)
}

// TestPropertyKEVInternetCriticalIsTopTier: under the default policy a
// known exploited vulnerability on an internet-facing, business-critical
// asset is always in the most urgent tier, whatever else is true of it.
// KEV bands must agree; SSVC need not, because CISA's table can answer
// Attend for an exploited flaw that is neither automatable nor total.
func TestPropertyKEVInternetCriticalIsTopTier(t *testing.T) {
	for _, mode := range []string{policy.ModeScore, policy.ModeKEVBands} {
		t.Run(mode, func(t *testing.T) {
			as, err := NewAssessor(defaultInMode(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			rapid.Check(t, func(t *rapid.T) {
				in := genInput(t)
				in.Facts.Vuln.KEV = true
				in.Facts.Asset.Exposure = "internet_facing"
				in.Facts.Asset.Criticality = "critical"
				got, err := as.Assess(in)
				if err != nil {
					t.Fatalf("Assess() = %v", err)
				}
				if got.Rank != 0 {
					t.Fatalf("KEV, internet-facing, critical asset: tier %s (rank %d, score %.1f); want the top tier\n%+v", got.Tier, got.Rank, got.Score, got.Factors)
				}
			})
		})
	}
}

// checkBounds holds for every score-mode assessment: a 0–100 score that
// the explanation adds up to.
func checkBounds(t *rapid.T, a Assessment) {
	if a.Score < 0 || a.Score > 100 {
		t.Fatalf("score %.1f is outside 0–100", a.Score)
	}
	if a.Mode != policy.ModeScore {
		return
	}
	var sum float64
	for _, f := range a.Factors {
		sum += f.Points
	}
	if round1(round2(sum)) != a.Score {
		t.Fatalf("factors add up to %.2f; score is %.1f", sum, a.Score)
	}
}

// BenchmarkAssess assesses the KEV-listed EHR finding in score mode under
// the default policy's weights, rules and asset classes: once with a
// reused Assessor (a re-prioritisation run) and once through Assess (a
// single finding).
func BenchmarkAssess(b *testing.B) {
	pol := policy.Default().Policy()
	pol.Risk.Mode = policy.ModeScore
	p := compilePolicy(b, pol)
	in := ehrKEV()
	b.Run("assessor", func(b *testing.B) {
		as, err := NewAssessor(p)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := as.Assess(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Assess", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Assess(p, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
