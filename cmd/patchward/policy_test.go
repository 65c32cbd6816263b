package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/report"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// policyLine is the 1-based line of the first line of src starting with s.
func policyLine(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(l, s) {
			return i + 1
		}
	}
	t.Fatalf("no line %q in the policy", s)
	return 0
}

func replaceLine(t *testing.T, src, old, new string) string {
	t.Helper()
	if !strings.Contains(src, "\n"+old+"\n") {
		t.Fatalf("no line %q in the policy", old)
	}
	return strings.Replace(src, "\n"+old+"\n", "\n"+new+"\n", 1)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyValidateCLI: an admin checks a policy file with no database;
// every problem is one FILE:LINE:COL line, in file order.
func TestPolicyValidateCLI(t *testing.T) {
	dir := t.TempDir()
	base := string(policy.DefaultSource())
	broken := replaceLine(t, base, "version: 1", "version: 2")
	broken = replaceLine(t, broken, "  mode: score", "  mode: scorecard")
	broken = replaceLine(t, broken, "    cvss: 30", "    cvss: high")
	file := writeFile(t, dir, "broken.yaml", broken)
	// No database: --db names a directory that does not exist.
	noDB := filepath.Join(dir, "missing", "patchward.db")

	out, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "validate", file)
	want := []string{
		fmt.Sprintf("%s:%d:10: version: must be 1 (this Patchward reads policy format version 1), got 2", file, policyLine(t, broken, "version: 2")),
		fmt.Sprintf(`%s:%d:9: risk.mode: must be one of "score", "ssvc", "kev_bands", got "scorecard"`, file, policyLine(t, broken, "  mode: scorecard")),
		fmt.Sprintf(`%s:%d:11: risk.weights.cvss: want a number, got "high"`, file, policyLine(t, broken, "    cvss: high")),
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("policy validate broken.yaml output (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(userMessage(err), "is not a valid policy: 3 problems") {
		t.Errorf("policy validate broken.yaml = %v; want an error counting 3 problems", err)
	}

	good := writeFile(t, dir, "good.yaml", base)
	if out, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "validate", good); err != nil ||
		out != good+": valid (sha256 "+policy.Default().SHA256()+")\n" {
		t.Errorf("policy validate good.yaml = %q, %v; want valid with its digest", out, err)
	}
	if _, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "validate", filepath.Join(dir, "nope.yaml")); err == nil {
		t.Errorf("policy validate of a missing file succeeded")
	}
	big := writeFile(t, dir, "big.yaml", strings.Repeat("#", policy.MaxSourceSize+1))
	if out, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "validate", big); err == nil || !strings.Contains(out, "big.yaml:1:1: policy file is") {
		t.Errorf("policy validate of an oversized file = %q, %v; want refused at line 1", out, err)
	}
	// The example is the built-in default, and it validates.
	out, err = runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "example")
	if err != nil || out != base {
		t.Errorf("policy example = %d bytes, %v; want the built-in default", len(out), err)
	}
	// --file renders without a database: how the docs are regenerated.
	doc := filepath.Join(dir, "policy.html")
	if out, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "render", "--file", good, "--format", "html", "--out", doc); err != nil {
		t.Fatalf("policy render --file: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(doc); err != nil || !bytes.Contains(b, []byte("<title>Patch Management Policy — Example Clinic and Laboratory</title>")) {
		t.Errorf("rendered HTML lacks its title (err %v)", err)
	}
	// PDF goes through the real Chromium (CI installs it).
	if _, err := os.Stat(report.DefaultChromium); err == nil || os.Getenv("CI") == "true" {
		pdf := filepath.Join(dir, "policy.pdf")
		if out, err := runCLI(t, noDB, filepath.Join(dir, "k"), "policy", "render", "--file", good, "--format", "pdf", "--out", pdf); err != nil {
			t.Fatalf("policy render --format pdf: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(pdf); err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
			t.Errorf("policy.pdf is not a PDF (err %v)", err)
		}
	}
	if _, err := os.Stat(filepath.Dir(noDB)); !os.IsNotExist(err) {
		t.Errorf("offline policy commands created %s", filepath.Dir(noDB))
	}
}

// TestPolicyApplyCLI applies a policy from the shell on each engine:
// versions, the rendered document, a refused file that changes nothing,
// and the audit trail.
func TestPolicyApplyCLI(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(string(engine), func(t *testing.T) {
			dir := t.TempDir()
			dsn := storetest.DSN(t, engine)
			key := filepath.Join(dir, "audit.key")
			mustCLI(t, dsn, key, "migrate")
			base := string(policy.DefaultSource())
			v1 := replaceLine(t, base, "  name: Example Clinic and Laboratory", "  name: Riverside Family Clinic")
			file := writeFile(t, dir, "policy.yaml", v1)

			if out := mustCLI(t, dsn, key, "policy", "versions"); !strings.Contains(out, "built-in default is in force") {
				t.Errorf("versions before any apply = %q", out)
			}
			out := mustCLI(t, dsn, key, "policy", "apply", file, "--comment", "first clinic policy")
			if !strings.HasPrefix(out, "applied policy version 1 (sha256 ") {
				t.Errorf("policy apply = %q; want version 1", out)
			}
			if _, err := runCLI(t, dsn, key, "policy", "apply", file); errs.KindOf(err) != errs.Conflict {
				t.Errorf("applying the same file again = %v; want Conflict", err)
			}
			bad := writeFile(t, dir, "bad.yaml", replaceLine(t, v1, "  mode: score", "  mode: vibes"))
			out, err := runCLI(t, dsn, key, "policy", "apply", bad)
			if err == nil || !strings.Contains(out, fmt.Sprintf("bad.yaml:%d:9: risk.mode:", policyLine(t, v1, "  mode: score"))) {
				t.Errorf("apply of a broken file = %q, %v; want its problem line", out, err)
			}

			md := mustCLI(t, dsn, key, "policy", "render")
			if !strings.Contains(md, "# Patch Management Policy: Riverside Family Clinic") || !strings.Contains(md, "| Policy version | 1 |") {
				t.Errorf("rendered policy lacks the applied organisation or version:\n%.400s", md)
			}
			if md0 := mustCLI(t, dsn, key, "policy", "render", "--version", "0"); !strings.Contains(md0, "Example Clinic and Laboratory") {
				t.Errorf("render --version 0 is not the built-in default")
			}
			if _, err := runCLI(t, dsn, key, "policy", "render", "--version", "5"); errs.KindOf(err) != errs.NotFound {
				t.Errorf("render --version 5 = %v; want NotFound", err)
			}
			if _, err := runCLI(t, dsn, key, "policy", "render", "--format", "docx"); errs.KindOf(err) != errs.Invalid {
				t.Errorf("render --format docx = %v; want Invalid", err)
			}

			show := mustCLI(t, dsn, key, "policy", "show")
			if !strings.HasPrefix(show, "# Patchward policy version 1, sha256 ") || !strings.Contains(show, "# comment: first clinic policy\n") ||
				!strings.HasSuffix(show, v1) {
				t.Errorf("policy show = %.300s…; want the header and the applied source", show)
			}
			// show's output is itself a policy file that loads.
			if _, err := policy.Load([]byte(show)); err != nil {
				t.Errorf("policy show output does not load: %v", err)
			}
			versions := mustCLI(t, dsn, key, "policy", "versions")
			if !strings.Contains(versions, "1 (in force)") || !strings.Contains(versions, "first clinic policy") {
				t.Errorf("policy versions = %q", versions)
			}

			ctx := context.Background()
			db, err := store.Open(ctx, dsn, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			page, err := db.Audit().List(ctx, audit.Query{Action: "policy.apply", Limit: 10})
			if err != nil || len(page.Entries) != 1 || page.Entries[0].Reason != "first clinic policy" || !strings.HasPrefix(page.Entries[0].Actor.Name, "cli:") {
				t.Errorf("policy.apply audit entries = %+v, %v; want one, with the comment, by the CLI", page, err)
			}
		})
	}
}

func mustCLI(t *testing.T, dsn, key string, args ...string) string {
	t.Helper()
	out, err := runCLI(t, dsn, key, args...)
	if err != nil {
		t.Fatalf("patchward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
