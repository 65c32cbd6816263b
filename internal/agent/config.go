// Package agent is the endpoint side of Patchward: it enrolls with the
// server, reports what is installed, pulls patch jobs and runs them through
// the operating system's own package manager with pre-checks, verification
// and rollback, logging every step.
//
// The agent treats the server as a source of *requests*, not commands: a job
// can only name packages, versions and checks, and a check can only name a
// hook, health command or service that the local administrator configured.
// The maintenance window is enforced here as well as on the server, so a
// compromised or misconfigured server cannot patch a clinical system in the
// middle of a clinic day.
package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// DefaultConfigPath is where packages install the agent's configuration.
const DefaultConfigPath = "/etc/patchward/agent.yaml"

// DefaultStateDir holds the key, identity and job journal.
const DefaultStateDir = "/var/lib/patchward-agent"

// Config is the agent's local configuration. It is the only source of
// commands the agent will ever run besides the package manager: the server
// refers to hooks and health commands by name.
type Config struct {
	// Server is the base URL of the Patchward server; enrollment records it
	// in the state directory, so it is optional here afterwards.
	Server string `yaml:"server"`
	// CAFile is a PEM bundle of the CAs that may sign the server's TLS
	// certificate (a clinic's internal CA); empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// StateDir holds the private key, the agent identity and the job
	// journal.
	StateDir string `yaml:"state_dir"`
	// CheckInInterval is used until the server names one.
	CheckInInterval Duration `yaml:"checkin_interval"`
	// Window is the fallback maintenance window, used when the server has
	// not (yet) sent one. Without either, non-emergency jobs are refused.
	Window *WindowConfig `yaml:"window"`
	// Hooks are named commands (argv, no shell) a job may require as
	// backup/snapshot pre-checks, or that rollback uses for recovery.
	Hooks map[string][]string `yaml:"hooks"`
	// RequireBackupHook names a hook that must succeed before every install
	// or rollback job, whatever the job asks for.
	RequireBackupHook string `yaml:"require_backup_hook"`
	// RecoveryHook names a hook run when downgrading to the recorded
	// versions fails (e.g. restore a VM snapshot).
	RecoveryHook string `yaml:"recovery_hook"`
	// UnprivilegedUser runs health commands, service checks and read-only
	// package queries as this user when the agent runs as root (the
	// package manager, backup/recovery hooks and reboot keep root).
	// Empty runs everything as the agent's user.
	UnprivilegedUser string `yaml:"unprivileged_user"`
	// Health lists checks run after every install and rollback.
	Health Health `yaml:"health"`
	// MinFreeMiB is the free space every install requires on / and /var.
	MinFreeMiB int64 `yaml:"min_free_mib"`
	// RebootCommand restarts the host when a job allows it.
	RebootCommand []string `yaml:"reboot_command"`
	// CommandTimeout bounds each package-manager command and hook.
	CommandTimeout Duration `yaml:"command_timeout"`
	// PendingInterval is how often the (slow) pending-updates query runs.
	PendingInterval Duration `yaml:"pending_interval"`
	// Apt tunes the apt package manager.
	Apt AptConfig `yaml:"apt"`
	// Dnf, Zypper and Apk tune the package managers of RHEL-like, SUSE
	// and Alpine hosts; only the one ManagerFor picks is used.
	Dnf    ManagerConfig `yaml:"dnf"`
	Zypper ManagerConfig `yaml:"zypper"`
	Apk    ManagerConfig `yaml:"apk"`
	// Winget tunes the Windows Package Manager.
	Winget WingetConfig `yaml:"winget"`
}

// Health names the post-checks the administrator wants after every change.
type Health struct {
	// Commands are named health commands (argv); a job may also name them
	// as "command" checks.
	Commands map[string][]string `yaml:"commands"`
	// Always lists command names run after every install, even when the
	// job does not ask.
	Always []string `yaml:"always"`
	// Services must be active (systemctl is-active) before and after.
	Services []string `yaml:"services"`
}

// AptConfig tunes apt-get invocations.
type AptConfig struct {
	// Options are extra apt-get arguments, e.g. "-o", "Dir::Etc::SourceList=…".
	Options []string `yaml:"options"`
	// UpdateBeforeInstall runs apt-get update before installing, so the
	// target version is known; on by default.
	UpdateBeforeInstall *bool `yaml:"update_before_install"`
	// Escalate prefixes package-manager commands, e.g. ["sudo", "-n"] when
	// the agent runs as an unprivileged user.
	Escalate []string `yaml:"escalate"`
	// LockFiles are probed for a holder before installing; defaults to
	// dpkg's lock-frontend and lock.
	LockFiles []string `yaml:"lock_files"`
	// AdminDir is dpkg's database directory, for the inventory.
	AdminDir string `yaml:"admin_dir"`
}

// ManagerConfig tunes dnf, zypper or apk invocations.
type ManagerConfig struct {
	// Options are extra global arguments placed before the subcommand,
	// e.g. dnf's "--setopt=install_weak_deps=False".
	Options []string `yaml:"options"`
	// Escalate prefixes commands that change packages, e.g. ["sudo", "-n"]
	// when the agent runs as an unprivileged user.
	Escalate []string `yaml:"escalate"`
	// LockFiles replace the manager's default lock files, probed for a
	// holder before a change.
	LockFiles []string `yaml:"lock_files"`
	// Root points the manager at another root file system (dnf
	// --installroot, zypper/apk/rpm --root). It exists for tests, which
	// must never touch the host's packages; it is not read from the
	// config file, so a production agent always manages "/".
	Root string `yaml:"-"`
}

