package risk

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

// Assess prioritises one finding under a compiled policy: it scores or
// decides it in the policy's mode, puts it in an SLA tier, picks the
// remediation target (the tier's, or a stricter one for the asset's
// classes) and explains every step in Factors, so that an approver or an
// auditor can see why a finding is due when it is.
//
// It is a pure function of the policy and the input: no clock, no storage.
// Facts with values the policy does not know (an empty exposure, a zone it
// gives no weight) contribute nothing and say so in a factor's note; only
// a policy that cannot be applied (a rule that fails to evaluate, an
// outcome mapped to no tier) is an error. To assess many findings under
// one policy, make one Assessor and reuse it.
//
// Score means what the mode makes it mean, but always sorts findings in
// priority order: in score mode the 0–100 sum of the factors; in SSVC mode
// the decision's rank (track 25, track* 50, attend 75, act 100); in KEV
// bands 100 for a KEV entry, else ten times the CVSS base score.
//
// When a source fixes the date (the KEV catalog's due date in KEV-bands
// mode with use_catalog_due_date), AbsoluteDue is the due date and asset
// classes do not shorten it: the policy chose to follow CISA's date.
func Assess(p *policy.Compiled, in Input) (Assessment, error) {
	as, err := NewAssessor(p)
	if err != nil {
		return Assessment{}, err
	}
	return as.Assess(in)
}

// Assessor assesses findings under one policy version. It copies the
// policy's risk section and loads the SSVC table once, because
// policy.Compiled.Policy deep-copies the whole policy on every call and a
// re-prioritisation run assesses every open finding in the fleet. It is
// immutable and safe for concurrent use.
type Assessor struct {
	p    *policy.Compiled
	risk policy.Risk
	ssvc *SSVCTable
}

// NewAssessor prepares p for assessing. It checks up front what every
// assessment would otherwise trip over — the mode, the SSVC table, and
// that every outcome, band and rule floor names a tier — so a policy that
// cannot be applied fails once, clearly, not once per finding.
func NewAssessor(p *policy.Compiled) (*Assessor, error) {
	if p == nil {
		return nil, errs.E(errs.Invalid, "assess: no policy")
	}
	pol := p.Policy()
	as := &Assessor{p: p, risk: pol.Risk}
	r := &as.risk
	var v errs.Validation
	tier := func(field, name string) {
		if _, _, ok := p.TierByName(name); !ok {
			v.Add(field, "%q is not a tier", name)
		}
	}
	switch r.Mode {
	case policy.ModeScore:
	case policy.ModeSSVC:
		t, err := LoadSSVCTable(r.SSVC.Table)
		if err != nil {
			return nil, fmt.Errorf("assess: %w", err)
		}
		as.ssvc = t
		for _, d := range ssvcDecisions {
			name, ok := r.SSVC.Outcomes[d]
			if !ok {
				v.Add("risk.ssvc.outcomes."+d, "no tier for SSVC decision %s", d)
				continue
			}
			tier("risk.ssvc.outcomes."+d, name)
		}
	case policy.ModeKEVBands:
		for _, b := range []string{BandKEV, BandCritical, BandHigh, BandOther} {
			name, ok := r.KEVBands.Tiers[b]
			if !ok {
				v.Add("risk.kev_bands.tiers."+b, "no tier for band %s", b)
				continue
			}
			tier("risk.kev_bands.tiers."+b, name)
		}
	default:
		v.Add("risk.mode", "%q is not score, ssvc or kev_bands", r.Mode)
	}
	for i, rule := range r.Rules {
		if rule.MinTier != "" {
			tier(fmt.Sprintf("risk.rules[%d].min_tier", i), rule.MinTier)
		}
	}
	if len(r.Tiers) == 0 {
		v.Add("risk.tiers", "no tiers")
	}
	if err := v.Err("assess: policy cannot be applied"); err != nil {
		return nil, err
	}
	return as, nil
}

// Assess prioritises one finding; see the package-level Assess.
func (as *Assessor) Assess(in Input) (Assessment, error) {
	a := Assessment{Mode: as.risk.Mode}
	classes, err := as.p.ClassesOf(in.Facts.Asset)
	if err != nil {
		return Assessment{}, fmt.Errorf("assess asset classes: %w", err)
	}
	for _, c := range classes {
		a.Classes = append(a.Classes, c.Name)
	}
	switch as.risk.Mode {
	case policy.ModeScore:
		err = as.score(in, &a)
	case policy.ModeSSVC:
		err = as.decideSSVC(in, &a)
	case policy.ModeKEVBands:
		err = as.kevBands(in, &a)
	}
	if err != nil {
		return Assessment{}, err
	}
	// A date fixed by a source (the KEV catalog's, when the policy says to
	// follow it) is the due date itself; class targets tighten relative
	// targets only.
	if a.AbsoluteDue != nil {
		a.TargetText = a.AbsoluteDue.Format("2006-01-02")
		return a, nil
	}
	applyClassTargets(&a, classes)
	a.TargetText = a.Target.String()
	return a, nil
}

