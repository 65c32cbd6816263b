package risk

import (
	"math"
	"slices"
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
// by making it worse.
func TestPropertyRaisingRiskNeverLowersPriority(t *testing.T) {
	as, err := NewAssessor(policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(raises))
	for n := range raises {
		names = append(names, n)
	}
	slices.Sort(names)
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
			t.Fatalf("%s made the tier less urgent: %s → %s", name, before.Tier, after.Tier)
		}
	})
}

// TestPropertyKEVInternetCriticalIsTopTier: a known exploited vulnerability
// on an internet-facing, business-critical asset is always in the most
// urgent tier, whatever else is true of it.
func TestPropertyKEVInternetCriticalIsTopTier(t *testing.T) {
	as, err := NewAssessor(policy.Default())
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
	if round1(sum) != a.Score {
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
