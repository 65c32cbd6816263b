package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var goldenMeta = RenderMeta{
	Version:   7,
	AppliedAt: time.Date(2026, 1, 15, 14, 30, 0, 0, time.FixedZone("CST", -6*3600)),
	AppliedBy: "alice",
}

// TestRenderGolden renders default.yaml with fixed meta and compares it to
// the golden files; `go test ./internal/policy -update` rewrites them.
func TestRenderGolden(t *testing.T) {
	for _, format := range []string{FormatMarkdown, FormatHTML} {
		t.Run(format, func(t *testing.T) {
			got, err := Render(Default(), format, goldenMeta)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "policy."+format+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/policy -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render(default, %s) differs from %s; run go test ./internal/policy -update and review the diff", format, path)
			}
		})
	}
}

func TestRenderDeterministic(t *testing.T) {
	c, err := Load(defaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	first, err := Render(c, FormatHTML, goldenMeta)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, _ := Render(c, FormatHTML, goldenMeta)
		if !bytes.Equal(first, again) {
			t.Fatal("Render output differs between runs")
		}
	}
}

// TestRenderSections checks the document holds what an auditor looks for,
// and that it carries the file's identity.
func TestRenderSections(t *testing.T) {
	md, err := Render(Default(), FormatMarkdown, goldenMeta)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## 1. Purpose and scope", "## 2. Roles and responsibilities", "## 3. Risk evaluation criteria",
		"### 3.2 Organisation rules", "## 4. Remediation targets (SLAs)", "### 4.2 Clock start and re-prioritisation",
		"## 5. Change approval", "## 6. Emergency patching", "## 7. Maintenance windows and freezes",
		"## 8. Deployment rings", "## 9. Testing", "## 10. Rollback", "## 11. Exceptions (risk acceptance)",
		"## 12. Record retention", "## 13. Document control",
		Default().SHA256(), "2026-01-15 20:30:00 UTC", "alice", "| Policy version | 7 |",
		"`vuln.kev && asset.exposure == \"internet_facing\"`", "| critical | 70–100 | 72 hours | 24 hours before |",
		"laboratory-director", "`FREQ=MONTHLY;BYDAY=2TU`", "Monthly on the second Tuesday, then 2 day(s) later",
		"| Audit log | 6 years |", "The person who requests a change may not approve it.",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("Render(default, md) lacks %q", want)
		}
	}
	unapplied, err := Render(Default(), FormatMarkdown, RenderMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unapplied, []byte("built-in default (no version applied yet)")) {
		t.Error("Render with zero meta does not say the default is in force")
	}
}

// TestRenderEscapes checks that text in the policy file stays text: no
// markup, links, table breaks or HTML reach the document.
func TestRenderEscapes(t *testing.T) {
	c := loadBase(t,
		edit{old: "  name: Test Clinic", new: "  name: \"<script>alert(1)</script> *Clinic* | [x](javascript:alert(1))\""},
		edit{old: "      name: QC run", new: "      name: \"QC | <b>run</b> `x` _y_\""},
		edit{old: `    match: '"domain-controller" in asset.tags'`, new: `    match: '"domain-controller" in asset.tags || asset.name.contains("` + "`" + `|")'`},
	)
	html, err := Render(c, FormatHTML, RenderMeta{AppliedBy: "<img src=x onerror=alert(1)>"})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<b>", "<img", "href=", "<em>Clinic</em>", "<a "} {
		if bytes.Contains(html, []byte(bad)) {
			t.Errorf("Render(html) contains %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt; *Clinic* | [x](javascript:alert(1))",
		"QC | &lt;b&gt;run&lt;/b&gt; `x` _y_",
		"<code>&quot;domain-controller&quot; in asset.tags || asset.name.contains(&quot;`|&quot;)</code>",
	} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("Render(html) lacks %q", want)
		}
	}
	// Every row of a table has as many cells as its header: a pipe in a
	// value never splits a cell.
	md, _ := Render(c, FormatMarkdown, RenderMeta{})
	pipe := regexp.MustCompile(`(^|[^\\])\|`)
	header := -1
	for i, line := range strings.Split(string(md), "\n") {
		if !strings.HasPrefix(line, "|") {
			header = -1
			continue
		}
		n := len(pipe.FindAllString(line, -1))
		if header < 0 {
			header = n
		} else if n != header {
			t.Errorf("markdown line %d has %d cell borders, its table's header %d: %s", i+1, n, header, line)
		}
	}
	if strings.Count(string(html), "<td>QC | &lt;b&gt;run&lt;/b&gt; `x` _y_</td>") != 1 {
		t.Error("the test case name did not land in one table cell")
	}
}

func TestRenderHTMLPage(t *testing.T) {
	html, err := Render(Default(), FormatHTML, goldenMeta)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "<style>", "@media print", "<title>Patch Management Policy — Example Clinic and Laboratory</title>", "<table>", "<h2 id=\"6-emergency-patching\">6. Emergency patching</h2>"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("Render(html) lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "src=\"http", "<!-- raw HTML omitted -->"} {
		if bytes.Contains(html, []byte(bad)) {
			t.Errorf("Render(html) contains %q", bad)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := Render(Default(), "pdf", RenderMeta{}); err == nil {
		t.Error("Render(pdf) succeeded; want an error")
	}
	if _, err := Render(nil, FormatMarkdown, RenderMeta{}); err == nil {
		t.Error("Render(nil) succeeded; want an error")
	}
}

func TestDescribeSchedule(t *testing.T) {
	tests := []struct {
		w    Window
		want string
	}{
		{Window{Schedule: "FREQ=MONTHLY;BYDAY=2TU", OffsetDays: 2}, "Monthly on the second Tuesday, then 2 day(s) later"},
		{Window{Schedule: "FREQ=WEEKLY;BYDAY=SA,SU"}, "Weekly on Saturday, Sunday"},
		{Window{Schedule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU"}, "Every 2 weeks on Sunday"},
		{Window{Schedule: "FREQ=DAILY"}, "Daily"},
		{Window{Schedule: "FREQ=MONTHLY;BYDAY=-1FR", OffsetDays: -1}, "Monthly on the last Friday, then 1 day(s) earlier"},
		{Window{Schedule: "FREQ=MONTHLY;BYMONTHDAY=15"}, "Monthly on day 15"},
		{Window{Schedule: "FREQ=MONTHLY;BYMONTHDAY=1,-1"}, "Monthly on day 1, the last day"},
		{Window{Schedule: "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=26"}, "Yearly on day 26 in December"},
		{Window{Schedule: "FREQ=MONTHLY;BYSETPOS=-1;BYDAY=MO,TU,WE,TH,FR"}, "Per the rule"},
		{Window{Schedule: "FREQ=MONTHLY;BYSETPOS=-1;BYDAY=FR", OffsetDays: 3}, "Per the rule, shifted +3 day(s)"},
	}
	for _, tt := range tests {
		if got := describeSchedule(tt.w); got != tt.want {
			t.Errorf("describeSchedule(%q, %d) = %q; want %q", tt.w.Schedule, tt.w.OffsetDays, got, tt.want)
		}
	}
}
