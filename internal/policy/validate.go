package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/inventory"
)

// Names the policy file uses that are not otherwise constants.
const (
	// WindowImmediate as emergency.window means an emergency change runs
	// as soon as it is approved, outside any window.
	WindowImmediate = "immediate"
	// TimeZoneSite as a window's time_zone means each asset's site zone.
	TimeZoneSite = "site"
	// SSVCTableCISA is the embedded SSVC decision table (CISA's deployer
	// tree); an empty ssvc.table means it too.
	SSVCTableCISA = "cisa-2.0.3"
)

// SSVC decisions, as ssvc.outcomes keys them.
const (
	SSVCTrack     = "track"
	SSVCTrackStar = "track*"
	SSVCAttend    = "attend"
	SSVCAct       = "act"
)

// SSVCDecisions lists the SSVC decisions from least to most urgent.
var SSVCDecisions = []string{SSVCTrack, SSVCTrackStar, SSVCAttend, SSVCAct}

// KEV-bands mode bands, as kev_bands.tiers keys them.
const (
	BandKEV      = "kev"
	BandCritical = "critical"
	BandHigh     = "high"
	BandOther    = "other"
)

// KEVBandNames lists the bands from most to least urgent.
var KEVBandNames = []string{BandKEV, BandCritical, BandHigh, BandOther}

// Modes lists the risk modes; ChangeTypes the change types; ClockStarts the
// SLA clock starts.
var (
	Modes       = []string{ModeScore, ModeSSVC, ModeKEVBands}
	ChangeTypes = []string{ChangeStandard, ChangeNormal, ChangeEmergency}
	ClockStarts = []string{ClockFirstSeen, ClockFixAvailable}
)

// ExposureOrder lists inventory exposures from least to most exposed: the
// order in which score weights may never decrease.
func ExposureOrder() []string {
	out := strs(inventory.Exposures)
	slices.Reverse(out)
	return out
}

func strs[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

// validator runs the semantic checks over a decoded policy, filling c's
// indexes and compiled expressions as it goes.
type validator struct {
	d   *decoder
	c   *Compiled
	env celEnvs
}

// add reports a problem about the value at path (unless decoding already
// did).
func (v *validator) add(path, format string, args ...any) {
	if v.d.suppressed(path) {
		return
	}
	v.d.reported[path] = true
	line, col := v.d.at(path)
	v.d.probs = append(v.d.probs, Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)})
}

// addKey reports a problem about the mapping key at path.
func (v *validator) addKey(path, format string, args ...any) {
	if v.d.suppressed(path) {
		return
	}
	v.d.reported[path] = true
	line, col := v.d.atKey(path)
	v.d.probs = append(v.d.probs, Problem{Line: line, Column: col, Path: path, Message: fmt.Sprintf(format, args...)})
}

