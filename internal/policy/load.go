package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/errs"
)

// MaxSourceSize bounds a policy file. A real policy is a few kilobytes; the
// cap keeps a pasted log file or an attack from costing the server much.
const MaxSourceSize = 1 << 20

// Problem is one thing wrong with a policy file, at the line and column
// where an admin editing the file will find it. Line and Column are
// 1-based; Path names the setting in the file ("risk.tiers[1].min_score").
type Problem struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// String formats the problem as `line 42: risk.tiers[1].min_score: …`.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem Load found in a policy file, in file order, so an
// admin fixes them all in one pass instead of one per attempt.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is makes a policy error an errs.ErrInvalid: the file, not the server, is
// at fault.
func (e *Error) Is(target error) bool { return target == errs.ErrInvalid }

// As lets errs.KindOf, errs.HTTPStatus and errs.Public treat a policy error
// as an Invalid *errs.Error whose message is the problem list (the admin's
// own file, so safe to show) and whose Fields are keyed by path.
func (e *Error) As(target any) bool {
	t, ok := target.(**errs.Error)
	if !ok {
		return false
	}
	fields := map[string]string{}
	for _, p := range e.Problems {
		k := p.Path
		if k == "" {
			k = "policy"
		}
		if _, dup := fields[k]; !dup {
			fields[k] = p.String()
		}
	}
	*t = &errs.Error{Kind: errs.Invalid, Message: "policy file:\n" + e.Error(), Fields: fields}
	return true
}

// Load reads, decodes strictly (unknown keys are refused) and validates a
// policy file, and compiles its CEL expressions. A file with any problem is
// refused whole with an *Error listing every problem found.
func Load(src []byte) (*Compiled, error) {
	if len(src) > MaxSourceSize {
		return nil, &Error{Problems: []Problem{{Line: 1, Column: 1, Message: fmt.Sprintf("policy file is %d bytes; the limit is %d", len(src), MaxSourceSize)}}}
	}
	d := &decoder{
		src:      src,
		nodes:    map[string]*yaml.Node{},
		keys:     map[string]*yaml.Node{},
		bad:      map[string]bool{},
		reported: map[string]bool{},
	}
	var p Policy
	root, err := parseDocument(src)
	if err != nil {
		return nil, &Error{Problems: []Problem{yamlProblem(src, err)}}
	}
	d.decode(root, reflect.ValueOf(&p).Elem(), "")
	c := newCompiled(p, src)
	v := &validator{d: d, c: c}
	v.validate()
	if len(d.probs) > 0 {
		slices.SortStableFunc(d.probs, func(a, b Problem) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		return nil, &Error{Problems: d.probs}
	}
	return c, nil
}

// parseDocument parses src into its one YAML document's root node.
func parseDocument(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the policy file is empty")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("yaml: line %d: a policy file holds one YAML document; remove the \"---\" and what follows", max(extra.Line-1, 1))
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("the policy file is empty")
	}
	return doc.Content[0], nil
}

var (
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	anchorRE   = regexp.MustCompile(`unknown anchor '([^']+)' referenced`)
)

