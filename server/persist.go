package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateDir stores one JSON snapshot per service under <data-dir>/state.
// Every write goes to a temporary file in the same directory, is fsynced and
// renamed over the old file, and the directory is fsynced: a crash at any
// moment leaves either the old or the new snapshot, never a torn one. Files
// are mode 0600 because snapshots hold secret values.
type stateDir struct {
	dir string
}

func newStateDir(dataDir string) (*stateDir, error) {
	dir := filepath.Join(dataDir, "state")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	// Leftover temporary files come from a crash mid-write; they were never
	// renamed into place, so they hold nothing acknowledged.
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(tmps) > 0 {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	return &stateDir{dir: dir}, nil
}

func (s *stateDir) path(service string) string { return filepath.Join(s.dir, service+".json") }

// load returns the saved snapshot of service, or nil when there is none.
func (s *stateDir) load(service string) ([]byte, error) {
	b, err := os.ReadFile(s.path(service))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// save replaces the snapshot of service atomically.
func (s *stateDir) save(service string, data []byte) error {
	return WriteFileAtomic(s.path(service), data, 0o600)
}

// WriteFileAtomic writes data to path so that readers and crashes see either
// the old content or the new, never a mix.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
