package advisory

import (
	"math"

	gocvss40 "github.com/pandatix/go-cvss/40"
)

// score40 computes the CVSS v4.0 score of a vector that go-cvss has parsed
// and validated. It is go-cvss v0.6.4's scoring (the FIRST v4.0 algorithm:
// macrovector lookup, then interpolation by severity distance) with one
// change: the final rounding lifts the value by a tiny epsilon before
// rounding half up.
//
// Why not call (*CVSS40).Score: the interpolation subtracts one-decimal
// table values in binary floating point, so a value that is exactly x.x5 in
// decimal arrives as x.x4999…; go-cvss then rounds it down. The reference
// implementation fixed this in 2024 (RedHatProductSecurity/cvss-v4-calculator
// #67, RedHatProductSecurity/cvss #61, "round half up at score ties") and
// its test vectors expect it: e.g.
// CVSS:4.0/AV:N/AC:L/AT:P/PR:H/UI:A/VC:N/VI:H/VA:L/SC:N/SI:N/SA:L is 5.7,
// go-cvss gives 5.6. A tie can also cross a rating band (8.95 is CRITICAL
// 9.0, not HIGH 8.9), and rating bands drive patch SLAs here.
// TestScore40MatchesGoCVSS holds this function to go-cvss everywhere except
// at such ties.
//
// The tables are transcribed from go-cvss (MIT licence, Copyright (c) 2022
// Lucas Tesson), which copied them from FIRST's calculator (Tables 24-30 of
// the CVSS v4.0 specification).
func score40(c *gocvss40.CVSS40) float64 {
	// The epsilon lift: 1e-6 is far above the floating-point error
	// (~1e-15) and far below the 0.05 granularity at which real values
	// can sit.
	return math.Round((raw40(c)+1e-6)*10) / 10
}

