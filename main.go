// Command rdslocal is a local emulator of Amazon RDS Proxy: the AWS API on
// http://localhost:4566 and a real database listener for every proxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rdslocal:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envBool(name string) bool {
	v := strings.ToLower(os.Getenv(name))
	return v == "1" || v == "true" || v == "yes"
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "ca":
			return printCA(args[1:])
		case "wait":
			return waitReady(args[1:])
		case "fixtures":
			return fixtures(args[1:])
		}
	}
	fs := flag.NewFlagSet("rdslocal", flag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.Listen, "listen", env("RDSLOCAL_LISTEN", "127.0.0.1:4566"), "API listen address (RDSLOCAL_LISTEN)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("RDSLOCAL_DATA_DIR", ""), "directory that keeps state across restarts; empty keeps it in memory (RDSLOCAL_DATA_DIR)")
	ports := fs.String("port-range", env("RDSLOCAL_PORT_RANGE", "4510-4560"), "ports for DB instances and ports-mode proxy endpoints, end excluded (RDSLOCAL_PORT_RANGE)")
	fs.StringVar(&cfg.ProxyAddressing, "proxy-addressing", env("RDSLOCAL_PROXY_ADDRESSING", "loopback"), "loopback: a 127.0.x.y address per proxy endpoint on the standard port; ports: 127.0.0.1 with a port from the range (RDSLOCAL_PROXY_ADDRESSING)")
	fs.StringVar(&cfg.AdvertiseHost, "advertise-host", env("RDSLOCAL_ADVERTISE_HOST", ""), "host that ports-mode proxy Endpoint values name instead of 127.0.0.1, e.g. the name of rdslocal's container (RDSLOCAL_ADVERTISE_HOST)")
	fs.StringVar(&cfg.InitFile, "init-file", env("RDSLOCAL_INIT_FILE", ""), "fixture file (YAML or JSON) applied at start (RDSLOCAL_INIT_FILE)")
	fs.StringVar(&cfg.InitDir, "init-dir", env("RDSLOCAL_INIT_DIR", ""), "directory whose ready.d/ executables run once the fixtures are ready (RDSLOCAL_INIT_DIR)")
	fs.StringVar(&cfg.DBBackend, "db-backend", env("RDSLOCAL_DB_BACKEND", "auto"), "what runs behind DB instances: auto (docker when a daemon is healthy, else process), process (local PostgreSQL/MariaDB), docker (containers), none (API records only) (RDSLOCAL_DB_BACKEND)")
	fs.BoolVar(&cfg.VerifySignatures, "verify-signatures", envBool("RDSLOCAL_VERIFY_SIGNATURES"), "verify the SigV4 signature of every API request (RDSLOCAL_VERIFY_SIGNATURES)")
	fs.BoolVar(&cfg.EnforceIAM, "enforce-iam", envBool("RDSLOCAL_ENFORCE_IAM"), "enforce IAM: rds-db:connect policies for IAM logins, existing roles for proxies and AssumeRole (RDSLOCAL_ENFORCE_IAM)")
	level := fs.String("log-level", env("RDSLOCAL_LOG_LEVEL", "info"), "debug, info, warn or error (RDSLOCAL_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("log level %q: %w", *level, err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	var err error
	if cfg.PortMin, cfg.PortMax, err = server.ParsePortRange(*ports); err != nil {
		return err
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// printCA writes the local CA certificate that signs every proxy endpoint
// and ACM certificate: from the data directory when it holds one, else from
// a running rdslocal.
func printCA(args []string) error {
	fs := flag.NewFlagSet("rdslocal ca", flag.ContinueOnError)
	dataDir := fs.String("data-dir", env("RDSLOCAL_DATA_DIR", ""), "data directory of the emulator (RDSLOCAL_DATA_DIR)")
	endpoint := fs.String("endpoint", defaultEndpoint(), "URL of a running rdslocal, used without a data directory (default: AWS_ENDPOINT_URL, else from RDSLOCAL_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir != "" {
		pem, err := os.ReadFile(filepath.Join(*dataDir, "ca", acmcert.CACertFile))
		if err == nil {
			_, err = os.Stdout.Write(pem)
			return err
		}
		if !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
	}
	resp, err := http.Get(strings.TrimSuffix(*endpoint, "/") + "/_rdslocal/ca.pem")
	if err != nil {
		return fmt.Errorf("no CA in the data directory and no rdslocal answering at %s: %w", *endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", *endpoint, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
