//go:build !linux

package engine

import (
	"errors"
	"syscall"
)

// setDeathSignal is a no-op where the kernel has no parent-death signal;
// Close and pid-file reaping are then the only cleanup.
func setDeathSignal(*syscall.SysProcAttr) {}

// processArgs is not implemented off Linux, so leftover servers are never
// reaped there (they are never killed on a guess).
func processArgs(int) ([]string, error) {
	return nil, errors.New("reading another process's arguments needs /proc")
}

// processGone reports whether pid no longer runs.
func processGone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

// listensOn cannot tell off Linux: callers trust the port.
func listensOn(int, int) (bool, error) {
	return false, errors.New("finding a process's sockets needs /proc")
}
