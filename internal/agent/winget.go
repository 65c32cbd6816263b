package agent

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Winget drives the Windows Package Manager (winget) for third-party
// applications on Windows: package names are winget package identifiers
// ("Mozilla.Firefox"), versions are the versions winget lists.
//
// winget has no multi-package transaction: Apply installs (or uninstalls)
// the packages one at a time and stops at the first failure, which the
// executor's verification then reports and rolls back. A rollback installs
// the previous version with `winget install --version`; whether an
// installer accepts an older version is the installer's decision (MSI
// packages often refuse), so on Windows the configured recovery hook — a
// VM snapshot or restore point — is the rollback to rely on.
//
// Windows Update (KB articles) is not driven through this interface yet:
// see windowsUpdateReason.
type Winget struct {
	path    string
	source  string
	timeout Duration
	run     Runner
}

// windowsUpdateReason is why jobs naming a KB article are refused.
const windowsUpdateReason = "Windows Update (KB) installs are not supported by this agent yet: " +
	"installing a chosen update needs the Windows Update Agent's COM API in-process (IUpdateInstaller), " +
	"and an update can often not be uninstalled again, so there would be no honest rollback; " +
	"use WSUS, Intune or Windows Update for Business for KBs, and winget package identifiers for applications"

// NewWinget builds the winget manager from the agent's configuration.
func NewWinget(cfg Config, run Runner) *Winget {
	return &Winget{path: cfg.Winget.Path, source: cfg.Winget.Source, timeout: cfg.CommandTimeout, run: run}
}

// Name returns "winget".
func (w *Winget) Name() string { return "winget" }

// exe returns winget.exe's path.
func (w *Winget) exe() (string, error) {
	if w.path != "" {
		return w.path, nil
	}
	return findWinget()
}

// Supported checks that this is Windows and winget.exe can be found.
func (w *Winget) Supported() error {
	if runtime.GOOS != "windows" {
		return errs.E(errs.Unsupported, "winget: runs on Windows only")
	}
	if _, err := w.exe(); err != nil {
		return errs.E(errs.Unsupported, "winget: %v", err)
	}
	return nil
}

