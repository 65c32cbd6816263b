package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/policy"
	"github.com/patchward/patchward/internal/store"
	"github.com/patchward/patchward/internal/store/storetest"
)

// lineOf is the 1-based line of the first occurrence of s in src.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	i := strings.Index(src, s)
	if i < 0 {
		t.Fatalf("%q not in the policy", s)
	}
	return strings.Count(src[:i], "\n") + 1
}

func edit(t *testing.T, src, old, new string) string {
	t.Helper()
	if !strings.Contains(src, old) {
		t.Fatalf("%q not in the policy", old)
	}
	return strings.Replace(src, old, new, 1)
}

func sum(src string) string {
	s := sha256.Sum256([]byte(src))
	return hex.EncodeToString(s[:])
}

func TestPolicyRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newRiskEnv(t, db)
		base := string(policy.DefaultSource())
		const yaml = "application/yaml"

		// Before any apply, the built-in default is in force, and every
		// role may read it.
		var v policy.Version
		e.do("vic", "GET", "/policy", nil, 200, &v)
		if v.Version != 0 || v.Source != base || v.SHA256 != sum(base) || v.AppliedBy == "" {
			t.Errorf("policy before any apply = version %d by %q, sha %s; want the built-in default", v.Version, v.AppliedBy, v.SHA256)
		}

		// Validation: the digest when it loads, every problem at its line
		// when it does not.
		var ok api.PolicyValidation
		e.check(e.call("olga", "POST", "/policy/validate", yaml, base), "validate default", 200, &ok)
		if diff := cmp.Diff(api.PolicyValidation{Valid: true, SHA256: sum(base)}, ok); diff != "" {
			t.Errorf("validate default (-want +got):\n%s", diff)
		}
		bad := edit(t, edit(t, base, "\n    cvss: 30\n", "\n    cvss: high\n"), "\nversion: 1\n", "\nversion: 2\n")
		eb := e.check(e.call("olga", "POST", "/policy/validate", "text/yaml; charset=utf-8", bad), "validate broken", 422, nil)
		var got []string
		for _, p := range eb.Problems {
			if p.Column < 1 || p.Message == "" {
				t.Errorf("problem %+v: want a column and a message", p)
			}
			got = append(got, p.Path+"@"+strconv.Itoa(p.Line))
		}
		want := []string{"version@" + strconv.Itoa(lineOf(t, bad, "\nversion: 2")+1), "risk.weights.cvss@" + strconv.Itoa(lineOf(t, bad, "\n    cvss: high")+1)}
		if diff := cmp.Diff(want, got); diff != "" || eb.Status != 422 {
			t.Errorf("validate broken: status %d, problems (-want +got):\n%s", eb.Status, diff)
		}
		for _, tc := range []struct {
			name, ctype, body string
			want              int
		}{
			{"json", "application/json", `{"version":1}`, 415},
			{"no type", "", base, 415},
			{"oversized", yaml, strings.Repeat("#", policy.MaxSourceSize+1), 413},
			{"empty", yaml, "", 422},
			{"two documents", yaml, base + "\n---\nversion: 1\n", 422},
		} {
			t.Run("validate "+tc.name, func(t *testing.T) {
				e.check(e.call("vic", "POST", "/policy/validate", tc.ctype, tc.body), "validate "+tc.name, tc.want, nil)
			})
		}

		// Applying: admins only; the comment by query or header.
		v1 := edit(t, base, "name: Example Clinic and Laboratory", "name: Riverside Family Clinic")
		e.check(e.call("ann", "PUT", "/policy", yaml, v1), "apply as approver", 403, nil)
		e.check(e.call("olga", "PUT", "/policy", yaml, v1), "apply as operator", 403, nil)
		e.check(e.call("root", "PUT", "/policy", "application/json", v1), "apply as JSON", 415, nil)
		e.check(e.call("root", "PUT", "/policy?comment="+strings.Repeat("x", 2001), yaml, v1), "apply with a long comment", 400, nil)
		e.check(e.call("root", "PUT", "/policy?comment=annual+review", yaml, v1), "apply v1", 200, &v)
		if v.Version != 1 || v.SHA256 != sum(v1) || v.AppliedBy != "root" || v.Comment != "annual review" {
			t.Errorf("applied = %+v; want version 1 by root with the comment", v)
		}
		e.check(e.call("root", "PUT", "/policy", yaml, v1), "apply v1 again", 409, nil)

		// A broken file is refused line by line and the old one stays.
		brokenApply := edit(t, v1, "\n  mode: score\n", "\n  mode: scorecard\n")
		eb = e.check(e.call("root", "PUT", "/policy", yaml, brokenApply), "apply broken", 422, nil)
		if len(eb.Problems) == 0 || eb.Problems[0].Path != "risk.mode" || eb.Problems[0].Line != lineOf(t, brokenApply, "\n  mode: scorecard")+1 {
			t.Errorf("apply broken: problems %+v; want risk.mode at its line", eb.Problems)
		}
		e.do("vic", "GET", "/policy", nil, 200, &v)
		if v.Version != 1 || v.SHA256 != sum(v1) {
			t.Errorf("after a refused apply: version %d sha %s; want version 1 still in force", v.Version, v.SHA256)
		}

		v2 := edit(t, v1, "  review_every: 90d", "  review_every: 30d")
		e.check(e.call("root", "PUT", "/policy", yaml, v2, api.CommentHeader, "shorter reviews"), "apply v2", 200, &v)
		if v.Version != 2 || v.Comment != "shorter reviews" {
			t.Errorf("applied = %+v; want version 2 with the header's comment", v)
		}

		// History.
		var vs []policy.Version
		e.do("aud", "GET", "/policy/versions", nil, 200, &vs)
		if len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 || vs[0].Source != "" {
			t.Errorf("versions = %+v; want 2 then 1, without sources", vs)
		}
		e.do("vic", "GET", "/policy/versions/1", nil, 200, &v)
		if v.Version != 1 || v.Source != v1 || v.Comment != "annual review" {
			t.Errorf("version 1 = %d %q; want its source and comment", v.Version, v.Comment)
		}
		e.do("vic", "GET", "/policy/versions/0", nil, 200, &v)
		if v.Source != base {
			t.Errorf("version 0 is not the built-in default")
		}
		for _, n := range []string{"3", "-1", "01", "x"} {
			e.do("vic", "GET", "/policy/versions/"+n, nil, 404, nil)
		}

		// The written document, by version and format.
		for _, tc := range []struct {
			query, ctype, disp, contains string
		}{
			{"", "text/markdown; charset=utf-8", `attachment; filename="patch-management-policy-v2.md"`, "Riverside Family Clinic"},
			{"?format=html&version=1", "text/html; charset=utf-8", `inline; filename="patch-management-policy-v1.html"`, "<title>Patch Management Policy — Riverside Family Clinic</title>"},
			{"?format=md&version=0", "text/markdown; charset=utf-8", `attachment; filename="patch-management-policy-v0.md"`, "Example Clinic and Laboratory"},
		} {
			rec := e.call("vic", "GET", "/policy/document"+tc.query, "", nil)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != tc.ctype || rec.Header().Get("Content-Disposition") != tc.disp ||
				!bytes.Contains(rec.Body.Bytes(), []byte(tc.contains)) {
				t.Errorf("GET /policy/document%s = %d %q %q; want %s, %s, containing %q", tc.query, rec.Code,
					rec.Header().Get("Content-Type"), rec.Header().Get("Content-Disposition"), tc.ctype, tc.disp, tc.contains)
			}
			if strings.Contains(tc.query, "html") && !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("HTML document CSP = %q; want default-src 'none'", rec.Header().Get("Content-Security-Policy"))
			}
		}
		e.do("vic", "GET", "/policy/document?format=pdf", nil, 400, nil)
		e.do("vic", "GET", "/policy/document?version=latest", nil, 400, nil)
		e.do("vic", "GET", "/policy/document?version=9", nil, 404, nil)
		e.do("", "GET", "/policy/document", nil, 401, nil)
	})
}
