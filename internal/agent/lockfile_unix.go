//go:build unix

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// probePackageLock reports whether another process holds a package
// manager's lock file, without taking the lock. Package managers lock in
// three different ways, and the probe looks for all of them:
//   - fcntl record locks (rpm's .rpm.lock, libzypp): F_GETLK names a
//     conflicting holder;
//   - flock (apk's lib/apk/db/lock): no call reports an flock holder
//     without taking the lock, but Linux lists every lock in /proc/locks
//     by device and inode;
//   - pid files (dnf 4's rpmdb_lock.pid, /run/zypp.pid): the file names a
//     process, and the lock is held while that process lives. dnf and
//     libzypp make the same liveness check before taking over a stale
//     file.
//
// A missing file is not locked.
func probePackageLock(path string) (bool, string, error) {
	held, detail, err := probeLock(path)
	if err != nil || held {
		return held, detail, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if pid, found := procLocksHolder(uint64(st.Dev), st.Ino); found {
			return true, fmt.Sprintf("process %d (flock)", pid), nil
		}
	}
	if pid := pidFileHolder(path); pid > 0 {
		return true, fmt.Sprintf("process %d (pid file)", pid), nil
	}
	return false, "", nil
}

// procLocksHolder looks for an flock on dev/ino in /proc/locks, whose
// lines read "1: FLOCK  ADVISORY  WRITE 4242 fe:00:10248256 0 EOF" (major
// and minor in hex, inode in decimal); lines with "->" are waiters.
func procLocksHolder(dev, ino uint64) (int, bool) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return parseProcLocks(f, dev, ino)
}

func parseProcLocks(r io.Reader, dev, ino uint64) (int, bool) {
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] == "->" || f[1] != "FLOCK" {
			continue
		}
		if f[5] != want {
			continue
		}
		pid, _ := strconv.Atoi(f[4])
		if pid != os.Getpid() {
			return pid, true
		}
	}
	return 0, false
}

// pidFileHolder returns the live process a small pid file names, or 0.
func pidFileHolder(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, 21)
	n, _ := io.ReadFull(f, b)
	if n == 0 || n > 20 {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return pid
	}
	return 0
}
