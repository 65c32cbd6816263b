package policy

import (
	"errors"
	"os"
	"testing"
)

// FuzzLoad feeds Load arbitrary files: it must never panic, every problem
// must have a line, and a policy it accepts must render and evaluate.
func FuzzLoad(f *testing.F) {
	f.Add(defaultYAML)
	if base, err := os.ReadFile("testdata/base.yaml"); err == nil {
		f.Add(base)
	}
	for _, s := range []string{
		"", "version: 1", "version: [", "a: &x 1\nb: *x\n", "risk:\n  rules:\n    - when: '1 +'\n",
		"risk:\n  tiers:\n    - name: a\n      due: 1y2w3d4h\n", "maintenance_windows:\n  - schedule: FREQ=MONTHLY;BYDAY=2TU\n",
		"asset_classes:\n  - match: |\n      asset.tags.exists(t, t == 'x') &&\n      asset.nope\n",
		"---\n---\n", "version: 1\n\tbad: 2\n", "? [a]\n: b\n", "<<: {a: 1}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Load(src)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("Load error %T %v; want *Error with problems", err, err)
			}
			for _, p := range pe.Problems {
				if p.Line < 1 || p.Message == "" {
					t.Fatalf("problem without a line or message: %+v", p)
				}
			}
			return
		}
		for _, format := range []string{FormatMarkdown, FormatHTML} {
			if _, err := Render(c, format, RenderMeta{Version: 1}); err != nil {
				t.Fatalf("Render(%s) of a loaded policy: %v", format, err)
			}
		}
		facts := Facts{Asset: AssetFacts{Tags: []string{"a"}}, Vuln: VulnFacts{KEV: true}}
		_, _ = c.RuleHits(facts)
		_, _ = c.ClassesOf(facts.Asset)
		_, _, _ = c.RingOf(facts.Asset)
		_, _ = c.Mission(facts)
		c.TierForScore(50)
	})
}
