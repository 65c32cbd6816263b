package advisory

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// gzipMagic starts every gzip stream. FIRST publishes the daily EPSS file
// as epss_scores-YYYY-MM-DD.csv.gz; clinics may also have it unpacked.
var gzipMagic = []byte{0x1f, 0x8b}

// ParseEPSS parses a FIRST EPSS scores file
// (https://epss.empiricalsecurity.com/epss_scores-current.csv.gz), plain or
// gzip-compressed (recognised by its magic bytes, not by name):
//
//	#model_version:v2025.03.14,score_date:2025-03-14T00:00:00+0000
//	cve,epss,percentile
//	CVE-1999-0001,0.00383,0.73075
//
// The comment line is optional (files before model v2022 had none) and
// gives the model and the day the scores are for. Every row must be a CVE
// ID with a score and percentile in [0, 1]; a CVE listed twice means a
// corrupt file. Errors name the line.
func ParseEPSS(r io.Reader) (EPSSSet, error) {
	return parseEPSS(r, MaxEPSSSize)
}

// parseEPSS is ParseEPSS with the size cap as a parameter, for tests.
func parseEPSS(r io.Reader, limit int64) (EPSSSet, error) {
	br := &peekReader{r: r}
	head, err := br.peek(2)
	if err != nil {
		return EPSSSet{}, errs.Wrap(errs.Invalid, err, "read EPSS input")
	}
	var src io.Reader = br
	gz := bytes.Equal(head, gzipMagic)
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return EPSSSet{}, errs.E(errs.Invalid, "EPSS input: broken gzip header: %v", err)
		}
		defer zr.Close()
		src = zr
	}
	b, err := readLimited(src, limit, "EPSS input")
	if err != nil {
		if gz && errs.KindOf(err) != errs.TooLarge {
			return EPSSSet{}, errs.E(errs.Invalid, "EPSS input: damaged gzip data: %v", errors.Unwrap(err))
		}
		return EPSSSet{}, err
	}
	return parseEPSSText(b)
}

// peekReader lets ParseEPSS look at the first bytes without consuming
// them, so the gzip sniff works on any io.Reader.
type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for empty := 0; len(p.buf) < n; {
		tmp := make([]byte, n-len(p.buf))
		k, err := p.r.Read(tmp)
		p.buf = append(p.buf, tmp[:k]...)
		if err == io.EOF {
			return p.buf, nil
		}
		if err != nil {
			return nil, err
		}
		// A reader that keeps returning nothing must not spin forever
		// (io.ReadAll gives up the same way).
		if k == 0 {
			if empty++; empty >= 100 {
				return nil, io.ErrNoProgress
			}
		}
	}
	return p.buf[:n], nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func parseEPSSText(b []byte) (EPSSSet, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var set EPSSSet
	line := 1
	if bytes.HasPrefix(b, []byte("#")) {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			end = len(b)
		}
		if err := parseEPSSComment(strings.TrimSpace(string(b[1:end])), &set); err != nil {
			return EPSSSet{}, invalid("EPSS line 1: %v", err)
		}
		b = b[min(end+1, len(b)):]
		line = 2
	}
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = -1 // checked below, to say which line is wrong
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return EPSSSet{}, invalid("EPSS input has no header line")
	}
	if err != nil {
		return EPSSSet{}, invalid("EPSS %s", csvProblem(err, line-1))
	}
	if len(header) != 3 || !strings.EqualFold(strings.TrimSpace(header[0]), "cve") ||
		!strings.EqualFold(strings.TrimSpace(header[1]), "epss") || !strings.EqualFold(strings.TrimSpace(header[2]), "percentile") {
		return EPSSSet{}, invalid("EPSS line %d: header is %s; want cve,epss,percentile", line, quoteShort(strings.Join(header, ",")))
	}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return EPSSSet{}, invalid("EPSS %s", csvProblem(err, line-1))
		}
		row, _ := cr.FieldPos(0)
		row += line - 1
		if len(rec) != 3 {
			return EPSSSet{}, invalid("EPSS line %d: %d fields; want cve,epss,percentile", row, len(rec))
		}
		cve := strings.TrimSpace(rec[0])
		if !isCVE(cve) {
			return EPSSSet{}, invalid("EPSS line %d: %s is not a CVE ID", row, quoteShort(cve))
		}
		score, err := unitFloat(rec[1])
		if err != nil {
			return EPSSSet{}, invalid("EPSS line %d (%s): epss %v", row, cve, err)
		}
		pct, err := unitFloat(rec[2])
		if err != nil {
			return EPSSSet{}, invalid("EPSS line %d (%s): percentile %v", row, cve, err)
		}
		if prev, dup := seen[cve]; dup {
			return EPSSSet{}, invalid("EPSS line %d: %s already scored on line %d", row, cve, prev)
		}
		seen[cve] = row
		set.Scores = append(set.Scores, EPSS{CVE: cve, Score: score, Percentile: pct})
	}
	if set.Scores == nil {
		set.Scores = []EPSS{}
	}
	return set, nil
}

// parseEPSSComment reads "model_version:v2025.03.14,score_date:2025-...".
func parseEPSSComment(s string, set *EPSSSet) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), ":")
		if !ok {
			return fmt.Errorf("comment %s is not key:value pairs", quoteShort(s))
		}
		switch k {
		case "model_version":
			set.ModelVersion = v
		case "score_date":
			t, err := parseEPSSDate(v)
			if err != nil {
				return err
			}
			set.ScoreDate = t
		}
	}
	return nil
}

func parseEPSSDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("score_date %s is not a date", quoteShort(s))
}

// unitFloat parses a probability or percentile, which must lie in [0, 1].
func unitFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("%s is not a number", quoteShort(s))
	}
	if f < 0 || f > 1 {
		return 0, fmt.Errorf("%v is outside 0..1", f)
	}
	return f, nil
}

// csvProblem describes a CSV syntax error with its line in the file
// (offset is the number of lines consumed before the CSV reader started).
func csvProblem(err error, offset int) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d: %v", pe.Line+offset, pe.Err)
	}
	return err.Error()
}