// yamlProblem turns a YAML syntax error into a Problem at its line. The
// YAML library names the line where the enclosing construct began, and for
// parser errors counts it from 0, so the reported line can be one or more
// lines above the mistake. When the file is small enough, the line is found
// exactly instead: the first line at which a prefix of the file fails with
// the same complaint.
func yamlProblem(src []byte, err error) Problem {
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		line := 1
		// "unknown anchor 'x' referenced" comes without a line: find the
		// alias.
		if a := anchorRE.FindStringSubmatch(msg); a != nil {
			if i := bytes.Index(src, []byte("*"+a[1])); i >= 0 {
				line = bytes.Count(src[:i], []byte("\n")) + 1
			}
		}
		return Problem{Line: line, Column: 1, Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	if exact := syntaxErrorLine(src, line, m[2]); exact > 0 {
		line = exact
	}
	return Problem{Line: line, Column: 1, Message: "YAML syntax: " + m[2]}
}

// syntaxErrorLine returns the first line L ≥ reported-1 such that the
// file's first L lines fail to parse with message want, or 0.
func syntaxErrorLine(src []byte, reported int, want string) int {
	const maxRefine = 64 << 10
	if len(src) > maxRefine {
		return 0
	}
	lines := bytes.SplitAfter(src, []byte("\n"))
	for l := max(reported-1, 1); l <= len(lines) && l <= reported+200; l++ {
		_, err := parseDocument(bytes.Join(lines[:l], nil))
		if err == nil {
			continue
		}
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil && m[2] == want {
			return l
		}
	}
	return 0
}

// decoder walks the YAML node tree and the Policy type together. Doing the
// walk itself rather than through yaml.Unmarshal gives every problem a path
// as well as a line, refuses unknown and duplicate keys at any depth, and
// records where each setting sits so semantic checks can point at it too.
type decoder struct {
	src   []byte
	probs []Problem
	// nodes maps a path to its value node, keys to its mapping key node.
	nodes map[string]*yaml.Node
	keys  map[string]*yaml.Node
	// bad marks paths that failed to decode: validation says nothing more
	// about them or anything under them.
	bad map[string]bool
	// reported marks paths that already have a problem, so no setting is
	// reported twice.
	reported map[string]bool
}

// suppressed reports whether a problem about path would repeat one already
// reported, or concern a setting inside one that failed to decode.
func (d *decoder) suppressed(path string) bool {
	if d.reported[path] {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

func (d *decoder) problemAt(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.reported[path] = true
	d.probs = append(d.probs, Problem{Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[Duration]()
	identRE      = regexp.MustCompile(`^[A-Za-z0-9_*-]+$`)
)

// childPath appends a mapping key to a path.
func childPath(path, key string) string {
	if !identRE.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		d.problemAt(n, path, "YAML aliases (*%s) are not allowed in a policy file: write the value out so the document reads as enforced", n.Value)
		return
	}
	d.nodes[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // left empty; validation says whether that is allowed
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			d.problemAt(n, path, "want a duration such as \"72h\" or \"14d\", got %s", kindName(n))
			return
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.problemAt(n, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problemAt(n, path, "want a list (lines starting with \"- \"), got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), indexPath(path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problemAt(n, path, "want a single value, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.problemAt(n, path, "want true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.problemAt(n, path, "want a whole number, got %s", kindName(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.problemAt(n, path, "want a number, got %s", kindName(n))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.problemAt(n, path, "want a finite number, got %s", kindName(n))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("policy: decoder has no case for %s", v.Type()))
	}
}

// pairs checks that n is a mapping with unique scalar keys and yields each
// key and value; it reports what it skips.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(key string, k, val *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.problemAt(n, path, "want a mapping (\"key: value\" lines), got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problemAt(k, path, "a key must be a plain name, got %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.problemAt(k, path, "YAML merge keys (<<) are not allowed in a policy file: write the values out")
			continue
		}
		cp := childPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problemAt(k, cp, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		d.keys[cp] = k
		fn(k.Value, k, val)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	d.pairs(n, path, func(key string, k, val *yaml.Node) {
		i, ok := fields[key]
		cp := childPath(path, key)
		if !ok {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := closest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known here: " + strings.Join(names, ", ") + ")"
			}
			d.problemAt(k, cp, "%s", msg)
			return
		}
		d.decode(val, v.Field(i), cp)
	})
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	m := reflect.MakeMap(v.Type())
	d.pairs(n, path, func(key string, k, val *yaml.Node) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, childPath(path, key))
		m.SetMapIndex(reflect.ValueOf(key), e)
	})
	v.Set(m)
}

// closest returns the candidate nearest to s by edit distance, when it is
// near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestD {
			best, bestD = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// at returns the position for a problem about path: the setting's value
// when the file has it, else the nearest enclosing key or value (for a
// missing setting, the line of the section it belongs in).
func (d *decoder) at(path string) (line, col int) {
	if n, ok := d.nodes[path]; ok {
		// A whole section is named by its key line, not its first entry.
		if k, isKey := d.keys[path]; isKey && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && n.Style&yaml.FlowStyle == 0 {
			return k.Line, k.Column
		}
		return n.Line, n.Column
	}
	for p := parentPath(path); ; p = parentPath(p) {
		if k, ok := d.keys[p]; ok {
			return k.Line, k.Column
		}
		if n, ok := d.nodes[p]; ok {
			return n.Line, n.Column
		}
		if p == "" {
			return 1, 1
		}
	}
}

// atKey is at for problems about a mapping key itself (a map key naming an
// unknown tier, say).
func (d *decoder) atKey(path string) (line, col int) {
	if k, ok := d.keys[path]; ok {
		return k.Line, k.Column
	}
	return d.at(path)
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	// A quoted key may itself hold '.' or '['; back up to its opening
	// bracket.
	if strings.HasSuffix(p, "\"]") {
		if j := strings.LastIndex(p, "[\""); j >= 0 {
			return p[:j]
		}
	}
	return p[:i]
}
