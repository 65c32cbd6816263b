package advisory

import (
	"math"

	"bufio"
	gocvss40 "github.com/pandatix/go-cvss/40"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/errs"
)

// tsvRows reads a tab-separated file with a header line into maps keyed by
// the header's column names.
func tsvRows(t testing.TB, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var header []string
	var rows []map[string]string
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if header == nil {
			header = cols
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			if i < len(cols) {
				row[h] = cols[i]
			}
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func mustFloat(t testing.TB, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		t.Fatalf("ParseFloat(%q): %v", s, err)
	}
	return f
}

// versionOf names the CVSS version of a vector for the agreement counts.
func versionOf(vector string) string {
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		return "4.0"
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		return "3.1"
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		return "3.0"
	}
	return "2.0"
}

// TestScoreVectorAgreesWithNVD checks every vector NVD and CNAs published
// in the NVD test records (API 2.0, the 1.1 feed and CVE 5 records,
// flattened upstream into one TSV) against the published base score.
func TestScoreVectorAgreesWithNVD(t *testing.T) {
	counts := map[string]int{}
	for _, row := range tsvRows(t, "testdata/nvd/nvd-cvss-published-scores.tsv") {
		vec := row["vector"]
		want := mustFloat(t, row["baseScore"])
		_, got, rating, err := ScoreVector(vec)
		if err != nil {
			t.Errorf("%s ScoreVector(%q): %v", row["cve"], vec, err)
			continue
		}
		if got != want {
			t.Errorf("%s (%s) ScoreVector(%q) = %.1f; published %.1f", row["cve"], row["source"], vec, got, want)
		}
		if sev := row["baseSeverity"]; sev != "" && rating != sev {
			t.Errorf("%s ScoreVector(%q) rating = %s; published %s", row["cve"], vec, rating, sev)
		}
		counts[versionOf(vec)]++
	}
	t.Logf("NVD published scores reproduced: %v", counts)
	if counts["3.1"] == 0 || counts["4.0"] == 0 {
		t.Errorf("expected v3.1 and v4.0 rows, got %v", counts)
	}
}

// TestScoreVectorAgreesWithCSAF checks every v3.x vector CISA and device
// makers published in the CISA CSAF advisories.
func TestScoreVectorAgreesWithCSAF(t *testing.T) {
	counts := map[string]int{}
	for _, row := range tsvRows(t, "testdata/csaf/csaf-cvss-vectors.tsv") {
		vec := row["vector"]
		want := mustFloat(t, row["baseScore"])
		_, got, rating, err := ScoreVector(vec)
		if err != nil {
			t.Errorf("%s %s ScoreVector(%q): %v", row["advisory"], row["cve"], vec, err)
			continue
		}
		if got != want {
			t.Errorf("%s %s ScoreVector(%q) = %.1f; published %.1f", row["advisory"], row["cve"], vec, got, want)
		}
		if sev := row["baseSeverity"]; sev != "" && rating != sev {
			t.Errorf("%s %s ScoreVector(%q) rating = %s; published %s", row["advisory"], row["cve"], vec, rating, sev)
		}
		counts[versionOf(vec)]++
	}
	t.Logf("CSAF published scores reproduced: %v", counts)
}

// TestScoreVectorAgreesWithRedHatOracle checks the RedHatProductSecurity/cvss
// test vectors: the base score for v2/v3.x, the single CVSS-B/BT/BE score
// for v4.0.
func TestScoreVectorAgreesWithRedHatOracle(t *testing.T) {
	counts := map[string]int{}
	for _, row := range tsvRows(t, "testdata/cvss/redhat-cvss-expected-scores.tsv") {
		vec := row["vector"]
		want := mustFloat(t, row["base"])
		if want == 0 {
			want = 0 // the oracle writes -0.0 for all-None v2 impact
		}
		typ, got, _, err := ScoreVector(vec)
		if err != nil {
			t.Errorf("%s ScoreVector(%q): %v", row["file"], vec, err)
			continue
		}
		if got != want {
			t.Errorf("%s ScoreVector(%q) = %.1f; want %.1f", row["file"], vec, got, want)
		}
		wantType := map[string]string{"2.0": CVSSv2, "3.0": CVSSv3, "3.1": CVSSv3, "4.0": CVSSv4}[row["version"]]
		if typ != wantType {
			t.Errorf("%s ScoreVector(%q) type = %s; want %s", row["file"], vec, typ, wantType)
		}
		counts[row["version"]]++
	}
	t.Logf("Red Hat oracle scores reproduced: %v", counts)
}

