package change

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestProposalDraft: the emergency change a proposal stands for carries
// every finding and asset once, a package patch per published fixed
// version, and the vendor's fix as a manual task where no version is
// published, so "vendor fix" on the worklist is not "no fix" here.
func TestProposalDraft(t *testing.T) {
	p := groupProposals([]KEVFinding{
		{FindingID: "f1", AssetID: "a1", AssetName: "LIS-01", VulnID: "CVE-1", Ecosystem: "Debian:12", Package: "openssl", Version: "1", FixedVersion: "2", Tier: "critical", Score: 90},
		{FindingID: "f2", AssetID: "a2", AssetName: "PACS-01", VulnID: "CVE-1", Package: "philips:vue pacs", Version: "12.2", FixNote: "Update to 12.2.8 through Philips", Tier: "critical", Score: 95},
		{FindingID: "f3", AssetID: "a3", AssetName: "CCTV-01", VulnID: "CVE-1", Package: "exacq", Version: "21.06", Tier: "critical", Score: 80},
	})
	if len(p) != 1 {
		t.Fatalf("proposals = %+v; want one for CVE-1", p)
	}
	d := p[0].Draft()
	want := []Patch{
		{Package: "openssl", Ecosystem: "Debian:12", TargetVersion: "2"},
		{Manual: &ManualTask{Description: "PACS-01: Update to 12.2.8 through Philips"}},
	}
	if diff := cmp.Diff(want, d.Patches); diff != "" {
		t.Errorf("draft patches (-want +got):\n%s", diff)
	}
	if d.Type != Emergency || len(d.Findings) != 3 || len(d.Targets.Assets) != 3 || d.Title != "Emergency: CVE-1 (CISA KEV) on 3 assets" {
		t.Errorf("draft = %+v", d)
	}
}
