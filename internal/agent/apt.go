package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// Apt drives apt-get and dpkg-query on Debian and Ubuntu.
type Apt struct {
	opts      []string
	escalate  []string
	lockFiles []string
	adminDir  string
	timeout   Duration
	user      string
	run       Runner
}

// NewApt builds the apt manager from the agent's configuration.
func NewApt(cfg Config, run Runner) *Apt {
	return &Apt{
		opts:      cfg.Apt.Options,
		escalate:  cfg.Apt.Escalate,
		lockFiles: cfg.Apt.LockFiles,
		adminDir:  cfg.Apt.AdminDir,
		timeout:   cfg.CommandTimeout,
		user:      cfg.UnprivilegedUser,
		run:       run,
	}
}

// aptEnv keeps apt, debconf and needrestart from waiting for a human.
var aptEnv = []string{
	"DEBIAN_FRONTEND=noninteractive",
	"APT_LISTCHANGES_FRONTEND=none",
	"NEEDRESTART_MODE=a",
	"LC_ALL=C",
}

// Name returns "apt".
func (a *Apt) Name() string { return "apt" }

// Supported checks that apt-get and dpkg-query are on PATH.
func (a *Apt) Supported() error {
	for _, b := range []string{"apt-get", "dpkg-query"} {
		if _, err := exec.LookPath(b); err != nil {
			return errs.E(errs.Unsupported, "apt: %s not found on this host", b)
		}
	}
	return nil
}

// ValidatePackage accepts Debian package names and versions only.
func (a *Apt) ValidatePackage(name, version string) error {
	if !debNameRE.MatchString(name) {
		return errs.E(errs.Invalid, "%q is not a Debian package name", name)
	}
	if version != "" && !debVersionRE.MatchString(version) {
		return errs.E(errs.Invalid, "%q is not a Debian version", version)
	}
	return nil
}

// dpkgQueryMarker starts every line of our dpkg-query format, so the parser
// can tell them from "no packages found" messages in the combined output.
const dpkgQueryMarker = "pw-installed"

// Installed asks dpkg-query for the installed versions.
func (a *Apt) Installed(ctx context.Context, names []string) (map[string]string, agentapi.Step, error) {
	argv := []string{"dpkg-query"}
	if a.adminDir != "" && a.adminDir != "/var/lib/dpkg" {
		argv = append(argv, "--admindir="+a.adminDir)
	}
	argv = append(argv, "-W", "-f="+dpkgQueryMarker+"\t${binary:Package}\t${Package}\t${Version}\t${db:Status-Status}\n", "--")
	argv = append(argv, names...)
	var out bytes.Buffer
	st := a.run.Run(ctx, Command{Name: "query installed versions", Argv: argv, Env: []string{"LC_ALL=C"}, Timeout: a.timeout.Duration, Stdout: &out, User: a.user})
	got, err := parseDpkgQuery(out.String(), names)
	// dpkg-query exits 1 when a name is unknown; that is an answer ("not
	// installed"), not a failure, as long as it printed nothing else wrong.
	if err == nil && (st.ExitCode == 0 || st.ExitCode == 1) {
		st.OK = true
		return got, st, nil
	}
	if err == nil {
		err = fmt.Errorf("dpkg-query exited %d", st.ExitCode)
	}
	st.OK = false
	return nil, st, fmt.Errorf("query installed versions: %w", err)
}

// parseDpkgQuery reads our marker lines; every name gets an entry, "" for
// packages that are absent or only have configuration files left.
func parseDpkgQuery(out string, names []string) (map[string]string, error) {
	got := make(map[string]string, len(names))
	for _, n := range names {
		got[n] = ""
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 || f[0] != dpkgQueryMarker {
			continue
		}
		qualified, name, version, status := f[1], f[2], f[3], f[4]
		if status != "installed" {
			continue
		}
		for _, key := range []string{qualified, name} {
			if _, asked := got[key]; asked && got[key] == "" {
				got[key] = version
			}
		}
	}
	return got, sc.Err()
}

func (a *Apt) aptGet(args ...string) []string {
	argv := append([]string{}, a.escalate...)
	argv = append(argv, "apt-get")
	argv = append(argv, a.opts...)
	return append(argv, args...)
}

// Refresh runs apt-get update.
func (a *Apt) Refresh(ctx context.Context) agentapi.Step {
	return a.run.Run(ctx, Command{Name: "refresh package lists", Argv: a.aptGet("-q", "update"), Env: aptEnv, Timeout: a.timeout.Duration})
}

// Apply installs name=version for each package (downgrades allowed, for
// rollback) and removes packages whose version is empty, in one apt-get
// transaction. Configuration files keep the administrator's version. A
// lock taken between the pre-check and now (a timer-started apt run) is
// waited for briefly rather than failing the job.
func (a *Apt) Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step {
	args := []string{"-q", "-y", "--allow-downgrades", "-o", "DPkg::Lock::Timeout=120",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
		"install", "--"}
	for _, p := range want {
		if p.TargetVersion == "" {
			args = append(args, p.Name+"-") // apt-get install's "remove" suffix
		} else {
			args = append(args, p.Name+"="+p.TargetVersion)
		}
	}
	return a.run.Run(ctx, Command{Name: "install", Argv: a.aptGet(args...), Env: aptEnv, Timeout: a.timeout.Duration})
}

// LockHolder probes dpkg's locks with fcntl F_GETLK, which reports a
// conflicting lock without taking one (so the probe cannot itself block
// an unattended-upgrades run that starts at the same moment).
func (a *Apt) LockHolder() (bool, string, error) {
	for _, f := range a.lockFiles {
		held, detail, err := probeLock(f)
		if err != nil {
			return false, "", fmt.Errorf("probe %s: %w", f, err)
		}
		if held {
			return true, f + " is locked by " + detail, nil
		}
	}
	return false, "", nil
}
