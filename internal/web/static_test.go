package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/inventory"
	"github.com/patchward/patchward/internal/match"
)

func TestStaticFilesHashedAndCached(t *testing.T) {
	e := newEnv(t)
	doc := parse(t, e.get("/login", ""))
	href, _ := doc.Find(`link[rel=stylesheet]`).Attr("href")
	if !regexp.MustCompile(`^/static/patchward\.[0-9a-f]{16}\.css$`).MatchString(href) {
		t.Fatalf("stylesheet href = %q; want a content-hashed /static URL", href)
	}
	w := e.get(href, "")
	wantStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
		t.Errorf("Cache-Control = %q", cc)
	}
	etag := w.Header().Get("ETag")
	rq := httptest.NewRequest(http.MethodGet, href, nil)
	rq.Header.Set("If-None-Match", etag)
	w2 := httptest.NewRecorder()
	e.h.ServeHTTP(w2, rq)
	wantStatus(t, w2, http.StatusNotModified)
	wantStatus(t, e.get("/static/patchward.0000000000000000.css", ""), http.StatusNotFound)
	wantStatus(t, e.get("/static/patchward.css", ""), http.StatusNotFound)
}

// TestPagesNeedNoInlineCode keeps every page working under the CSP
// "default-src 'self'": no inline scripts, styles or event handlers, and
// every form posts to this site. Pages are never cached.
func TestPagesNeedNoInlineCode(t *testing.T) {
	e := newVulnEnv(t)
	e.audit.entries = auditEntries(3)
	e.imp.result = ImportResult{Rows: []ImportRow{{Line: 2, Action: "create", Name: "PC"}}}
	pages := map[string]func() []byte{
		"login":  func() []byte { return e.get("/login", "").Body.Bytes() },
		"assets": func() []byte { return e.get("/assets", auth.RoleAdmin).Body.Bytes() },
		"asset":  func() []byte { return e.get("/assets/a-chem", auth.RoleAdmin).Body.Bytes() },
		"edit":   func() []byte { return e.get("/assets/a-chem/edit", auth.RoleAdmin).Body.Bytes() },
		"new":    func() []byte { return e.get("/assets/new", auth.RoleAdmin).Body.Bytes() },
		"import": func() []byte { return e.get("/import", auth.RoleAdmin).Body.Bytes() },
		"preview": func() []byte {
			return e.upload(auth.RoleAdmin, "inventory", "a.csv", []byte("name\nPC\n")).Body.Bytes()
		},
		"audit":     func() []byte { return e.get("/audit", auth.RoleAdmin).Body.Bytes() },
		"forbidden": func() []byte { return e.get("/audit", auth.RoleViewer).Body.Bytes() },
		"not found": func() []byte { return e.get("/nowhere", auth.RoleViewer).Body.Bytes() },
		"findings":  func() []byte { return e.get("/findings?state=all", auth.RoleViewer).Body.Bytes() },
		"finding":   func() []byte { return e.get("/findings/f-vpn", auth.RoleViewer).Body.Bytes() },
		"advisories": func() []byte {
			return e.get("/advisories?q=CVE", auth.RoleViewer).Body.Bytes()
		},
		"advisory":      func() []byte { return e.get("/advisories/CVE-2024-3094", auth.RoleViewer).Body.Bytes() },
		"csaf advisory": func() []byte { return e.get("/advisories/CVE-2024-1111", auth.RoleViewer).Body.Bytes() },
		"feeds":         func() []byte { return e.get("/feeds", auth.RoleViewer).Body.Bytes() },
	}
	for name, get := range pages {
		t.Run(name, func(t *testing.T) {
			body := get()
			doc, err := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			if n := doc.Find("script, style, [style]").Length(); n != 0 {
				t.Errorf("%d inline scripts or styles", n)
			}
			doc.Find("*").Each(func(_ int, s *goquery.Selection) {
				for _, a := range s.Nodes[0].Attr {
					if strings.HasPrefix(strings.ToLower(a.Key), "on") {
						t.Errorf("inline event handler %s=%q", a.Key, a.Val)
					}
				}
			})
			doc.Find("form").Each(func(_ int, s *goquery.Selection) {
				action, _ := s.Attr("action")
				if !strings.HasPrefix(action, "/") || strings.HasPrefix(action, "//") {
					t.Errorf("form action %q is not a local path", action)
				}
			})
			if doc.Find("main h1").Length() != 1 {
				t.Errorf("%d h1 headings; want 1", doc.Find("main h1").Length())
			}
		})
	}
	w := e.get("/assets", auth.RoleAdmin)
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("page Cache-Control = %q; want no-store", cc)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("page Content-Type = %q", ct)
	}
}

// TestEveryEnumHasLabel makes a new enum value fail here rather than show
// up as raw snake_case in the UI.
func TestEveryEnumHasLabel(t *testing.T) {
	var vals []string
	add := func(vs ...string) { vals = append(vals, vs...) }
	for _, v := range inventory.Types {
		add(string(v))
	}
	for _, v := range inventory.Exposures {
		add(string(v))
	}
	for _, v := range inventory.Levels {
		add(string(v))
	}
	for _, v := range inventory.SafetyImpacts {
		add(string(v))
	}
	for _, v := range inventory.Classifications {
		add(string(v))
	}
	for _, v := range inventory.Restrictions {
		add(string(v))
	}
	for _, v := range inventory.Supports {
		add(string(v))
	}
	for _, v := range inventory.Sources {
		add(string(v))
	}
	for _, v := range auth.Roles {
		add(string(v))
	}
	for _, v := range match.States {
		add(string(v))
	}
	for _, v := range feeds.Kinds {
		add(string(v))
	}
	add(match.SourceOSV, match.SourceNVDCPE, match.SourceCSAF)
	add(string(advisory.StatusKnownAffected), string(advisory.StatusKnownNotAffected), string(advisory.StatusFixed),
		string(advisory.StatusUnderInvestigation), string(advisory.StatusRecommended))
	add(advisory.CVSSv2, advisory.CVSSv3, advisory.CVSSv4)
	for _, v := range vals {
		if _, ok := labels[v]; !ok {
			t.Errorf("no label for %q", v)
		}
	}
}
