package testsuite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when a database server started by these tests is
// still running after them: every emulator must stop what it spawned.
func TestMain(m *testing.M) {
	code := m.Run()
	if left := leftoverChildren(5 * time.Second); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes started by the tests are still running:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	os.Exit(code)
}

// leftoverChildren lists this process's child processes, waiting up to
// grace for them to exit.
func leftoverChildren(grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		var left []string
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, path := range stats {
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			// pid (comm) state ppid …; comm may contain spaces.
			s := string(b)
			end := strings.LastIndexByte(s, ')')
			if end < 0 {
				continue
			}
			fields := strings.Fields(s[end+1:])
			if len(fields) < 2 {
				continue
			}
			if ppid, _ := strconv.Atoi(fields[1]); ppid == os.Getpid() && fields[0] != "Z" {
				left = append(left, strings.TrimSpace(s[:end+1]))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
