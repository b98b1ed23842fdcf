package engine

import "fmt"

// Installation is a database server installation found on this machine by
// the same search the process backend uses. It lets other packages (the
// test servers of engine/enginetest) run exactly the binaries engine would.
type Installation struct {
	Family  string // "postgres" or "mysql"
	Product string // "PostgreSQL" or "MariaDB"
	Version string // 15.20, 10.11.19
	// Server is the server binary (postgres, mariadbd).
	Server string
	// Tools are the other binaries by role: "initdb", "pg_basebackup" and
	// "pg_rewind" for PostgreSQL, "install_db" for MariaDB; a missing one
	// is absent.
	Tools map[string]string
	// ServiceUser is the OS user the server must run as when the caller
	// is root (both servers refuse to run as root).
	ServiceUser string
}

// Locate finds the newest installation serving engine ("postgres",
// "mariadb", "mysql", …) at version ("" for any), searching binPath or,
// when empty, PATH and the family's usual directories. Its errors wrap
// ErrInvalid or ErrUnsupported and say what is missing.
func Locate(engine, version, binPath string) (Installation, error) {
	fam, ok := engineFamily(engine)
	if !ok {
		return Installation{}, fmt.Errorf("%w: unknown engine %q", ErrInvalid, engine)
	}
	var d discovery
	var user string
	if fam == famPostgres {
		d, user = discoverPostgres(binPath), postgres{}.serviceUser()
	} else {
		d, user = discoverMySQL(binPath), mariadb{}.serviceUser()
	}
	in, err := pickInstall(d, engine, version)
	if err != nil {
		return Installation{}, err
	}
	tools := map[string]string{}
	for k, v := range in.bins {
		if k != "server" && v != "" {
			tools[k] = v
		}
	}
	return Installation{Family: in.family, Product: in.product, Version: in.version, Server: in.bins["server"],
		Tools: tools, ServiceUser: user}, nil
}
