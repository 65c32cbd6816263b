package advisory

import (
	"math"
	"slices"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/patchward/patchward/internal/errs"
)

// ScoreVector parses a CVSS vector of any version Patchward meets in feeds
// and returns its severity type (CVSSv2, CVSSv3 or CVSSv4), the score the
// FIRST specification gives it, and the qualitative rating.
//
// For v2 and v3.x the score is the base score, because that is what NVD,
// CNAs and vendors publish; temporal and environmental metrics in the
// vector are accepted but do not change it. CVSS v4.0 has one score for
// the whole vector by design (CVSS-B, -BT, -BE or -BTE depending on which
// groups are present), so that is what v4 returns.
//
// v2 has no rating in its specification; NVD's bands (LOW < 4.0 ≤ MEDIUM <
// 7.0 ≤ HIGH) are used because that is what every v2 feed publishes.
// A vector that does not parse is an errs.Invalid error.
func ScoreVector(vector string) (typ string, score float64, rating string, err error) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:4.0/"):
		c, perr := gocvss40.ParseVector(v)
		if perr != nil {
			return "", 0, "", badVector(vector, perr)
		}
		score = score40(c)
		rating, err = gocvss40.Rating(score)
		if err != nil {
			return "", 0, "", badVector(vector, err)
		}
		return CVSSv4, score, rating, nil
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, perr := gocvss31.ParseVector(v)
		if perr != nil {
			return "", 0, "", badVector(vector, perr)
		}
		score = round1(c.BaseScore())
		rating, err = gocvss31.Rating(score)
		if err != nil {
			return "", 0, "", badVector(vector, err)
		}
		return CVSSv3, score, rating, nil
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, perr := gocvss30.ParseVector(v)
		if perr != nil {
			return "", 0, "", badVector(vector, perr)
		}
		score = round1(c.BaseScore())
		rating, err = gocvss30.Rating(score)
		if err != nil {
			return "", 0, "", badVector(vector, err)
		}
		return CVSSv3, score, rating, nil
	}
	// v2 vectors come bare ("AV:N/AC:L/..."), in NVD 1.x style
	// parentheses, or with the informal "CVSS:2.0/" prefix some tools add.
	v2 := strings.TrimPrefix(v, "CVSS:2.0/")
	if strings.HasPrefix(v2, "(") && strings.HasSuffix(v2, ")") {
		v2 = v2[1 : len(v2)-1]
	}
	if !strings.HasPrefix(v2, "AV:") {
		return "", 0, "", errs.E(errs.Invalid, "CVSS vector %s: not a CVSS v2, v3.0, v3.1 or v4.0 vector", quoteShort(vector))
	}
	c, perr := gocvss20.ParseVector(v2)
	if perr != nil {
		// go-cvss wants every temporal/environmental group complete, but
		// the v2 guide lets each of those metrics be omitted and real
		// scanners write "…/RL:W/RC:UC" without E. The base score depends
		// on the six base metrics only, so check the rest ourselves.
		base, ok := splitV2(v2)
		if !ok {
			return "", 0, "", badVector(vector, perr)
		}
		if c, perr = gocvss20.ParseVector(base); perr != nil {
			return "", 0, "", badVector(vector, perr)
		}
	}
	score = round1(c.BaseScore())
	return CVSSv2, score, ratingV2(score), nil
}

// v2Optional lists the CVSS v2 temporal and environmental metrics in
// vector order, with their allowed values.
var v2Optional = []struct{ key, values string }{
	{"E", "U POC F H ND"}, {"RL", "OF TF W U ND"}, {"RC", "UC UR C ND"},
	{"CDP", "N L LM MH H ND"}, {"TD", "N L M H ND"},
	{"CR", "L M H ND"}, {"IR", "L M H ND"}, {"AR", "L M H ND"},
}

// splitV2 returns the six base metrics of a v2 vector whose optional
// metrics are each valid, in order, and not repeated.
func splitV2(v string) (string, bool) {
	parts := strings.Split(v, "/")
	if len(parts) < 6 {
		return "", false
	}
	next := 0
	for _, p := range parts[6:] {
		key, val, ok := strings.Cut(p, ":")
		if !ok {
			return "", false
		}
		found := false
		for next < len(v2Optional) {
			m := v2Optional[next]
			next++
			if m.key == key {
				found = slices.Contains(strings.Fields(m.values), val)
				break
			}
		}
		if !found {
			return "", false
		}
	}
	return strings.Join(parts[:6], "/"), true
}

// ratingV2 applies NVD's CVSS v2 severity bands.
func ratingV2(score float64) string {
	switch {
	case score >= 7.0:
		return "HIGH"
	case score >= 4.0:
		return "MEDIUM"
	default:
		return "LOW"
	}
}

// ratingFor gives the qualitative rating of a published score of the given
// type, for feeds that publish a score without its rating.
func ratingFor(typ string, score float64) string {
	if score < 0 || score > 10 || math.IsNaN(score) {
		return ""
	}
	if typ == CVSSv2 {
		return ratingV2(score)
	}
	r, _ := gocvss31.Rating(score) // v3.x and v4.0 share the bands
	return r
}

// round1 removes binary noise so that 9.8 compares equal to 9.8: the
// specifications round to one decimal, and so do the published scores.
func round1(x float64) float64 { return math.Round(x*10) / 10 }

func badVector(vector string, cause error) error {
	return errs.E(errs.Invalid, "CVSS vector %s: %v", quoteShort(vector), cause)
}

// severityOf scores a vector for feeds that publish vectors only (OSV).
// Errors name the vector; the caller adds the record.
func severityOf(vector, source string) (Severity, error) {
	typ, score, rating, err := ScoreVector(vector)
	if err != nil {
		return Severity{}, err
	}
	return Severity{Type: typ, Vector: strings.TrimSpace(vector), Score: score, Rating: rating, Source: source}, nil
}
