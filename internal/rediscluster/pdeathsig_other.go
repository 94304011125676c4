//go:build !linux

package rediscluster

import "os/exec"

// orphanProof does nothing here: only Linux can tie a child's life to its parent's.
func orphanProof(*exec.Cmd) {}
