package match

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/patchward/patchward/internal/advisory"
)

// Test helpers that turn the real Debian test data into the engine's input.
// They are small on purpose: the product's parsers live elsewhere
// (internal/advisory, internal/installed); these only have to be right for
// the files in testdata/matching.

const matchData = "testdata/matching"

// debianReleases maps Debian code names to OSV ecosystem releases.
var debianReleases = map[string]string{
	"woody": "3.0", "sarge": "3.1", "etch": "4", "lenny": "5", "squeeze": "6", "wheezy": "7",
	"jessie": "8", "stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13",
}

// loadTracker converts the Debian security tracker JSON into one advisory
// per CVE, shaped like OSV's DEBIAN-CVE records: per release, affected from
// the start up to the fixed version ("0" means never affected; no fixed
// version means no fix yet).
func loadTracker(t testing.TB) []advisory.Advisory {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(matchData, "debian-tracker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]struct {
		Description string `json:"description"`
		// Releases is an object, or [] when the tracker has none.
		Releases json.RawMessage `json:"releases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("tracker JSON: %v", err)
	}
	byCVE := map[string]*advisory.Advisory{}
	var order []string
	for pkg, cves := range doc {
		for cve, rec := range cves {
			a := byCVE[cve]
			if a == nil {
				a = &advisory.Advisory{ID: "DEBIAN-" + cve, Source: "osv", Aliases: []string{cve}, Summary: rec.Description}
				byCVE[cve] = a
				order = append(order, cve)
			}
			var releases map[string]struct {
				Status       string `json:"status"`
				FixedVersion string `json:"fixed_version"`
			}
			if len(rec.Releases) > 0 && rec.Releases[0] == '{' {
				if err := json.Unmarshal(rec.Releases, &releases); err != nil {
					t.Fatalf("tracker %s: %v", cve, err)
				}
			}
			for rel, r := range releases {
				num, ok := debianReleases[rel]
				if !ok || r.FixedVersion == "0" {
					continue
				}
				rg := advisory.Range{Type: "ECOSYSTEM", Introduced: "0", Fixed: r.FixedVersion}
				a.Affected = append(a.Affected, advisory.Affected{Ecosystem: "Debian:" + num, Package: pkg, Ranges: []advisory.Range{rg}})
			}
		}
	}
	slices.Sort(order)
	var out []advisory.Advisory
	for _, c := range order {
		a := byCVE[c]
		slices.SortFunc(a.Affected, func(x, y advisory.Affected) int { return strings.Compare(x.Ecosystem+x.Package, y.Ecosystem+y.Package) })
		out = append(out, *a)
	}
	return out
}

var (
	dsaHead = regexp.MustCompile(`^\[[^\]]+\] (DSA-\S+) `)
	dsaCVEs = regexp.MustCompile(`^\s+\{([^}]*)\}`)
	dsaFix  = regexp.MustCompile(`^\s+\[(\w+)\] - (\S+) (\S+)`)
)

// loadDSAList converts the tracker's DSA list into DSA advisories aliasing
// their CVEs, fixed per release at the listed version.
func loadDSAList(t testing.TB) []advisory.Advisory {
	t.Helper()
	f, err := os.Open(filepath.Join(matchData, "debian-dsa-list"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []advisory.Advisory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := dsaHead.FindStringSubmatch(line); m != nil {
			out = append(out, advisory.Advisory{ID: m[1], Source: "osv"})
			continue
		}
		if len(out) == 0 {
			continue
		}
		a := &out[len(out)-1]
		if m := dsaCVEs.FindStringSubmatch(line); m != nil {
			a.Aliases = append(a.Aliases, strings.Fields(m[1])...)
		} else if m := dsaFix.FindStringSubmatch(line); m != nil {
			if num, ok := debianReleases[m[1]]; ok {
				a.Affected = append(a.Affected, advisory.Affected{Ecosystem: "Debian:" + num, Package: m[2],
					Ranges: []advisory.Range{{Type: "ECOSYSTEM", Introduced: "0", Fixed: m[3]}}})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// loadOSVDir parses the real OSV records with the product's OSV parser.
func loadOSVDir(t testing.TB) []advisory.Advisory {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(matchData, "osv", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OSV test records: %v", err)
	}
	var out []advisory.Advisory
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		advs, err := advisory.ParseOSV(f)
		f.Close()
		if err != nil {
			t.Fatalf("ParseOSV(%s): %v", p, err)
		}
		out = append(out, advs...)
	}
	return out
}

// loadDpkgStatus reads installed packages from a dpkg status file.
func loadDpkgStatus(t testing.TB, eco string) []Package {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(matchData, "debian12-dpkg-status"))
	if err != nil {
		t.Fatal(err)
	}
	var out []Package
	for _, stanza := range strings.Split(string(b), "\n\n") {
		var p Package
		installed := false
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				p.Name = v
			case "Version":
				p.Version = v
			case "Architecture":
				p.Arch = v
			case "Status":
				installed = strings.HasSuffix(v, " installed")
			case "Source":
				name, ver, _ := strings.Cut(v, " (")
				p.SourceName, p.SourceVersion = name, strings.TrimSuffix(ver, ")")
			}
		}
		if p.Name == "" || !installed {
			continue
		}
		p.Ecosystem = "Debian:12"
		if p.SourceName == "" {
			p.SourceName = p.Name
		}
		if p.SourceVersion == "" {
			p.SourceVersion = p.Version
		}
		out = append(out, p)
	}
	return out
}

// bookwormPkg is one row of bookworm-packages.tsv.
type bookwormPkg struct {
	name, arch, source  string
	version, srcVersion string
	secVersion, secSrc  string
}

func loadBookworm(t testing.TB) []bookwormPkg {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(matchData, "bookworm-packages.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var out []bookwormPkg
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			t.Fatalf("bookworm-packages.tsv: bad line %q", line)
		}
		out = append(out, bookwormPkg{f[0], f[1], f[2], f[3], f[4], f[5], f[6]})
	}
	return out
}
