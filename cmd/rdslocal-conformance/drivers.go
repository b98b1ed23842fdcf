package main

import (
	"context"
	"database/sql"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// driver is one driver whose own test suite runs, and what its tests
// need: a DB instance of an engine, a database, how they are told where
// it is.
type driver struct {
	name   string // for -drivers, and the label of its root package
	title  string // in the report
	module string
	// packages are the driver's packages the run covers, with the timeout
	// of each `go test` (a hung test fails its package at that point, not
	// the run).
	packages []pkg
	// excluded lists the tests that test what RDS Proxy does not offer,
	// with the reason; README's "Deliberate differences" repeats them. A
	// key is "label.TestName", or a path.Match pattern of a test or
	// subtest ("mysql.*/compress"); a match excludes the subtests below
	// too. Plain top-level names are skipped through the proxy (some would
	// only wait out their own timeouts there); patterns run and are not
	// counted.
	excluded map[string]string
	// notRun are tests that run in neither mode, with the reason.
	notRun map[string]string

	engine       string // CreateDBInstance Engine
	family       types.EngineFamily
	user, dbName string
	proxyPort    string // of a proxy endpoint without one (not ports mode)

	// env is what the driver's tests read to find the database at
	// host:port.
	env func(host, port string) []string
	// ping connects to host:port and runs a query.
	ping func(ctx context.Context, host, port string) error
	// prepare readies the database at host:port (directly) for the tests.
	prepare func(ctx context.Context, s *suite, host, port string) error
}

type pkg struct {
	name    string // import path below the module
	timeout time.Duration
}

// The instances' master users and databases; the password is every
// instance's.
const (
	dbPassword = "conformance-pw-1"
	pgxUser    = "postgres"
	pgxDB      = "pgx_test"
	mysqlUser  = "admin"
	mysqlDB    = "gotest"
)

var drivers = []*driver{pgxDriver, mysqlDriver}

var pgxDriver = &driver{
	name:   "pgx",
	title:  "pgx",
	module: "github.com/jackc/pgx/v5",
	packages: []pkg{
		{".", 5 * time.Minute},
		{"pgxpool", 4 * time.Minute},
		{"stdlib", 3 * time.Minute},
		{"pgconn", 4 * time.Minute},
		{"pgtype", 3 * time.Minute},
	},
	excluded: map[string]string{
		// No transaction pooler can offer these: between transactions a
		// client holds no server process, so the PID in its
		// BackendKeyData (the proxy's own, as with RDS Proxy and
		// PgBouncer) names none.
		"pgx.TestFatalTxError":                        terminatesByPID,
		"pgx.TestFatalRxError":                        terminatesByPID,
		"pgxpool.TestPoolAcquireChecksIdleConns":      terminatesByPID,
		"stdlib.TestCheckIdleConn":                    terminatesByPID,
		"pgconn.TestConnCopyFromConnectionTerminated": terminatesByPID,
		// RDS Proxy refuses startup parameters beyond the ones AWS lists.
		"pgconn.TestConnOnNotice":             "sends client_min_messages in the startup packet, which RDS Proxy refuses (FATAL 0A000 \"doesn't support the option\")",
		"pgconn.TestConnectWithRuntimeParams": "sends search_path in the startup packet, which RDS Proxy refuses (FATAL 0A000 \"doesn't support the option\")",
	},
	engine:    "postgres",
	family:    types.EngineFamilyPostgresql,
	user:      pgxUser,
	dbName:    pgxDB,
	proxyPort: "5432",
	env: func(host, port string) []string {
		return []string{"PGX_TEST_DATABASE=" + pgxDSN(host, port)}
	},
	ping: func(ctx context.Context, host, port string) error {
		c, err := pgx.Connect(ctx, pgxDSN(host, port))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "SELECT 1").Scan(&n)
	},
	prepare: preparePgx,
}

const terminatesByPID = "calls pg_terminate_backend with the PID from BackendKeyData, which through a transaction pooler names no server process"

// pgxDSN is the PGX_TEST_DATABASE value for a host and port. sslmode is
// pgx's default (prefer): the proxy offers TLS, the instance does not.
func pgxDSN(host, port string) string {
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s", host, port, pgxUser, dbPassword, pgxDB)
}

var mysqlDriver = &driver{
	name:     "mysql",
	title:    "go-sql-driver/mysql",
	module:   "github.com/go-sql-driver/mysql",
	packages: []pkg{{".", 5 * time.Minute}},
	// None: every test that passes directly passes through the proxy.
	// runTests's compress=true variants too, since the driver compresses
	// only when the server offers it, and RDS Proxy does not.
	excluded: map[string]string{},
	notRun: map[string]string{
		"mysql.TestConnectorReturnsTimeout": "dials 1.1.1.1:1234 to see the driver's own dial timeout (no server involved; the run sends nothing beyond 127.0.0.0/8)",
	},
	engine:    "mariadb",
	family:    types.EngineFamilyMysql,
	user:      mysqlUser,
	dbName:    mysqlDB,
	proxyPort: "3306",
	env: func(host, port string) []string {
		return []string{"MYSQL_TEST_USER=" + mysqlUser, "MYSQL_TEST_PASS=" + dbPassword, "MYSQL_TEST_PROT=tcp",
			"MYSQL_TEST_ADDR=" + host + ":" + port, "MYSQL_TEST_DBNAME=" + mysqlDB, "MYSQL_TEST_CONCURRENT=1"}
	},
	ping: func(ctx context.Context, host, port string) error {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = mysqlUser, dbPassword, "tcp", host+":"+port, mysqlDB
		cn, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(cn)
		defer db.Close()
		var n int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
	},
	prepare: func(context.Context, *suite, string, string) error { return nil },
}

func driverNamed(name string) *driver {
	for _, d := range drivers {
		if d.name == name {
			return d
		}
	}
	return nil
}

// label names a driver's package in test keys and -pkgs: the driver's
// name for its root package.
func (d *driver) label(p pkg) string {
	if p.name == "." {
		return d.name
	}
	return p.name
}

// packageDriver is the driver with a package labelled l.
func packageDriver(l string) *driver {
	for _, d := range drivers {
		for _, p := range d.packages {
			if d.label(p) == l {
				return d
			}
		}
	}
	return nil
}

// exclusion is the reason test t (with its subtests: "pgx.TestA/sub")
// is excluded, or "".
func (d *driver) exclusion(t string) string {
	for i := 0; i <= len(t); i++ {
		if i < len(t) && t[i] != '/' {
			continue
		}
		prefix := t[:i]
		if why := d.excluded[prefix]; why != "" {
			return why
		}
		for k, why := range d.excluded {
			if ok, _ := path.Match(k, prefix); ok {
				return why
			}
		}
	}
	return ""
}

// skipped are the top-level tests of package label that do not run in
// mode: those not run at all, and through the proxy the excluded ones.
func (d *driver) skipped(label, mode string) []string {
	var out []string
	for k := range d.notRun {
		if name, ok := strings.CutPrefix(k, label+"."); ok {
			out = append(out, name)
		}
	}
	for k := range d.excluded {
		if mode != "proxy" {
			break
		}
		if name, ok := strings.CutPrefix(k, label+"."); ok && !strings.ContainsAny(name, "/*?[\\") {
			out = append(out, name)
		}
	}
	return out
}
