package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Engine families: every RDS engine name maps to one.
const (
	famPostgres = "postgres"
	famMySQL    = "mysql"
)

// install is one usable server installation found on this machine.
type install struct {
	family  string
	product string // "PostgreSQL" or "MariaDB"
	version string // 15.20, 10.11.19
	major   string // 15, 10.11
	bins    map[string]string
}

// bin returns the path of a tool of this installation.
func (in install) bin(name string) (string, error) {
	if p := in.bins[name]; p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s %s has no %s next to its server binary", ErrUnsupported, in.product, in.version, name)
}

func (in install) String() string {
	return fmt.Sprintf("%s %s (%s)", in.product, in.version, filepath.Dir(in.bins["server"]))
}

// discovery is the result of searching for one family's installations.
type discovery struct {
	installs []install // newest first
	notes    []string  // binaries found but unusable, and why
}

// searchDirs lists the directories searched for binaries: BinPath alone
// when given, else PATH followed by the family's usual locations.
func searchDirs(binPath string, extra []string) []string {
	if binPath != "" {
		return filepath.SplitList(binPath)
	}
	dirs := filepath.SplitList(os.Getenv("PATH"))
	for _, pat := range extra {
		m, _ := filepath.Glob(pat)
		sort.Sort(sort.Reverse(sort.StringSlice(m)))
		dirs = append(dirs, m...)
	}
	return dirs
}

var (
	pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+(?:\.\d+)?)`)
	myVersionRE = regexp.MustCompile(`Ver (\d+\.\d+\.\d+)(-\S*)?`)
)

func discoverPostgres(binPath string) discovery {
	var d discovery
	seen := map[string]bool{}
	for _, dir := range searchDirs(binPath, []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"}) {
		server := executable(dir, "postgres")
		if server == "" || seen[realPath(server)] {
			continue
		}
		// Tools live beside the real binary (/usr/local/bin/postgres may
		// be a symlink into /usr/lib/postgresql/15/bin).
		server = realPath(server)
		seen[server] = true
		dir = filepath.Dir(server)
		initdb := executable(dir, "initdb")
		if initdb == "" {
			d.notes = append(d.notes, server+" has no initdb beside it")
			continue
		}
		out, err := versionOutput(server)
		m := pgVersionRE.FindStringSubmatch(out)
		if err != nil || m == nil {
			d.notes = append(d.notes, fmt.Sprintf("%s --version: %v %q", server, err, out))
			continue
		}
		in := install{family: famPostgres, product: "PostgreSQL", version: m[1], major: pgMajor(m[1]),
			bins: map[string]string{"server": server, "initdb": initdb, "pg_basebackup": executable(dir, "pg_basebackup"),
				"pg_rewind": executable(dir, "pg_rewind")}}
		d.installs = append(d.installs, in)
	}
	sortInstalls(d.installs)
	return d
}

func discoverMySQL(binPath string) discovery {
	var d discovery
	dirs := searchDirs(binPath, []string{"/usr/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/mysql/scripts", "/usr/bin"})
	installer := ""
	for _, dir := range dirs {
		for _, name := range []string{"mariadb-install-db", "mysql_install_db"} {
			if p := executable(dir, name); p != "" && installer == "" {
				installer = p
			}
		}
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		for _, name := range []string{"mariadbd", "mysqld"} {
			server := executable(dir, name)
			if server == "" || seen[realPath(server)] {
				continue
			}
			seen[realPath(server)] = true
			out, err := versionOutput(server)
			m := myVersionRE.FindStringSubmatch(out)
			switch {
			case err != nil || m == nil:
				d.notes = append(d.notes, fmt.Sprintf("%s --version: %v %q", server, err, out))
				continue
			case !strings.Contains(out, "MariaDB"):
				d.notes = append(d.notes, fmt.Sprintf("%s is MySQL %s; the process backend runs only MariaDB", server, m[1]))
				continue
			case installer == "":
				d.notes = append(d.notes, server+" found but no mariadb-install-db or mysql_install_db")
				continue
			}
			in := install{family: famMySQL, product: "MariaDB", version: m[1], major: myMajor(m[1]),
				bins: map[string]string{"server": server, "install_db": installer}}
			d.installs = append(d.installs, in)
		}
	}
	sortInstalls(d.installs)
	return d
}

// pgMajor is the PostgreSQL major version: "15" for 15.x, "9.6" for 9.6.x.
func pgMajor(v string) string {
	parts := strings.Split(v, ".")
	if n, _ := strconv.Atoi(parts[0]); n < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}

// myMajor is the MariaDB release series: "10.11" for 10.11.x.
func myMajor(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) > 1 {
		return parts[0] + "." + parts[1]
	}
	return v
}

func sortInstalls(ins []install) {
	sort.SliceStable(ins, func(i, j int) bool { return versionLess(ins[j].version, ins[i].version) })
}

// versionLess compares dotted numeric versions.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func executable(dir, name string) string {
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return ""
	}
	return p
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func versionOutput(bin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// pickInstall chooses the installation that serves engine at version.
func pickInstall(d discovery, engine, version string) (install, error) {
	fam, _ := engineFamily(engine)
	if len(d.installs) == 0 {
		why := ""
		if len(d.notes) > 0 {
			why = " (" + strings.Join(d.notes, "; ") + ")"
		}
		if fam == famPostgres {
			return install{}, fmt.Errorf("%w: engine %s needs PostgreSQL's postgres and initdb on PATH or in /usr/lib/postgresql/*/bin%s", ErrUnsupported, engine, why)
		}
		return install{}, fmt.Errorf("%w: engine %s needs mariadbd or mysqld (MariaDB) and mariadb-install-db on PATH%s", ErrUnsupported, engine, why)
	}
	if version == "" || engine == "mysql" || engine == "aurora-mysql" || engine == "aurora" {
		// mysql engines are served by whatever MariaDB is installed: a
		// MySQL version number says nothing about MariaDB's.
		return d.installs[0], nil
	}
	want := myMajor(version)
	if fam == famPostgres {
		want = pgMajor(version)
	}
	var have []string
	for _, in := range d.installs {
		if in.major == want {
			return in, nil
		}
		have = append(have, in.String())
	}
	return install{}, fmt.Errorf("%w: engine %s version %s is not installed; installed: %s", ErrUnsupported, engine, version, strings.Join(have, ", "))
}
