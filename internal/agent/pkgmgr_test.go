package agent

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/agentapi"
	"github.com/patchward/patchward/internal/errs"
)

// scriptRunner is a fake Runner: answer decides each command's step and
// standard output (captured real outputs, in these tests); it records
// every argv.
type scriptRunner struct {
	mu     sync.Mutex
	ran    [][]string
	answer func(argv []string) (exit int, out string)
}

func (r *scriptRunner) Run(_ context.Context, c Command) agentapi.Step {
	r.mu.Lock()
	r.ran = append(r.ran, c.Argv)
	r.mu.Unlock()
	exit, out := 0, ""
	if r.answer != nil {
		exit, out = r.answer(c.Argv)
	}
	if c.Stdout != nil {
		c.Stdout.WriteString(out)
	}
	return agentapi.Step{Name: c.Name, Command: c.Argv, OK: exit == 0, ExitCode: exit, Output: out}
}

func (r *scriptRunner) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.ran {
		out = append(out, strings.Join(a, " "))
	}
	return out
}

func testdataString(t *testing.T, name string) string {
	t.Helper()
	return string(readTestdata(t, name))
}

func TestManagerFor(t *testing.T) {
	for _, tt := range []struct {
		id     string
		idLike []string
		want   string
	}{
		{"debian", nil, "apt"},
		{"ubuntu", []string{"debian"}, "apt"},
		{"rhel", []string{"fedora"}, "dnf"},
		{"rocky", []string{"rhel", "centos", "fedora"}, "dnf"},
		{"almalinux", []string{"rhel", "centos", "fedora"}, "dnf"},
		{"centos", []string{"rhel", "fedora"}, "dnf"},
		{"fedora", nil, "dnf"},
		{"ol", []string{"fedora"}, "dnf"},
		{"sles", []string{"suse"}, "zypper"},
		{"opensuse-leap", []string{"suse", "opensuse"}, "zypper"},
		{"opensuse-tumbleweed", []string{"opensuse", "suse"}, "zypper"},
		{"alpine", nil, "apk"},
		{"windows", nil, "winget"},
		{"macos", nil, "softwareupdate"},
		{"myclinic-linux", []string{"rhel"}, "dnf"}, // a derivative naming its parent
		{"arch", nil, "unknown"},
	} {
		if got := ManagerFor(tt.id, tt.idLike, Defaults(), &scriptRunner{}).Name(); got != tt.want {
			t.Errorf("ManagerFor(%q, %q) = %s; want %s", tt.id, tt.idLike, got, tt.want)
		}
	}
	if _, ok := ManagerFor("macos", nil, Defaults(), nil).(Unsupported); !ok {
		t.Error("macOS should stay an explicit Unsupported stub")
	}
}

// hostileNames must be refused by every manager: options, shell and glob
// syntax, removal and group prefixes, constraints, paths, URLs, control
// and non-ASCII characters.
var hostileNames = []string{
	"", "-X", "--allow-untrusted", "-oAPT::Update::Pre-Invoke::=id", "--installroot=/", "--root=/tmp/x",
	";rm -rf /", "foo;rm", "foo && id", "$(id)", "`id`", "foo|id", "foo bar", "foo\nbar", "foo\tbar",
	"*", "foo*", "fo?", "foo[1]", "@core", "@^minimal", "!foo", "~foo", "^foo", "(foo or bar)",
	"patch:SUSE-2024-1", "pattern:base", "so:libc.musl-x86_64.so.1", "cmd:sh", "http://evil.example/x.rpm",
	"./x.rpm", "/tmp/x.rpm", "foo=1.0", "foo>=1", "foo<2", "foo~1",
	"fóo", "ｆｏｏ", "foo\u200b", "\x00", strings.Repeat("a", 300),
}

func TestValidatePackageRefusesHostileNames(t *testing.T) {
	for _, pm := range []PackageManager{NewDnf(Defaults(), nil), NewZypper(Defaults(), nil), NewApk(Defaults(), nil), NewWinget(Defaults(), nil)} {
		for _, n := range hostileNames {
			if err := pm.ValidatePackage(n, ""); err == nil {
				t.Errorf("%s accepted name %q", pm.Name(), n)
			}
			if err := pm.ValidatePackage("openssl", n); err == nil && n != "" {
				t.Errorf("%s accepted version %q", pm.Name(), n)
			}
		}
	}
}

