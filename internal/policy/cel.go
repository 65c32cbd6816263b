package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"
)

// Limits on policy expressions. An admin writes the policy, but the file
// is data the server evaluates for every finding, so a careless or hostile
// expression must neither hang nor slow the server: each evaluation has a
// CEL cost budget and a deadline, comprehensions check for interruption.
const (
	// MaxExprLen bounds one expression's source.
	MaxExprLen = 4096
	// exprCostLimit is CEL's abstract cost: about one unit per operation.
	// Real rules cost tens; the budget leaves room for tag lists.
	exprCostLimit = 100_000
	// evalTimeout bounds one call's evaluations in wall-clock time.
	evalTimeout = 250 * time.Millisecond
	// interruptEvery is how many comprehension iterations run between
	// checks of the deadline.
	interruptEvery = 100
)

// CEL variable names, as policy expressions see them.
const (
	VarAsset   = "asset"
	VarVuln    = "vuln"
	VarFinding = "finding"
)

// celEnvs holds the two environments a policy compiles in: rules and
// mission expressions see asset, vuln and finding; asset classes and ring
// selectors see only asset, so a class cannot silently depend on a
// vulnerability it will never be shown.
type celEnvs struct {
	full, asset *cel.Env
}

func newCELEnvs() (celEnvs, error) {
	base, err := cel.NewEnv(
		ext.NativeTypes(
			reflect.TypeFor[AssetFacts](),
			reflect.TypeFor[VulnFacts](),
			reflect.TypeFor[FindingFacts](),
			ext.ParseStructTags(true),
		),
		ext.Strings(),
		cel.Variable(VarAsset, cel.ObjectType("policy.AssetFacts")),
	)
	if err != nil {
		return celEnvs{}, err
	}
	full, err := base.Extend(
		cel.Variable(VarVuln, cel.ObjectType("policy.VulnFacts")),
		cel.Variable(VarFinding, cel.ObjectType("policy.FindingFacts")),
	)
	if err != nil {
		return celEnvs{}, err
	}
	return celEnvs{full: full, asset: base}, nil
}

// program is one compiled policy expression. A nil program is an empty
// expression, whose meaning the caller decides (a ring with no selector
// takes every asset; an empty mission expression matches none).
type program struct {
	src string
	prg cel.Program
}

// compileExpr compiles the expression at path (its YAML node n) in env,
// requiring a bool result. Problems are reported at the expression's own
// line and column in the file.
func (v *validator) compileExpr(env *cel.Env, path string, expr string) *program {
	if strings.TrimSpace(expr) == "" {
		return nil
	}
	n := v.d.nodes[path]
	if len(expr) > MaxExprLen {
		v.add(path, "expression is %d bytes long; the limit is %d", len(expr), MaxExprLen)
		return nil
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		if v.d.suppressed(path) {
			return nil
		}
		for i, e := range iss.Errors() {
			if i == 3 {
				break
			}
			line, col := exprPosition(v.d.src, n, e.Location.Line(), e.Location.Column())
			v.d.reported[path] = true
			v.d.probs = append(v.d.probs, Problem{Line: line, Column: col, Path: path,
				Message: "CEL: " + e.Message})
		}
		return nil
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		v.add(path, "CEL: expression must return bool (true or false), returns %s", ast.OutputType())
		return nil
	}
	prg, err := env.Program(ast,
		cel.CostLimit(exprCostLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		v.add(path, "CEL: %v", err)
		return nil
	}
	p := &program{src: expr, prg: prg}
	// A trial run on empty facts refuses expressions that blow the cost
	// budget whatever the data (nested comprehensions over literals).
	ctx, cancel := context.WithTimeout(context.Background(), evalTimeout)
	defer cancel()
	if _, err := p.eval(ctx, emptyActivation); err != nil && isBudgetError(err) {
		v.add(path, "CEL: expression is too expensive to evaluate (%v)", err)
		return nil
	}
	return p
}

var emptyActivation = map[string]any{
	VarAsset: AssetFacts{}, VarVuln: VulnFacts{}, VarFinding: FindingFacts{},
}

func isBudgetError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "cost limit exceeded") || strings.Contains(s, "interrupted") ||
		errors.Is(err, context.DeadlineExceeded)
}

// eval runs the program and returns its bool result.
func (p *program) eval(ctx context.Context, act map[string]any) (bool, error) {
	out, _, err := p.prg.ContextEval(ctx, act)
	if err != nil {
		return false, err
	}
	if types.IsError(out) {
		return false, fmt.Errorf("%v", out)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("returned %T, not bool", out.Value())
	}
	return b, nil
}

func factsActivation(f Facts) map[string]any {
	return map[string]any{VarAsset: f.Asset, VarVuln: f.Vuln, VarFinding: f.Finding}
}

// exprPosition maps a CEL error location (1-based line, 0-based column in
// the expression) to a 1-based line and column in the policy file.
func exprPosition(src []byte, n *yaml.Node, celLine, celCol int) (int, int) {
	if n == nil {
		return 1, 1
	}
	if celLine < 1 {
		celLine = 1
	}
	if celCol < 0 {
		celCol = 0
	}
	lines := strings.Split(string(src), "\n")
	switch n.Style {
	case yaml.LiteralStyle:
		// The indicator "|" sits on n.Line; expression line k is file line
		// n.Line+k, after the block's indentation.
		line := n.Line + celLine
		return line, indentOf(lines, line) + celCol + 1
	case yaml.FoldedStyle:
		return foldedPosition(lines, n.Line, celLine, celCol)
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if celLine == 1 {
			return n.Line, n.Column + 1 + celCol
		}
		line := n.Line + celLine - 1
		return line, indentOf(lines, line) + celCol + 1
	default:
		if celLine == 1 {
			return n.Line, n.Column + celCol
		}
		line := n.Line + celLine - 1
		return line, indentOf(lines, line) + celCol + 1
	}
}

// foldedPosition handles a ">" block, where YAML joins lines with spaces:
// walk the block's lines counting the characters each contributes until
// the CEL column falls inside one.
func foldedPosition(lines []string, indicator, celLine, celCol int) (int, int) {
	line := indicator + 1
	// Expression lines only break on blank lines in a folded block; skip
	// celLine-1 of them.
	for l := 1; l < celLine && line <= len(lines); line++ {
		if strings.TrimSpace(lines[line-1]) == "" {
			l++
		}
	}
	off := 0
	for ; line <= len(lines); line++ {
		text := strings.TrimSpace(lines[line-1])
		n := utf8.RuneCountInString(text)
		if celCol <= off+n || line == len(lines) {
			return line, indentOf(lines, line) + celCol - off + 1
		}
		off += n + 1 // the joining space
	}
	return indicator + 1, 1
}

// indentOf counts the leading spaces of a 1-based line.
func indentOf(lines []string, line int) int {
	if line < 1 || line > len(lines) {
		return 0
	}
	s := lines[line-1]
	return len(s) - len(strings.TrimLeft(s, " "))
}
