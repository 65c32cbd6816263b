package agentsim

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/patchward/patchward/internal/agentapi"
)

// ParseDpkgStatus reads the installed packages of a dpkg status file
// (/var/lib/dpkg/status): stanzas whose Status is "install ok installed",
// with their architecture and source package. Ecosystem is the OSV name of
// the release (e.g. "Debian:12"), distro the PURL qualifier.
func ParseDpkgStatus(r io.Reader, ecosystem, distro string) ([]agentapi.Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		out []agentapi.Package
		cur = map[string]string{}
	)
	flush := func() {
		if cur["Package"] != "" && cur["Version"] != "" && cur["Status"] == "install ok installed" {
			p := agentapi.Package{Name: cur["Package"], Version: cur["Version"], Arch: cur["Architecture"], Ecosystem: ecosystem}
			if src := cur["Source"]; src != "" {
				name, ver, _ := strings.Cut(src, " ")
				p.SourceName = name
				p.SourceVersion = strings.Trim(ver, "()")
			}
			if p.SourceName == "" {
				p.SourceName = p.Name
			}
			if p.SourceVersion == "" {
				p.SourceVersion = p.Version
			}
			p.PURL = purl(p, distro)
			out = append(out, p)
		}
		clear(cur)
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// continuation of a multi-line field (Description, Conffiles)
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				cur[k] = strings.TrimSpace(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	flush()
	if len(out) == 0 {
		return nil, fmt.Errorf("dpkg status: no installed packages")
	}
	return out, nil
}

func purl(p agentapi.Package, distro string) string {
	q := packageurl.Qualifiers{}
	if p.Arch != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
	}
	if distro != "" {
		q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
	}
	return packageurl.NewPackageURL("deb", "debian", p.Name, p.Version, q, "").ToString()
}

var lastNumber = regexp.MustCompile(`[0-9]+`)

// older returns a plausible earlier version of v: its last number lowered
// by one to three (so "3.0.15-1~deb12u1" may become "3.0.15-1~deb12u0" or
// "3.0.14-1~deb12u1"), or v itself when no number can go lower.
func older(v string, rng *rand.Rand) string {
	locs := lastNumber.FindAllStringIndex(v, -1)
	for i := len(locs) - 1; i >= 0; i-- {
		loc := locs[i]
		n, err := strconv.Atoi(v[loc[0]:loc[1]])
		if err != nil || n == 0 {
			continue
		}
		n -= min(n, 1+rng.IntN(3))
		return v[:loc[0]] + strconv.Itoa(n) + v[loc[1]:]
	}
	return v
}

// variant is one host's inventory as differences from the shared base
// list, so thousands of simulated hosts do not each hold a copy of it.
type variant struct {
	base    []agentapi.Package
	index   map[string]int // name -> position in base (first of its name)
	distro  string
	version map[string]string // name -> installed version, where it differs from base or is extra
	removed map[string]bool
}

// packages materialises the host's inventory.
func (v *variant) packages() []agentapi.Package {
	out := make([]agentapi.Package, 0, len(v.base)+len(v.version))
	seen := map[string]bool{}
	for _, p := range v.base {
		if v.removed[p.Name] {
			continue
		}
		if ver, ok := v.version[p.Name]; ok && !seen[p.Name] {
			p.Version = ver
			p.PURL = purl(p, v.distro)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	for name, ver := range v.version {
		if !seen[name] {
			p := agentapi.Package{Name: name, Version: ver, Arch: "amd64", Ecosystem: "Debian:12", SourceName: name, SourceVersion: ver}
			p.PURL = purl(p, v.distro)
			out = append(out, p)
		}
	}
	return out
}

// installed returns the installed version of name, "" if none.
func (v *variant) installed(name string) string {
	if ver, ok := v.version[name]; ok {
		return ver
	}
	if i, ok := v.index[name]; ok && !v.removed[name] {
		return v.base[i].Version
	}
	return ""
}

func indexPackages(base []agentapi.Package) map[string]int {
	idx := make(map[string]int, len(base))
	for i, p := range base {
		if _, ok := idx[p.Name]; !ok {
			idx[p.Name] = i
		}
	}
	return idx
}

// hostInventory draws one host's inventory from the base list: a few
// packages held back at an older version (each then pending an update to
// the base version), and a few not installed, so every host differs a
// little, as real fleets do.
func hostInventory(base []agentapi.Package, index map[string]int, distro string, rng *rand.Rand) (*variant, []agentapi.PendingUpdate) {
	v := &variant{base: base, index: index, distro: distro, version: map[string]string{}, removed: map[string]bool{}}
	var pending []agentapi.PendingUpdate
	for range 3 + rng.IntN(6) {
		p := base[rng.IntN(len(base))]
		if _, held := v.version[p.Name]; held {
			continue
		}
		if old := older(p.Version, rng); old != p.Version {
			v.version[p.Name] = old
			pending = append(pending, agentapi.PendingUpdate{Name: p.Name, CurrentVersion: old, AvailableVersion: p.Version, Security: rng.IntN(3) == 0})
		}
	}
	for range rng.IntN(4) {
		p := base[rng.IntN(len(base))]
		if _, held := v.version[p.Name]; !held {
			v.removed[p.Name] = true
		}
	}
	return v, pending
}
