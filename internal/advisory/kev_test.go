package advisory

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func TestParseKEV(t *testing.T) {
	cat, err := ParseKEV(bytes.NewReader(readTestdata(t, "kev/known_exploited_vulnerabilities.json")))
	if err != nil {
		t.Fatalf("ParseKEV: %v", err)
	}
	if cat.Version != "2025.08.25" || !cat.Released.Equal(date("2025-08-25T17:04:19.9796Z")) || len(cat.Entries) != 1404 {
		t.Errorf("catalog = %s released %v with %d entries; want 2025.08.25, 2025-08-25T17:04:19.9796Z, 1404", cat.Version, cat.Released, len(cat.Entries))
	}
	ransomware := 0
	var log4shell *KEV
	for i, k := range cat.Entries {
		if k.KnownRansomware {
			ransomware++
		}
		if k.CVE == "CVE-2021-44228" {
			log4shell = &cat.Entries[i]
		}
	}
	if ransomware != 293 {
		t.Errorf("%d entries with known ransomware use; the catalog has 293", ransomware)
	}
	if log4shell == nil {
		t.Fatal("CVE-2021-44228 (Log4Shell) missing from the catalog")
	}
	want := KEV{
		CVE:             "CVE-2021-44228",
		VendorProject:   "Apache",
		Product:         "Log4j2",
		Name:            "Apache Log4j2 Remote Code Execution Vulnerability",
		DateAdded:       date("2021-12-10T00:00:00Z"),
		DueDate:         date("2021-12-24T00:00:00Z"),
		KnownRansomware: true,
		Notes:           "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
		CWEs:            []string{"CWE-20", "CWE-400", "CWE-502"},
	}
	if diff := cmp.Diff(want, *log4shell, cmpIgnoreRequiredAction); diff != "" {
		t.Errorf("CVE-2021-44228 (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(log4shell.RequiredAction, "For all affected software assets for which updates exist") {
		t.Errorf("CVE-2021-44228 required action = %q", log4shell.RequiredAction)
	}
}

var cmpIgnoreRequiredAction = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "RequiredAction" }, cmp.Ignore())

// kevVariant re-encodes the real catalog with one change, so each reject
// case differs from real data in exactly the way it names.
func kevVariant(t *testing.T, change func(cat map[string]any, vulns []any) []any) []byte {
	t.Helper()
	var cat map[string]any
	if err := json.Unmarshal(readTestdata(t, "kev/known_exploited_vulnerabilities.json"), &cat); err != nil {
		t.Fatal(err)
	}
	cat["vulnerabilities"] = change(cat, cat["vulnerabilities"].([]any))
	b, err := json.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKEVRejects(t *testing.T) {
	set := func(i int, key string, v any) func(map[string]any, []any) []any {
		return func(_ map[string]any, vs []any) []any { vs[i].(map[string]any)[key] = v; return vs }
	}
	tests := []struct {
		name    string
		change  func(map[string]any, []any) []any
		wantMsg string
	}{
		{"truncated list", func(_ map[string]any, vs []any) []any { return vs[:1000] }, "count says 1404 entries but 1000"},
		{"duplicate", func(c map[string]any, vs []any) []any { c["count"] = 1405; return append(vs, vs[0]) }, "listed twice"},
		{"bad CVE", set(3, "cveID", "CVE-21-44228"), "not a CVE ID"},
		{"bad date", set(5, "dateAdded", "12/10/2021"), "dateAdded"},
		{"missing due date", set(5, "dueDate", ""), "dueDate"},
		{"ransomware value", set(7, "knownRansomwareCampaignUse", "Maybe"), "neither Known nor Unknown"},
		{"released", func(c map[string]any, vs []any) []any { c["dateReleased"] = "today"; return vs }, "dateReleased"},
		{"no version", func(c map[string]any, vs []any) []any { delete(c, "catalogVersion"); return vs }, "catalogVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, err := ParseKEV(bytes.NewReader(kevVariant(t, tt.change)))
			if errs.KindOf(err) != errs.Invalid || cat.Entries != nil {
				t.Fatalf("ParseKEV = %d entries, %v; want none and an Invalid error", len(cat.Entries), err)
			}
			if !strings.Contains(errs.Public(err), tt.wantMsg) {
				t.Errorf("ParseKEV error %q; want it to mention %q", errs.Public(err), tt.wantMsg)
			}
		})
	}
	for _, in := range []string{"", "[]", `{"catalogVersion":"1","dateReleased":"2025-01-01T00:00:00Z","count":0}`, `{"catalogVersion":`} {
		if _, err := ParseKEV(strings.NewReader(in)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseKEV(%q) error = %v; want Invalid", in, err)
		}
	}
}