// WingetConfig tunes the Windows Package Manager.
type WingetConfig struct {
	// Path is winget.exe; empty finds the App Installer's copy under
	// Program Files\WindowsApps, which a LocalSystem service must call
	// directly (it has no per-user app execution alias on PATH).
	Path string `yaml:"path"`
	// Source restricts installs to one configured source (e.g. "winget"
	// or a clinic's private REST source).
	Source string `yaml:"source"`
}

// WindowConfig is a weekly maintenance window as written in the config
// file; it has the same meaning as agentapi.Window.
type WindowConfig struct {
	Name     string       `yaml:"name"`
	TimeZone string       `yaml:"time_zone"`
	Slots    []SlotConfig `yaml:"slots"`
}

// SlotConfig is one weekly opening: day 0=Sunday, "HH:MM" local times.
type SlotConfig struct {
	Day   int    `yaml:"day"`
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// Wire converts the window to the protocol's form.
func (w WindowConfig) Wire() agentapi.Window {
	out := agentapi.Window{Name: w.Name, TimeZone: w.TimeZone}
	for _, s := range w.Slots {
		out.Slots = append(out.Slots, agentapi.Slot{Day: s.Day, Start: s.Start, End: s.End})
	}
	return out
}

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses "90s", "5m", "1h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Defaults returns the configuration used for any field the file leaves out.
func Defaults() Config {
	return Config{
		StateDir:        DefaultStateDir,
		CheckInInterval: Duration{5 * time.Minute},
		MinFreeMiB:      500,
		RebootCommand:   []string{"systemctl", "reboot"},
		CommandTimeout:  Duration{30 * time.Minute},
		PendingInterval: Duration{time.Hour},
		Apt: AptConfig{
			LockFiles: []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"},
			AdminDir:  "/var/lib/dpkg",
		},
	}
}

// LoadConfig reads a YAML configuration file over Defaults. A missing file
// is not an error when allowMissing is set (flags may carry everything).
func LoadConfig(path string, allowMissing bool) (Config, error) {
	cfg := Defaults()
	b, err := os.ReadFile(path)
	if err != nil {
		if allowMissing && os.IsNotExist(err) {
			return cfg, cfg.Validate()
		}
		return cfg, fmt.Errorf("read agent config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes YAML over Defaults and validates the result. Unknown
// keys are errors: a misspelt hook name must not silently disable a
// backup pre-check.
func ParseConfig(b []byte) (Config, error) {
	cfg := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, errs.Wrap(errs.Invalid, err, "agent config")
	}
	return cfg, cfg.Validate()
}

// hookNameRE is what a hook, health command or service name may look like.
var hookNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9@._:-]{0,127}$`)

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var v errs.Validation
	if c.StateDir == "" {
		v.Add("state_dir", "required")
	}
	if c.CheckInInterval.Duration < time.Second {
		v.Add("checkin_interval", "must be at least 1s")
	}
	if c.Window != nil {
		if _, err := ParseWindow(c.Window.Wire()); err != nil {
			v.Add("window", "%s", errs.Public(err))
		}
	}
	for name, argv := range c.Hooks {
		if !hookNameRE.MatchString(name) {
			v.Add("hooks."+name, "invalid name")
		}
		if len(argv) == 0 {
			v.Add("hooks."+name, "empty command")
		}
	}
	for name, argv := range c.Health.Commands {
		if !hookNameRE.MatchString(name) {
			v.Add("health.commands."+name, "invalid name")
		}
		if len(argv) == 0 {
			v.Add("health.commands."+name, "empty command")
		}
	}
	for _, name := range c.Health.Always {
		if _, ok := c.Health.Commands[name]; !ok {
			v.Add("health.always", "%q is not a configured health command", name)
		}
	}
	for _, s := range c.Health.Services {
		if !hookNameRE.MatchString(s) {
			v.Add("health.services", "invalid service name %q", s)
		}
	}
	if c.RequireBackupHook != "" {
		if _, ok := c.Hooks[c.RequireBackupHook]; !ok {
			v.Add("require_backup_hook", "%q is not a configured hook", c.RequireBackupHook)
		}
	}
	if c.RecoveryHook != "" {
		if _, ok := c.Hooks[c.RecoveryHook]; !ok {
			v.Add("recovery_hook", "%q is not a configured hook", c.RecoveryHook)
		}
	}
	for key, m := range map[string]ManagerConfig{"dnf": c.Dnf, "zypper": c.Zypper, "apk": c.Apk} {
		for _, f := range m.LockFiles {
			if !filepath.IsAbs(f) {
				v.Add(key+".lock_files", "%q is not an absolute path", f)
			}
		}
		if m.Root != "" && !filepath.IsAbs(m.Root) {
			v.Add(key+".root", "%q is not an absolute path", m.Root)
		}
	}
	if c.Winget.Source != "" && !wingetSourceRE.MatchString(c.Winget.Source) {
		v.Add("winget.source", "%q is not a source name", c.Winget.Source)
	}
	if c.MinFreeMiB < 0 {
		v.Add("min_free_mib", "must not be negative")
	}
	return v.Err("agent config")
}

func (c Config) updateBeforeInstall() bool {
	return c.Apt.UpdateBeforeInstall == nil || *c.Apt.UpdateBeforeInstall
}
