package agent

import (
	"context"
	"regexp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// PackageManager is the seam between job execution and an operating
// system's package manager: apt, dnf, zypper, apk and winget implement it.
// Anything else (macOS softwareupdate, Windows Update KBs, unknown
// systems) gets an explicit Unsupported stub that refuses, because
// reporting success for a change that was never made would be worse than
// refusing.
type PackageManager interface {
	// Name is the manager's name as shown in steps and messages.
	Name() string
	// Supported returns nil when this manager can change packages on this
	// host, else an errs.Unsupported error whose message says why.
	Supported() error
	// ValidatePackage rejects names and versions the manager would not
	// accept, and anything that could be read as a command-line option:
	// both come from the server and are untrusted.
	ValidatePackage(name, version string) error
	// Installed returns the installed version of each name ("" when the
	// package is not installed) and the step that found out.
	Installed(ctx context.Context, names []string) (map[string]string, agentapi.Step, error)
	// Refresh updates the package metadata (apt-get update).
	Refresh(ctx context.Context) agentapi.Step
	// Apply sets each package to its version in one transaction; an empty
	// version removes the package (rollback of a newly installed one).
	Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step
	// LockHolder reports whether another process holds the package
	// database lock, without taking it.
	LockHolder() (held bool, detail string, err error)
}

// Unsupported is a package manager this agent cannot drive yet: every
// operation refuses with a message naming it.
type Unsupported struct {
	Manager string
	Reason  string
}

// Name returns the manager's name.
func (u Unsupported) Name() string { return u.Manager }

// Supported always refuses.
func (u Unsupported) Supported() error {
	reason := u.Reason
	if reason == "" {
		reason = "not supported on this OS yet"
	}
	return errs.E(errs.Unsupported, "%s: %s", u.Manager, reason)
}

// ValidatePackage refuses.
func (u Unsupported) ValidatePackage(string, string) error { return u.Supported() }

// Installed refuses.
func (u Unsupported) Installed(context.Context, []string) (map[string]string, agentapi.Step, error) {
	return nil, agentapi.Step{Name: "query installed versions", ExitCode: -1, Output: u.Supported().Error()}, u.Supported()
}

// Refresh refuses.
func (u Unsupported) Refresh(context.Context) agentapi.Step {
	return agentapi.Step{Name: "refresh package lists", ExitCode: -1, Output: u.Supported().Error()}
}

// Apply refuses.
func (u Unsupported) Apply(context.Context, []agentapi.JobPackage) agentapi.Step {
	return agentapi.Step{Name: "install", ExitCode: -1, Output: u.Supported().Error()}
}

// LockHolder refuses.
func (u Unsupported) LockHolder() (bool, string, error) { return false, "", u.Supported() }

// ManagerFor chooses the package manager for an os-release ID (and its
// ID_LIKE list, in order, so a derivative that names its parent is
// covered), or a GOOS name for Windows and macOS. A chosen manager whose
// tools are missing (dnf on a yum-only CentOS 7 or Amazon Linux 2) says
// so through Supported, and its jobs are refused.
func ManagerFor(osID string, idLike []string, cfg Config, run Runner) PackageManager {
	ids := append([]string{osID}, idLike...)
	for _, id := range ids {
		switch id {
		case "debian", "ubuntu", "raspbian", "linuxmint":
			return NewApt(cfg, run)
		case "rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn":
			return NewDnf(cfg, run)
		case "suse", "opensuse", "sles", "sled", "opensuse-leap", "opensuse-tumbleweed":
			return NewZypper(cfg, run)
		case "alpine":
			return NewApk(cfg, run)
		case "windows":
			return NewWinget(cfg, run)
		case "macos", "darwin":
			return Unsupported{Manager: "softwareupdate"}
		}
	}
	return Unsupported{Manager: "unknown", Reason: "no package manager known for OS " + osID}
}

// debNameRE and debVersionRE follow Debian policy §5.6.1 and §5.6.12, with
// an optional :arch qualifier. Neither may start with "-", so neither can be
// taken for an apt-get option.
var (
	debNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,127}(:[a-z0-9-]{1,32})?$`)
	debVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]{0,127}$`)
)
