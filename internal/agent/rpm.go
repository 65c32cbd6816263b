package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/osv-scalibr/semantic"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// RPM names and versions as dnf and zypper may receive them from the
// server. The rules are narrower than rpm's own on purpose, because both
// tools read more into an argument than a package name:
//   - a leading "-" would be an option, and zypper reads a leading "!" or
//     "~" as "remove";
//   - "*", "?" and "[" are globs, "@" a group or module, "(" a rich
//     dependency, ":" a zypper kind ("patch:…") or a URL, "/" a file path,
//     "<", ">" and "=" a version range;
//   - an argument ending in ".rpm" is read by both as a local package
//     file, so a name may not end that way.
//
// A version is [epoch:]version-release: the release is required so that
// the version the agent verifies after the change is the exact one rpm
// reports (rpm has no bare "1.2" for an installed package). "~" and "^"
// are rpm's pre- and post-release markers.
var (
	rpmNameRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$`)
	rpmVersionRE = regexp.MustCompile(`^(?:[0-9]{1,10}:)?[A-Za-z0-9][A-Za-z0-9._+~^]{0,63}-[A-Za-z0-9][A-Za-z0-9._+~^]{0,63}$`)
)

// validateRPMPackage is ValidatePackage for dnf and zypper.
func validateRPMPackage(manager, name, version string) error {
	if !rpmNameRE.MatchString(name) || strings.HasSuffix(strings.ToLower(name), ".rpm") {
		return errs.E(errs.Invalid, "%s: %q is not an RPM package name", manager, name)
	}
	if version != "" && !rpmVersionRE.MatchString(version) {
		return errs.E(errs.Invalid, "%s: %q is not an RPM [epoch:]version-release", manager, version)
	}
	return nil
}

// rpmQueryMarker starts every line of our rpm query format, so the parser
// can tell them from "package X is not installed" in the combined output.
const rpmQueryMarker = "pw-installed"

// rpmQueryFormat prints epoch:version-release with the epoch only when
// set, the form the inventory collector (installed.ReadRpmDB) reports, so
// the server's previous and target versions compare equal to it.
const rpmQueryFormat = rpmQueryMarker + `\t%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`

// rpmInstalled asks rpm for the installed versions of names. The query
// needs no root, so it runs as user.
func rpmInstalled(ctx context.Context, run Runner, root, user string, timeout time.Duration, names []string) (map[string]string, agentapi.Step, error) {
	argv := []string{"rpm"}
	if root != "" && root != "/" {
		argv = append(argv, "--root", root)
	}
	argv = append(argv, "--query", "--queryformat", rpmQueryFormat, "--")
	argv = append(argv, names...)
	var out bytes.Buffer
	st := run.Run(ctx, Command{Name: "query installed versions", Argv: argv, Env: []string{"LC_ALL=C"}, Timeout: timeout, Stdout: &out, User: user})
	got, err := parseRPMQuery(out.String(), names)
	// rpm -q exits with the number of names that are not installed; that
	// is an answer, as long as every name was answered one way or the other.
	if err == nil && st.ExitCode >= 0 && st.ExitCode <= len(names) {
		st.OK = true
		return got, st, nil
	}
	if err == nil {
		err = fmt.Errorf("rpm exited %d: %s", st.ExitCode, lastLine(st.Output))
	}
	st.OK = false
	return nil, st, fmt.Errorf("query installed versions: %w", err)
}

// parseRPMQuery reads our marker lines and rpm's "package N is not
// installed" lines. Every name must be answered by one of the two, so a
// database error cannot pass for "not installed". When a name has several
// installed versions (install-only packages such as the kernel, or
// multilib pairs) the highest counts, as it is the one that runs after a
// reboot.
func parseRPMQuery(out string, names []string) (map[string]string, error) {
	got := make(map[string]string, len(names))
	answered := make(map[string]bool, len(names))
	for _, n := range names {
		got[n] = ""
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "package "); ok {
			if n, ok := strings.CutSuffix(n, " is not installed"); ok {
				answered[n] = true
			}
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] != rpmQueryMarker {
			continue
		}
		name, version := f[1], f[2]
		cur, asked := got[name]
		if !asked {
			continue
		}
		answered[name] = true
		if cur == "" || compareRPM(version, cur) > 0 {
			got[name] = version
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if !answered[n] {
			return nil, fmt.Errorf("rpm gave no answer for %q", n)
		}
	}
	return got, nil
}

// compareRPM orders two epoch:version-release strings like rpmvercmp,
// through the same osv-scalibr code the server's matcher uses.
func compareRPM(a, b string) int {
	va, err1 := semantic.Parse(a, "Red Hat")
	if err1 != nil {
		return strings.Compare(a, b)
	}
	c, err := va.CompareStr(b)
	if err != nil {
		return strings.Compare(a, b)
	}
	return c
}

// rpmLockFiles are rpm's own transaction lock (held with fcntl by rpm,
// dnf, zypper and PackageKit alike) in the database directories in use:
// /var/lib/rpm (RHEL 8, SLES 15) and /usr/lib/sysimage/rpm (RHEL 9+,
// Fedora, openSUSE Tumbleweed).
var rpmLockFiles = []string{"/var/lib/rpm/.rpm.lock", "/usr/lib/sysimage/rpm/.rpm.lock"}

// underRoot places absolute paths below root ("" or "/" is the host).
func underRoot(root string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		if root == "" || root == "/" {
			out[i] = p
		} else {
			out[i] = filepath.Join(root, p)
		}
	}
	return out
}

// lockHolder probes each file with probePackageLock and reports the first
// one held.
func lockHolder(files []string) (bool, string, error) {
	for _, f := range files {
		held, detail, err := probePackageLock(f)
		if err != nil {
			return false, "", fmt.Errorf("probe %s: %w", f, err)
		}
		if held {
			return true, f + " is locked by " + detail, nil
		}
	}
	return false, "", nil
}
