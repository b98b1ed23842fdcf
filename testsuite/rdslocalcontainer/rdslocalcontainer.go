package rdslocalcontainer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// APIPort is the container port of the AWS API.
const APIPort = "4566/tcp"

// Default port range of proxies and DB instances in the container (end
// excluded): 20 ports, each exposed on a random host port.
const (
	DefaultPortMin = 4510
	DefaultPortMax = 4530
)

// Paths in the container.
const (
	fixtureFile = "/etc/rdslocal/fixtures.yaml"
	hooksDir    = "/etc/rdslocal/init/ready.d"
)

// Container is a running rdslocal container.
type Container struct {
	testcontainers.Container
}

// settings are the module's own options, applied in Run.
type settings struct {
	portMin, portMax int
	advertise        string
	timeout          time.Duration
}

// option is a module option: it changes settings, and is also a
// testcontainers.ContainerCustomizer (a no-op there) so it can be passed to
// Run with the others.
type option func(*settings)

func (o option) Customize(*testcontainers.GenericContainerRequest) error { return nil }

// WithPortRange sets the container ports proxies and DB instances take
// (end excluded, default 4510-4530). Each is exposed on a random host port.
func WithPortRange(lo, hi int) testcontainers.ContainerCustomizer {
	return option(func(s *settings) { s.portMin, s.portMax = lo, hi })
}

// WithAdvertiseHost sets the host Endpoint values name (default: the Docker
// host as testcontainers sees it, e.g. localhost). Set it to a network alias
// when other containers are the clients.
func WithAdvertiseHost(host string) testcontainers.ContainerCustomizer {
	return option(func(s *settings) { s.advertise = host })
}

// WithStartupTimeout bounds how long Run waits for rdslocal to be ready
// (default 3 minutes).
func WithStartupTimeout(d time.Duration) testcontainers.ContainerCustomizer {
	return option(func(s *settings) { s.timeout = d })
}

// WithFixtures applies a fixture file (YAML or JSON, see the README) at
// start: Run returns once every resource in it is ready.
func WithFixtures(path string) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		if err := testcontainers.WithFiles(testcontainers.ContainerFile{HostFilePath: path, ContainerFilePath: fixtureFile, FileMode: 0o644})(req); err != nil {
			return err
		}
		return testcontainers.WithEnv(map[string]string{"RDSLOCAL_INIT_FILE": fixtureFile})(req)
	}
}

// WithInitScripts copies executable scripts into ready.d; rdslocal runs
// them in the order given once the fixtures are ready, with
// AWS_ENDPOINT_URL and test credentials set. Run fails if one fails.
func WithInitScripts(paths ...string) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		var files []testcontainers.ContainerFile
		for i, p := range paths {
			name := fmt.Sprintf("%03d-%s", i, filepath.Base(p))
			files = append(files, testcontainers.ContainerFile{HostFilePath: p, ContainerFilePath: hooksDir + "/" + name, FileMode: 0o755})
		}
		return testcontainers.WithFiles(files...)(req)
	}
}

// Run starts an rdslocal container from img (e.g. rdslocal:latest, built by
// `make image`) and waits until it is ready: every fixture ready, every
// init hook run. A fixture or hook that fails makes Run fail at once with
// its message. The container is returned even on error, for cleanup.
func Run(ctx context.Context, img string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	s := settings{portMin: DefaultPortMin, portMax: DefaultPortMax, timeout: 3 * time.Minute}
	for _, o := range opts {
		if mo, ok := o.(option); ok {
			mo(&s)
		}
	}
	if s.portMin <= 0 || s.portMax <= s.portMin || s.portMax > 65536 {
		return nil, fmt.Errorf("run rdslocal: port range %d-%d is empty", s.portMin, s.portMax)
	}
	if s.advertise == "" {
		host, err := dockerHost(ctx)
		if err != nil {
			return nil, fmt.Errorf("run rdslocal: %w", err)
		}
		s.advertise = host
	}
	ports := []string{APIPort}
	for p := s.portMin; p < s.portMax; p++ {
		ports = append(ports, strconv.Itoa(p)+"/tcp")
	}
	moduleOpts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(ports...),
		testcontainers.WithEnv(map[string]string{
			"RDSLOCAL_PORT_RANGE":     fmt.Sprintf("%d-%d", s.portMin, s.portMax),
			"RDSLOCAL_ADVERTISE_HOST": s.advertise,
		}),
		testcontainers.WithWaitStrategy(readiness{timeout: s.timeout}),
	}
	ctr, err := testcontainers.Run(ctx, img, append(moduleOpts, opts...)...)
	var c *Container
	if ctr != nil {
		c = &Container{Container: ctr}
	}
	if err != nil {
		return c, fmt.Errorf("run rdslocal: %w", err)
	}
	return c, nil
}

