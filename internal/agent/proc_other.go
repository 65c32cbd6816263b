//go:build !unix

package agent

import (
	"fmt"
	"os/exec"
)

// configureProcess keeps exec's default: kill the direct child on timeout.
func configureProcess(cmd *exec.Cmd) {}

// runAs is not supported here: Windows services switch accounts through
// the service manager, not per command.
func runAs(cmd *exec.Cmd, name string) error {
	return fmt.Errorf("running commands as %s is not supported on this OS", name)
}
