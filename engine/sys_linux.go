package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// setDeathSignal asks the kernel to SIGKILL the child when the thread
// that forked it exits (see spawner).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// processArgs returns a live process's command line.
func processArgs(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	var args []string
	for _, a := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		args = append(args, string(a))
	}
	return args, nil
}

// processGone reports whether pid no longer runs (or is a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces, so look after the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

// listensOn reports whether the process pid holds a listening TCP socket
// on 127.0.0.1:port: that connections to the port reach it and not some
// other program that took the port first. It errs (and callers then
// trust the port) when /proc does not tell.
func listensOn(pid, port int) (bool, error) {
	tab, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	// local_address 0100007F:PORT (127.0.0.1, little-endian hex), st 0A
	// (LISTEN), and the socket's inode in the tenth column.
	local := []byte(fmt.Sprintf("0100007F:%04X", port))
	inodes := map[string]bool{}
	for _, line := range bytes.Split(tab, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) >= 10 && bytes.Equal(f[1], local) && bytes.Equal(f[3], []byte("0A")) {
			inodes["socket:["+string(f[9])+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // the process is gone
	}
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && inodes[l] {
			return true, nil
		}
	}
	return false, nil
}