func oneOf(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func (v *validator) required(path, val, what string) bool {
	if strings.TrimSpace(val) == "" {
		v.add(path, "required: %s", what)
		return false
	}
	return true
}

func (v *validator) positive(path string, d Duration) {
	if d.Approx() <= 0 {
		v.add(path, "must be a positive duration such as \"72h\" or \"14d\"")
	}
}

func (v *validator) fraction(path string, f float64) {
	if f < 0 || f > 1 {
		v.add(path, "must be between 0 and 1, got %g", f)
	}
}

func (v *validator) validate() {
	env, err := newCELEnvs()
	if err != nil {
		panic(fmt.Sprintf("policy: CEL environment: %v", err)) // static declarations; a bug if it fails
	}
	v.env = env
	p := &v.c.policy
	if p.Version != SchemaVersion {
		v.add("version", "must be %d (this Patchward reads policy format version %d), got %d", SchemaVersion, SchemaVersion, p.Version)
	}
	v.roles(p)
	v.organization(p)
	v.tiers(p)
	v.risk(p)
	v.sla(p)
	v.assetClasses(p)
	v.approvals(p)
	v.windows(p)
	v.emergency(p)
	v.freezes(p)
	v.rings(p)
	v.testing(p)
	v.rollback(p)
	v.exceptions(p)
	v.retention(p)
}

func (v *validator) roleNames() []string {
	var out []string
	for _, r := range v.c.policy.Roles {
		out = append(out, r.Name)
	}
	return out
}

func (v *validator) roles(p *Policy) {
	if len(p.Roles) == 0 {
		v.add("roles", "required: at least one role (who owns, approves and runs patching)")
	}
	seen := map[string]int{}
	for i, r := range p.Roles {
		path := indexPath("roles", i)
		if v.required(path+".name", r.Name, "the role's name") {
			if j, dup := seen[r.Name]; dup {
				v.add(path+".name", "duplicate role %q (also roles[%d])", r.Name, j)
			}
			seen[r.Name] = i
		}
		if !auth.Role(r.Grants).Valid() {
			v.add(path+".grants", "must be one of Patchward's roles %s, got %q", oneOf(strs(auth.Roles)), r.Grants)
		}
	}
}

func (v *validator) policyRole(path, name string) {
	if !slices.Contains(v.roleNames(), name) {
		v.add(path, "names no role in roles: %q (roles are %s)", name, oneOf(v.roleNames()))
	}
}

func (v *validator) organization(p *Policy) {
	o := p.Organization
	v.required("organization.name", o.Name, "the organisation's name, as the policy document is titled")
	if len(o.Scope) == 0 {
		v.add("organization.scope", "required: what the policy covers (e.g. \"every endpoint, server, network device and clinical system\")")
	}
	if v.required("organization.owner", o.Owner, "the role accountable for this policy") {
		v.policyRole("organization.owner", o.Owner)
	}
	if !o.ReviewEvery.IsZero() {
		v.positive("organization.review_every", o.ReviewEvery)
	}
	if v.required("organization.time_zone", o.TimeZone, "an IANA time zone such as \"America/Chicago\"") {
		if _, err := time.LoadLocation(o.TimeZone); err != nil || o.TimeZone == "Local" {
			v.add("organization.time_zone", "unknown time zone %q (use an IANA name such as \"America/Chicago\" or \"UTC\")", o.TimeZone)
		}
	}
}

func (v *validator) tiers(p *Policy) {
	tiers := p.Risk.Tiers
	if len(tiers) == 0 {
		v.add("risk.tiers", "required: at least one SLA tier")
		return
	}
	for i, t := range tiers {
		path := indexPath("risk.tiers", i)
		if v.required(path+".name", t.Name, "the tier's name") {
			if j, dup := v.c.tierIndex[t.Name]; dup {
				v.add(path+".name", "duplicate tier %q (also risk.tiers[%d])", t.Name, j)
			} else {
				v.c.tierIndex[t.Name] = i
			}
		}
		if t.Due.Approx() <= 0 {
			v.add(path+".due", "must be a positive duration such as \"72h\" or \"14d\"")
		} else if t.DueSoon.Approx() >= t.Due.Approx() {
			v.add(path+".due_soon", "must be shorter than due (%s), got %s", t.Due, t.DueSoon)
		}
	}
	if p.Risk.Mode == ModeScore {
		v.scoreBands(tiers)
	}
}

// scoreBands checks that the tiers' score bands are sane, ordered most
// urgent first, do not overlap and together cover 0–100, so every score
// lands in exactly one tier.
func (v *validator) scoreBands(tiers []Tier) {
	ok := true
	for i, t := range tiers {
		path := indexPath("risk.tiers", i)
		minOK := t.MinScore >= 0 && t.MinScore <= 100
		if !minOK {
			v.add(path+".min_score", "must be between 0 and 100, got %g", t.MinScore)
			ok = false
		}
		if t.MaxScore < 0 || t.MaxScore > 100 {
			v.add(path+".max_score", "must be between 0 and 100, got %g", t.MaxScore)
			ok = false
		} else if minOK && t.MaxScore <= t.MinScore {
			v.add(path+".max_score", "must be above min_score (%g), got %g", t.MinScore, t.MaxScore)
			ok = false
		}
	}
	if !ok {
		return
	}
	for j := 1; j < len(tiers); j++ {
		for i := range j {
			a, b := tiers[i], tiers[j]
			if max(a.MinScore, b.MinScore) < min(a.MaxScore, b.MaxScore) {
				v.add(indexPath("risk.tiers", j)+".min_score", "overlaps tier %q (%g–%g)", a.Name, a.MinScore, a.MaxScore)
				ok = false
			}
		}
	}
	if !ok {
		return
	}
	for i := 1; i < len(tiers); i++ {
		if tiers[i].MinScore > tiers[i-1].MinScore {
			v.add(indexPath("risk.tiers", i), "tiers are listed most urgent first: %q (%g–%g) has a higher band than %q above it",
				tiers[i].Name, tiers[i].MinScore, tiers[i].MaxScore, tiers[i-1].Name)
			return
		}
	}
	// Ordered and disjoint: walk from the top down looking for gaps.
	if top := tiers[0]; top.MaxScore != 100 {
		v.add("risk.tiers[0].max_score", "the top tier must reach 100; scores %g–100 fall in no tier", top.MaxScore)
	}
	for i := 1; i < len(tiers); i++ {
		if tiers[i].MaxScore != tiers[i-1].MinScore {
			v.add(indexPath("risk.tiers", i)+".max_score", "leaves a gap: scores %g–%g fall in no tier (make it %g)",
				tiers[i].MaxScore, tiers[i-1].MinScore, tiers[i-1].MinScore)
		}
	}
	if last := len(tiers) - 1; tiers[last].MinScore != 0 {
		v.add(indexPath("risk.tiers", last)+".min_score", "the bottom tier must start at 0; scores 0–%g fall in no tier", tiers[last].MinScore)
	}
}

func (v *validator) tierName(path, name string) {
	if _, ok := v.c.tierIndex[name]; !ok {
		v.add(path, "names no tier in risk.tiers: %q (tiers are %s)", name, oneOf(v.tierNames()))
	}
}

func (v *validator) tierNames() []string {
	var out []string
	for _, t := range v.c.policy.Risk.Tiers {
		out = append(out, t.Name)
	}
	return out
}

func (v *validator) risk(p *Policy) {
	r := p.Risk
	if !slices.Contains(Modes, r.Mode) {
		v.add("risk.mode", "must be one of %s, got %q", oneOf(Modes), r.Mode)
	}
	v.weights(r.Weights)
	seen := map[string]int{}
	v.c.rules = make([]*program, len(r.Rules))
	for i, rule := range r.Rules {
		path := indexPath("risk.rules", i)
		if v.required(path+".name", rule.Name, "the rule's name") {
			if j, dup := seen[rule.Name]; dup {
				v.add(path+".name", "duplicate rule %q (also risk.rules[%d])", rule.Name, j)
			}
			seen[rule.Name] = i
		}
		if v.required(path+".when", rule.When, "a CEL condition over asset, vuln and finding") {
			v.c.rules[i] = v.compileExpr(v.env.full, path+".when", rule.When)
		}
		if rule.MinTier != "" {
			v.tierName(path+".min_tier", rule.MinTier)
		}
		if rule.Add == 0 && rule.MinTier == "" {
			v.add(path, "the rule does nothing: give it add (points) or min_tier")
		}
	}
	v.ssvc(r.SSVC, r.Mode == ModeSSVC)
	v.kevBands(r.KEVBands, r.Mode == ModeKEVBands)
}

// weights checks that every weight is non-negative and that ordinal tables
// use inventory's values and never decrease from least to most severe:
// raising any input can then never lower a score.
func (v *validator) weights(w Weights) {
	const base = "risk.weights"
	for _, f := range []struct {
		name string
		val  float64
	}{
		{"cvss", w.CVSS}, {"kev", w.KEV}, {"ransomware", w.Ransomware}, {"epss", w.EPSS},
		{"phi", w.PHI}, {"fix_available", w.FixAvailable},
		{"compensating_control", w.CompensatingControl}, {"max_control_reduction", w.MaxControlReduction},
	} {
		if f.val < 0 {
			v.add(base+"."+f.name, "must not be negative, got %g", f.val)
		}
	}
	v.ordinal(base+".exposure", w.Exposure, ExposureOrder())
	v.ordinal(base+".criticality", w.Criticality, strs(inventory.Levels))
	v.ordinal(base+".patient_safety", w.PatientSafety, strs(inventory.SafetyImpacts))
	for _, k := range sortedKeys(w.NetworkZone) {
		if w.NetworkZone[k] < 0 {
			v.add(childPath(base+".network_zone", k), "must not be negative, got %g", w.NetworkZone[k])
		}
	}
}

// ordinal checks one ordered weight table; order runs least to most
// severe, and a level the table leaves out counts as 0.
func (v *validator) ordinal(path string, table map[string]float64, order []string) {
	for _, k := range sortedKeys(table) {
		if !slices.Contains(order, k) {
			v.addKey(childPath(path, k), "unknown level %q (levels, least to most severe: %s)", k, oneOf(order))
			continue
		}
		if table[k] < 0 {
			v.add(childPath(path, k), "must not be negative, got %g", table[k])
		}
	}
	if len(table) == 0 {
		return
	}
	prev, prevName := 0.0, ""
	for _, k := range order {
		w := table[k]
		if w < prev {
			if _, set := table[k]; set {
				v.add(childPath(path, k), "%g is less than %q (%g): a more severe level must weigh at least as much (order: %s)",
					w, prevName, prev, strings.Join(order, " < "))
			} else {
				v.add(path, "%q is missing and so counts 0, less than %q (%g): give it a weight of at least %g",
					k, prevName, prev, prev)
			}
			return
		}
		prev, prevName = w, k
	}
}

func (v *validator) ssvc(s SSVC, active bool) {
	const base = "risk.ssvc"
	if s.Table != "" && s.Table != SSVCTableCISA {
		v.add(base+".table", "unknown decision table %q (this build has %q)", s.Table, SSVCTableCISA)
	}
	for _, k := range sortedKeys(s.Outcomes) {
		path := childPath(base+".outcomes", k)
		if !slices.Contains(SSVCDecisions, k) {
			v.addKey(path, "unknown SSVC decision %q (decisions are %s)", k, oneOf(SSVCDecisions))
			continue
		}
		v.tierName(path, s.Outcomes[k])
	}
	if active {
		for _, k := range SSVCDecisions {
			if _, ok := s.Outcomes[k]; !ok {
				v.add(base+".outcomes", "risk.mode is ssvc, so every decision needs a tier: %q is missing", k)
			}
		}
	}
	v.fraction(base+".poc_epss_percentile", s.PoCEPSSPercentile)
	if s.MissionHigh != "" {
		v.c.missionHigh = v.compileExpr(v.env.full, base+".mission_high", s.MissionHigh)
	}
	if s.MissionMedium != "" {
		v.c.missionMedium = v.compileExpr(v.env.full, base+".mission_medium", s.MissionMedium)
	}
}

func (v *validator) kevBands(k KEVBands, active bool) {
	const base = "risk.kev_bands"
	for _, name := range sortedKeys(k.Tiers) {
		path := childPath(base+".tiers", name)
		if !slices.Contains(KEVBandNames, name) {
			v.addKey(path, "unknown band %q (bands are %s)", name, oneOf(KEVBandNames))
			continue
		}
		v.tierName(path, k.Tiers[name])
	}
	if !active {
		return
	}
	for _, name := range KEVBandNames {
		if _, ok := k.Tiers[name]; !ok {
			v.add(base+".tiers", "risk.mode is kev_bands, so every band needs a tier: %q is missing", name)
		}
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"kev", k.KEV}, {"critical", k.Critical}, {"high", k.High}, {"other", k.Other}} {
		v.positive(base+"."+f.name, f.d)
	}
}