// raw40 is the v4.0 score before the final rounding.
func raw40(c *gocvss40.CVSS40) float64 {
	m := func(abv string) string { return effective40(c, abv) }

	// Nothing affected on either system: no score (spec section 8.2).
	if m("VC") == "N" && m("VI") == "N" && m("VA") == "N" &&
		m("SC") == "N" && m("SI") == "N" && m("SA") == "N" {
		return 0
	}

	eq1, eq2, eq3, eq4, eq5, eq6 := macroVector40(m)
	value := lookup40(eq1, eq2, eq3, eq4, eq5, eq6)

	// Score of the next lower macrovector in each equivalence class; NaN
	// where there is none.
	nan := math.NaN()
	eq1nl, eq2nl, eq4nl, eq5nl, eq3eq6nl := nan, nan, nan, nan, nan
	if eq1 < 2 {
		eq1nl = lookup40(eq1+1, eq2, eq3, eq4, eq5, eq6)
	}
	if eq2 < 1 {
		eq2nl = lookup40(eq1, eq2+1, eq3, eq4, eq5, eq6)
	}
	if eq4 < 2 {
		eq4nl = lookup40(eq1, eq2, eq3, eq4+1, eq5, eq6)
	}
	if eq5 < 2 {
		eq5nl = lookup40(eq1, eq2, eq3, eq4, eq5+1, eq6)
	}
	// EQ3 and EQ6 are joint: not every combination exists.
	switch {
	case eq3 == 1 && eq6 == 1, eq3 == 0 && eq6 == 1:
		eq3eq6nl = lookup40(eq1, eq2, eq3+1, eq4, eq5, eq6)
	case eq3 == 1 && eq6 == 0:
		eq3eq6nl = lookup40(eq1, eq2, eq3, eq4, eq5, eq6+1)
	case eq3 == 0 && eq6 == 0:
		// 00 goes to 10 or 01, whichever scores higher.
		eq3eq6nl = lookup40(eq1, eq2, eq3+1, eq4, eq5, eq6)
		if alt := lookup40(eq1, eq2, eq3, eq4, eq5, eq6+1); alt > eq3eq6nl || math.IsNaN(eq3eq6nl) {
			eq3eq6nl = alt
		}
	}
	lower := 0
	for _, nl := range []float64{eq1nl, eq2nl, eq3eq6nl, eq4nl, eq5nl} {
		if !math.IsNaN(nl) {
			lower++
		}
	}
	msd := func(next float64) float64 {
		if math.IsNaN(next) {
			return 0
		}
		return math.Abs(next - value)
	}

	// Severity distance of the vector from the first highest-severity
	// vector of its macrovector that it does not exceed in any metric.
	var d1, d2, d36, d4 float64
	dist := func(metric, maxVal string) float64 {
		return sevIndex40(metric, m(metric)) - sevIndex40(metric, maxVal)
	}
search:
	for _, mx1 := range maxEQ1[eq1] {
		for _, mx2 := range maxEQ2[eq2] {
			for _, mx36 := range maxEQ3EQ6[eq3][eq6] {
				for _, mx4 := range maxEQ4[eq4] {
					av, pr, ui := dist("AV", mx1[0]), dist("PR", mx1[1]), dist("UI", mx1[2])
					ac, at := dist("AC", mx2[0]), dist("AT", mx2[1])
					vc, vi, va := dist("VC", mx36[0]), dist("VI", mx36[1]), dist("VA", mx36[2])
					cr, ir, ar := dist("CR", mx36[3]), dist("IR", mx36[4]), dist("AR", mx36[5])
					sc, si, sa := dist("SC", mx4[0]), dist("SI", mx4[1]), dist("SA", mx4[2])
					if av < 0 || pr < 0 || ui < 0 || ac < 0 || at < 0 || vc < 0 || vi < 0 || va < 0 ||
						cr < 0 || ir < 0 || ar < 0 || sc < 0 || si < 0 || sa < 0 {
						continue
					}
					d1, d2, d36, d4 = av+pr+ui, ac+at, vc+vi+va+cr+ir+ar, sc+si+sa
					break search
				}
			}
		}
	}

	// Move down from the macrovector's score by the mean proportion of
	// the distance to each next lower macrovector. EQ5 (E alone) has no
	// depth, so it contributes nothing.
	mean := 0.0
	if lower != 0 {
		sum := msd(eq1nl)*d1/(depth40EQ1[eq1]+1) +
			msd(eq2nl)*d2/(depth40EQ2[eq2]+1) +
			msd(eq3eq6nl)*d36/(depth40EQ3EQ6(eq3, eq6)+1) +
			msd(eq4nl)*d4/(depth40EQ4[eq4]+1) +
			msd(eq5nl)*0
		mean = sum / float64(lower)
	}
	return math.Max(0, math.Min(10, value-mean))
}

// effective40 is the value a metric takes for scoring: a Modified metric
// overrides its base metric, and unset threat/requirement metrics take
// their worst-case defaults (E:A, CR/IR/AR:H), as the specification says.
func effective40(c *gocvss40.CVSS40, abv string) string {
	switch abv {
	case "E":
		if v, _ := c.Get("E"); v != "X" && v != "" {
			return v
		}
		return "A"
	case "CR", "IR", "AR":
		if v, _ := c.Get(abv); v != "X" && v != "" {
			return v
		}
		return "H"
	}
	if mv, err := c.Get("M" + abv); err == nil && mv != "X" && mv != "" {
		return mv
	}
	v, _ := c.Get(abv)
	return v
}

