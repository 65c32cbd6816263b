// Command debbuild builds the patchward-agent .deb with nfpm used as a
// library, so packaging needs nothing but Go:
//
//	go run ./packaging/debbuild -version 0.3.0 -arch amd64 -out dist/
//
// It cross-compiles the agent (CGO off, trimmed paths, version stamped)
// unless -bin names a binary already built.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// options says what to build.
type options struct {
	Root    string // module root (where go.mod is)
	Version string
	Arch    string // Debian/Go architecture: amd64, arm64
	Out     string // output directory
	Bin     string // prebuilt agent binary; built when empty
	MTime   time.Time
}

func main() {
	var o options
	flag.StringVar(&o.Version, "version", "0.0.0~dev", "package version")
	flag.StringVar(&o.Arch, "arch", "amd64", "architecture (Go and Debian names agree for amd64, arm64)")
	flag.StringVar(&o.Out, "out", "dist", "output directory")
	flag.StringVar(&o.Bin, "bin", "", "prebuilt patchward-agent binary (default: build it)")
	flag.Parse()
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "debbuild:", err)
		os.Exit(1)
	}
	o.Root = root
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "debbuild:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// build writes patchward-agent_VERSION_ARCH.deb into o.Out and returns its
// path.
func build(o options) (string, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", err
	}
	bin := o.Bin
	if bin == "" {
		bin = filepath.Join(o.Out, "patchward-agent-linux-"+o.Arch)
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X github.com/patchward/patchward/internal/agent.Version="+o.Version,
			"-o", bin, "./cmd/patchward-agent")
		cmd.Dir = o.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build agent: %v\n%s", err, out)
		}
	}
	p := func(rel string) string { return filepath.Join(o.Root, "packaging", rel) }
	mtime := o.MTime
	if mtime.IsZero() {
		mtime = time.Now().UTC().Truncate(time.Second)
	}
	info := &nfpm.Info{
		Name:        "patchward-agent",
		Arch:        o.Arch,
		Platform:    "linux",
		Version:     o.Version,
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  "Patchward <packaging@patchward.invalid>",
		Vendor:      "Patchward",
		Homepage:    "https://patchward.invalid",
		License:     "Proprietary",
		Description: "Patchward endpoint agent\nReports installed software to a Patchward server and applies approved\npatches with apt inside the host's maintenance window, with pre-checks,\nverification and rollback, logging every step.",
		MTime:       mtime,
		Overridables: nfpm.Overridables{
			Depends: []string{"apt", "dpkg", "systemd | systemd-standalone-sysusers"},
			Contents: files.Contents{
				{Source: bin, Destination: "/usr/bin/patchward-agent", FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: mtime}},
				{Source: p("patchward-agent.service"), Destination: "/lib/systemd/system/patchward-agent.service", FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: mtime}},
				{Source: p("agent.yaml"), Destination: "/etc/patchward/agent.yaml", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o640, MTime: mtime}},
				{Source: filepath.Join(o.Root, "docs", "agent.md"), Destination: "/usr/share/doc/patchward-agent/agent.md", FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: mtime}},
				{Destination: "/var/lib/patchward-agent", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700, MTime: mtime}},
			},
			Scripts: nfpm.Scripts{
				PostInstall: p("scripts/postinst.sh"),
				PreRemove:   p("scripts/prerm.sh"),
				PostRemove:  p("scripts/postrm.sh"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("prepare package: %w", err)
	}
	name := fmt.Sprintf("patchward-agent_%s_%s.deb", strings.ReplaceAll(o.Version, ":", "%3a"), o.Arch)
	path := filepath.Join(o.Out, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, f.Close()
}