func (v *validator) sla(p *Policy) {
	if !slices.Contains(ClockStarts, p.SLA.ClockStart) {
		v.add("sla.clock_start", "must be one of %s, got %q", oneOf(ClockStarts), p.SLA.ClockStart)
	}
	v.fraction("sla.epss_jump", p.SLA.EPSSJump)
}

func (v *validator) assetClasses(p *Policy) {
	seen := map[string]int{}
	v.c.classes = make([]*program, len(p.AssetClasses))
	for i, ac := range p.AssetClasses {
		path := indexPath("asset_classes", i)
		if v.required(path+".name", ac.Name, "the class's name") {
			if j, dup := seen[ac.Name]; dup {
				v.add(path+".name", "duplicate asset class %q (also asset_classes[%d])", ac.Name, j)
			}
			seen[ac.Name] = i
		}
		if v.required(path+".match", ac.Match, "a CEL condition over asset") {
			v.c.classes[i] = v.compileExpr(v.env.asset, path+".match", ac.Match)
		}
		for _, tn := range sortedKeys(ac.Due) {
			dp := childPath(path+".due", tn)
			t, _, ok := v.c.TierByName(tn)
			if !ok {
				v.addKey(dp, "names no tier in risk.tiers: %q (tiers are %s)", tn, oneOf(v.tierNames()))
				continue
			}
			d := ac.Due[tn]
			switch {
			case d.Approx() <= 0:
				v.add(dp, "must be a positive duration such as \"72h\" or \"14d\"")
			case t.Due.Approx() > 0 && d.Approx() > t.Due.Approx():
				v.add(dp, "%s is longer than tier %q's target (%s): an asset class may only be stricter", d, tn, t.Due)
			}
		}
		for j, r := range ac.Approvers {
			v.policyRole(indexPath(path+".approvers", j), r)
		}
	}
}

