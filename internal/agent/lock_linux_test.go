//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestProbeLockSeesHolder holds an open-file-description lock the way a
// second process would and expects the probe to see it without taking it.
func TestProbeLockSeesHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if held, _, err := probeLock(path); err != nil || held {
		t.Fatalf("free lock: held=%v err=%v", held, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const fOFDSetlk = 37 // F_OFD_SETLK on Linux
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), fOFDSetlk, &lk); err != nil {
		t.Skipf("OFD locks unavailable: %v", err)
	}
	if held, detail, err := probeLock(path); err != nil || !held {
		t.Fatalf("held lock: held=%v detail=%q err=%v", held, detail, err)
	}
	if held, _, _ := probeLock(filepath.Join(t.TempDir(), "absent")); held {
		t.Error("missing lock file reported held")
	}
}
