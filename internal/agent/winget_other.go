//go:build !windows

package agent

import "errors"

// findWinget: winget exists on Windows only.
func findWinget() (string, error) { return "", errors.New("winget runs on Windows only") }

// msiInstallInProgress: there is no Windows Installer here.
func msiInstallInProgress() (bool, string, error) { return false, "", nil }
