package risk

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/policy"
)

func TestAssessKEVBands(t *testing.T) {
	withCatalog := compileTest(t, policy.ModeKEVBands)
	pol := testRisk()
	pol.Mode = policy.ModeKEVBands
	pol.KEVBands.UseCatalogDueDate = false
	withoutCatalog := compileRisk(t, pol)

	noDueDate := ehrKEV()
	noDueDate.KEVDueDate = nil
	critical := analyzerLowEPSS()
	critical.Facts.Vuln.CVSS = 9.0
	high := analyzerLowEPSS()
	high.Facts.Vuln.CVSS = 7.0
	unscored := analyzerLowEPSS()
	unscored.Facts.Vuln.CVSS, unscored.Facts.Vuln.CVSSVersion, unscored.Facts.Vuln.CVSSVector = 0, "", ""

	kevFactor := Factor{Name: "Known exploited (CISA KEV)", Input: "listed 2023-11-02"}
	notKEV := Factor{Name: "Known exploited (CISA KEV)", Input: "not listed", Note: "not in the catalog"}
	cvss98 := Factor{Name: "CVSS base severity", Input: "CVSS 3.1 9.8 (AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H)",
		Note: "not used: a KEV listing decides the band"}
	band := func(b, tier string) Factor {
		return Factor{Name: "Band", Input: b, Note: "policy maps band " + b + " to tier " + tier}
	}
	tests := []struct {
		name string
		p    *policy.Compiled
		in   Input
		want Assessment
	}{{
		name: "KEV with the catalog's due date",
		p:    withCatalog,
		in:   ehrKEV(),
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 100, Tier: "critical", Rank: 0, Band: BandKEV,
			Factors: []Factor{
				{Name: kevFactor.Name, Input: kevFactor.Input, Note: "BOD 22-01: due by the catalog's date 2023-11-23"},
				cvss98, band("kev", "critical"),
			},
			Classes:     []string{"ehr_server", "phi_systems"},
			Target:      policy.Days(14),
			TargetText:  "2023-11-23",
			TargetWhy:   "CISA KEV catalog due date 2023-11-23 (BOD 22-01)",
			AbsoluteDue: date("2023-11-23"),
			DueSoon:     policy.Hours(24),
		},
	}, {
		name: "KEV, catalog due date not used",
		p:    withoutCatalog,
		in:   ehrKEV(),
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 100, Tier: "critical", Rank: 0, Band: BandKEV,
			Factors: []Factor{
				{Name: kevFactor.Name, Input: kevFactor.Input, Note: "BOD 22-01: the policy's KEV target applies"},
				cvss98, band("kev", "critical"),
			},
			Classes:    []string{"ehr_server", "phi_systems"},
			Target:     policy.Hours(48),
			TargetText: "48h",
			TargetWhy:  "asset class ehr_server: 48h for tier critical, stricter than KEV-listed: policy kev_bands.kev 14d",
			DueSoon:    policy.Hours(24),
		},
	}, {
		name: "KEV without a catalog due date",
		p:    withCatalog,
		in:   noDueDate,
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 100, Tier: "critical", Rank: 0, Band: BandKEV,
			Factors: []Factor{
				{Name: kevFactor.Name, Input: kevFactor.Input, Note: "BOD 22-01: the catalog gives no due date; the policy's KEV target applies"},
				cvss98, band("kev", "critical"),
			},
			Classes:    []string{"ehr_server", "phi_systems"},
			Target:     policy.Hours(48),
			TargetText: "48h",
			TargetWhy:  "asset class ehr_server: 48h for tier critical, stricter than KEV-listed with no catalog due date: policy kev_bands.kev 14d",
			DueSoon:    policy.Hours(24),
		},
	}, {
		name: "critical CVSS band",
		p:    withCatalog,
		in:   critical,
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 90, Tier: "critical", Rank: 0, Band: BandCritical,
			Factors: []Factor{notKEV,
				{Name: "CVSS base severity", Input: "CVSS 3.1 9.0 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Note: "BOD 19-02: CVSS 9.0 is at least 9.0 (critical)"},
				band("critical", "critical"),
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Hours(60),
			TargetText: "60h",
			TargetWhy:  "asset class phi_systems: 60h for tier critical, stricter than critical CVSS band: policy kev_bands.critical 15d",
			DueSoon:    policy.Hours(24),
		},
	}, {
		name: "high CVSS band",
		p:    withCatalog,
		in:   high,
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 70, Tier: "high", Rank: 1, Band: BandHigh,
			Factors: []Factor{notKEV,
				{Name: "CVSS base severity", Input: "CVSS 3.1 7.0 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Note: "BOD 19-02: CVSS 7.0 is at least 7.0 (high)"},
				band("high", "high"),
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(30),
			TargetText: "30d",
			TargetWhy:  "high CVSS band: policy kev_bands.high 30d",
			DueSoon:    policy.Days(3),
		},
	}, {
		name: "other band, stricter asset class",
		p:    withCatalog,
		in:   analyzerLowEPSS(),
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 67, Tier: "low", Rank: 3, Band: BandOther,
			Factors: []Factor{notKEV,
				{Name: "CVSS base severity", Input: "CVSS 3.1 6.7 (AV:L/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:H)", Note: "CVSS 6.7 is below 7.0 (high)"},
				band("other", "low"),
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(60),
			TargetText: "60d",
			TargetWhy:  "asset class phi_systems: 60d for tier low, stricter than below the high CVSS band: policy kev_bands.other 90d",
			DueSoon:    policy.Days(14),
		},
	}, {
		name: "unscored",
		p:    withCatalog,
		in:   unscored,
		want: Assessment{
			Mode: policy.ModeKEVBands, Score: 0, Tier: "low", Rank: 3, Band: BandOther,
			Factors: []Factor{notKEV,
				{Name: "CVSS base severity", Input: "unscored", Note: "unscored: neither KEV nor a critical or high CVSS band applies"},
				band("other", "low"),
			},
			Classes:    []string{"phi_systems"},
			Target:     policy.Days(60),
			TargetText: "60d",
			TargetWhy:  "asset class phi_systems: 60d for tier low, stricter than below the high CVSS band: policy kev_bands.other 90d",
			DueSoon:    policy.Days(14),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Assess(tt.p, tt.in)
			if err != nil {
				t.Fatalf("Assess() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Assess() (-want +got):\n%s", diff)
			}
		})
	}
}
