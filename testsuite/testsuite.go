package testsuite

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"

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

// WithDBBackend chooses what runs behind DB instances: "auto" (default,
// real PostgreSQL/MariaDB processes) or "none" (API records only).
func WithDBBackend(b string) Option { return func(c *server.Config) { c.DBBackend = b } }

// WithEnforceIAM turns on --enforce-iam.
func WithEnforceIAM() Option { return func(c *server.Config) { c.EnforceIAM = true } }

// WithVerifySignatures turns on --verify-signatures.
func WithVerifySignatures() Option { return func(c *server.Config) { c.VerifySignatures = true } }

// WithLogger sends the server's log to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(c *server.Config) { c.Logger = l } }

// Start runs an emulator until the test ends.
func Start(tb testing.TB, opts ...Option) *Emulator {
	tb.Helper()
	cfg := server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
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