// dockerHost is the host testcontainers reaches published ports at.
func dockerHost(ctx context.Context) (host string, err error) {
	defer func() {
		if r := recover(); r != nil { // testcontainers panics without a Docker host
			err = fmt.Errorf("no Docker host: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", err
	}
	defer p.Close()
	return p.DaemonHost(ctx)
}

// EndpointURL is the URL of the AWS API: the BaseEndpoint of SDK clients,
// AWS_ENDPOINT_URL of the AWS CLI.
func (c *Container) EndpointURL(ctx context.Context) (string, error) {
	return c.PortEndpoint(ctx, APIPort, "http")
}

// AWSConfig returns an aws.Config whose clients talk to the container, with
// the test/test key pair in us-east-1 (rdslocal accepts any key; a 12-digit
// key id selects that account).
func (c *Container) AWSConfig(ctx context.Context) (aws.Config, error) {
	url, err := c.EndpointURL(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(url),
		HTTPClient:   &http.Client{},
	}, nil
}

// ProxyAddress maps a proxy endpoint's Endpoint value (host:port, the
// container's port) to the host:port a client here dials. Sign IAM tokens
// for the Endpoint itself: rdslocal checks them against it.
func (c *Container) ProxyAddress(ctx context.Context, endpoint string) (string, error) {
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", fmt.Errorf("proxy endpoint %q is not host:port (is the container in ports addressing?)", endpoint)
	}
	return c.PortEndpoint(ctx, port+"/tcp", "")
}

// CACertPEM returns the local CA certificate that signs the proxies'
// certificates (sslrootcert for verify-full, or tls.Config.RootCAs).
func (c *Container) CACertPEM(ctx context.Context) ([]byte, error) {
	url, err := c.EndpointURL(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/_rdslocal/ca.pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/_rdslocal/ca.pem: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// readiness waits for the health endpoint to say ready, and fails at once
// when it says start-up failed or the container stops.
type readiness struct{ timeout time.Duration }

// health is the part of rdslocal's health document readiness reads.
type health struct {
	Ready bool `json:"ready"`
	Init  struct {
		State  string   `json:"state"`
		Errors []string `json:"errors"`
	} `json:"init"`
}

func (r readiness) Timeout() *time.Duration { return &r.timeout }

func (r readiness) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if st, err := target.State(ctx); err == nil && !st.Running {
			return fmt.Errorf("the container stopped (exit code %d): see its logs", st.ExitCode)
		}
		if h, err := r.check(ctx, client, target); err != nil {
			last = err
		} else if h.Ready {
			return nil
		} else if h.Init.State == "failed" {
			return fmt.Errorf("rdslocal start-up failed: %s", strings.Join(h.Init.Errors, "; "))
		} else {
			last = fmt.Errorf("start-up is at %s", h.Init.State)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rdslocal not ready after %s: %w", r.timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r readiness) check(ctx context.Context, client *http.Client, target wait.StrategyTarget) (*health, error) {
	host, err := target.Host(ctx)
	if err != nil {
		return nil, err
	}
	port, err := target.MappedPort(ctx, APIPort)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port.Port())+"/_rdslocal/health", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, err
	}
	return &h, nil
}