func (v *validator) approvals(p *Policy) {
	const base = "approvals.types"
	a := p.Approvals
	for _, ct := range sortedKeys(a.Types) {
		path := childPath(base, ct)
		if !slices.Contains(ChangeTypes, ct) {
			v.addKey(path, "unknown change type %q (types are %s)", ct, oneOf(ChangeTypes))
			continue
		}
		rule := a.Types[ct]
		for j, r := range rule.Roles {
			v.policyRole(indexPath(path+".roles", j), r)
		}
		switch {
		case rule.Quorum < 0:
			v.add(path+".quorum", "must not be negative, got %d", rule.Quorum)
		case rule.Quorum > len(rule.Roles):
			v.add(path+".quorum", "%d approvals needed but only %d role(s) may approve", rule.Quorum, len(rule.Roles))
		case rule.Quorum == 0 && !rule.PreApproved:
			v.add(path+".quorum", "must be at least 1 unless the change type is pre_approved")
		}
	}
	for _, ct := range []string{ChangeNormal, ChangeEmergency} {
		if _, ok := a.Types[ct]; !ok {
			v.add(base, "required: approval rules for %q changes", ct)
		}
	}
}

var hhmmRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func (v *validator) windows(p *Policy) {
	for i, w := range p.Windows {
		path := indexPath("maintenance_windows", i)
		if v.required(path+".name", w.Name, "the window's name") {
			if w.Name == WindowImmediate {
				v.add(path+".name", "%q is reserved (emergency.window: immediate means no window)", WindowImmediate)
			} else if j, dup := v.c.windowIndex[w.Name]; dup {
				v.add(path+".name", "duplicate window %q (also maintenance_windows[%d])", w.Name, j)
			} else {
				v.c.windowIndex[w.Name] = i
			}
		}
		if v.required(path+".schedule", w.Schedule, "an RRULE such as \"FREQ=MONTHLY;BYDAY=2TU\"") {
			start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			if r, err := parseSchedule(w.Schedule, start); err != nil {
				v.add(path+".schedule", "%v", err)
			} else if r.After(start, true).IsZero() {
				v.add(path+".schedule", "the rule never occurs")
			}
		}
		if w.OffsetDays < -31 || w.OffsetDays > 31 {
			v.add(path+".offset_days", "must be between -31 and 31, got %d", w.OffsetDays)
		}
		if v.required(path+".start", w.Start, "the local start time, \"HH:MM\"") && !hhmmRE.MatchString(w.Start) {
			v.add(path+".start", "must be a 24-hour time \"HH:MM\", got %q", w.Start)
		}
		v.positive(path+".duration", w.Duration)
		if w.Duration.Approx() > 7*24*time.Hour {
			v.add(path+".duration", "%s is longer than a week; split it into windows", w.Duration)
		}
		if v.required(path+".time_zone", w.TimeZone, "\"site\" (each asset's site zone) or an IANA zone") && w.TimeZone != TimeZoneSite {
			if _, err := time.LoadLocation(w.TimeZone); err != nil || w.TimeZone == "Local" {
				v.add(path+".time_zone", "must be \"site\" or an IANA time zone such as \"America/Chicago\", got %q", w.TimeZone)
			}
		}
	}
}

