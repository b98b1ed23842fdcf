package server

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Config is the configuration of one rdslocal process. Flags and
// RDSLOCAL_* environment variables fill it (see main.go and the README).
type Config struct {
	// Listen is the API address (default 127.0.0.1:4566).
	Listen string
	// DataDir keeps state across restarts; empty means in memory only.
	DataDir string
	// PortMin and PortMax bound the ports handed to DB instances and, in
	// ports mode, proxy endpoints (end excluded; default 4510–4559).
	PortMin, PortMax int
	// ProxyAddressing is "loopback" (each proxy endpoint gets its own
	// 127.0.x.y address on the engine's standard port) or "ports"
	// (a port from the range, on the host of Listen).
	ProxyAddressing string
	// AdvertiseHost, when set, is the host ports-mode proxy Endpoint
	// values name instead of 127.0.0.1: where clients reach the published
	// ports (inside a container, the name other containers or the host
	// use).
	AdvertiseHost string
	// InitFile is a fixture file (package fixture) applied at start.
	InitFile string
	// InitDir holds ready.d/, whose executable files run in order once the
	// fixtures are ready.
	InitDir string
	// DBBackend chooses what runs behind DB instances: "auto" (a
	// container when a Docker daemon is healthy, else a local process),
	// "process", "docker", or "none" (instances are API records only).
	DBBackend string
	// VerifySignatures recomputes the SigV4 signature of every API request
	// (default: any access key is accepted unverified, as in LocalStack).
	VerifySignatures bool
	// EnforceIAM checks identity policies: rds-db:connect for IAM logins,
	// and that roles named by CreateDBProxy and AssumeRole exist.
	EnforceIAM bool
	// Logger receives one line per request and per state change.
	Logger *slog.Logger
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4566"
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 4510, 4560
	}
	if c.ProxyAddressing == "" {
		c.ProxyAddressing = "loopback"
	}
	if c.DBBackend == "" {
		c.DBBackend = "auto"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.PortMin <= 0 || c.PortMax > 65536 || c.PortMin >= c.PortMax {
		return fmt.Errorf("port range %d-%d is empty or out of bounds", c.PortMin, c.PortMax)
	}
	switch c.DBBackend {
	case "auto", "process", "docker", "none":
	default:
		return fmt.Errorf("db backend %q: want auto, process, docker or none", c.DBBackend)
	}
	if c.ProxyAddressing != "loopback" && c.ProxyAddressing != "ports" {
		return fmt.Errorf("proxy addressing %q: want loopback or ports", c.ProxyAddressing)
	}
	return nil
}

// ParsePortRange reads "4510-4560" (end excluded).
func ParsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		lo, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			hi, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("port range %q: want LOW-HIGH, e.g. 4510-4560", s)
	}
	return lo, hi, nil
}
