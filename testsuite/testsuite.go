package testsuite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/rdslocal/rdslocal/server"
)

// Emulator is an rdslocal server running inside a test.
type Emulator struct {
	// URL is the API endpoint, e.g. http://127.0.0.1:41234.
	URL string
	// AWSConfig points every SDK client at URL with the test/test
	// credentials in us-east-1.
	AWSConfig aws.Config
	Server    *server.Server
	stop      func()
}

// Stop shuts the emulator down now (stopping the database servers it
// started); the test's cleanup does it otherwise.
func (e *Emulator) Stop() { e.stop() }

// Option adjusts the server configuration before start.
type Option func(*server.Config)

// WithDataDir keeps state in dir.
func WithDataDir(dir string) Option { return func(c *server.Config) { c.DataDir = dir } }

// WithDBBackend chooses what runs behind DB instances: "process" (the
// default here: real PostgreSQL/MariaDB processes, whether or not a Docker
// daemon runs), "auto" (containers when a Docker daemon answers and has
// or can pull the image, as rdslocal itself does by default), "docker" or
// "none" (API records only).
func WithDBBackend(b string) Option { return func(c *server.Config) { c.DBBackend = b } }

// WithEnforceIAM turns on --enforce-iam.
func WithEnforceIAM() Option { return func(c *server.Config) { c.EnforceIAM = true } }

// WithVerifySignatures turns on --verify-signatures.
func WithVerifySignatures() Option { return func(c *server.Config) { c.VerifySignatures = true } }

// WithPortRange sets the ports handed to DB instances and ports-mode proxy
// endpoints (end excluded), e.g. away from other programs' servers.
func WithPortRange(lo, hi int) Option {
	return func(c *server.Config) { c.PortMin, c.PortMax = lo, hi }
}

// WithProxyAddressing chooses "loopback" (default) or "ports" addressing
// of proxy endpoints.
func WithProxyAddressing(mode string) Option {
	return func(c *server.Config) { c.ProxyAddressing = mode }
}

// WithAdvertiseHost sets --advertise-host.
func WithAdvertiseHost(host string) Option { return func(c *server.Config) { c.AdvertiseHost = host } }

// WithInitFile applies a fixture file at start (--init-file); WaitReady
// waits for it.
func WithInitFile(path string) Option { return func(c *server.Config) { c.InitFile = path } }

// WithInitDir runs the ready.d hooks below dir at start (--init-dir).
func WithInitDir(dir string) Option { return func(c *server.Config) { c.InitDir = dir } }

// WithLogger sends the server's log to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *server.Config) { c.Logger = l } }

// Start runs an emulator until the test ends.
func Start(tb testing.TB, opts ...Option) *Emulator {
	tb.Helper()
	// Tests must not depend on a Docker daemon being up (or down): the
	// process backend, unless the test asks for another.
	cfg := server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DBBackend: "process"}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatalf("starting rdslocal: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
	})
	tb.Cleanup(stop)
	url := "http://" + ln.Addr().String()
	return &Emulator{
		URL:       url,
		Server:    srv,
		AWSConfig: Config(url, "test", "test"),
		stop:      stop,
	}
}

// WaitReady waits until start-up is done (fixtures ready, init hooks
// run), as `rdslocal wait` does, and returns the final health document. It
// returns an error when start-up failed, or when ctx ends first.
func (e *Emulator) WaitReady(ctx context.Context) (server.Health, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		h := e.Server.Health()
		switch {
		case h.Ready:
			return h, nil
		case h.Init.State == server.PhaseFailed:
			return h, fmt.Errorf("start-up failed: %s", strings.Join(h.Init.Errors, "; "))
		}
		select {
		case <-ctx.Done():
			return h, fmt.Errorf("not ready: %w (init state %s)", ctx.Err(), h.Init.State)
		case <-t.C:
		}
	}
}

// Config returns an aws.Config for the endpoint url with a static key pair
// in us-east-1.
func Config(url, accessKey, secretKey string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		BaseEndpoint: aws.String(url),
		HTTPClient:   &http.Client{},
	}
}
