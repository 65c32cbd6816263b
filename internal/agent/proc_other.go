//go:build !unix

package agent

import "os/exec"

// configureProcess keeps exec's default: kill the direct child on timeout.
func configureProcess(cmd *exec.Cmd) {}
