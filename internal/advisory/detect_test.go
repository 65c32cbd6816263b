package advisory

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/errs"
)

// TestDetectRealFiles recognises every test feed by content. The expected
// format comes from the directory the file was sorted into, which Detect
// never sees.
func TestDetectRealFiles(t *testing.T) {
	want := map[string]Format{"osv": FormatOSV, "nvd": FormatNVD, "kev": FormatKEV, "csaf": FormatCSAF}
	paths, _ := filepath.Glob("testdata/*/*")
	n := 0
	for _, p := range paths {
		dir, name := filepath.Base(filepath.Dir(p)), filepath.Base(p)
		b := readTestdata(t, dir+"/"+name)
		got, err := Detect(b)
		switch {
		case strings.HasSuffix(name, ".tsv"):
			if errs.KindOf(err) != errs.Unsupported {
				t.Errorf("Detect(%s/%s) = %s, %v; want Unsupported", dir, name, got, err)
			}
		case dir == "epss" && name == "invalid-header.csv":
			// The model comment marks it as EPSS; its broken header is
			// the parser's to report, as Invalid.
			if got != FormatEPSS || err != nil {
				t.Errorf("Detect(%s) = %s, %v; want %s", name, got, err, FormatEPSS)
			}
			if _, err := ParseAny(name, b); errs.KindOf(err) != errs.Invalid {
				t.Errorf("ParseAny(%s) error = %v; want Invalid", name, err)
			}
		case dir == "epss":
			if got != FormatEPSS || err != nil {
				t.Errorf("Detect(%s) = %s, %v; want %s", name, got, err, FormatEPSS)
			}
			if got, err := Detect(gzipBytes(t, b)); got != FormatEPSS || err != nil {
				t.Errorf("Detect(gzip %s) = %s, %v; want %s", name, got, err, FormatEPSS)
			}
		case strings.HasSuffix(name, ".json"):
			if got != want[dir] || err != nil {
				t.Errorf("Detect(%s/%s) = %s, %v; want %s", dir, name, got, err, want[dir])
			}
		}
		n++
	}
	z := osvZip(t, realOSVFiles(t))
	if got, err := Detect(z); got != FormatOSVZip || err != nil {
		t.Errorf("Detect(OSV zip) = %s, %v; want %s", got, err, FormatOSVZip)
	}
	if n < 80 {
		t.Errorf("checked %d files; want all of testdata", n)
	}
	for _, in := range []string{"", "# README\n", "<xml/>", `{"name":"x"}`, `[1,2]`, "PK\x05\x06"} {
		if f, err := Detect([]byte(in)); errs.KindOf(err) != errs.Unsupported {
			t.Errorf("Detect(%q) = %s, %v; want Unsupported", in, f, err)
		}
	}
	if f, err := Detect([]byte(`{"id":"X","modified":`)); errs.KindOf(err) != errs.Invalid {
		t.Errorf("Detect(truncated JSON) = %s, %v; want Invalid", f, err)
	}
}

func TestParseAny(t *testing.T) {
	kev, err := ParseAny("catalog.json", readTestdata(t, "kev/known_exploited_vulnerabilities.json"))
	if err != nil || kev.Format != FormatKEV || kev.KEV == nil || len(kev.KEV.Entries) != 1404 || kev.Advisories != nil || kev.EPSS != nil {
		t.Errorf("ParseAny(KEV) = %+v, %v", kev.Format, err)
	}
	epss, err := ParseAny("scores.gz", gzipBytes(t, readTestdata(t, "epss/example-1.csv")))
	if err != nil || epss.EPSS == nil || len(epss.EPSS.Scores) != 5 {
		t.Errorf("ParseAny(EPSS gz) = %+v, %v", epss.Format, err)
	}
	nvd, err := ParseAny("x", readTestdata(t, "nvd/CVE-2024-3094.json"))
	if err != nil || nvd.Format != FormatNVD || len(nvd.Advisories) != 1 {
		t.Errorf("ParseAny(NVD) = %+v, %v", nvd.Format, err)
	}
	csaf, err := ParseAny("y", readTestdata(t, "csaf/icsma-24-163-01.json"))
	if err != nil || csaf.Format != FormatCSAF || len(csaf.Advisories) != 2 {
		t.Errorf("ParseAny(CSAF) = %+v, %v", csaf.Format, err)
	}
	osv, err := ParseAny("z", readTestdata(t, "osv/DSA-3029-1.json"))
	if err != nil || osv.Format != FormatOSV || len(osv.Advisories) != 1 {
		t.Errorf("ParseAny(OSV) = %+v, %v", osv.Format, err)
	}
	files := realOSVFiles(t)
	zipped, err := ParseAny("debian-all.zip", osvZip(t, files))
	if err != nil || zipped.Format != FormatOSVZip || len(zipped.Advisories) != len(files) {
		t.Errorf("ParseAny(OSV zip) = %s with %d advisories, %v", zipped.Format, len(zipped.Advisories), err)
	}

	// Errors name the file and keep their kind.
	_, err = ParseAny("feeds/kev.json", []byte(`{"catalogVersion":"1","dateReleased":"2025-01-01T00:00:00Z","count":2,"vulnerabilities":[]}`))
	if errs.KindOf(err) != errs.Invalid || !strings.HasPrefix(errs.Public(err), "feeds/kev.json: KEV catalog: count says 2") {
		t.Errorf("ParseAny(short KEV) error = %q (%v)", errs.Public(err), errs.KindOf(err))
	}
	if strings.Count(err.Error(), "count says") != 1 {
		t.Errorf("error text repeats itself: %q", err.Error())
	}
	if _, err := ParseAny("README.md", []byte("# feeds\n")); errs.KindOf(err) != errs.Unsupported || !strings.HasPrefix(errs.Public(err), "README.md: ") {
		t.Errorf("ParseAny(README) error = %v; want Unsupported naming the file", err)
	}
}