// winget package identifiers are dot-separated segments (the manifest
// schema allows 2–8; Publisher.Package is the common case) and versions
// are what the manifest's PackageVersion holds. Both are narrowed to
// ASCII letters, digits and "._+-" with no leading "-", so neither can be
// read as an option and neither holds a space (winget list's table is
// parsed by whitespace). KB article names are refused with the reason.
var (
	wingetIDRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+-]{0,31}(\.[A-Za-z0-9_+-]{1,32}){1,7}$`)
	wingetVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	wingetSourceRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// ValidatePackage accepts winget package identifiers and versions.
func (w *Winget) ValidatePackage(name, version string) error {
	if kbRE.MatchString(strings.ToUpper(name)) {
		return errs.E(errs.Unsupported, "%s: %s", name, windowsUpdateReason)
	}
	if !wingetIDRE.MatchString(name) {
		return errs.E(errs.Invalid, "winget: %q is not a winget package identifier (Publisher.Package)", name)
	}
	if version != "" && !wingetVersionRE.MatchString(version) {
		return errs.E(errs.Invalid, "winget: %q is not a winget package version", version)
	}
	return nil
}

// winget's exit codes are HRESULTs; a process exit code holds them as an
// unsigned (or, on 32-bit builds, negative) number.
const (
	wingetNoPackagesFound uint32 = 0x8A150014 // list: nothing installed matches
	wingetRebootToFinish  uint32 = 0x8A150076 // install done; restart to finish
	wingetRebootInitiated uint32 = 0x8A150077 // install done; the installer restarts
)

// wingetAgreements accept source and package agreements, which would
// otherwise wait for a key press, and turn off every prompt.
var wingetAgreements = []string{"--accept-source-agreements", "--disable-interactivity"}

func (w *Winget) command(args ...string) ([]string, error) {
	exe, err := w.exe()
	if err != nil {
		return nil, err
	}
	return append([]string{exe}, args...), nil
}

func (w *Winget) sourceArgs() []string {
	if w.source == "" {
		return nil
	}
	return []string{"--source", w.source}
}

// failed is the step reported when winget.exe cannot be found.
func (w *Winget) failed(name string, err error) agentapi.Step {
	now := time.Now().UTC()
	return agentapi.Step{Name: name, ExitCode: -1, Output: "winget: " + err.Error(), Started: now, Ended: now}
}

// Installed runs `winget list --id ID --exact` for each name.
func (w *Winget) Installed(ctx context.Context, names []string) (map[string]string, agentapi.Step, error) {
	got := make(map[string]string, len(names))
	var steps []agentapi.Step
	for _, id := range names {
		argv, err := w.command(append([]string{"list", "--id", id, "--exact"}, wingetAgreements...)...)
		if err != nil {
			st := w.failed("query installed versions", err)
			return nil, st, fmt.Errorf("query installed versions: %w", err)
		}
		var out bytes.Buffer
		st := w.run.Run(ctx, Command{Name: "query installed versions", Argv: argv, Timeout: w.timeout.Duration, Stdout: &out})
		steps = append(steps, st)
		v, found := parseWingetList(out.String(), id)
		switch {
		case found && st.OK:
			got[id] = v
		case !found && (st.OK || uint32(st.ExitCode) == wingetNoPackagesFound):
			got[id] = ""
			steps[len(steps)-1].OK = true
		default:
			return nil, joinSteps("query installed versions", steps...), fmt.Errorf("query installed versions: winget list exited %d: %s", st.ExitCode, lastLine(st.Output))
		}
	}
	st := joinSteps("query installed versions", steps...)
	return got, st, nil
}

// parseWingetList finds id's row in `winget list` output and returns its
// version. The table is sized to the console and its headings are
// translated, so the parser does not rely on column positions or header
// names: it takes the rows under the dashed rule, finds the whitespace-
// separated field equal to the identifier (or, when winget cut it short
// with "…", a prefix of it) and returns the next field. "< 1.2" and
// "> 1.2" (winget's "below/above a listed version") keep both parts, so
// they never equal a target version. Progress spinners written before the
// table with carriage returns are dropped. Of several rows (side-by-side
// installs) the highest version wins.
func parseWingetList(out, id string) (string, bool) {
	out = strings.TrimPrefix(out, "\ufeff")
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	inTable := false
	best, found := "", false
	for _, line := range lines {
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		trimmed := strings.TrimSpace(line)
		if !inTable {
			if len(trimmed) >= 10 && strings.Trim(trimmed, "-") == "" {
				inTable = true
			}
			continue
		}
		f := strings.Fields(trimmed)
		for i := 0; i+1 < len(f); i++ {
			if !wingetIDMatches(f[i], id) {
				continue
			}
			v := f[i+1]
			if (v == "<" || v == ">") && i+2 < len(f) {
				v += " " + f[i+2]
			}
			if !utf8.ValidString(v) || len(v) > agentapi.MaxField {
				break
			}
			if !found || compareDotted(v, best) > 0 {
				best = v
			}
			found = true
			break
		}
	}
	return best, found
}

// wingetIDMatches compares a table field with an identifier, accepting a
// field winget truncated with an ellipsis.
func wingetIDMatches(field, id string) bool {
	if strings.EqualFold(field, id) {
		return true
	}
	prefix, cut := strings.CutSuffix(field, "…")
	return cut && len(prefix) >= 8 && len(prefix) < len(id) && strings.EqualFold(id[:len(prefix)], prefix)
}

// compareDotted orders versions by their dot-separated numeric parts (as
// winget does for the common case); non-numeric parts compare as text.
func compareDotted(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, errx := strconv.ParseUint(x, 10, 64)
		ny, erry := strconv.ParseUint(y, 10, 64)
		switch {
		case errx == nil && erry == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}

// Refresh updates winget's sources.
func (w *Winget) Refresh(ctx context.Context) agentapi.Step {
	args := []string{"source", "update"}
	if w.source != "" {
		args = append(args, "--name", w.source)
	}
	argv, err := w.command(append(args, "--disable-interactivity")...)
	if err != nil {
		return w.failed("refresh package lists", err)
	}
	return w.run.Run(ctx, Command{Name: "refresh package lists", Argv: argv, Timeout: w.timeout.Duration})
}

// Apply installs each package at its exact version, silently and with
// agreements accepted, or uninstalls it when the version is empty; it
// stops at the first failure. An install that only waits for a restart
// counts as done (the reboot rules decide when it happens).
func (w *Winget) Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step {
	var steps []agentapi.Step
	for _, p := range want {
		var args []string
		if p.TargetVersion == "" {
			args = []string{"uninstall", "--id", p.Name, "--exact", "--silent"}
		} else {
			args = []string{"install", "--id", p.Name, "--version", p.TargetVersion, "--exact", "--silent", "--accept-package-agreements"}
		}
		args = append(append(args, w.sourceArgs()...), wingetAgreements...)
		argv, err := w.command(args...)
		if err != nil {
			return joinSteps("install", append(steps, w.failed("install", err))...)
		}
		st := w.run.Run(ctx, Command{Name: "install", Argv: argv, Timeout: w.timeout.Duration})
		if code := uint32(st.ExitCode); !st.OK && (code == wingetRebootToFinish || code == wingetRebootInitiated) {
			st.OK = true
		}
		steps = append(steps, st)
		if !st.OK {
			break
		}
	}
	return joinSteps("install", steps...)
}

// LockHolder reports a Windows Installer transaction in progress (the
// _MSIExecute mutex), which would make an MSI-based install fail.
func (w *Winget) LockHolder() (bool, string, error) { return msiInstallInProgress() }