// score adds the weighted factors and the organisation's rules into a
// 0–100 score, tiers it by score band and lifts it to any rule's floor.
// Each factor's points are rounded to two decimals and the score is their
// sum rounded to one, so the explanation adds up to the score.
func (as *Assessor) score(in Input, a *Assessment) error {
	p := as.p
	w := as.risk.Weights
	f := in.Facts
	v := f.Vuln
	// Eleven factors, the rules that hold, a cap and a floor.
	a.Factors = make([]Factor, 0, 13+len(as.risk.Rules))
	add := func(fa Factor) {
		fa.Points = round2(fa.Points)
		a.Factors = append(a.Factors, fa)
	}

	cvss := Factor{Name: "CVSS base severity", Input: cvssInput(v)}
	if scored(v) {
		cvss.Points = w.CVSS * min(v.CVSS, 10) / 10
		cvss.Note = fmt.Sprintf("%g points at 10, scaled by the base score", w.CVSS)
	} else {
		cvss.Note = "no CVSS score published: the other factors decide"
	}
	add(cvss)

	kev := Factor{Name: "Known exploited (CISA KEV)", Input: "not listed"}
	if v.KEV {
		kev.Input, kev.Points = "listed", w.KEV
		if in.KEVDateAdded != nil {
			kev.Input = "listed " + in.KEVDateAdded.Format("2006-01-02")
		}
	}
	add(kev)

	ransom := Factor{Name: "Known ransomware use", Input: "not known"}
	if v.Ransomware {
		ransom.Input, ransom.Points = "known (CISA KEV)", w.Ransomware
	}
	add(ransom)

	epss := Factor{Name: "Exploit probability (EPSS)", Input: "no EPSS score"}
	if v.EPSS > 0 || v.EPSSPercentile > 0 {
		epss.Input = fmt.Sprintf("probability %s, percentile %s", trimFloat(v.EPSS, 4), percent(v.EPSSPercentile))
		epss.Points = w.EPSS * min(max(v.EPSS, 0), 1)
		epss.Note = fmt.Sprintf("%g points at probability 1, scaled by the probability", w.EPSS)
	}
	add(epss)

	add(ordinal("Exposure", "exposure", f.Asset.Exposure, w.Exposure))
	add(ordinal("Network zone", "network zone", f.Asset.NetworkZone, w.NetworkZone))
	add(ordinal("Asset criticality", "criticality", f.Asset.Criticality, w.Criticality))

	phi := Factor{Name: "Protected health information", Input: "not handled"}
	if f.Asset.PHI {
		phi.Input, phi.Points = "handled", w.PHI
	}
	add(phi)

	add(ordinal("Patient-safety impact", "patient-safety impact", f.Asset.SafetyImpact, w.PatientSafety))

	fix := Factor{Name: "Fix available", Input: "no fixed version yet"}
	if f.Finding.FixAvailable {
		fix.Input, fix.Points = "fixed version available", w.FixAvailable
		fix.Note = "actionable now"
	}
	add(fix)

	add(controlsFactor(f.Finding.Controls, w))

	hits, err := p.RuleHits(f)
	if err != nil {
		return fmt.Errorf("assess organisation rules: %w", err)
	}
	type floor struct {
		rule string
		tier policy.Tier
		rank int
	}
	var best *floor
	for _, h := range hits {
		r := h.Rule
		fa := Factor{Name: "Rule: " + r.Name, Input: r.When, Points: r.Add, Note: r.Description}
		if r.MinTier != "" {
			t, rank, ok := p.TierByName(r.MinTier)
			if !ok {
				return errs.E(errs.Invalid, "policy rule %q: min_tier %q is not a tier", r.Name, r.MinTier)
			}
			fa.Note = joinNote(fa.Note, "at least tier "+t.Name)
			if best == nil || rank < best.rank {
				best = &floor{r.Name, t, rank}
			}
		}
		add(fa)
	}

	var total float64
	for _, fa := range a.Factors {
		total += fa.Points
	}
	total = round2(total)
	switch {
	case total > 100:
		add(Factor{Name: "Score cap", Input: fmt.Sprintf("%.2f", total), Points: 100 - total, Note: "scores are capped at 100"})
		total = 100
	case total < 0:
		add(Factor{Name: "Score floor", Input: fmt.Sprintf("%.2f", total), Points: -total, Note: "scores do not go below 0"})
		total = 0
	}
	a.Score = round1(total)

	tier, rank := p.TierForScore(a.Score)
	if best != nil && best.rank < rank {
		a.Factors = append(a.Factors, Factor{
			Name:  "Tier floor",
			Input: fmt.Sprintf("rule %s: at least %s", best.rule, best.tier.Name),
			Note:  fmt.Sprintf("score %.1f falls in tier %s; the rule lifts it to %s", a.Score, tier.Name, best.tier.Name),
		})
		tier, rank = best.tier, best.rank
	}
	setTier(a, tier, rank)
	return nil
}

