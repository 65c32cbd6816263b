package policy

import "testing"

func TestDefaultLoads(t *testing.T) {
	if _, err := Load(defaultYAML); err != nil {
		t.Fatalf("Load(default.yaml):\n%v", err)
	}
}

func TestDefaultEval(t *testing.T) {
	c := Default()
	hits, err := c.RuleHits(Facts{Asset: AssetFacts{Exposure: "internet_facing", Tags: []string{"vpn"}}, Vuln: VulnFacts{KEV: true}})
	t.Logf("hits=%+v err=%v", hits, err)
	cl, err := c.ClassesOf(AssetFacts{Tags: []string{"vpn", "domain-controller"}, Type: "analyzer"})
	t.Logf("classes=%d err=%v", len(cl), err)
	for _, x := range cl {
		t.Log(x.Name)
	}
	r, i, err := c.RingOf(AssetFacts{Criticality: "low", SafetyImpact: "none"})
	t.Log(r.Name, i, err)
	m, err := c.Mission(Facts{Asset: AssetFacts{PHI: true}})
	t.Log(m, err)
}
