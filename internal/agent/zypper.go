package agent

import (
	"context"
	"slices"

	"github.com/patchward/patchward/internal/agentapi"
)

// Zypper drives zypper (SLES, openSUSE) and reads versions with rpm.
//
// A change is one zypper transaction: `install --oldpackage` sets each
// package to its exact version (up or down), and a "!name" argument in the
// same command removes a package, so a rollback that downgrades one
// package and removes another is atomic. --name keeps zypper from falling
// back to any package that merely *provides* "name = version".
type Zypper struct{ cliManager }

// zypperLockFiles are libzypp's pid lock and rpm's transaction locks.
var zypperLockFiles = append([]string{"/run/zypp.pid"}, rpmLockFiles...)

// NewZypper builds the zypper manager from the agent's configuration.
func NewZypper(cfg Config, run Runner) *Zypper {
	return &Zypper{newCLIManager(cfg.Zypper, cfg, run, zypperLockFiles)}
}

// Name returns "zypper".
func (z *Zypper) Name() string { return "zypper" }

// Supported checks that zypper and rpm are on PATH.
func (z *Zypper) Supported() error { return lookPaths("zypper", "zypper", "rpm") }

// ValidatePackage accepts RPM names and [epoch:]version-release only; the
// name rules also keep zypper's "!", "~" and "-" removal prefixes, its
// "kind:" prefixes and local .rpm paths out.
func (z *Zypper) ValidatePackage(name, version string) error {
	return validateRPMPackage("zypper", name, version)
}

// Installed asks rpm for the installed versions.
func (z *Zypper) Installed(ctx context.Context, names []string) (map[string]string, agentapi.Step, error) {
	return rpmInstalled(ctx, z.run, z.root, z.user, z.timeout, names)
}

func (z *Zypper) zypper(args ...string) []string {
	global := []string{"--non-interactive"}
	if z.root != "" {
		global = append(global, "--root", z.root)
	}
	return z.command("zypper", global, args...)
}

// zypperExitOK lists zypper's exit codes that mean the command did its
// work: 100–103 are informational (updates or patches pending, a reboot or
// a package-manager restart needed) and 106 says some repository could
// not be refreshed while the others were used, as apt-get update's
// warnings do. Verification after the change decides the rest. 104
// (version not found), 105 (interrupted) and 107 (an RPM scriptlet
// failed) are failures.
var zypperExitOK = []int{0, 100, 101, 102, 103, 106}

func (z *Zypper) runZypper(ctx context.Context, name string, argv []string) agentapi.Step {
	st := z.run.Run(ctx, Command{Name: name, Argv: argv, Env: rpmEnv, Timeout: z.timeout})
	if !st.OK && st.ExitCode > 0 && slices.Contains(zypperExitOK, st.ExitCode) {
		st.OK = true
	}
	return st
}

// Refresh runs zypper refresh.
func (z *Zypper) Refresh(ctx context.Context) agentapi.Step {
	return z.runZypper(ctx, "refresh package lists", z.zypper("refresh"))
}

// Apply sets every package to its version, or removes it when the version
// is empty, in one zypper transaction.
func (z *Zypper) Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step {
	args := []string{"install", "--name", "--oldpackage", "--"}
	for _, p := range want {
		if p.TargetVersion == "" {
			args = append(args, "!"+p.Name)
		} else {
			args = append(args, p.Name+"="+p.TargetVersion)
		}
	}
	return z.runZypper(ctx, "install", z.zypper(args...))
}