func TestValidatePackage(t *testing.T) {
	type c struct {
		name, version string
		ok            bool
	}
	for _, tt := range []struct {
		pm    PackageManager
		cases []c
	}{
		{NewDnf(Defaults(), nil), []c{
			{"openssl", "3.0.7-27.el9", true},
			{"openssl", "1:3.0.7-27.el9", true},
			{"python3.11", "3.11.7-1.el9_3", true},
			{"NetworkManager", "1:1.46.0-8.el9_4", true},
			{"389-ds-base", "2.4.5-5.el9_4", true},
			{"libstdc++", "11.4.1-3.el9", true},
			{"vim-enhanced", "2:9.0.2081-1.fc39", true},
			{"mesa", "24.1.0~rc1-1.fc40", true},
			{"golang", "1.22^git20240101-1", true},
			{"_private", "1.0-1", true},
			{"x.rpm", "", false}, // dnf would install a local file
			{"X.RPM", "", false},
			{"openssl", "3.0.7", false},          // no release: rpm never reports that
			{"openssl", "3.0.7-27-el9", false},   // two dashes
			{"openssl", ":3.0.7-1", false},       // empty epoch
			{"openssl", "x:3.0.7-1", false},      // epoch not a number
			{"openssl", "-3.0.7-1", false},       // option
			{"openssl", "3.0.7-1.el9;id", false}, // shell
			{"openssl", "3.0.7-*", false},        // glob
		}},
		{NewZypper(Defaults(), nil), []c{
			{"libopenssl3", "3.1.4-150600.5.7.1", true},
			{"kernel-default", "6.4.0-150600.23.7.3", true},
			{"patterns-base-base", "20200124-10.5.1", true},
			{"libopenssl3", "3.1.4", false},
			{"evil.rpm", "", false}, // zypper would install a local file
		}},
		{NewApk(Defaults(), nil), []c{
			{"openssl", "3.1.4-r5", true},
			{"busybox", "1.36.1-r15", true},
			{"ca-certificates-bundle", "20230506-r0", true},
			{"py3-pip", "23.1.2-r0", true},
			{"libc++", "17.0.5-r0", true},
			{"git", "2.45.2_git20240601-r1", true},
			{"linux-lts", "6.6.31_rc1-r0", true},
			{"tzdata", "2024a-r0", true},
			{"evil.apk", "", false},     // apk would add a local file
			{"openssl", "3.1.4", false}, // no -rN
			{"openssl", "3.1.4-r", false},
			{"openssl", "v3.1.4-r0", false},
			{"openssl", "3.1.4-r0 ", false},
		}},
		{NewWinget(Defaults(), nil), []c{
			{"Mozilla.Firefox", "128.0.3", true},
			{"Microsoft.VCRedist.2015+.x64", "14.40.33810.0", true},
			{"Git.Git", "2.45.2", true},
			{"Notepad++.Notepad++", "8.6.9", true},
			{"7zip.7zip", "24.07", true},
			{"Microsoft.DotNet.DesktopRuntime.8", "8.0.7", true},
			{"Firefox", "", false},                   // no publisher segment
			{"Mozilla..Firefox", "", false},          // empty segment
			{"Mozilla.Firefox", "128.0 beta", false}, // space
			{"ARP\\Machine\\X64\\{3BA7CAA9}", "", false},
		}},
	} {
		for _, c := range tt.cases {
			err := tt.pm.ValidatePackage(c.name, c.version)
			if (err == nil) != c.ok {
				t.Errorf("%s.ValidatePackage(%q, %q) = %v; want ok=%v", tt.pm.Name(), c.name, c.version, err, c.ok)
			}
			if err != nil && errs.KindOf(err) != errs.Invalid {
				t.Errorf("%s.ValidatePackage(%q, %q) kind = %v; want Invalid", tt.pm.Name(), c.name, c.version, errs.KindOf(err))
			}
		}
	}
}

