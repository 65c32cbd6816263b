//go:build windows

package agent

import (
	"os"

	"golang.org/x/sys/windows"
)

// probeLock: Windows Update and winget serialise themselves; there is no
// lock file to probe.
func probeLock(path string) (bool, string, error) { return false, "", nil }

// freeMiB returns the space available to the caller on path's volume.
func freeMiB(path string) (int64, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, err
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return 0, err
	}
	return int64(avail / (1 << 20)), nil
}

// diskPaths is the system drive, where updates are staged and installed.
func diskPaths() []string {
	d := os.Getenv("SystemDrive")
	if d == "" {
		d = "C:"
	}
	return []string{d + `\`}
}