// allowedFreq are the RRULE frequencies a maintenance window may use;
// finer ones make no sense for windows and could make occurrence search
// slow.
var allowedFreq = map[string]bool{"DAILY": true, "WEEKLY": true, "MONTHLY": true, "YEARLY": true}

// parseSchedule parses a window's RRULE with dtstart as its DTSTART. The
// policy supplies only the rule: DTSTART, the time of day and the zone come
// from the window's start and time_zone.
func parseSchedule(s string, dtstart time.Time) (*rrule.RRule, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "RRULE:")
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("must be a single RRULE line such as \"FREQ=MONTHLY;BYDAY=2TU\"")
	}
	for _, part := range strings.Split(s, ";") {
		key, val, _ := strings.Cut(part, "=")
		switch strings.ToUpper(key) {
		case "DTSTART":
			return nil, fmt.Errorf("must not set DTSTART: the window's start and time_zone give it")
		case "BYHOUR", "BYMINUTE", "BYSECOND":
			return nil, fmt.Errorf("must not set %s: the window's start gives the time of day", key)
		case "FREQ":
			if !allowedFreq[val] {
				return nil, fmt.Errorf("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY, got %q", val)
			}
		}
	}
	opt, err := rrule.StrToROption(s)
	if err != nil {
		return nil, fmt.Errorf("not a valid RRULE (RFC 5545), e.g. \"FREQ=MONTHLY;BYDAY=2TU\": %v", err)
	}
	if opt.Interval > 1000 {
		return nil, fmt.Errorf("INTERVAL %d is too large", opt.Interval)
	}
	if opt.Count != 0 {
		return nil, fmt.Errorf("must not set COUNT (use UNTIL to end a schedule)")
	}
	// RFC 5545 fills a missing day from DTSTART, which a policy does not
	// choose: ask for the day outright.
	days := len(opt.Byweekday) > 0 || len(opt.Bymonthday) > 0 || len(opt.Byyearday) > 0
	switch opt.Freq {
	case rrule.WEEKLY:
		if len(opt.Byweekday) == 0 {
			return nil, fmt.Errorf("a WEEKLY schedule needs BYDAY (e.g. \"FREQ=WEEKLY;BYDAY=SU\")")
		}
	case rrule.MONTHLY, rrule.YEARLY:
		if !days {
			return nil, fmt.Errorf("a %s schedule needs BYDAY or BYMONTHDAY (e.g. \"FREQ=MONTHLY;BYDAY=2TU\")", opt.Freq)
		}
	}
	opt.Dtstart = dtstart
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return nil, fmt.Errorf("not a valid RRULE (RFC 5545): %v", err)
	}
	return r, nil
}