// TestWingetRefusesWindowsUpdateWithReason: a KB article is not a winget
// package; the refusal says why, so the operator is not left guessing.
func TestWingetRefusesWindowsUpdateWithReason(t *testing.T) {
	err := NewWinget(Defaults(), nil).ValidatePackage("KB5034441", "")
	if errs.KindOf(err) != errs.Unsupported || !strings.Contains(errs.Public(err), "Windows Update (KB) installs are not supported") {
		t.Fatalf("KB job: %v (kind %v); want Unsupported with the reason", err, errs.KindOf(err))
	}
	f := newExec(t, insideNY)
	f.e.PM = NewWinget(Defaults(), &scriptRunner{})
	job := agentapi.Job{ID: "kb", Kind: agentapi.JobInstall, Emergency: true, Packages: []agentapi.JobPackage{{Name: "KB5034441", TargetVersion: "1"}}}
	e, _ := f.e.Execute(context.Background(), job)
	if e.Result.Status != agentapi.StatusRefused || !strings.Contains(e.Result.Reason, "Windows Update") {
		t.Fatalf("KB job: %s (%s); want refused with the Windows Update reason", e.Result.Status, e.Result.Reason)
	}
}

// FuzzValidatePackage: whatever a manager accepts can be neither an
// option nor anything a shell, a glob or a package manager's spec syntax
// would expand.
func FuzzValidatePackage(f *testing.F) {
	for _, n := range hostileNames {
		f.Add(n, "1.0-1")
	}
	f.Add("openssl", "1:3.0.7-27.el9")
	f.Add("busybox", "1.36.1-r15")
	f.Add("Mozilla.Firefox", "128.0.3")
	pms := []PackageManager{NewApt(Defaults(), nil), NewDnf(Defaults(), nil), NewZypper(Defaults(), nil), NewApk(Defaults(), nil), NewWinget(Defaults(), nil)}
	f.Fuzz(func(t *testing.T, name, version string) {
		for _, pm := range pms {
			if pm.ValidatePackage(name, version) != nil {
				continue
			}
			for _, s := range []string{name, version} {
				if strings.HasPrefix(s, "-") || !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n\x00;|&$`'\"\\<>*?[]{}()!@/") {
					t.Fatalf("%s accepted %q %q", pm.Name(), name, version)
				}
				for _, r := range s {
					if r > 0x7e || r < 0x21 {
						t.Fatalf("%s accepted non-ASCII or control %q", pm.Name(), s)
					}
				}
			}
			if name == "" || strings.HasSuffix(strings.ToLower(name), ".rpm") && pm.Name() != "apt" && pm.Name() != "winget" {
				t.Fatalf("%s accepted name %q", pm.Name(), name)
			}
		}
	})
}

func TestParseRPMQueryCaptured(t *testing.T) {
	out := testdataString(t, "rpm-query.rpm418.txt")
	names := []string{"patchward-e2e-hello", "patchward-e2e-other", "patchward-e2e-epoch", "patchward-e2e-absent"}
	got, err := parseRPMQuery(out, names)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"patchward-e2e-hello":  "1.1-1", // two installed, like kernels: the highest
		"patchward-e2e-other":  "1.0-1",
		"patchward-e2e-epoch":  "2:3.0.7-27.el9",
		"patchward-e2e-absent": "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseRPMQuery (-want +got):\n%s", diff)
	}
	// A name rpm said nothing about is an error, not "not installed":
	// the database may have failed to open.
	if _, err := parseRPMQuery(out, append(names, "patchward-e2e-unanswered")); err == nil {
		t.Error("unanswered name accepted")
	}
	if _, err := parseRPMQuery("error: cannot open Packages database in /var/lib/rpm\n", []string{"openssl"}); err == nil {
		t.Error("rpm database error read as not installed")
	}
}

func FuzzParseRPMQuery(f *testing.F) {
	f.Add(string(readTestdata(f, "rpm-query.rpm418.txt")), "patchward-e2e-hello")
	f.Add("pw-installed\tx\t1:2-3\tnoarch\npackage y is not installed\n", "x")
	f.Fuzz(func(t *testing.T, out, name string) {
		got, err := parseRPMQuery(out, []string{name})
		if err != nil {
			return
		}
		if len(got) != 1 {
			t.Fatalf("parseRPMQuery returned %d names for one asked", len(got))
		}
	})
}

// rpmAnswer answers rpm queries with the captured output and every other
// command with exit (and out).
func rpmAnswer(exit int, out string) func([]string) (int, string) {
	return func(argv []string) (int, string) {
		if argv[0] == "rpm" {
			return 1, "pw-installed\topenssl\t1:3.0.7-27.el9\tx86_64\npackage newpkg is not installed\n"
		}
		return exit, out
	}
}

func TestDnfCommands(t *testing.T) {
	cfg := Defaults()
	cfg.Dnf.Escalate = []string{"sudo", "-n"}
	cfg.Dnf.Options = []string{"--setopt=install_weak_deps=False"}
	cfg.UnprivilegedUser = "nobody"
	run := &scriptRunner{answer: rpmAnswer(0, testdataString(t, "dnf-install-upgrade.dnf414.txt"))}
	d := NewDnf(cfg, run)
	ctx := context.Background()

	got, st, err := d.Installed(ctx, []string{"openssl", "newpkg"})
	if err != nil || !st.OK || got["openssl"] != "1:3.0.7-27.el9" || got["newpkg"] != "" {
		t.Fatalf("Installed = %v %+v %v", got, st, err)
	}
	if st := d.Refresh(ctx); !st.OK {
		t.Fatalf("Refresh: %+v", st)
	}
	// An upgrade, a downgrade and a removal: one install transaction for
	// the versioned packages, then one removal.
	st = d.Apply(ctx, []agentapi.JobPackage{{Name: "openssl", TargetVersion: "1:3.0.7-28.el9"}, {Name: "curl", TargetVersion: "7.76.1-26.el9"}, {Name: "newpkg"}})
	if !st.OK || st.Name != "install" || !strings.Contains(st.Output, "$ sudo -n dnf --assumeyes --setopt=install_weak_deps=False remove -- newpkg") || !strings.Contains(st.Output, "Upgraded:") {
		t.Fatalf("Apply step = %+v", st)
	}
	want := []string{
		"rpm --query --queryformat " + rpmQueryFormat + " -- openssl newpkg",
		"sudo -n dnf --assumeyes --setopt=install_weak_deps=False --refresh makecache",
		"sudo -n dnf --assumeyes --setopt=install_weak_deps=False install -- openssl-1:3.0.7-28.el9 curl-7.76.1-26.el9",
		"sudo -n dnf --assumeyes --setopt=install_weak_deps=False remove -- newpkg",
	}
	if diff := cmp.Diff(want, run.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}

	// A failed install stops before the removal: nothing half-done.
	run = &scriptRunner{answer: rpmAnswer(1, testdataString(t, "dnf-install-missing.dnf414.txt"))}
	d = NewDnf(cfg, run)
	st = d.Apply(ctx, []agentapi.JobPackage{{Name: "openssl", TargetVersion: "9.9-9"}, {Name: "newpkg"}})
	if st.OK || st.ExitCode != 1 || len(run.ran) != 1 || !strings.Contains(st.Output, "Unable to find a match") {
		t.Fatalf("failed install: step %+v, ran %q; want exit 1 and no removal", st, run.commands())
	}

	// A test install root reaches dnf, rpm and the lock files.
	cfg = Defaults()
	cfg.Dnf.Root = "/srv/root"
	run = &scriptRunner{answer: rpmAnswer(0, "")}
	d = NewDnf(cfg, run)
	d.Installed(ctx, []string{"openssl"})
	d.Apply(ctx, []agentapi.JobPackage{{Name: "openssl", TargetVersion: "1:3.0.7-28.el9"}})
	cmds := run.commands()
	if !strings.HasPrefix(cmds[0], "rpm --root /srv/root --query") || !strings.HasPrefix(cmds[1], "dnf --assumeyes --installroot=/srv/root install") {
		t.Errorf("root not passed: %q", cmds)
	}
	if d.lockFiles[0] != "/srv/root/var/lib/dnf/rpmdb_lock.pid" {
		t.Errorf("lock files %q not under the root", d.lockFiles)
	}
}

func TestZypperCommandsAndExitCodes(t *testing.T) {
	for _, tt := range []struct {
		exit int
		file string
		ok   bool
	}{
		{0, "zypper-install.zypper1.14.txt", true},
		{102, "zypper-install.zypper1.14.txt", true}, // installed; reboot needed
		{103, "zypper-install.zypper1.14.txt", true}, // installed; zypper restart needed
		{104, "zypper-install-missing.zypper1.14.txt", false},
		{107, "zypper-install.zypper1.14.txt", false}, // a scriptlet failed
		{8, "zypper-install.zypper1.14.txt", false},   // commit error
	} {
		run := &scriptRunner{answer: rpmAnswer(tt.exit, testdataString(t, tt.file))}
		z := NewZypper(Defaults(), run)
		st := z.Apply(context.Background(), []agentapi.JobPackage{{Name: "openssl", TargetVersion: "1:3.0.7-28.el9"}, {Name: "newpkg"}})
		if st.OK != tt.ok || st.ExitCode != tt.exit {
			t.Errorf("zypper exit %d: ok=%v exit=%d; want ok=%v", tt.exit, st.OK, st.ExitCode, tt.ok)
		}
		if got := strings.Join(st.Command, " "); got != "zypper --non-interactive install --name --oldpackage -- openssl=1:3.0.7-28.el9 !newpkg" {
			t.Errorf("zypper command = %q", got)
		}
	}
	run := &scriptRunner{answer: rpmAnswer(106, "Repository 'x' could not be refreshed.")}
	if st := NewZypper(Defaults(), run).Refresh(context.Background()); !st.OK {
		t.Errorf("refresh with a skipped repository = %+v; want ok, as apt-get update's warnings are", st)
	}
}

func TestApk(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "lib/apk/db/installed")
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, readTestdata(t, "apk-installed.osv-scalibr"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Apk.Root = root
	run := &scriptRunner{answer: func(argv []string) (int, string) {
		if argv[len(argv)-1] == "broken=9.9-r9" {
			return 1, "ERROR: unable to select packages:\n  broken-9.9-r9:\n    breaks: world[broken=9.9-r9]\n"
		}
		return 0, "(1/1) Upgrading busybox (1.36.0-r9 -> 1.36.1-r15)\nOK: 8 MiB in 15 packages\n"
	}}
	a := NewApk(cfg, run)
	ctx := context.Background()
	got, st, err := a.Installed(ctx, []string{"busybox", "libssl3", "nginx"})
	want := map[string]string{"busybox": "1.36.0-r9", "libssl3": "3.1.0-r4", "nginx": ""}
	if err != nil || !st.OK || !cmp.Equal(want, got) || !strings.Contains(st.Output, "15 packages installed") {
		t.Fatalf("Installed = %v %+v %v; want %v", got, st, err, want)
	}
	st = a.Apply(ctx, []agentapi.JobPackage{{Name: "busybox", TargetVersion: "1.36.1-r15"}, {Name: "libssl3", TargetVersion: "3.1.0-r3"}, {Name: "nginx"}})
	if !st.OK {
		t.Fatalf("Apply: %+v", st)
	}
	a.Refresh(ctx)
	wantCmds := []string{
		"apk --no-progress --wait 120 --root " + root + " add -- busybox=1.36.1-r15 libssl3=3.1.0-r3",
		"apk --no-progress --wait 120 --root " + root + " del -- nginx",
		"apk --no-progress --wait 120 --root " + root + " update",
	}
	if diff := cmp.Diff(wantCmds, run.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	run.ran = nil
	st = a.Apply(ctx, []agentapi.JobPackage{{Name: "broken", TargetVersion: "9.9-r9"}, {Name: "nginx"}})
	if st.OK || st.ExitCode != 1 || len(run.ran) != 1 || !strings.Contains(st.Output, "unable to select packages") {
		t.Fatalf("failed add: %+v, ran %q; want failure and no del", st, run.commands())
	}
	if a.lockFiles[0] != filepath.Join(root, "lib/apk/db/lock") {
		t.Errorf("lock files %q", a.lockFiles)
	}
	// A missing database is an error (the query cannot answer), not "not
	// installed".
	cfg.Apk.Root = t.TempDir()
	if _, st, err := NewApk(cfg, run).Installed(ctx, []string{"busybox"}); err == nil || st.OK {
		t.Fatalf("missing database: %+v %v", st, err)
	}
}

func TestParseWingetList(t *testing.T) {
	for _, tt := range []struct {
		file, id, want string
		found          bool
	}{
		{"winget-list-issue4718.txt", "Microsoft.PowerShell", "7.4.3.0", true},
		{"winget-list-issue4718.txt", "Microsoft.WindowsTerminal", "1.20.11781.0", true},
		{"winget-list-issue4718.txt", "Microsoft.Power", "", false}, // no substring matches
		{"winget-list-issue1481.txt", "Git.Git", "2.31.0.0.1", true},
		{"winget-list-issue1481.txt", "CodeFlow_is1", "Unknown", true},
		{"winget-list-issue1481.txt", "DolbyLaboratories.DolbyAccessOEM_rz1teb6f5p2", "3.9.26.0", true}, // truncated Id
		{"winget-list-issue1481.txt", "Microsoft.Edge", "93.0.961.52", true},
		{"winget-list-zh-issue1618.txt", "Bandisoft.Bandizip", "7.21", true},
		{"winget-list-zh-issue1618.txt", "Alibaba.aDrive", "2.2.8", true},
		{"winget-list-zh-issue1618.txt", "Docker.DockerDesktop", "4.1.1", true},
		{"winget-list-exact-crlf.txt", "Git.Git", "2.31.0.0.1", true},
		{"winget-list-none.txt", "Git.Git", "", false},
	} {
		got, found := parseWingetList(testdataString(t, tt.file), tt.id)
		if got != tt.want || found != tt.found {
			t.Errorf("parseWingetList(%s, %s) = %q, %v; want %q, %v", tt.file, tt.id, got, found, tt.want, tt.found)
		}
	}
	// Side-by-side installs: the highest; "<" ranges keep their marker so
	// they never equal a target.
	two := "Name Id Version\n----------------------\nA  Pub.App  1.9.0\nA  Pub.App  1.10.0\nB  Pub.Old  < 2.0\n"
	if v, _ := parseWingetList(two, "Pub.App"); v != "1.10.0" {
		t.Errorf("side by side = %q; want 1.10.0", v)
	}
	if v, _ := parseWingetList(two, "Pub.Old"); v != "< 2.0" {
		t.Errorf("range = %q; want \"< 2.0\"", v)
	}
}

func FuzzParseWingetList(f *testing.F) {
	for _, n := range []string{"winget-list-issue4718.txt", "winget-list-issue1481.txt", "winget-list-zh-issue1618.txt", "winget-list-exact-crlf.txt"} {
		f.Add(string(readTestdata(f, n)), "Git.Git")
	}
	f.Fuzz(func(t *testing.T, out, id string) {
		v, found := parseWingetList(out, id)
		if !found && v != "" {
			t.Fatalf("not found but version %q", v)
		}
		if found && (strings.ContainsAny(v, "\r\n") || len(v) > agentapi.MaxField) {
			t.Fatalf("version %q", v)
		}
	})
}

func TestWingetCommands(t *testing.T) {
	cfg := Defaults()
	cfg.Winget.Path = `C:\Program Files\WindowsApps\Microsoft.DesktopAppInstaller_1.23.1911.0_x64__8wekyb3d8bbwe\winget.exe`
	cfg.Winget.Source = "winget"
	exe := cfg.Winget.Path
	const noPackage = -1978335212 // 0x8A150014 as winget's documentation lists it
	run := &scriptRunner{answer: func(argv []string) (int, string) {
		switch {
		case argv[1] == "list" && argv[3] == "Git.Git":
			return 0, testdataString(t, "winget-list-exact-crlf.txt")
		case argv[1] == "list":
			return noPackage, testdataString(t, "winget-list-none.txt")
		case argv[1] == "install" && argv[3] == "Broken.App":
			return int(uint32(0x8A150011)), "Installer hash does not match; this cannot be overridden when running as admin\n"
		case argv[1] == "install" && argv[3] == "Needs.Reboot":
			return int(uint32(wingetRebootToFinish)), "Successfully installed. Restart the application to complete the upgrade.\n"
		}
		return 0, "Successfully installed\n"
	}}
	w := NewWinget(cfg, run)
	ctx := context.Background()
	got, st, err := w.Installed(ctx, []string{"Git.Git", "Mozilla.Firefox"})
	if err != nil || !st.OK || got["Git.Git"] != "2.31.0.0.1" || got["Mozilla.Firefox"] != "" {
		t.Fatalf("Installed = %v %+v %v", got, st, err)
	}
	st = w.Apply(ctx, []agentapi.JobPackage{{Name: "Git.Git", TargetVersion: "2.45.2"}, {Name: "Needs.Reboot", TargetVersion: "1.0"}, {Name: "Old.Tool"}})
	if !st.OK {
		t.Fatalf("Apply: %+v", st)
	}
	want := []string{
		exe + " list --id Git.Git --exact --accept-source-agreements --disable-interactivity",
		exe + " list --id Mozilla.Firefox --exact --accept-source-agreements --disable-interactivity",
		exe + " install --id Git.Git --version 2.45.2 --exact --silent --accept-package-agreements --source winget --accept-source-agreements --disable-interactivity",
		exe + " install --id Needs.Reboot --version 1.0 --exact --silent --accept-package-agreements --source winget --accept-source-agreements --disable-interactivity",
		exe + " uninstall --id Old.Tool --exact --silent --source winget --accept-source-agreements --disable-interactivity",
	}
	if diff := cmp.Diff(want, run.commands()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	// No multi-package transaction: the first failure stops the rest.
	run.ran = nil
	st = w.Apply(ctx, []agentapi.JobPackage{{Name: "Broken.App", TargetVersion: "1.0"}, {Name: "Git.Git", TargetVersion: "2.45.2"}})
	if st.OK || len(run.ran) != 1 {
		t.Fatalf("failed install: %+v, ran %q", st, run.commands())
	}
	// A list that fails for another reason is an error, not "absent".
	bad := NewWinget(cfg, &scriptRunner{answer: func([]string) (int, string) {
		return int(uint32(0x8A15000B)), "The configured source information is corrupt"
	}})
	if _, _, err := bad.Installed(ctx, []string{"Git.Git"}); err == nil {
		t.Error("corrupt source read as not installed")
	}
	if runtime.GOOS != "windows" {
		if err := NewWinget(Defaults(), nil).Supported(); errs.KindOf(err) != errs.Unsupported {
			t.Errorf("winget on %s: Supported = %v; want Unsupported", runtime.GOOS, err)
		}
	}
}

func TestJoinStepsBoundsOutput(t *testing.T) {
	big := strings.Repeat("x", MaxStepOutput)
	st := joinSteps("install",
		agentapi.Step{Command: []string{"dnf", "install"}, OK: true, Output: big},
		agentapi.Step{Command: []string{"dnf", "remove"}, ExitCode: 1, Output: "Error: boom\n"})
	if st.OK || st.ExitCode != 1 || len(st.Output) > MaxStepOutput+64 || !strings.HasSuffix(st.Output, "$ dnf remove\nError: boom\n") || !strings.HasPrefix(st.Output, "[...") {
		t.Fatalf("joined step: ok=%v exit=%d len=%d tail=%q", st.OK, st.ExitCode, len(st.Output), st.Output[len(st.Output)-40:])
	}
	if st.Command[0] != "dnf" || st.Command[1] != "install" {
		t.Errorf("joined step command %q; want the first", st.Command)
	}
}

func TestConfigManagerSections(t *testing.T) {
	cfg, err := ParseConfig([]byte("dnf:\n  options: [--setopt=install_weak_deps=False]\n  lock_files: [/var/lib/dnf/rpmdb_lock.pid]\nzypper:\n  escalate: [sudo, -n]\napk: {}\nwinget:\n  source: winget\n"))
	if err != nil || cfg.Dnf.Options[0] != "--setopt=install_weak_deps=False" || cfg.Zypper.Escalate[0] != "sudo" || cfg.Winget.Source != "winget" {
		t.Fatalf("ParseConfig = %+v, %v", cfg, err)
	}
	// The install root is for tests only: a config file cannot move the
	// agent off the host's packages.
	if _, err := ParseConfig([]byte("dnf:\n  root: /mnt\n")); err == nil {
		t.Error("dnf.root accepted from a config file")
	}
	for _, bad := range []string{"dnf:\n  lock_files: [relative/lock]\n", "winget:\n  source: \"--help\"\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
