//go:build !unix

package agent

// probePackageLock: the Linux package managers that take lock files do
// not run here.
func probePackageLock(path string) (bool, string, error) { return false, "", nil }
