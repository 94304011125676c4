package rediscluster

import (
	"os/exec"
	"syscall"
)

// orphanProof has the kernel kill a server when the test binary dies without running its
// cleanups (a test timeout panics out of the binary), so no cluster outlives its tests.
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