func (v *validator) emergency(p *Policy) {
	e := p.Emergency
	if len(e.Authority) == 0 {
		v.add("emergency.authority", "required: the roles that may declare an emergency change")
	}
	for i, r := range e.Authority {
		v.policyRole(indexPath("emergency.authority", i), r)
	}
	v.positive("emergency.go_no_go", e.GoNoGo)
	v.positive("emergency.review_within", e.ReviewWithin)
	if v.required("emergency.window", e.Window, "a maintenance window's name or \"immediate\"") && e.Window != WindowImmediate {
		if _, ok := v.c.windowIndex[e.Window]; !ok {
			v.add("emergency.window", "names no maintenance window: %q (use a window's name or %q)", e.Window, WindowImmediate)
		}
	}
	// Test IDs are checked after the catalogue is indexed (testing).
}

const dateLayout = "2006-01-02"

func (v *validator) freezes(p *Policy) {
	seen := map[string]int{}
	for i, f := range p.Freezes {
		path := indexPath("freezes", i)
		if v.required(path+".name", f.Name, "the freeze's name") {
			if j, dup := seen[f.Name]; dup {
				v.add(path+".name", "duplicate freeze %q (also freezes[%d])", f.Name, j)
			}
			seen[f.Name] = i
		}
		from, errF := time.Parse(dateLayout, f.From)
		if errF != nil {
			v.add(path+".from", "must be a date YYYY-MM-DD, got %q", f.From)
		}
		to, errT := time.Parse(dateLayout, f.To)
		if errT != nil {
			v.add(path+".to", "must be a date YYYY-MM-DD, got %q", f.To)
		}
		if errF == nil && errT == nil && to.Before(from) {
			v.add(path+".to", "%s is before from (%s)", f.To, f.From)
		}
	}
}

