package policy

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"sync"
	// Policies name IANA zones (organization.time_zone, windows) and the
	// embedded default must load on hosts without /usr/share/zoneinfo
	// (minimal containers); the zone database costs about 450 KB.
	_ "time/tzdata"
)

// defaultYAML is the example policy shipped with Patchward and the one in
// force until an admin applies their own.
//
//go:embed default.yaml
var defaultYAML []byte

// DefaultSource returns the text of the embedded default policy, the
// starting point an admin edits.
func DefaultSource() []byte { return append([]byte(nil), defaultYAML...) }

// defaultCompiled is loaded once: the default never changes within a
// process, and every caller shares the same immutable *Compiled.
var defaultCompiled = sync.OnceValue(func() *Compiled {
	c, err := Load(defaultYAML)
	if err != nil {
		// A test proves default.yaml loads; reaching this is a build bug.
		panic(fmt.Sprintf("policy: embedded default.yaml does not load:\n%v", err))
	}
	return c
})

// Default returns the embedded default policy, compiled. It is the policy
// in force before any version has been applied (Store.Current returns
// errs.NotFound).
func Default() *Compiled { return defaultCompiled() }

// Compiled is a loaded, validated policy with its CEL expressions compiled.
// It is immutable and safe for concurrent use: one *Compiled serves every
// request until a new version is applied.
type Compiled struct {
	policy Policy
	source []byte
	sum    string

	// Compiled expressions, parallel to the policy's slices; nil where an
	// expression is empty.
	rules         []*program
	classes       []*program
	rings         []*program
	missionHigh   *program
	missionMedium *program

	tierIndex   map[string]int
	windowIndex map[string]int
	caseIndex   map[string]int
}

func newCompiled(p Policy, src []byte) *Compiled {
	sum := sha256.Sum256(src)
	return &Compiled{
		policy:      p,
		source:      append([]byte(nil), src...),
		sum:         hex.EncodeToString(sum[:]),
		tierIndex:   map[string]int{},
		windowIndex: map[string]int{},
		caseIndex:   map[string]int{},
	}
}

// Policy returns a deep copy of the policy settings, so a caller may keep
// or change it without touching the shared *Compiled. It copies: call it
// once per operation, not once per finding.
func (c *Compiled) Policy() Policy {
	var p Policy
	deepCopy(reflect.ValueOf(&p).Elem(), reflect.ValueOf(c.policy))
	return p
}

// Source returns the policy file exactly as loaded; it is what gets stored
// and what the SHA256 names.
func (c *Compiled) Source() []byte { return append([]byte(nil), c.source...) }

// SHA256 is the hex SHA-256 of Source: the policy's identity in audit
// records and in the rendered document.
func (c *Compiled) SHA256() string { return c.sum }

// RuleHit is one organisation rule whose condition held for a finding.
type RuleHit struct {
	// Index is the rule's position in risk.rules.
	Index int
	Rule  Rule
}

// RuleHits evaluates every risk rule against f and returns those whose
// `when` holds, in file order, so a score can say which rules moved it.
func (c *Compiled) RuleHits(f Facts) ([]RuleHit, error) {
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	act := factsActivation(f)
	var hits []RuleHit
	for i, p := range c.rules {
		if p == nil {
			continue
		}
		ok, err := p.eval(ctx, act)
		if err != nil {
			return nil, fmt.Errorf("policy rule %q: %w", c.policy.Risk.Rules[i].Name, err)
		}
		if ok {
			hits = append(hits, RuleHit{Index: i, Rule: c.policy.Risk.Rules[i]})
		}
	}
	return hits, nil
}

// ClassesOf returns the asset classes whose match holds for a, in file
// order. An asset may belong to several; the strictest target applies.
// The returned classes share their Due maps and Approvers with c: read
// them, do not change them.
func (c *Compiled) ClassesOf(a AssetFacts) ([]AssetClass, error) {
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	act := map[string]any{VarAsset: a}
	var out []AssetClass
	for i, p := range c.classes {
		if p == nil {
			continue
		}
		ok, err := p.eval(ctx, act)
		if err != nil {
			return nil, fmt.Errorf("policy asset class %q: %w", c.policy.AssetClasses[i].Name, err)
		}
		if ok {
			out = append(out, c.policy.AssetClasses[i])
		}
	}
	return out, nil
}

