//go:build linux

package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProbePackageLockFlock: apk takes its lock with flock, which F_GETLK
// cannot see; the probe finds it in /proc/locks while another process
// holds it, and does not take it.
func TestProbePackageLockFlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if held, _, err := probePackageLock(path); err != nil || held {
		t.Fatalf("free lock: held=%v err=%v", held, err)
	}
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	holder := exec.Command("flock", "--exclusive", path, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _, _ = holder.Process.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, detail, err := probePackageLock(path)
		if err != nil {
			t.Fatal(err)
		}
		if held {
			if !strings.Contains(detail, "flock") {
				t.Errorf("detail %q; want it to say flock", detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flock held by another process was not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The probe did not take the lock: the file can still not be locked
	// by us.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatal("took the lock the holder should still have")
	}
}

func TestProbePackageLockPidFile(t *testing.T) {
	dir := t.TempDir()
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _, _ = sleeper.Process.Wait() })
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, content string
		held          bool
	}{
		{"live pid", strconv.Itoa(sleeper.Process.Pid), true},
		{"live pid and newline", strconv.Itoa(sleeper.Process.Pid) + "\n", true},
		{"dead pid", strconv.Itoa(dead.Process.Pid), false},
		{"our own pid", strconv.Itoa(os.Getpid()), false},
		{"empty (zypp.pid between runs)", "", false},
		{"garbage", "not a pid", false},
		{"too long", strings.Repeat("1", 40), false},
	} {
		path := filepath.Join(dir, tt.name)
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		held, detail, err := probePackageLock(path)
		if err != nil || held != tt.held {
			t.Errorf("%s: held=%v (%q) err=%v; want %v", tt.name, held, detail, err, tt.held)
		}
	}
}

func TestParseProcLocks(t *testing.T) {
	// Captured from /proc/locks on the build machine while flock(1) held
	// a file on device fe:00 (st_dev 0xfe00), inode 10248256.
	const locks = `1: FLOCK  ADVISORY  WRITE 21119 fe:00:10248256 0 EOF
1: -> FLOCK  ADVISORY  WRITE 21130 fe:00:10248256 0 EOF
2: POSIX  ADVISORY  READ 20762 fe:00:10306854 124 124
3: OFDLCK ADVISORY  WRITE -1 fe:00:10248257 0 EOF
`
	if pid, ok := parseProcLocks(strings.NewReader(locks), 0xfe00, 10248256); !ok || pid != 21119 {
		t.Errorf("holder = %d, %v; want 21119", pid, ok)
	}
	if _, ok := parseProcLocks(strings.NewReader(locks), 0xfe00, 10306854); ok {
		t.Error("a POSIX lock is F_GETLK's business, not an flock")
	}
	if _, ok := parseProcLocks(strings.NewReader(locks), 0xfe01, 10248256); ok {
		t.Error("matched another device")
	}
}
