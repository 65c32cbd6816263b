package advisory

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseEPSS(t *testing.T) {
	raw := readTestdata(t, "epss/example-1.csv")
	want := EPSSSet{
		ModelVersion: "v2023.03.01",
		ScoreDate:    date("2025-02-20T00:00:00Z"),
		Scores: []EPSS{
			{CVE: "CVE-1999-0001", Score: 0.00383, Percentile: 0.73075},
			{CVE: "CVE-1999-0002", Score: 0.01328, Percentile: 0.85996},
			{CVE: "CVE-1999-0003", Score: 0.04409, Percentile: 0.92440},
			{CVE: "CVE-1999-0004", Score: 0.00917, Percentile: 0.82963},
			{CVE: "CVE-1999-0005", Score: 0.91963, Percentile: 0.99214},
		},
	}
	for name, in := range map[string][]byte{"plain": raw, "gzip": gzipBytes(t, raw)} {
		got, err := ParseEPSS(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("ParseEPSS(%s): %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseEPSS(%s) (-want +got):\n%s", name, diff)
		}
	}

	// A file without score_date still has usable scores.
	got, err := ParseEPSS(bytes.NewReader(readTestdata(t, "epss/missing-date.csv")))
	if err != nil || got.ModelVersion != "v2023.03.01" || !got.ScoreDate.IsZero() || len(got.Scores) != 5 {
		t.Errorf("ParseEPSS(missing-date) = %+v, %v; want model v2023.03.01, no date, 5 scores", got, err)
	}
	// So does one from before the comment line existed.
	got, err = ParseEPSS(strings.NewReader("cve,epss,percentile\r\nCVE-2024-6775,0.00043,0.09291\r\n"))
	if err != nil || len(got.Scores) != 1 || got.Scores[0].Score != 0.00043 {
		t.Errorf("ParseEPSS(no comment, CRLF) = %+v, %v", got, err)
	}
}

func TestParseEPSSRejects(t *testing.T) {
	head := "#model_version:v2025.03.14,score_date:2025-03-14T00:00:00+0000\ncve,epss,percentile\n"
	tests := []struct {
		name, input, wantMsg string
	}{
		{"header", string(readTestdata(t, "epss/invalid-header.csv")), "EPSS line 2: header"},
		{"empty", "", "no header"},
		{"score above 1", head + "CVE-2024-0001,1.5,0.5\n", "EPSS line 3 (CVE-2024-0001): epss 1.5 is outside 0..1"},
		{"negative percentile", head + "CVE-2024-0001,0.5,-0.1\n", "percentile"},
		{"NaN", head + "CVE-2024-0001,NaN,0.1\n", "not a number"},
		{"bad cve", head + "CVE-2024-0001,0.1,0.1\nCVE-99,0.1,0.1\n", `EPSS line 4: "CVE-99" is not a CVE ID`},
		{"duplicate", head + "CVE-2024-0001,0.1,0.1\nCVE-2024-0001,0.1,0.1\n", "already scored on line 3"},
		{"fields", head + "CVE-2024-0001,0.1\n", "EPSS line 3: 2 fields"},
		{"quote", head + "\"CVE-2024-0001,0.1,0.1\n", "line 3"},
		{"bad date", "#model_version:v1,score_date:someday\ncve,epss,percentile\n", "EPSS line 1: score_date"},
		{"bad comment", "#hello\ncve,epss,percentile\n", "EPSS line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseEPSS(strings.NewReader(tt.input))
			if errs.KindOf(err) != errs.Invalid || set.Scores != nil {
				t.Fatalf("ParseEPSS = %d scores, %v; want none and an Invalid error", len(set.Scores), err)
			}
			if !strings.Contains(errs.Public(err), tt.wantMsg) {
				t.Errorf("ParseEPSS error %q; want it to mention %q", errs.Public(err), tt.wantMsg)
			}
		})
	}

	t.Run("damaged gzip", func(t *testing.T) {
		z := gzipBytes(t, readTestdata(t, "epss/example-1.csv"))
		z[len(z)/2] ^= 0xff
		if _, err := ParseEPSS(bytes.NewReader(z)); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseEPSS(damaged gzip) error = %v; want Invalid", err)
		}
		if _, err := ParseEPSS(bytes.NewReader(z[:10])); errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseEPSS(truncated gzip) error = %v; want Invalid", err)
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		// 4 MiB of repeated rows compresses to a few KiB; a 1 MiB cap
		// must stop it while decompressing.
		big := bytes.Repeat([]byte("CVE-2024-0001,0.1,0.1\n"), 4<<20/22)
		z := gzipBytes(t, append([]byte(head), big...))
		if _, err := parseEPSS(bytes.NewReader(z), 1<<20); errs.KindOf(err) != errs.TooLarge {
			t.Errorf("parseEPSS(gzip bomb) error = %v; want TooLarge", err)
		}
	})
}

func TestReadLimited(t *testing.T) {
	if _, err := readLimited(strings.NewReader(strings.Repeat("x", 11)), 10, "input"); errs.KindOf(err) != errs.TooLarge {
		t.Errorf("readLimited(11 bytes, cap 10) error = %v; want TooLarge", err)
	}
	if b, err := readLimited(strings.NewReader(strings.Repeat("x", 10)), 10, "input"); err != nil || len(b) != 10 {
		t.Errorf("readLimited(10 bytes, cap 10) = %d bytes, %v", len(b), err)
	}
}
