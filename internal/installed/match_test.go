package installed_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/patchward/patchward/internal/installed"
	"github.com/patchward/patchward/internal/match"
)

// TestSBOMCPEsParse checks that the matcher understands every CPE the real
// medical-device SBOMs carry, truncated ones included. It is an external
// test so that match may one day import installed without a cycle.
func TestSBOMCPEsParse(t *testing.T) {
	for _, name := range []string{"narrow.sbom.json", "extended.sbom.json"} {
		f, err := os.Open(filepath.Join("testdata", "sbom", "medical-device", name))
		if err != nil {
			t.Fatal(err)
		}
		s, err := installed.ParseCycloneDX(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range s.CPEs() {
			if _, err := match.ParseCPE(c); err != nil {
				t.Errorf("%s: match.ParseCPE(%q): %v", name, c, err)
			}
		}
	}
}