func TestScoreVector(t *testing.T) {
	tests := []struct {
		vector string
		typ    string
		score  float64
		rating string
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", CVSSv3, 10.0, "CRITICAL"},
		{"CVSS:3.0/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", CVSSv3, 4.0, "MEDIUM"},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", CVSSv2, 7.5, "HIGH"},
		{"(AV:N/AC:L/Au:N/C:P/I:P/A:P)", CVSSv2, 7.5, "HIGH"},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", CVSSv4, 8.2, "HIGH"},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", CVSSv3, 0, "NONE"},
	}
	for _, tt := range tests {
		typ, score, rating, err := ScoreVector(tt.vector)
		if err != nil || typ != tt.typ || score != tt.score || rating != tt.rating {
			t.Errorf("ScoreVector(%q) = %s, %.1f, %s, %v; want %s, %.1f, %s", tt.vector, typ, score, rating, err, tt.typ, tt.score, tt.rating)
		}
	}
	for _, bad := range []string{"", "medium", "CVSS:3.1/AV:N", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "CVSS:4.0/AC:L", "AV:N/AC:L", "CVSS:9.9/AV:N"} {
		if _, _, _, err := ScoreVector(bad); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ScoreVector(%q) error = %v; want kind Invalid", bad, err)
		}
	}
}

// TestScore40MatchesGoCVSS walks every one of the 104,976 CVSS v4.0 base
// vectors and holds score40 to go-cvss's own score except at x.x5 ties,
// where score40 rounds half up (see score40): every vector that moves must
// be a tie before rounding, and move by exactly one tenth.
func TestScore40MatchesGoCVSS(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive walk")
	}
	values := [][]string{
		{"AV", "N", "A", "L", "P"}, {"AC", "L", "H"}, {"AT", "N", "P"}, {"PR", "N", "L", "H"},
		{"UI", "N", "P", "A"}, {"VC", "H", "L", "N"}, {"VI", "H", "L", "N"}, {"VA", "H", "L", "N"},
		{"SC", "H", "L", "N"}, {"SI", "H", "L", "N"}, {"SA", "H", "L", "N"},
	}
	idx := make([]int, len(values))
	total, moved := 0, 0
	var b strings.Builder
	for {
		b.Reset()
		b.WriteString("CVSS:4.0")
		for i, m := range values {
			b.WriteString("/" + m[0] + ":" + m[1+idx[i]])
		}
		vec := b.String()
		c, err := gocvss40.ParseVector(vec)
		if err != nil {
			t.Fatalf("ParseVector(%q): %v", vec, err)
		}
		ours, theirs := score40(c), c.Score()
		switch d := math.Round((ours - theirs) * 10); d {
		case 0:
		case 1:
			moved++
			if r := raw40(c) * 10; math.Abs(r-math.Floor(r)-0.5) > 1e-9 {
				t.Errorf("score40(%q) = %.1f, go-cvss %.1f, but raw %.17g is no tie", vec, ours, theirs, raw40(c))
			}
		default:
			t.Errorf("score40(%q) = %.1f; go-cvss %.1f", vec, ours, theirs)
		}
		total++
		// next combination
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(values[i])-1 {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			break
		}
	}
	if total != 104976 {
		t.Errorf("walked %d base vectors; want 104976", total)
	}
	t.Logf("%d of %d base vectors round half up at a tie where go-cvss rounds down", moved, total)
}
