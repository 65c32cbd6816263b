package advisory

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/patchward/patchward/internal/errs"
)

// The fuzz tests hold every parser to the package contract on arbitrary
// input: no panic; an error carries a kind a caller can act on and comes
// with no result; a result is well-formed. Seeds are the real feed files.

// maxSeed keeps the large real files (the KEV catalog, full NVD pages,
// big CSAF documents) out of the fuzz corpora: the engine minimises every
// new interesting input, and minimising a mutant of a 100 KB+ file takes
// the whole fuzzing budget. The unit tests parse those files in full.
const maxSeed = 40 << 10

func addSeeds(f *testing.F, pattern string) {
	f.Helper()
	paths, _ := filepath.Glob(filepath.Join("testdata", pattern))
	n := 0
	for _, p := range paths {
		rel, _ := filepath.Rel("testdata", p)
		if b := readTestdata(f, rel); len(b) <= maxSeed {
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files of at most %d bytes match %s", maxSeed, pattern)
	}
}

func checkKind(t *testing.T, err error, allowed ...errs.Kind) {
	t.Helper()
	k := errs.KindOf(err)
	for _, a := range allowed {
		if k == a {
			return
		}
	}
	t.Fatalf("error %v has kind %v; want one of %v", err, k, allowed)
}

func checkAdvisories(t *testing.T, advs []Advisory) {
	t.Helper()
	for _, a := range advs {
		if a.ID == "" || a.Source == "" {
			t.Fatalf("advisory without ID or source: %+v", a)
		}
		for _, s := range a.Severity {
			if s.Score < 0 || s.Score > 10 || math.IsNaN(s.Score) || s.Rating == "" {
				t.Fatalf("%s: severity %+v out of range", a.ID, s)
			}
		}
	}
}

func FuzzParseOSV(f *testing.F) {
	addSeeds(f, "osv/*.json")
	f.Add([]byte(`[{"id":"A-1","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2"}]}]}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		advs, err := ParseOSV(bytes.NewReader(b))
		if err != nil {
			if advs != nil {
				t.Fatalf("ParseOSV returned %d advisories with error %v", len(advs), err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		checkAdvisories(t, advs)
	})
}

func FuzzParseOSVZip(f *testing.F) {
	files := realOSVFiles(f)
	f.Add(osvZip(f, map[string][]byte{"DSA-3029-1.json": files["DSA-3029-1.json"], "GHSA-838r-hvwh-24h8.json": files["GHSA-838r-hvwh-24h8.json"]}))
	f.Add(osvZip(f, map[string][]byte{"ALSA-2022_8194.json": files["ALSA-2022_8194.json"]}))
	f.Add(osvZip(f, map[string][]byte{"BOMB.json": make([]byte, 1<<16)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := zipLimits{size: 1 << 20, entries: 64, entry: 256 << 10, total: 1 << 20}
		advs, err := parseOSVZip(bytes.NewReader(b), int64(len(b)), lim)
		if err != nil {
			if advs != nil {
				t.Fatalf("ParseOSVZip returned %d advisories with error %v", len(advs), err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		checkAdvisories(t, advs)
	})
}

func FuzzParseNVD(f *testing.F) {
	addSeeds(f, "nvd/*.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		advs, err := ParseNVD(bytes.NewReader(b))
		if err != nil {
			if advs != nil {
				t.Fatalf("ParseNVD returned %d advisories with error %v", len(advs), err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		checkAdvisories(t, advs)
	})
}

func FuzzParseKEV(f *testing.F) {
	// Three-entry cuts of the real catalog keep mutation fast.
	var cat map[string]any
	if err := json.Unmarshal(readTestdata(f, "kev/known_exploited_vulnerabilities.json"), &cat); err != nil {
		f.Fatal(err)
	}
	all := cat["vulnerabilities"].([]any)
	cat["count"] = 3
	for _, start := range []int{0, 500, 1401} {
		cat["vulnerabilities"] = all[start : start+3]
		small, _ := json.Marshal(cat)
		f.Add(small)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseKEV(bytes.NewReader(b))
		if err != nil {
			if c.Entries != nil || c.Version != "" {
				t.Fatalf("ParseKEV returned a catalog with error %v", err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		for _, k := range c.Entries {
			if !isCVE(k.CVE) || k.DateAdded.IsZero() {
				t.Fatalf("entry %+v lacks a CVE or date", k)
			}
		}
	})
}

func FuzzParseEPSS(f *testing.F) {
	addSeeds(f, "epss/*.csv")
	f.Add(gzipBytes(f, readTestdata(f, "epss/example-1.csv")))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseEPSS(bytes.NewReader(b), 1<<20)
		if err != nil {
			if s.Scores != nil {
				t.Fatalf("ParseEPSS returned %d scores with error %v", len(s.Scores), err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		for _, e := range s.Scores {
			if !isCVE(e.CVE) || e.Score < 0 || e.Score > 1 || e.Percentile < 0 || e.Percentile > 1 {
				t.Fatalf("score %+v out of range", e)
			}
		}
	})
}

func FuzzParseCSAF(f *testing.F) {
	addSeeds(f, "csaf/*.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		advs, err := ParseCSAF(bytes.NewReader(b))
		if err != nil {
			if advs != nil {
				t.Fatalf("ParseCSAF returned %d advisories with error %v", len(advs), err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge)
			return
		}
		checkAdvisories(t, advs)
		for _, a := range advs {
			if a.Document == nil {
				t.Fatalf("%s has no document", a.ID)
			}
		}
	})
}

// FuzzParseAny also admits errs.Unsupported: content that is no feed.
func FuzzParseAny(f *testing.F) {
	for _, p := range []string{"osv/DSA-3029-1.json", "osv/UBUNTU-CVE-2021-3782.json", "nvd/CVE-2024-3094.json", "csaf/icsma-24-163-01.json",
		"csaf/2022-evd-uc-01-na-001.json", "epss/example-1.csv", "epss/missing-date.csv"} {
		f.Add(readTestdata(f, p))
	}
	f.Add(gzipBytes(f, readTestdata(f, "epss/example-1.csv")))
	f.Add(osvZip(f, map[string][]byte{"DSA-3029-1.json": readTestdata(f, "osv/DSA-3029-1.json")}))
	f.Add([]byte(`{"catalogVersion":"1","dateReleased":"2025-01-01T00:00:00Z","count":0,"vulnerabilities":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseAny("fuzz", b)
		if err != nil {
			if p.Advisories != nil || p.KEV != nil || p.EPSS != nil || p.Format != "" {
				t.Fatalf("ParseAny returned %+v with error %v", p, err)
			}
			checkKind(t, err, errs.Invalid, errs.TooLarge, errs.Unsupported)
			return
		}
		checkAdvisories(t, p.Advisories)
		if p.Format == "" {
			t.Fatal("result without a format")
		}
	})
}

func FuzzScoreVector(f *testing.F) {
	for _, path := range []string{"testdata/nvd/nvd-cvss-published-scores.tsv", "testdata/csaf/csaf-cvss-vectors.tsv", "testdata/cvss/redhat-cvss-expected-scores.tsv"} {
		rows := tsvRows(f, path)
		for i := 0; i < len(rows); i += 97 { // a spread of real vectors
			f.Add(rows[i]["vector"])
		}
	}
	f.Fuzz(func(t *testing.T, v string) {
		typ, score, rating, err := ScoreVector(v)
		if err != nil {
			checkKind(t, err, errs.Invalid)
			return
		}
		if score < 0 || score > 10 || rating == "" || (typ != CVSSv2 && typ != CVSSv3 && typ != CVSSv4) {
			t.Fatalf("ScoreVector(%q) = %s %v %s", v, typ, score, rating)
		}
		if typ == CVSSv4 {
			// score40 may only differ from go-cvss by rounding a tie up.
			c, _ := gocvss40.ParseVector(v)
			if d := math.Round((score - c.Score()) * 10); d != 0 && d != 1 {
				t.Fatalf("ScoreVector(%q) = %.1f; go-cvss %.1f", v, score, c.Score())
			}
		}
	})
}