// RingOf returns the deployment ring for a and its index: the first ring
// whose select holds (a ring without select takes every asset), or the
// last ring when none does, so every asset is patched in some wave.
func (c *Compiled) RingOf(a AssetFacts) (Ring, int, error) {
	rings := c.policy.Rings
	if len(rings) == 0 {
		return Ring{}, -1, fmt.Errorf("policy has no deployment rings")
	}
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	act := map[string]any{VarAsset: a}
	for i, p := range c.rings {
		if p == nil {
			return rings[i], i, nil
		}
		ok, err := p.eval(ctx, act)
		if err != nil {
			return Ring{}, -1, fmt.Errorf("policy ring %q: %w", rings[i].Name, err)
		}
		if ok {
			return rings[i], i, nil
		}
	}
	last := len(rings) - 1
	return rings[last], last, nil
}

// SSVC "Mission & Well-being" levels, as Mission returns them.
const (
	MissionHigh   = "high"
	MissionMedium = "medium"
	MissionLow    = "low"
)

// Mission rates f's asset for SSVC's "Mission & Well-being": high when
// ssvc.mission_high holds, else medium when ssvc.mission_medium holds,
// else low.
func (c *Compiled) Mission(f Facts) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	act := factsActivation(f)
	for _, m := range []struct {
		p     *program
		level string
	}{{c.missionHigh, MissionHigh}, {c.missionMedium, MissionMedium}} {
		if m.p == nil {
			continue
		}
		ok, err := m.p.eval(ctx, act)
		if err != nil {
			return "", fmt.Errorf("policy ssvc.mission_%s: %w", m.level, err)
		}
		if ok {
			return m.level, nil
		}
	}
	return MissionLow, nil
}

// SLA returns the policy's sla section. It holds only values, so unlike
// Policy it copies nothing shared and is cheap enough to call per finding.
func (c *Compiled) SLA() SLA { return c.policy.SLA }

// TierByName returns the tier called name and its index (0 is the most
// urgent).
func (c *Compiled) TierByName(name string) (Tier, int, bool) {
	i, ok := c.tierIndex[name]
	if !ok {
		return Tier{}, -1, false
	}
	return c.policy.Risk.Tiers[i], i, true
}

// TierForScore returns the tier whose score band holds score (MinScore ≤
// score < MaxScore; the top tier also holds 100) and its index. Scores are
// clamped to 0–100; a score no band holds (outside score mode, where bands
// may be unset) falls to the least urgent tier.
func (c *Compiled) TierForScore(score float64) (Tier, int) {
	tiers := c.policy.Risk.Tiers
	if math.IsNaN(score) {
		score = 0
	}
	score = min(max(score, 0), 100)
	for i, t := range tiers {
		if score >= t.MinScore && (score < t.MaxScore || (score == 100 && t.MaxScore == 100)) {
			return t, i
		}
	}
	last := len(tiers) - 1
	return tiers[last], last
}

// Window returns the maintenance window called name.
func (c *Compiled) Window(name string) (Window, bool) {
	i, ok := c.windowIndex[name]
	if !ok {
		return Window{}, false
	}
	return c.policy.Windows[i], true
}

// TestCase returns the test case with the given ID. The AppliesTo slice is
// shared with c: read it, do not change it.
func (c *Compiled) TestCase(id string) (TestCase, bool) {
	i, ok := c.caseIndex[id]
	if !ok {
		return TestCase{}, false
	}
	return c.policy.Testing.Cases[i], true
}

// deepCopy copies src into dst, allocating new slices and maps.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		it := src.MapRange()
		for it.Next() {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			m.SetMapIndex(it.Key(), v)
		}
		dst.Set(m)
	default:
		dst.Set(src)
	}
}
