package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyName marks a finished template; a directory without it is ignored.
const readyName = "ready"

// tmpl is a built template: a directory holding data/ (the initialised
// data directory) and the family's own files (admin.pw).
type tmpl struct {
	dir string
	// key names the template's spares: product, version and a build id,
	// so a spare never outlives the template it was copied from.
	key string
	m   *Manager
}

// copyData puts a copy of the template's data directory at dst.
func (t tmpl) copyData(dst string) error { return t.m.copyTemplate(t, dst) }

// templateFormat versions what a template holds (databases, users,
// settings made at build time); bump it when buildTemplate changes, so a
// template cached by an older rdslocal in the shared directory is not used.
const templateFormat = "5"

// template returns the template for in, building it on first use. One
// template exists per product, version and templateFormat; it is built in a
// scratch directory and renamed into place, so Managers in other processes
// sharing the cache see either nothing or a finished template.
func (m *Manager) template(ctx context.Context, f family, in install, r runAs) (tmpl, error) {
	name := strings.ToLower(in.product) + "-" + in.version + "-t" + templateFormat
	mu := m.templateLock(name)
	mu.Lock()
	defer mu.Unlock()

	dir := filepath.Join(m.tmplDir, name)
	if t, ok := m.readyTemplate(dir, name); ok {
		return t, nil
	}
	if err := m.ownTemplateDir(); err != nil {
		return tmpl{}, err
	}
	if err := r.checkReach(m.tmplDir); err != nil {
		return tmpl{}, err
	}
	removeStale(filepath.Join(m.tmplDir, name+".building-*"), time.Hour)
	scratch, err := os.MkdirTemp(m.tmplDir, name+".building-")
	if err != nil {
		return tmpl{}, err
	}
	start := time.Now()
	err = func() error {
		if err := os.Chmod(scratch, 0o711); err != nil {
			return err
		}
		if err := mkdirOwned(filepath.Join(scratch, dataName), 0o700, r); err != nil {
			return err
		}
		if err := f.buildTemplate(ctx, m, in, r, scratch); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(scratch, readyName), []byte(newPassword()[:8]+"\n"), 0o644)
	}()
	if err == nil {
		if err = os.Rename(scratch, dir); err != nil {
			if t, ok := m.readyTemplate(dir, name); ok {
				_ = os.RemoveAll(scratch) // another process finished first
				return t, nil
			}
			// a broken leftover without its marker: replace it
			_ = os.RemoveAll(dir)
			err = os.Rename(scratch, dir)
		}
	}
	if err != nil {
		_ = os.RemoveAll(scratch)
		return tmpl{}, err
	}
	m.log.Info("engine: template ready", "template", dir, "elapsed", time.Since(start).Round(time.Millisecond))
	t, _ := m.readyTemplate(dir, name)
	return t, nil
}

// readyTemplate returns the finished template in dir, if there is one.
func (m *Manager) readyTemplate(dir, name string) (tmpl, bool) {
	b, err := os.ReadFile(filepath.Join(dir, readyName))
	if err != nil {
		return tmpl{}, false
	}
	return tmpl{dir: dir, key: name + "-" + strings.TrimSpace(string(b)), m: m}, true
}

// ownTemplateDir creates the template cache, or checks that an existing
// one (perhaps in a shared temp directory) belongs to us and nobody else
// can write to it: its templates become our servers' data.
func (m *Manager) ownTemplateDir() error {
	if err := os.MkdirAll(m.tmplDir, 0o711); err != nil {
		return err
	}
	fi, err := os.Lstat(m.tmplDir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: template cache %s must be a directory owned by uid %d and writable only by it (it is %v)",
			ErrUnsupported, m.tmplDir, os.Geteuid(), fi.Mode())
	}
	return nil
}

func (m *Manager) templateLock(key string) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	mu := m.tmplMu[key]
	if mu == nil {
		mu = new(sync.Mutex)
		m.tmplMu[key] = mu
	}
	return mu
}

// removeStale removes what matches pattern and is older than age: the
// scratch directories of builds that were interrupted.
func removeStale(pattern string, age time.Duration) {
	matches, _ := filepath.Glob(pattern)
	for _, p := range matches {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > age {
			_ = os.RemoveAll(p)
		}
	}
}
