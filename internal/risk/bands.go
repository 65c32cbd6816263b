package risk

import (
	"fmt"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// KEV-bands mode bands, most urgent first: CISA's BOD 22-01 (known
// exploited vulnerabilities by the catalog's due date) and BOD 19-02
// (critical and high CVSS findings on internet-facing systems in 15 and 30
// days), extended to every asset as the default policy does.
const (
	BandKEV      = "kev"
	BandCritical = "critical"
	BandHigh     = "high"
	BandOther    = "other"
)

// CVSS thresholds of the critical and high bands: CVSS v3's qualitative
// ratings, as BOD 19-02 uses them.
const (
	CriticalCVSS = 9.0
	HighCVSS     = 7.0
)

// kevBands puts a finding in its BOD band. The Score it records is
// 100 for a KEV entry and ten times the CVSS base score otherwise, so that
// sorting by score keeps the bands in order and, within a band, the more
// severe first; it is not a sum of factors.
func (as *Assessor) kevBands(in Input, a *Assessment) error {
	cfg := as.risk.KEVBands
	v := in.Facts.Vuln
	kev := Factor{Name: "Known exploited (CISA KEV)", Input: "not listed"}
	cvss := Factor{Name: "CVSS base severity", Input: cvssInput(v)}
	var target policy.Duration
	var why string
	switch {
	case v.KEV:
		kev.Input = "listed"
		if in.KEVDateAdded != nil {
			kev.Input = "listed " + in.KEVDateAdded.Format("2006-01-02")
		}
		a.Band, a.Score = BandKEV, 100
		target = cfg.KEV
		switch {
		case cfg.UseCatalogDueDate && in.KEVDueDate != nil:
			due := in.KEVDueDate.UTC()
			a.AbsoluteDue = &due
			kev.Note = "BOD 22-01: due by the catalog's date " + due.Format("2006-01-02")
			why = "CISA KEV catalog due date " + due.Format("2006-01-02") + " (BOD 22-01)"
		case cfg.UseCatalogDueDate:
			kev.Note = "BOD 22-01: the catalog gives no due date; the policy's KEV target applies"
			why = fmt.Sprintf("KEV-listed with no catalog due date: policy kev_bands.kev %s", target)
		default:
			kev.Note = "BOD 22-01: the policy's KEV target applies"
			why = fmt.Sprintf("KEV-listed: policy kev_bands.kev %s", target)
		}
		cvss.Note = "not used: a KEV listing decides the band"
	case v.CVSSVersion != "" && v.CVSS >= CriticalCVSS:
		a.Band, a.Score = BandCritical, v.CVSS*10
		target = cfg.Critical
		cvss.Note = fmt.Sprintf("BOD 19-02: CVSS %.1f is at least %.1f (critical)", v.CVSS, CriticalCVSS)
		why = fmt.Sprintf("critical CVSS band: policy kev_bands.critical %s", target)
	case v.CVSSVersion != "" && v.CVSS >= HighCVSS:
		a.Band, a.Score = BandHigh, v.CVSS*10
		target = cfg.High
		cvss.Note = fmt.Sprintf("BOD 19-02: CVSS %.1f is at least %.1f (high)", v.CVSS, HighCVSS)
		why = fmt.Sprintf("high CVSS band: policy kev_bands.high %s", target)
	default:
		a.Band, a.Score = BandOther, v.CVSS*10
		target = cfg.Other
		if v.CVSSVersion == "" {
			a.Score = 0
			cvss.Note = "unscored: neither KEV nor a critical or high CVSS band applies"
		} else {
			cvss.Note = fmt.Sprintf("CVSS %.1f is below %.1f (high)", v.CVSS, HighCVSS)
		}
		why = fmt.Sprintf("below the high CVSS band: policy kev_bands.other %s", target)
	}
	if !v.KEV {
		kev.Note = "not in the catalog"
	}
	a.Score = round1(a.Score)
	// NewAssessor checked that every band maps to a tier.
	tier, rank, ok := as.p.TierByName(cfg.Tiers[a.Band])
	if !ok {
		return errs.E(errs.Invalid, "policy kev_bands.tiers: band %s maps to no tier", a.Band)
	}
	a.Factors = append(a.Factors, kev, cvss,
		Factor{Name: "Band", Input: a.Band, Note: fmt.Sprintf("policy maps band %s to tier %s", a.Band, tier.Name)})
	a.Tier, a.Rank, a.DueSoon = tier.Name, rank, tier.DueSoon
	a.Target, a.TargetWhy = target, why
	return nil
}
