//go:build windows

package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// findWinget returns winget.exe. An interactive user reaches it through
// an app execution alias on PATH; LocalSystem, which the agent's service
// runs as, has no such alias, so the App Installer package's own copy
// under Program Files\WindowsApps is used, the newest version first.
func findWinget() (string, error) {
	if p, err := exec.LookPath("winget.exe"); err == nil {
		return p, nil
	}
	pf := os.Getenv("ProgramW6432")
	if pf == "" {
		pf = os.Getenv("ProgramFiles")
	}
	if pf == "" {
		pf = `C:\Program Files`
	}
	dirs, _ := filepath.Glob(filepath.Join(pf, "WindowsApps", "Microsoft.DesktopAppInstaller_*__8wekyb3d8bbwe"))
	best, bestVersion := "", ""
	for _, d := range dirs {
		exe := filepath.Join(d, "winget.exe")
		if _, err := os.Stat(exe); err != nil {
			continue
		}
		// Microsoft.DesktopAppInstaller_1.22.10582.0_x64__8wekyb3d8bbwe
		parts := strings.Split(filepath.Base(d), "_")
		if len(parts) < 2 {
			continue
		}
		if best == "" || compareDotted(parts[1], bestVersion) > 0 {
			best, bestVersion = exe, parts[1]
		}
	}
	if best == "" {
		return "", errors.New("winget.exe not found (install App Installer, or set winget.path)")
	}
	return best, nil
}

var procOpenMutexW = windows.NewLazySystemDLL("kernel32.dll").NewProc("OpenMutexW")

// msiInstallInProgress checks for the Global\_MSIExecute mutex, which
// Windows Installer holds for the whole of an installation: while it
// exists, another MSI install fails with ERROR_INSTALL_ALREADY_RUNNING.
// Opening it (SYNCHRONIZE only) does not take it.
func msiInstallInProgress() (bool, string, error) {
	name, err := windows.UTF16PtrFromString(`Global\_MSIExecute`)
	if err != nil {
		return false, "", err
	}
	h, _, callErr := procOpenMutexW.Call(uintptr(windows.SYNCHRONIZE), 0, uintptr(unsafe.Pointer(name)))
	if h != 0 {
		windows.CloseHandle(windows.Handle(h))
		return true, "Windows Installer (the _MSIExecute mutex is held: an installation is running)", nil
	}
	if errors.Is(callErr, windows.ERROR_FILE_NOT_FOUND) {
		return false, "", nil
	}
	if errors.Is(callErr, windows.ERROR_ACCESS_DENIED) {
		// It exists but we may not open it: someone holds it.
		return true, "Windows Installer (the _MSIExecute mutex exists)", nil
	}
	return false, "", callErr
}
