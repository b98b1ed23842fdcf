package rdslocalcontainer_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/testsuite/rdslocalcontainer"
	"github.com/testcontainers/testcontainers-go"
)

// image is the image under test: RDSLOCAL_IMAGE, else what `make image`
// builds.
func image() string {
	if img := os.Getenv("RDSLOCAL_IMAGE"); img != "" {
		return img
	}
	return "rdslocal:latest"
}

// needDocker skips the test without a healthy Docker daemon or without
// the image (no registry to pull it from: `make image` builds it).
func needDocker(t *testing.T) {
	t.Helper()
	// The reaper's image (testcontainers/ryuk) cannot be pulled where no
	// registry is reachable; CleanupContainer removes what the tests start.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	testcontainers.SkipIfProviderIsNotHealthy(t)
	cli, err := testcontainers.NewDockerClientWithOpts(context.Background())
	if err != nil {
		t.Skipf("no Docker client: %v", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(context.Background(), image()); err != nil {
		t.Skipf("image %s is not there (make image builds it): %v", image(), err)
	}
}

var examples = filepath.Join("..", "..", "examples")

// TestRun starts the image with the example fixture file and init hook,
// then connects through both proxies from this host: with the secret's
// password, and with an IAM token signed for the Endpoint.
func TestRun(t *testing.T) {
	needDocker(t)
	ctx := context.Background()
	ctr, err := rdslocalcontainer.Run(ctx, image(),
		rdslocalcontainer.WithFixtures(filepath.Join(examples, "fixtures.yaml")),
		rdslocalcontainer.WithInitScripts(filepath.Join(examples, "init", "ready.d", "10-schema.sh")))
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ctr.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := ctr.CACertPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c := rds.NewFromConfig(cfg)
	connect := func(proxy string, password func(endpoint string) string) {
		out, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String(proxy)})
		if err != nil {
			t.Fatal(err)
		}
		endpoint := aws.ToString(out.DBProxies[0].Endpoint)
		addr, err := ctr.ProxyAddress(ctx, endpoint)
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		pc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=app dbname=postgres connect_timeout=10", host, port))
		if err != nil {
			t.Fatal(err)
		}
		epHost, _, _ := net.SplitHostPort(endpoint)
		pc.TLSConfig = &tls.Config{RootCAs: roots, ServerName: epHost}
		pc.Fallbacks = nil
		pc.Password = password(endpoint)
		conn, err := pgx.ConnectConfig(ctx, pc)
		if err != nil {
			t.Fatalf("%s: connect to %s (Endpoint %s): %v", proxy, addr, endpoint, err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM greetings").Scan(&n); err != nil {
			t.Fatalf("%s: the init hook's table: %v", proxy, err)
		}
	}
	connect("app-proxy", func(string) string { return "app-password-1" })
	connect("app-proxy-iam", func(endpoint string) string {
		token, err := rdsauth.BuildAuthToken(ctx, endpoint, "us-east-1", "app", credentials.NewStaticCredentialsProvider("test", "test", ""))
		if err != nil {
			t.Fatal(err)
		}
		return token
	})
}

// TestRunFails: a fixture the API refuses, and a file that cannot be
// right, make Run fail with rdslocal's message instead of waiting.
func TestRunFails(t *testing.T) {
	needDocker(t)
	tests := []struct{ name, file, want string }{
		{"API error", "DBInstances:\n  - DBInstanceIdentifier: db\n    Engine: postgress\n",
			`rdslocal start-up failed: /etc/rdslocal/fixtures.yaml:2: DBInstance "db": CreateDBInstance: InvalidParameterValue: Invalid DB engine: postgress.`},
		{"bad file", "DBInstance:\n  - DBInstanceIdentifier: db\n", "the container stopped (exit code 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "f.yaml")
			if err := os.WriteFile(file, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			ctr, err := rdslocalcontainer.Run(context.Background(), image(), rdslocalcontainer.WithFixtures(file))
			testcontainers.CleanupContainer(t, ctr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant …%s…", err, tt.want)
			}
		})
	}
}