// ordinal scores one inventory enum (exposure, zone, criticality, safety
// impact) from the policy's table. A value that is missing or that the
// table does not list adds nothing and is noted, never an error: inventory
// gaps must not stop a finding being prioritised.
func ordinal(name, what, value string, table map[string]float64) Factor {
	fa := Factor{Name: name, Input: value}
	if value == "" {
		fa.Input = "not recorded"
		fa.Note = "no " + what + " recorded: adds nothing"
		return fa
	}
	pts, ok := table[value]
	if !ok {
		fa.Note = fmt.Sprintf("the policy gives %s %q no weight: adds nothing", what, value)
		return fa
	}
	fa.Points = pts
	return fa
}

// controlsFactor subtracts points for the distinct compensating controls in
// force, capped at the policy's maximum (none when it is 0), so a pile of
// controls cannot talk a serious finding down to nothing.
func controlsFactor(controls []string, w policy.Weights) Factor {
	var kinds []string
	for _, c := range controls {
		c = strings.TrimSpace(c)
		if c != "" && !slices.Contains(kinds, c) {
			kinds = append(kinds, c)
		}
	}
	fa := Factor{Name: "Compensating controls", Input: "none"}
	if len(kinds) == 0 {
		return fa
	}
	fa.Input = fmt.Sprintf("%d: %s", len(kinds), strings.Join(kinds, ", "))
	red := float64(len(kinds)) * w.CompensatingControl
	fa.Note = fmt.Sprintf("%g points each", w.CompensatingControl)
	if w.MaxControlReduction > 0 && red > w.MaxControlReduction {
		red = w.MaxControlReduction
		fa.Note = fmt.Sprintf("%g points each, capped at %g", w.CompensatingControl, w.MaxControlReduction)
	}
	fa.Points = -red
	return fa
}

// setTier records a tier and its own target; asset classes may tighten the
// target afterwards.
func setTier(a *Assessment, t policy.Tier, rank int) {
	a.Tier, a.Rank, a.DueSoon = t.Name, rank, t.DueSoon
	a.Target = t.Due
	a.TargetWhy = fmt.Sprintf("tier %s: %s", t.Name, t.Due)
}

// applyClassTargets tightens the target to the strictest one the asset's
// classes set for its tier (domain controllers, EHR servers, VPN gateways
// and direct-care devices get less time, as the seeds ask). On a tie the
// earlier target stands, so the explanation names the first reason.
func applyClassTargets(a *Assessment, classes []policy.AssetClass) {
	var best *policy.AssetClass
	target := a.Target
	for i, c := range classes {
		if d, ok := c.Due[a.Tier]; ok && d.Approx() < target.Approx() {
			best, target = &classes[i], d
		}
	}
	if best == nil {
		return
	}
	a.TargetWhy = fmt.Sprintf("asset class %s: %s for tier %s, stricter than %s", best.Name, target, a.Tier, a.TargetWhy)
	a.Target = target
}

// cvssInput renders the headline CVSS score as the explanation shows it:
// "CVSS 3.1 9.8 (AV:N/AC:L/…)", or "unscored".
func cvssInput(v policy.VulnFacts) string {
	if !scored(v) {
		return "unscored"
	}
	s := fmt.Sprintf("CVSS %s %.1f", v.CVSSVersion, v.CVSS)
	_, vec := cvssVector(v)
	if i := strings.Index(vec, "/"); strings.HasPrefix(vec, "CVSS:") && i >= 0 {
		vec = vec[i+1:]
	}
	if vec != "" {
		s += " (" + vec + ")"
	}
	return s
}

func scored(v policy.VulnFacts) bool { return v.CVSSVersion != "" && v.CVSS > 0 }

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// trimFloat formats f with at most prec decimals and no trailing zeros.
func trimFloat(f float64, prec int) string {
	s := fmt.Sprintf("%.*f", prec, f)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }
