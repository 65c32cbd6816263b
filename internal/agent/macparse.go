package agent

import (
	"bufio"
	"io"
	"regexp"
	"strings"

	"github.com/patchward/patchward/internal/agentapi"
)

// EcosystemMacOS marks packages from the macOS installer receipts database.
const EcosystemMacOS = "macos-pkg"

// ParsePkgutilPkgs reads `pkgutil --pkgs`: one receipt ID per line.
func ParsePkgutilPkgs(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" && !strings.ContainsAny(id, " \t") {
			out = append(out, id)
		}
	}
	return out, sc.Err()
}

// ParsePkgInfo reads `pkgutil --pkg-info ID`:
//
//	package-id: com.apple.pkg.CLTools_Executables
//	version: 15.3.0.0.1.1708646388
//	volume: /
//	location: /
//	install-time: 1712345678
func ParsePkgInfo(r io.Reader) (agentapi.Package, bool) {
	var p agentapi.Package
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "package-id":
			p.Name = strings.TrimSpace(v)
		case "version":
			p.Version = strings.TrimSpace(v)
		}
	}
	p.Ecosystem = EcosystemMacOS
	return p, p.Name != "" && p.Version != ""
}

var (
	suLabelRE  = regexp.MustCompile(`^\s*\*\s+(?:Label:\s+)?(.+?)\s*$`)
	suTitleRE  = regexp.MustCompile(`Title:\s*([^,]+),\s*Version:\s*([^,]+),`)
	suLegacyRE = regexp.MustCompile(`^\s+(.+?)\s+\(([^)]+)\),\s*\d+K`)
)

// ParseSoftwareUpdateList reads `softwareupdate -l` in both its current
// form (macOS 10.15 and later)
//
//   - Label: macOS Sonoma 14.4.1-23E224
//     Title: macOS Sonoma 14.4.1, Version: 14.4.1, Size: 1189734K, Recommended: YES, Action: restart,
//
// and the older one
//
//   - Security Update 2019-001-10.13.6
//     Security Update 2019-001 (10.13.6), 1934558K [recommended] [restart]
//
// Apple marks no update as "security" in this output; security content is
// announced per release, so Security stays false here.
func ParseSoftwareUpdateList(r io.Reader) ([]agentapi.PendingUpdate, error) {
	var out []agentapi.PendingUpdate
	label := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := suLabelRE.FindStringSubmatch(line); m != nil {
			label = m[1]
			continue
		}
		if label == "" {
			continue
		}
		if m := suTitleRE.FindStringSubmatch(line); m != nil {
			out = append(out, agentapi.PendingUpdate{Name: label, AvailableVersion: strings.TrimSpace(m[2])})
			label = ""
			continue
		}
		if m := suLegacyRE.FindStringSubmatch(line); m != nil {
			out = append(out, agentapi.PendingUpdate{Name: label, AvailableVersion: strings.TrimSpace(m[2])})
			label = ""
		}
	}
	return out, sc.Err()
}

// ParseSwVers reads `sw_vers` (ProductName, ProductVersion, BuildVersion).
func ParseSwVers(r io.Reader) (name, version, build string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "ProductName":
			name = strings.TrimSpace(v)
		case "ProductVersion":
			version = strings.TrimSpace(v)
		case "BuildVersion":
			build = strings.TrimSpace(v)
		}
	}
	return name, version, build
}
