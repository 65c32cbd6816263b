//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// configureProcess puts the command in its own process group so a timeout
// kills what it spawned too (apt-get runs dpkg, dpkg runs maintainer
// scripts).
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