func (v *validator) rings(p *Policy) {
	if len(p.Rings) == 0 {
		v.add("rings", "required: at least one deployment ring")
	}
	seen := map[string]int{}
	v.c.rings = make([]*program, len(p.Rings))
	for i, r := range p.Rings {
		path := indexPath("rings", i)
		if v.required(path+".name", r.Name, "the ring's name") {
			if j, dup := seen[r.Name]; dup {
				v.add(path+".name", "duplicate ring %q (also rings[%d])", r.Name, j)
			}
			seen[r.Name] = i
		}
		if r.Select != "" {
			v.c.rings[i] = v.compileExpr(v.env.asset, path+".select", r.Select)
		}
		if r.MinSuccess < 0 {
			v.add(path+".min_success", "must not be negative, got %d", r.MinSuccess)
		}
		if r.MaxConcurrent < 0 {
			v.add(path+".max_concurrent", "must not be negative, got %d", r.MaxConcurrent)
		}
		v.fraction(path+".success_rate", r.SuccessRate)
		v.fraction(path+".halt_failure_rate", r.HaltFailureRate)
	}
}

func (v *validator) testing(p *Policy) {
	t := p.Testing
	for i, ct := range t.RequiredFor {
		if !slices.Contains(ChangeTypes, ct) {
			v.add(indexPath("testing.required_for", i), "unknown change type %q (types are %s)", ct, oneOf(ChangeTypes))
		}
	}
	classes := map[string]bool{}
	for _, ac := range p.AssetClasses {
		classes[ac.Name] = true
	}
	for i, tc := range t.Cases {
		path := indexPath("testing.cases", i)
		if v.required(path+".id", tc.ID, "the test case's ID") {
			if j, dup := v.c.caseIndex[tc.ID]; dup {
				v.add(path+".id", "duplicate test case %q (also testing.cases[%d])", tc.ID, j)
			} else {
				v.c.caseIndex[tc.ID] = i
			}
		}
		v.required(path+".name", tc.Name, "what the test checks")
		v.required(path+".criteria", tc.Criteria, "the pass/fail criterion")
		for j, ac := range tc.AppliesTo {
			if !classes[ac] {
				v.add(indexPath(path+".applies_to", j), "names no asset class: %q", ac)
			}
		}
	}
	for i, id := range p.Emergency.Tests {
		if _, ok := v.c.caseIndex[id]; !ok {
			v.add(indexPath("emergency.tests", i), "names no test case in testing.cases: %q", id)
		}
	}
}

func (v *validator) rollback(p *Policy) {
	for i, t := range p.Rollback.Triggers {
		v.required(indexPath("rollback.triggers", i), t, "a trigger")
	}
}

func (v *validator) exceptions(p *Policy) {
	e := p.Exceptions
	const base = "exceptions"
	if len(e.ApproverRoles) == 0 {
		v.add(base+".approver_roles", "required: the Patchward roles that may approve a risk acceptance")
	}
	for i, r := range e.ApproverRoles {
		if !auth.Role(r).Valid() {
			v.add(indexPath(base+".approver_roles", i), "must be one of Patchward's roles %s, got %q", oneOf(strs(auth.Roles)), r)
		}
	}
	for i, d := range e.Decisions {
		if !slices.Contains(Decisions, d) {
			v.add(indexPath(base+".decisions", i), "unknown decision %q (decisions are %s)", d, oneOf(Decisions))
		}
	}
	for i, d := range e.RequireControls {
		if !slices.Contains(Decisions, d) {
			v.add(indexPath(base+".require_controls", i), "unknown decision %q (decisions are %s)", d, oneOf(Decisions))
		}
	}
	v.positive(base+".max_duration", e.MaxDuration)
	v.positive(base+".review_every", e.ReviewEvery)
	if e.ReviewEvery.Approx() > 0 && e.MaxDuration.Approx() > 0 && e.ReviewEvery.Approx() > e.MaxDuration.Approx() {
		v.add(base+".review_every", "%s is longer than max_duration (%s): an exception must be reviewed before it expires", e.ReviewEvery, e.MaxDuration)
	}
}

func (v *validator) retention(p *Policy) {
	r := p.Retention
	v.positive("retention.audit", r.Audit)
	v.positive("retention.findings", r.Findings)
	v.positive("retention.evidence", r.Evidence)
}

// sortedKeys returns m's keys in order, so problems and documents come out
// the same every time.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
