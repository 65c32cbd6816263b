package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/installed"
)

// Apk drives apk-tools on Alpine and reads versions from apk's installed
// database with the parser the inventory and the server use.
//
// `apk add name=version` is apk's only way to ask for an exact version,
// and apk records it in /etc/apk/world as a constraint: the package then
// stays at that version through later `apk upgrade` runs until the next
// job (or an administrator's `apk add name`) changes it. For a rollback
// that is what one wants; after an upgrade it means the host's own
// upgrades no longer move that package, which docs/agent.md tells
// administrators. Packages to remove follow in one `apk del`, run only
// when the add succeeded (apk cannot add and delete in one command
// without also writing a "!name" conflict into world).
type Apk struct {
	cliManager
	dbFile string
}

// apkLockFiles are apk-tools 2's lock and apk-tools 3's; both are taken
// with flock.
var apkLockFiles = []string{"/lib/apk/db/lock", "/run/apk/db.lock"}

// apkInstalledDB is apk's installed-package database, relative to root.
const apkInstalledDB = "/lib/apk/db/installed"

// NewApk builds the apk manager from the agent's configuration.
func NewApk(cfg Config, run Runner) *Apk {
	m := newCLIManager(cfg.Apk, cfg, run, apkLockFiles)
	return &Apk{cliManager: m, dbFile: underRoot(m.root, []string{apkInstalledDB})[0]}
}

// Alpine package names, and versions as apk-tools parses them
// (digits.digits[letter][_suffix[n]]…-rN). The release -rN is required
// because the installed database always records it, and verification
// compares strings. Names may not start with "-" (an option) or contain
// "=", "<", ">", "~" (a constraint), ":" (a virtual "so:" or "cmd:"
// provider) or "/" (a file); "!" would ask apk for a conflict.
var (
	apkNameRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$`)
	apkVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?-r[0-9]+$`)
)

// Name returns "apk".
func (a *Apk) Name() string { return "apk" }

// Supported checks that apk is on PATH.
func (a *Apk) Supported() error { return lookPaths("apk", "apk") }

// ValidatePackage accepts Alpine package names and full versions only.
func (a *Apk) ValidatePackage(name, version string) error {
	if !apkNameRE.MatchString(name) || strings.HasSuffix(strings.ToLower(name), ".apk") {
		return errs.E(errs.Invalid, "apk: %q is not an Alpine package name", name)
	}
	if version != "" && (len(version) > 128 || !apkVersionRE.MatchString(version)) {
		return errs.E(errs.Invalid, "apk: %q is not an Alpine version (version-rN)", version)
	}
	return nil
}

// Installed reads apk's installed database directly: it is the file apk
// itself reads, and the agent may read it without running anything.
func (a *Apk) Installed(_ context.Context, names []string) (map[string]string, agentapi.Step, error) {
	start := time.Now()
	st := agentapi.Step{Name: "query installed versions", Started: start.UTC()}
	fail := func(err error) (map[string]string, agentapi.Step, error) {
		st.Ended, st.ExitCode, st.Output = time.Now().UTC(), 1, err.Error()
		return nil, st, fmt.Errorf("query installed versions: %w", err)
	}
	f, err := os.Open(a.dbFile)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	pkgs, err := installed.ParseApkInstalled(f)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", filepath.Base(a.dbFile), err))
	}
	got := make(map[string]string, len(names))
	for _, n := range names {
		got[n] = ""
	}
	for _, p := range pkgs {
		if _, asked := got[p.Name]; asked {
			got[p.Name] = p.Version
		}
	}
	st.Ended, st.OK = time.Now().UTC(), true
	st.Output = fmt.Sprintf("read %s: %d packages installed; %s", a.dbFile, len(pkgs), describeVersions(names, got))
	if len(st.Output) > MaxStepOutput {
		st.Output = st.Output[:MaxStepOutput-4] + " ..."
	}
	return got, st, nil
}

// describeVersions lists name version pairs for a step's output.
func describeVersions(names []string, got map[string]string) string {
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, n+" "+orNone(got[n]))
	}
	return strings.Join(parts, ", ")
}

// apk waits this long for another apk to release the database lock
// (a lock taken between the pre-check and now), as apt waits with
// DPkg::Lock::Timeout.
const apkLockWait = "120"

func (a *Apk) apk(args ...string) []string {
	global := []string{"--no-progress", "--wait", apkLockWait}
	if a.root != "" {
		global = append(global, "--root", a.root)
	}
	return a.command("apk", global, args...)
}

// Refresh runs apk update.
func (a *Apk) Refresh(ctx context.Context) agentapi.Step {
	return a.run.Run(ctx, Command{Name: "refresh package lists", Argv: a.apk("update"), Timeout: a.timeout})
}

// Apply runs one `apk add name=version …` for the versioned packages,
// then one `apk del` for those whose version is empty.
func (a *Apk) Apply(ctx context.Context, want []agentapi.JobPackage) agentapi.Step {
	var add, del []string
	for _, p := range want {
		if p.TargetVersion == "" {
			del = append(del, p.Name)
		} else {
			add = append(add, p.Name+"="+p.TargetVersion)
		}
	}
	var steps []agentapi.Step
	if len(add) > 0 {
		st := a.run.Run(ctx, Command{Name: "install", Argv: a.apk(append([]string{"add", "--"}, add...)...), Timeout: a.timeout})
		steps = append(steps, st)
		if !st.OK {
			return joinSteps("install", steps...)
		}
	}
	if len(del) > 0 {
		steps = append(steps, a.run.Run(ctx, Command{Name: "install", Argv: a.apk(append([]string{"del", "--"}, del...)...), Timeout: a.timeout}))
	}
	return joinSteps("install", steps...)
}
