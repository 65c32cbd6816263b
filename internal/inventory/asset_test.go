package inventory

import (
	"strings"
	"testing"
	"time"
)

func TestAssetValidate(t *testing.T) {
	eos := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	base := func() Asset {
		return Asset{Name: "LIS-01", Type: TypeServer, Exposure: ExposureClinicalVLAN, Criticality: LevelHigh}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Asset)
		// field and message fragment expected; "" means valid.
		field, msg string
	}{
		{"valid", func(*Asset) {}, "", ""},
		{"missing name", func(a *Asset) { a.Name = "  " }, "name", "is required"},
		{"unknown type", func(a *Asset) { a.Type = "toaster" }, "type", `"toaster" is not one of`},
		{"unknown exposure", func(a *Asset) { a.Exposure = "moon" }, "exposure", "is not one of"},
		{"unknown criticality", func(a *Asset) { a.Criticality = "extreme" }, "criticality", "is not one of"},
		{"phi with public class", func(a *Asset) { a.HandlesPHI = true; a.DataClass = ClassPublic }, "data_classification", "must be \"phi\""},
		{"restriction on unregulated", func(a *Asset) { a.Restriction = RestrictionVendorOnly }, "vendor_patch_restriction", "only applies to regulated"},
		{"restriction on regulated", func(a *Asset) { a.RegulatedDevice = true; a.Restriction = RestrictionVendorOnly }, "", ""},
		{"bad cpe", func(a *Asset) { a.CPE = "windows" }, "cpe", "CPE 2.3"},
		{"bad ip", func(a *Asset) { a.IPAddresses = []string{"10.0.0.300"} }, "ip_addresses", "not an IP address"},
		{"bad mac", func(a *Asset) { a.MACAddress = "zz:00" }, "mac_address", "not a MAC address"},
		{"mac with dashes normalised", func(a *Asset) { a.MACAddress = "AA-BB-CC-DD-EE-FF" }, "", ""},
		{"negative pending", func(a *Asset) { a.PendingUpdates = -1 }, "pending_updates", "negative"},
		{"eos without date", func(a *Asset) { a.SupportStatus = SupportEnded }, "end_of_support", "is required"},
		{"eos with date", func(a *Asset) { a.SupportStatus = SupportEnded; a.EndOfSupport = &eos }, "", ""},
		{"bad tag", func(a *Asset) { a.Tags = []string{"has space"} }, "tags", "lower-case"},
		{"too long", func(a *Asset) { a.Model = strings.Repeat("x", 201) }, "model", "at most 200"},
		{"software without version", func(a *Asset) { a.Software = []Software{{Name: "openssl"}} }, "software", "needs a name and a version"},
		{"bad purl", func(a *Asset) { a.Software = []Software{{Name: "x", Version: "1", PURL: "not-a-purl"}} }, "software", "not a package URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := base()
			tc.mutate(&a)
			a.Normalize()
			err := a.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want an error on %s", tc.field)
			}
			if !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Validate() = %q; want %s: …%s…", err, tc.field, tc.msg)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	a := Asset{Name: " PC ", Tags: []string{"B", "a", "b", " "}, MACAddress: "AA-BB-CC-DD-EE-FF", HandlesPHI: true}
	a.Normalize()
	if a.Name != "PC" || strings.Join(a.Tags, ",") != "a,b" || a.MACAddress != "aa:bb:cc:dd:ee:ff" || a.DataClass != ClassPHI {
		t.Errorf("Normalize() = name %q tags %v mac %q class %q", a.Name, a.Tags, a.MACAddress, a.DataClass)
	}
	if a.Type != TypeUnknown || a.Exposure != ExposureInternal || a.SupportStatus != SupportUnknown {
		t.Errorf("defaults = %q %q %q", a.Type, a.Exposure, a.SupportStatus)
	}
}
