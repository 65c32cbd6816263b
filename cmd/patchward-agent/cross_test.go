package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCrossCompiles builds the agent for Windows and macOS, so the
// build-tagged collectors and the Windows service code cannot rot
// unnoticed on a Linux CI machine.
func TestCrossCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	for _, target := range []struct{ goos, goarch string }{{"windows", "amd64"}, {"darwin", "arm64"}} {
		t.Run(target.goos+"/"+target.goarch, func(t *testing.T) {
			cmd := exec.Command(gobin, "build", "-o", filepath.Join(t.TempDir(), "agent"), ".")
			cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s/%s: %v\n%s", target.goos, target.goarch, err, out)
			}
		})
	}
}
