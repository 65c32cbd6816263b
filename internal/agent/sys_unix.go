//go:build unix

package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// probeLock asks the kernel whether a write lock on path would conflict
// with a lock someone holds (F_GETLK). A missing file is not locked.
func probeLock(path string) (bool, string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return false, "", err
	}
	if lk.Type == syscall.F_UNLCK {
		return false, "", nil
	}
	if lk.Pid > 0 {
		return true, fmt.Sprintf("process %d", lk.Pid), nil
	}
	return true, "another process", nil
}

// freeMiB returns the space available to unprivileged users at path.
func freeMiB(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize) / (1 << 20), nil
}

// diskPaths are the file systems a package install writes to.
func diskPaths() []string { return []string{"/", "/var"} }