// macroVector40 computes the six equivalence classes (spec section 8.2).
func macroVector40(m func(string) string) (eq1, eq2, eq3, eq4, eq5, eq6 int) {
	av, pr, ui := m("AV"), m("PR"), m("UI")
	switch {
	case av == "N" && pr == "N" && ui == "N":
		eq1 = 0
	case (av == "N" || pr == "N" || ui == "N") && av != "P":
		eq1 = 1
	default:
		eq1 = 2
	}
	if !(m("AC") == "L" && m("AT") == "N") {
		eq2 = 1
	}
	vc, vi, va := m("VC"), m("VI"), m("VA")
	switch {
	case vc == "H" && vi == "H":
		eq3 = 0
	case vc == "H" || vi == "H" || va == "H":
		eq3 = 1
	default:
		eq3 = 2
	}
	switch {
	case m("SI") == "S" || m("SA") == "S":
		eq4 = 0
	case m("SC") == "H" || m("SI") == "H" || m("SA") == "H":
		eq4 = 1
	default:
		eq4 = 2
	}
	switch m("E") {
	case "A":
		eq5 = 0
	case "P":
		eq5 = 1
	default:
		eq5 = 2
	}
	if !((m("CR") == "H" && vc == "H") || (m("IR") == "H" && vi == "H") || (m("AR") == "H" && va == "H")) {
		eq6 = 1
	}
	return
}

// sevIndex40 orders each metric's values from most to least severe; the
// difference of two indexes is their severity distance.
func sevIndex40(metric, value string) float64 {
	var order []string
	switch metric {
	case "AV":
		order = []string{"N", "A", "L", "P"}
	case "AC":
		order = []string{"L", "H"}
	case "AT":
		order = []string{"N", "P"}
	case "PR":
		order = []string{"N", "L", "H"}
	case "UI":
		order = []string{"N", "P", "A"}
	case "VC", "VI", "VA", "SC":
		order = []string{"H", "L", "N"}
	case "SI", "SA":
		order = []string{"S", "H", "L", "N"}
	case "CR", "IR", "AR":
		order = []string{"H", "M", "L"}
	}
	for i, v := range order {
		if v == value {
			return float64(i)
		}
	}
	// go-cvss has validated every value, so this is unreachable; a NaN
	// would fail every distance comparison rather than crash a feed sync.
	return math.NaN()
}

// Highest-severity vectors per equivalence-class level (spec Tables 24-30),
// in go-cvss's order, which decides the first fit.
var (
	maxEQ1 = [][][3]string{
		{{"N", "N", "N"}},
		{{"A", "N", "N"}, {"N", "L", "N"}, {"N", "N", "P"}},
		{{"P", "N", "N"}, {"A", "L", "P"}},
	} // AV, PR, UI
	maxEQ2 = [][][2]string{
		{{"L", "N"}},
		{{"L", "P"}, {"H", "N"}},
	} // AC, AT
	maxEQ3EQ6 = [][][][6]string{
		{
			{{"H", "H", "H", "H", "H", "H"}},
			{{"H", "H", "L", "M", "M", "H"}, {"H", "H", "H", "M", "M", "M"}},
		},
		{
			{{"L", "H", "H", "H", "H", "H"}, {"H", "L", "H", "H", "H", "H"}},
			{{"H", "L", "H", "M", "H", "M"}, {"H", "L", "L", "M", "H", "H"}, {"L", "H", "H", "H", "M", "M"}, {"L", "H", "L", "H", "M", "H"}, {"L", "L", "H", "H", "H", "M"}},
		},
		{
			nil,
			{{"L", "L", "L", "H", "H", "H"}},
		},
	} // VC, VI, VA, CR, IR, AR
	maxEQ4 = [][][3]string{
		{{"H", "S", "S"}},
		{{"H", "H", "H"}},
		{{"L", "L", "L"}},
	} // SC, SI, SA

	depth40EQ1 = []float64{0, 3, 4}
	depth40EQ2 = []float64{0, 1}
	depth40EQ4 = []float64{5, 4, 3}
)

func depth40EQ3EQ6(eq3, eq6 int) float64 {
	switch {
	case eq3 == 0 && eq6 == 0:
		return 6
	case eq3 == 0:
		return 5
	case eq3 == 1:
		return 7
	}
	return 9
}

