package change

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
)

const sampleChange = `{
  "title": " Apply openssl 3.0.15 ",
  "type": "normal",
  "findings": ["f1", " f1 ", ""],
  "targets": {"assets": ["a1"], "groups": ["lab"]},
  "patches": [{"package": "openssl", "ecosystem": "Debian:12", "target_version": "3.0.15-1~deb12u1"},
              {"manual": {"description": "Vendor re-flashes the analyzer", "owner": "Roche field service"}}],
  "planned_windows": [{"window": "servers-weekly"}, {"start": "2026-03-08T02:00:00-06:00", "end": "2026-03-08T04:00:00-05:00", "time_zone": "America/Chicago"}],
  "communication": {"notify": ["lab operations"], "user_impact": "LIS down 10 minutes"},
  "pre_checks": ["VM snapshot verified"],
  "test_protocol": [{"case_id": "qc-run"}, {"case_id": "smoke", "name": "Smoke", "criteria": "Login page loads"}],
  "rollback_plan": {"triggers": ["Abnormal QC"], "steps": ["Restore snapshot"], "owner": "it-technician"},
  "sign_offs": [{"role": "laboratory-director", "by": "forged", "at": "2026-01-01T00:00:00Z"}],
  "state": "approved", "requested_by": "someone", "risk": {"tier": "low", "rank": 3},
  "revision": 4
}`

func TestDecode(t *testing.T) {
	c, err := Decode(strings.NewReader(sampleChange))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if c.Title != "Apply openssl 3.0.15" || len(c.Findings) != 1 || c.Revision != 4 {
		t.Errorf("Decode = title %q findings %v revision %d; want trimmed, deduplicated, revision kept", c.Title, c.Findings, c.Revision)
	}
	if c.State != "" || c.RequestedBy != "" || c.Risk != (RiskRating{}) {
		t.Errorf("Decode kept server-owned fields: state %q by %q risk %+v", c.State, c.RequestedBy, c.Risk)
	}
	if len(c.SignOffs) != 1 || c.SignOffs[0].By != "" || c.SignOffs[0].At != nil {
		t.Errorf("Decode kept a forged signature: %+v", c.SignOffs)
	}
	if err := c.validate(policy.Default()); err != nil {
		t.Errorf("validate(decoded sample) = %v", err)
	}
	for name, body := range map[string]string{
		"unknown field": `{"title": "x", "rollback_plann": {}}`,
		"trailing":      `{"title": "x"} {}`,
		"wrong type":    `{"title": 1}`,
		"syntax":        `{"title": "x",`,
	} {
		if _, err := Decode(strings.NewReader(body)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("Decode(%s) = %v; want invalid", name, err)
		}
	}
	big := `{"title": "` + strings.Repeat("x", MaxDocument) + `"}`
	if _, err := Decode(strings.NewReader(big)); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("Decode(oversized) = %v; want too large", err)
	}
}

// FuzzDecode: Decode never panics, refuses with Invalid or TooLarge only,
// and what it accepts survives validation without panicking and encodes
// back to a document that decodes to the same record.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(sampleChange))
	for _, s := range []string{"", "{}", "null", "[]", `{"patches":[{"manual":null}]}`, `{"emergency":{}}`,
		`{"planned_windows":[{"start":"2026-01-01T00:00:00Z"}]}`, `{"test_protocol":[{"case_id":""}]}`} {
		f.Add([]byte(s))
	}
	pol := policy.Default()
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Decode(bytes.NewReader(body))
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("Decode error kind %s: %v", k, err)
			}
			return
		}
		_ = c.validate(pol)
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(decoded): %v", err)
		}
		c2, err := Decode(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("Decode(Marshal(decoded)) = %v", err)
		}
		c.TestProtocol, c2.TestProtocol = nil, nil // validate fills policy cases in
		if d := cmp.Diff(c, c2, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", d)
		}
	})
}
