package engine

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// runAs is the OS identity a family's servers run as: the service user
// (postgres, mysql) when rdslocal runs as root, which both servers refuse
// to be; otherwise rdslocal's own user, with cred nil.
type runAs struct {
	name     string
	uid, gid int
	groups   []int
	cred     *syscall.Credential // nil: run as ourselves
}

func lookupRunAs(serviceUser string) (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{name: "self", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		return runAs{}, fmt.Errorf("%w: running as root needs the OS user %q to run the server as: %v", ErrUnsupported, serviceUser, err)
	}
	r := runAs{name: serviceUser}
	r.uid, _ = strconv.Atoi(u.Uid)
	r.gid, _ = strconv.Atoi(u.Gid)
	gids, _ := u.GroupIds()
	for _, g := range gids {
		n, _ := strconv.Atoi(g)
		r.groups = append(r.groups, n)
	}
	groups := make([]uint32, len(r.groups))
	for i, g := range r.groups {
		groups[i] = uint32(g)
	}
	r.cred = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: groups}
	return r, nil
}

// attr returns the SysProcAttr that runs a child as r.
func (r runAs) attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: r.cred}
}

// chown gives path to r (a no-op when r is ourselves).
func (r runAs) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Lchown(path, r.uid, r.gid)
}

// checkReach verifies r can traverse every directory from / down to dir,
// so the server can open its data directory inside it.
func (r runAs) checkReach(dir string) error {
	if r.cred == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode().Perm()
			var can bool
			switch {
			case int(st.Uid) == r.uid:
				can = mode&0o100 != 0
			case int(st.Gid) == r.gid || slices.Contains(r.groups, int(st.Gid)):
				can = mode&0o010 != 0
			default:
				can = mode&0o001 != 0
			}
			if !can {
				return fmt.Errorf("%w: the server runs as OS user %s, which cannot enter %s (mode %v, owner uid %d); make it searchable, e.g. chmod o+x %s",
					ErrUnsupported, r.name, p, fi.Mode(), st.Uid, p)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
