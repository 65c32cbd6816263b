package feeds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []Feed
		err  string // substring of the error; empty for success
	}{
		{name: "empty file means no feeds", yaml: "", want: nil},
		{name: "comments only", yaml: "# nothing configured yet\n", want: nil},
		{name: "empty list", yaml: "feeds:\n", want: nil},
		{name: "every setting", yaml: `feeds:
  - name: nvd
    kind: nvd
    url: https://services.nvd.nist.gov/rest/json/cves/2.0
    interval: 2h
    timeout: 1h
    max_size: 512MiB
    api_key_env: NVD_API_KEY
  - name: vendor-csaf
    kind: csaf
    path: /srv/csaf
    interval: 7d
    allow_shrink: true
    exclude: ["*.draft.json"]
`, want: []Feed{
			{Name: "nvd", Kind: NVD, URL: "https://services.nvd.nist.gov/rest/json/cves/2.0", Interval: 2 * time.Hour,
				Timeout: time.Hour, MaxBytes: 512 << 20, APIKeyEnv: "NVD_API_KEY", Line: 2},
			{Name: "vendor-csaf", Kind: CSAF, Path: "/srv/csaf", Interval: 7 * 24 * time.Hour, Timeout: DefaultTimeout,
				MaxBytes: DefaultMaxBytes, AllowShrink: true, Exclude: []string{"*.draft.json"}, Line: 9},
		}},
		{name: "loopback http for tests", yaml: "feeds:\n  - {name: kev, kind: kev, url: 'http://127.0.0.1:8080/kev.json'}\n",
			want: []Feed{{Name: "kev", Kind: KEV, URL: "http://127.0.0.1:8080/kev.json", Interval: DefaultInterval,
				Timeout: DefaultTimeout, MaxBytes: DefaultMaxBytes, Line: 2}}},
		{name: "unknown top-level key", yaml: "feeds: []\nfeed:\n  - name: x\n", err: "line 2: unknown key \"feed\""},
		{name: "unknown feed key", yaml: "feeds:\n  - name: kev\n    kind: kev\n    urll: https://x.example/kev.json\n", err: "line 4: unknown key \"urll\""},
		{name: "unknown kind", yaml: "feeds:\n  - name: x\n    kind: oval\n    path: /x\n", err: "line 3: unknown kind \"oval\""},
		{name: "plain http to a network host", yaml: "feeds:\n  - name: x\n    kind: kev\n    url: http://www.cisa.gov/kev.json\n", err: "line 4: url \"http://www.cisa.gov/kev.json\" must use https://"},
		{name: "ftp", yaml: "feeds:\n  - name: x\n    kind: kev\n    url: ftp://example.org/kev.json\n", err: "line 4: url"},
		{name: "url and path", yaml: "feeds:\n  - name: x\n    kind: kev\n    url: https://example.org/k.json\n    path: /k.json\n", err: "line 2: feed \"x\" has both a url and a path"},
		{name: "neither url nor path", yaml: "feeds:\n  - name: x\n    kind: kev\n", err: "line 2: feed \"x\" needs a url or a path"},
		{name: "no kind", yaml: "feeds:\n  - name: x\n    path: /x\n", err: "line 2: feed \"x\" needs a kind"},
		{name: "no name", yaml: "feeds:\n  - kind: kev\n    path: /x\n", err: "line 2: feed needs a name"},
		{name: "bad name", yaml: "feeds:\n  - name: My Feed\n    kind: kev\n    path: /x\n", err: "line 2: feed name \"My Feed\""},
		{name: "duplicate name", yaml: "feeds:\n  - {name: kev, kind: kev, path: /a}\n  - {name: kev, kind: kev, path: /b}\n", err: "line 3: feed \"kev\" is already defined on line 2"},
		{name: "bad interval", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    interval: daily\n", err: "line 5: interval"},
		{name: "interval too short", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    interval: 10s\n", err: "line 5: interval 10s is shorter than the minimum"},
		{name: "bad size", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    max_size: lots\n", err: "line 5: max_size"},
		{name: "bad bool", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    allow_shrink: maybe\n", err: "line 5: allow_shrink"},
		{name: "api key in the file", yaml: "feeds:\n  - name: x\n    kind: nvd\n    url: https://example.org/\n    api_key_env: 12ab-34cd\n", err: "line 5: api_key_env must name an environment variable"},
		{name: "api key on another kind", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    api_key_env: KEY\n", err: "api_key_env applies to nvd feeds only"},
		{name: "exclude not a list", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    exclude: '*.json'\n", err: "line 5: exclude must be a list"},
		{name: "bad exclude pattern", yaml: "feeds:\n  - name: x\n    kind: kev\n    path: /x\n    exclude: ['[']\n", err: "line 5: bad exclude pattern"},
		{name: "feeds not a list", yaml: "feeds: kev\n", err: "line 1: feeds must be a list"},
		{name: "feed not a mapping", yaml: "feeds:\n  - kev\n", err: "line 2: each feed must be a mapping"},
		{name: "nested value", yaml: "feeds:\n  - name: {a: b}\n", err: "line 2: name must be a single value"},
		{name: "key twice", yaml: "feeds:\n  - name: a\n    name: b\n", err: "line 3"},
		{name: "not a mapping", yaml: "- kev\n", err: "line 1: the file must be a mapping"},
		{name: "yaml syntax", yaml: "feeds:\n  - name: [kev\n", err: "line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(errs.Public(err), tc.err) || errs.KindOf(err) != errs.Invalid {
					t.Fatalf("ParseConfig error = %v; want Invalid containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, cfg.Feeds); diff != "" {
				t.Errorf("ParseConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "feeds.yaml")
	if cfg, err := LoadConfig(missing, false); err != nil || len(cfg.Feeds) != 0 {
		t.Errorf("LoadConfig(missing default) = %v, %v; want no feeds", cfg, err)
	}
	if _, err := LoadConfig(missing, true); err == nil {
		t.Error("LoadConfig(missing, required) = nil error; want one")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("feeds:\n  - name: kev\n    kind: kev\n    urll: x\n"), 0o644)
	if _, err := LoadConfig(bad, true); err == nil || !strings.HasPrefix(errs.Public(err), bad+":4: unknown key") {
		t.Errorf("LoadConfig(bad) = %v; want it to start %q", err, bad+":4: unknown key")
	}
	// The documented example must stay valid.
	cfg, err := LoadConfig(filepath.Join("..", "..", "docs", "feeds.example.yaml"), true)
	if err != nil {
		t.Fatalf("docs/feeds.example.yaml: %v", err)
	}
	kinds := map[Kind]bool{}
	for _, f := range cfg.Feeds {
		kinds[f.Kind] = true
	}
	for _, k := range Kinds {
		if !kinds[k] {
			t.Errorf("docs/feeds.example.yaml has no %s feed", k)
		}
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"512MiB", 512 << 20, true}, {"2GB", 2e9, true}, {"1048576", 1 << 20, true}, {"10 KiB", 10 << 10, true},
		{"0", 0, false}, {"-1MB", 0, false}, {"2TiB", 0, false}, {"MB", 0, false}} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (ok=%v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"6h", 6 * time.Hour, true}, {"1d", 24 * time.Hour, true}, {"90m", 90 * time.Minute, true},
		{"0d", 0, false}, {"-1h", 0, false}, {"1.5d", 0, false}, {"week", 0, false}} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (ok=%v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseConfig checks the parser of feeds.yaml never panics, and that
// whatever it accepts satisfies the invariants the rest of the package
// relies on.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"", "feeds:\n", "feeds:\n  - {name: kev, kind: kev, path: /x}\n",
		"feeds:\n  - name: nvd\n    kind: nvd\n    url: https://services.nvd.nist.gov/rest/json/cves/2.0\n    interval: 2h\n    api_key_env: K\n",
		"feeds:\n  - name: c\n    kind: csaf\n    path: /c\n    exclude: ['*.x']\n    max_size: 1GiB\n    allow_shrink: yes\n",
		"feeds: &a [*a]\n", "{feeds: [{name: [1]}]}", "feeds:\n  - !!binary abc\n",
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "docs", "feeds.example.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("ParseConfig error kind = %v; want Invalid: %v", errs.KindOf(err), err)
			}
			return
		}
		names := map[string]bool{}
		for _, fd := range cfg.Feeds {
			if !nameRE.MatchString(fd.Name) || names[fd.Name] || !fd.Kind.Valid() || (fd.URL == "") == (fd.Path == "") ||
				fd.Interval < MinInterval || fd.MaxBytes <= 0 || fd.Timeout < time.Second {
				t.Fatalf("ParseConfig accepted an invalid feed: %+v", fd)
			}
			if fd.URL != "" && CheckURL(fd.URL) != nil {
				t.Fatalf("ParseConfig accepted a bad URL %q", fd.URL)
			}
			names[fd.Name] = true
		}
	})
}
