package agent

import (
	"bufio"
	"io"
	"regexp"
	"strings"

	"github.com/patchward/patchward/internal/agentapi"
)

// aptInstRE matches a simulated install line of apt-get -s:
//
//	Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
//	Inst libssl3 [3.0.11-1] (3.0.13-1 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []
//
// The bracketed current version is absent for packages apt would newly
// install; those are dependencies, not pending updates of the host.
var aptInstRE = regexp.MustCompile(`^Inst (\S+) (?:\[([^\]]+)\] )?\((\S+) ([^\[]*?)\s*\[([^\]]*)\]\)`)

// ParseAptSimulate reads `apt-get -s dist-upgrade` (or upgrade) output and
// returns the upgrades of installed packages. An update counts as a
// security update when one of its origins is a security suite.
func ParseAptSimulate(r io.Reader) ([]agentapi.PendingUpdate, error) {
	var out []agentapi.PendingUpdate
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := aptInstRE.FindStringSubmatch(sc.Text())
		if m == nil || m[2] == "" || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		out = append(out, agentapi.PendingUpdate{
			Name:             m[1],
			CurrentVersion:   m[2],
			AvailableVersion: m[3],
			Security:         isSecurityOrigin(m[4]),
		})
	}
	return out, sc.Err()
}

// ParseAptListUpgradable reads `apt list --upgradable`:
//
//	apt-transport-https/oldstable-security 2.6.2 all [upgradable from: 2.6.1]
func ParseAptListUpgradable(r io.Reader) ([]agentapi.PendingUpdate, error) {
	var out []agentapi.PendingUpdate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "[upgradable from: ")
		if i < 0 {
			continue
		}
		from := strings.TrimSuffix(strings.TrimSpace(line[i+len("[upgradable from: "):]), "]")
		f := strings.Fields(line[:i])
		if len(f) < 2 {
			continue
		}
		name, suites, _ := strings.Cut(f[0], "/")
		out = append(out, agentapi.PendingUpdate{
			Name:             name,
			CurrentVersion:   from,
			AvailableVersion: f[1],
			Security:         isSecurityOrigin(suites),
		})
	}
	return out, sc.Err()
}

// isSecurityOrigin recognises Debian's "Debian-Security:12/stable-security"
// and Ubuntu's "Ubuntu:22.04/jammy-security" origins.
func isSecurityOrigin(s string) bool {
	return strings.Contains(strings.ToLower(s), "security")
}
