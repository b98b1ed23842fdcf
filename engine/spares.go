package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// sparesName is the directory, under the Manager's root, of spare copies
// of templates.
//
// Copying a PostgreSQL template means creating ~1000 files, which takes
// 0.1 s on an idle disk and over 1 s on a busy one. A spare is that copy
// made ahead of time in the background: Create renames it into place (the
// same filesystem, so instantly) and starts the next spare. One spare per
// template; it lives in the Manager's directory (removed with it, or kept
// in a DataDir for the next run).
const sparesName = "spares"

// copyTemplate gives dst a copy of t's data directory: the spare if there
// is one (waiting for one being made), else a fresh copy. Either way it
// starts a spare for the next Create.
func (m *Manager) copyTemplate(t tmpl, dst string) error {
	m.mu.Lock()
	filling := m.filling[t.key]
	m.mu.Unlock()
	if filling != nil {
		<-filling
	}
	err := os.Rename(filepath.Join(m.root, sparesName, t.key), dst)
	if err != nil {
		err = copyTree(filepath.Join(t.dir, dataName), dst, nil)
	}
	if err == nil {
		m.refill(t)
	}
	return err
}

// refill makes a spare of t in the background unless one exists or is
// being made. Close stops it and waits.
func (m *Manager) refill(t tmpl) {
	m.mu.Lock()
	if m.closed || m.filling[t.key] != nil {
		m.mu.Unlock()
		return
	}
	done := make(chan struct{})
	m.filling[t.key] = done
	m.bg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.bg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.filling, t.key)
			m.mu.Unlock()
			close(done)
		}()
		dir := filepath.Join(m.root, sparesName)
		final := filepath.Join(dir, t.key)
		if _, err := os.Stat(final); err == nil {
			return
		}
		start := time.Now()
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return
		}
		// Spares of an older build of the same template are useless.
		version := t.key[:strings.LastIndexByte(t.key, '-')]
		old, _ := filepath.Glob(filepath.Join(dir, version+"-*"))
		for _, o := range old {
			_ = os.RemoveAll(o)
		}
		tmp := final + ".tmp"
		err := copyTree(filepath.Join(t.dir, dataName), tmp, m.stopBg)
		if err == nil {
			err = os.Rename(tmp, final)
		}
		if err != nil {
			_ = os.RemoveAll(tmp)
			if !errors.Is(err, errCopyStopped) {
				m.log.Warn("engine: cannot make a spare data directory", "template", t.dir, "err", err)
			}
			return
		}
		m.log.Debug("engine: spare data directory ready", "template", t.key, "elapsed", time.Since(start).Round(time.Millisecond))
	}()
}
