package agent

import (
	"context"
	"os/exec"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// cliManager is what dnf, zypper and apk share: the tool's extra options,
// the escalation prefix, the lock files, the root it manages, and as whom
// and for how long commands run.
type cliManager struct {
	opts      []string
	escalate  []string
	lockFiles []string
	root      string
	timeout   time.Duration
	user      string
	run       Runner
}

func newCLIManager(mc ManagerConfig, cfg Config, run Runner, defaultLocks []string) cliManager {
	locks := mc.LockFiles
	if len(locks) == 0 {
		locks = underRoot(mc.Root, defaultLocks)
	}
	root := mc.Root
	if root == "/" {
		root = ""
	}
	return cliManager{opts: mc.Options, escalate: mc.Escalate, lockFiles: locks, root: root,
		timeout: cfg.CommandTimeout.Duration, user: cfg.UnprivilegedUser, run: run}
}

// command builds escalate + tool + global + options + args.
func (m cliManager) command(tool string, global []string, args ...string) []string {
	argv := append([]string{}, m.escalate...)
	argv = append(argv, tool)
	argv = append(argv, global...)
	argv = append(argv, m.opts...)
	return append(argv, args...)
}

// LockHolder probes the manager's lock files without taking them.
func (m cliManager) LockHolder() (bool, string, error) { return lockHolder(m.lockFiles) }

// lookPaths reports the first of bins not on PATH.
func lookPaths(manager string, bins ...string) error {
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return errs.E(errs.Unsupported, "%s: %s not found on this host", manager, b)
		}
	}
	return nil
}

// Dnf drives dnf (RHEL 8 and later, Rocky, Alma, CentOS Stream, Oracle
// Linux, Fedora, Amazon Linux 2023) and reads versions with rpm.
//
// A change is one `dnf install` transaction for every package with a
// version: dnf 4 installs an exact NEVRA that is older than the installed
// one as a downgrade within the same transaction, so upgrades and the
// downgrades of a rollback need no separate `dnf downgrade`. Packages to
// remove (the rollback of a package the job newly installed) follow in one
// `dnf remove` transaction, run only when the install succeeded.
//
// dnf 4 can put installs and removals into one transaction only through
// `dnf shell`, and `dnf shell` exits 0 when a command in its script fails
// and still runs the rest: a version missing from the mirror would let the
// removal go ahead alone, silently. Two strict transactions, each of which
// changes nothing when it fails, are the safer order.
type Dnf struct{ cliManager }

// dnfLockFiles are dnf 4's rpmdb pid lock and rpm's transaction locks.
var dnfLockFiles = append([]string{"/var/lib/dnf/rpmdb_lock.pid"}, rpmLockFiles...)

// NewDnf builds the dnf manager from the agent's configuration.
func NewDnf(cfg Config, run Runner) *Dnf {
	return &Dnf{newCLIManager(cfg.Dnf, cfg, run, dnfLockFiles)}
}

// rpmEnv keeps dnf, zypper and rpm messages in English, which the "is not
// installed" parser and the people reading the steps both expect.
var rpmEnv = []string{"LC_ALL=C"}

// Name returns "dnf".
func (d *Dnf) Name() string { return "dnf" }

// Supported checks that dnf and rpm are on PATH.
func (d *Dnf) Supported() error { return lookPaths("dnf", "dnf", "rpm") }

// ValidatePackage accepts RPM names and [epoch:]version-release only.
func (d *Dnf) ValidatePackage(name, version string) error {
	return validateRPMPackage("dnf", name, version)
}

// Installed asks rpm for the installed versions.
func (d *Dnf) Installed(ctx context.Context, names []string) (map[string]string, agentapi.Step, error) {
	return rpmInstalled(ctx, d.run, d.root, d.user, d.timeout, names)
}

func (d *Dnf) dnf(args ...string) []string {
	global := []string{"--assumeyes"}
	if d.root != "" {
		global = append(global, "--installroot="+d.root)
	}
	return d.command("dnf", global, args...)
}

// Refresh runs dnf makecache with the cached metadata marked expired, so
// an erratum published since the last timer run is seen.
func (d *Dnf) Refresh(ctx context.Context) agentapi.Step {
	return d.run.Run(ctx, Command{Name: "refresh package lists", Argv: d.dnf("--refresh", "makecache"), Env: rpmEnv, Timeout: d.timeout})
}

// Apply installs name-[epoch:]version-release for each versioned package
// in one dnf transaction, then removes the packages whose version is
// empty in a second one.
func (d *Dnf) Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step {
	var specs, remove []string
	for _, p := range want {
		if p.TargetVersion == "" {
			remove = append(remove, p.Name)
		} else {
			specs = append(specs, p.Name+"-"+p.TargetVersion)
		}
	}
	var steps []agentapi.Step
	if len(specs) > 0 {
		st := d.run.Run(ctx, Command{Name: "install", Argv: d.dnf(append([]string{"install", "--"}, specs...)...), Env: rpmEnv, Timeout: d.timeout})
		steps = append(steps, st)
		if !st.OK {
			return joinSteps("install", steps...)
		}
	}
	if len(remove) > 0 {
		steps = append(steps, d.run.Run(ctx, Command{Name: "install", Argv: d.dnf(append([]string{"remove", "--"}, remove...)...), Env: rpmEnv, Timeout: d.timeout}))
	}
	return joinSteps("install", steps...)
}