// lookup40 is the score of a macrovector (spec section 8.1).
func lookup40(eq1, eq2, eq3, eq4, eq5, eq6 int) float64 {
	key := [6]byte{byte('0' + eq1), byte('0' + eq2), byte('0' + eq3), byte('0' + eq4), byte('0' + eq5), byte('0' + eq6)}
	v, ok := macroVectorScores[string(key[:])]
	if !ok {
		return math.NaN()
	}
	return v
}

// macroVectorScores maps "eq1eq2eq3eq4eq5eq6" to the macrovector's score.
var macroVectorScores = map[string]float64{
	"000000": 10.0,
	"000001": 9.9,
	"000010": 9.8,
	"000011": 9.5,
	"000020": 9.5,
	"000021": 9.2,
	"000100": 10.0,
	"000101": 9.6,
	"000110": 9.3,
	"000111": 8.7,
	"000120": 9.1,
	"000121": 8.1,
	"000200": 9.3,
	"000201": 9.0,
	"000210": 8.9,
	"000211": 8.0,
	"000220": 8.1,
	"000221": 6.8,
	"001000": 9.8,
	"001001": 9.5,
	"001010": 9.5,
	"001011": 9.2,
	"001020": 9.0,
	"001021": 8.4,
	"001100": 9.3,
	"001101": 9.2,
	"001110": 8.9,
	"001111": 8.1,
	"001120": 8.1,
	"001121": 6.5,
	"001200": 8.8,
	"001201": 8.0,
	"001210": 7.8,
	"001211": 7.0,
	"001220": 6.9,
	"001221": 4.8,
	"002001": 9.2,
	"002011": 8.2,
	"002021": 7.2,
	"002101": 7.9,
	"002111": 6.9,
	"002121": 5.0,
	"002201": 6.9,
	"002211": 5.5,
	"002221": 2.7,
	"010000": 9.9,
	"010001": 9.7,
	"010010": 9.5,
	"010011": 9.2,
	"010020": 9.2,
	"010021": 8.5,
	"010100": 9.5,
	"010101": 9.1,
	"010110": 9.0,
	"010111": 8.3,
	"010120": 8.4,
	"010121": 7.1,
	"010200": 9.2,
	"010201": 8.1,
	"010210": 8.2,
	"010211": 7.1,
	"010220": 7.2,
	"010221": 5.3,
	"011000": 9.5,
	"011001": 9.3,
	"011010": 9.2,
	"011011": 8.5,
	"011020": 8.5,
	"011021": 7.3,
	"011100": 9.2,
	"011101": 8.2,
	"011110": 8.0,
	"011111": 7.2,
	"011120": 7.0,
	"011121": 5.9,
	"011200": 8.4,
	"011201": 7.0,
	"011210": 7.1,
	"011211": 5.2,
	"011220": 5.0,
	"011221": 3.0,
	"012001": 8.6,
	"012011": 7.5,
	"012021": 5.2,
	"012101": 7.1,
	"012111": 5.2,
	"012121": 2.9,
	"012201": 6.3,
	"012211": 2.9,
	"012221": 1.7,
	"100000": 9.8,
	"100001": 9.5,
	"100010": 9.4,
	"100011": 8.7,
	"100020": 9.1,
	"100021": 8.1,
	"100100": 9.4,
	"100101": 8.9,
	"100110": 8.6,
	"100111": 7.4,
	"100120": 7.7,
	"100121": 6.4,
	"100200": 8.7,
	"100201": 7.5,
	"100210": 7.4,
	"100211": 6.3,
	"100220": 6.3,
	"100221": 4.9,
	"101000": 9.4,
	"101001": 8.9,
	"101010": 8.8,
	"101011": 7.7,
	"101020": 7.6,
	"101021": 6.7,
	"101100": 8.6,
	"101101": 7.6,
	"101110": 7.4,
	"101111": 5.8,
	"101120": 5.9,
	"101121": 5.0,
	"101200": 7.2,
	"101201": 5.7,
	"101210": 5.7,
	"101211": 5.2,
	"101220": 5.2,
	"101221": 2.5,
	"102001": 8.3,
	"102011": 7.0,
	"102021": 5.4,
	"102101": 6.5,
	"102111": 5.8,
	"102121": 2.6,
	"102201": 5.3,
	"102211": 2.1,
	"102221": 1.3,
	"110000": 9.5,
	"110001": 9.0,
	"110010": 8.8,
	"110011": 7.6,
	"110020": 7.6,
	"110021": 7.0,
	"110100": 9.0,
	"110101": 7.7,
	"110110": 7.5,
	"110111": 6.2,
	"110120": 6.1,
	"110121": 5.3,
	"110200": 7.7,
	"110201": 6.6,
	"110210": 6.8,
	"110211": 5.9,
	"110220": 5.2,
	"110221": 3.0,
	"111000": 8.9,
	"111001": 7.8,
	"111010": 7.6,
	"111011": 6.7,
	"111020": 6.2,
	"111021": 5.8,
	"111100": 7.4,
	"111101": 5.9,
	"111110": 5.7,
	"111111": 5.7,
	"111120": 4.7,
	"111121": 2.3,
	"111200": 6.1,
	"111201": 5.2,
	"111210": 5.7,
	"111211": 2.9,
	"111220": 2.4,
	"111221": 1.6,
	"112001": 7.1,
	"112011": 5.9,
	"112021": 3.0,
	"112101": 5.8,
	"112111": 2.6,
	"112121": 1.5,
	"112201": 2.3,
	"112211": 1.3,
	"112221": 0.6,
	"200000": 9.3,
	"200001": 8.7,
	"200010": 8.6,
	"200011": 7.2,
	"200020": 7.5,
	"200021": 5.8,
	"200100": 8.6,
	"200101": 7.4,
	"200110": 7.4,
	"200111": 6.1,
	"200120": 5.6,
	"200121": 3.4,
	"200200": 7.0,
	"200201": 5.4,
	"200210": 5.2,
	"200211": 4.0,
	"200220": 4.0,
	"200221": 2.2,
	"201000": 8.5,
	"201001": 7.5,
	"201010": 7.4,
	"201011": 5.5,
	"201020": 6.2,
	"201021": 5.1,
	"201100": 7.2,
	"201101": 5.7,
	"201110": 5.5,
	"201111": 4.1,
	"201120": 4.6,
	"201121": 1.9,
	"201200": 5.3,
	"201201": 3.6,
	"201210": 3.4,
	"201211": 1.9,
	"201220": 1.9,
	"201221": 0.8,
	"202001": 6.4,
	"202011": 5.1,
	"202021": 2.0,
	"202101": 4.7,
	"202111": 2.1,
	"202121": 1.1,
	"202201": 2.4,
	"202211": 0.9,
	"202221": 0.4,
	"210000": 8.8,
	"210001": 7.5,
	"210010": 7.3,
	"210011": 5.3,
	"210020": 6.0,
	"210021": 5.0,
	"210100": 7.3,
	"210101": 5.5,
	"210110": 5.9,
	"210111": 4.0,
	"210120": 4.1,
	"210121": 2.0,
	"210200": 5.4,
	"210201": 4.3,
	"210210": 4.5,
	"210211": 2.2,
	"210220": 2.0,
	"210221": 1.1,
	"211000": 7.5,
	"211001": 5.5,
	"211010": 5.8,
	"211011": 4.5,
	"211020": 4.0,
	"211021": 2.1,
	"211100": 6.1,
	"211101": 5.1,
	"211110": 4.8,
	"211111": 1.8,
	"211120": 2.0,
	"211121": 0.9,
	"211200": 4.6,
	"211201": 1.8,
	"211210": 1.7,
	"211211": 0.7,
	"211220": 0.8,
	"211221": 0.2,
	"212001": 5.3,
	"212011": 2.4,
	"212021": 1.4,
	"212101": 2.4,
	"212111": 1.2,
	"212121": 0.5,
	"212201": 1.0,
	"212211": 0.3,
	"212221": 0.1,
}
