package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A relative --init-dir works: each hook runs in its own directory, so
// the path it is started by must not be relative to rdslocal's.
func TestHooksRelativeInitDir(t *testing.T) {
	base := t.TempDir()
	hooks := filepath.Join(base, "init", "ready.d")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "10-touch.sh"), []byte("#!/bin/sh\ntouch ../ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(base)
	cfg := Config{InitDir: "init", DBBackend: "none", Logger: slog.New(slog.DiscardHandler)}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if !s.runHooks(context.Background(), "http://127.0.0.1:1") {
		t.Fatalf("hooks failed: %v", s.initStatus().Errors)
	}
	if _, err := os.Stat(filepath.Join(base, "init", "ran")); err != nil {
		t.Fatalf("the hook did not run in its directory: %v", err)
	}
}
