package testsuite_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/rdslocal/rdslocal/testsuite"
)

// readmeFiles returns the files README.md quotes: a fenced block after a
// `<!-- file: PATH -->` line, by PATH.
func readmeFiles(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- file: (\\S+) -->\n```[a-z]*\n(.*?)```\n")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestReadmeQuotesExamples: the fixture file and the CI script in the
// README are the files in examples/, which the tests run.
func TestReadmeQuotesExamples(t *testing.T) {
	quoted := readmeFiles(t)
	for _, name := range []string{"examples/fixtures.yaml", "examples/ci.sh"} {
		file, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if q, ok := quoted[name]; !ok {
			t.Errorf("README does not quote %s", name)
		} else if q != string(file) {
			t.Errorf("README's copy of %s differs from the file:\n--- README\n%s--- %s\n%s", name, q, name, file)
		}
	}
}

// TestCIRecipe runs the README's plain-shell CI job (examples/ci.sh) as it
// is written, with the rdslocal binary, the AWS CLI and psql; only the
// ports differ (RDSLOCAL_LISTEN, AWS_ENDPOINT_URL, RDSLOCAL_PORT_RANGE), so
// it runs beside other programs.
func TestCIRecipe(t *testing.T) {
	for _, tool := range []string{"aws", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps installs it)", tool)
		}
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	fixtures, err := os.ReadFile(filepath.Join("..", "examples", "fixtures.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "examples", "fixtures.yaml"), fixtures, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "examples", "ci.sh"))
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	lo, hi := freePorts(t)
	cmd := exec.Command("sh", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"RDSLOCAL_LISTEN="+addr, "AWS_ENDPOINT_URL=http://"+addr, "RDSLOCAL_DB_BACKEND=process",
		"RDSLOCAL_PORT_RANGE="+strconv.Itoa(lo)+"-"+strconv.Itoa(hi),
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(filepath.Join(dir, "rdslocal.log"))
	if err != nil {
		t.Fatalf("examples/ci.sh: %v\n%s\n--- rdslocal.log\n%s", err, out, log)
	}
	for _, want := range []string{"password login through app-proxy", "IAM login through app-proxy-iam", "rdslocal is ready (4 fixtures, 0 init hooks)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the script's output has no %q:\n%s", want, out)
		}
	}
}

// TestWaitCommand runs `rdslocal wait` against a server that becomes
// ready, one whose start-up fails (it says why at once, not after the
// timeout), and an address where nothing answers.
func TestWaitCommand(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	wait := func(url, timeout string) (string, error) {
		out, err := exec.Command(bin, "wait", "--endpoint", url, "--timeout", timeout).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	file := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(file, []byte("Secrets:\n  - Name: s\n    SecretString: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := testsuite.Start(t, testsuite.WithDBBackend("none"), testsuite.WithInitFile(file))
	if out, err := wait(ok.URL, "60s"); err != nil || !strings.HasPrefix(out, "rdslocal is ready (1 fixtures, 0 init hooks)") {
		t.Errorf("a server that becomes ready: %v: %s", err, out)
	}

	hooks := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hooks, "ready.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "ready.d", "fail.sh"), []byte("#!/bin/sh\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := testsuite.Start(t, testsuite.WithDBBackend("none"), testsuite.WithInitDir(hooks))
	out, err := wait(bad.URL, "2m")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || out != "rdslocal: start-up failed:\n  init hook ready.d/fail.sh: exited with status 7" {
		t.Errorf("a failed start-up: %v: %q", err, out)
	}

	nothing := "http://" + freeAddr(t)
	out, err = wait(nothing, "1s")
	if err == nil || !strings.HasPrefix(out, "rdslocal: not ready after 1s at "+nothing+": ") {
		t.Errorf("no server: %v: %s", err, out)
	}
}

// TestFixturesApplyCommand: `rdslocal fixtures apply` brings a running
// rdslocal's resources to what a file says and returns once they are
// ready, also where DB instances are records only (--db-backend none),
// whose proxy targets never become available.
func TestFixturesApplyCommand(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	emu := testsuite.Start(t, testsuite.WithDBBackend("none"))
	out, err := exec.Command(bin, "fixtures", "apply", "--endpoint", emu.URL, "--timeout", "60s", "../examples/fixtures.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "4 resources ready after") {
		t.Fatalf("fixtures apply: %v\n%s", err, out)
	}
	px, err := rds.NewFromConfig(emu.AWSConfig).DescribeDBProxies(context.Background(), &rds.DescribeDBProxiesInput{})
	if err != nil || len(px.DBProxies) != 2 {
		t.Fatalf("proxies after apply: %+v, %v", px, err)
	}
}

// TestAWSEndpointURLWithCLI runs the AWS CLI that is installed with
// AWS_ENDPOINT_URL and no --endpoint-url, and checks what the README says
// about it: AWS CLI v1 honours it except for rds in us-east-1, where its
// ssl-common-name customization wins; AWS CLI v2 honours it from 2.13 on.
func TestAWSEndpointURLWithCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (make deps installs it)")
	}
	emu := testsuite.Start(t, testsuite.WithDBBackend("none"))
	ctx := context.Background()
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		cfg := emu.AWSConfig
		cfg.Region = region
		if _, err := rds.NewFromConfig(cfg).CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("p-" + region), EngineFamily: types.EngineFamilyPostgresql,
			RoleArn: aws.String("arn:aws:iam::000000000000:role/r"), VpcSubnetIds: []string{"subnet-1"},
			Auth: []types.UserAuthConfig{{SecretArn: aws.String("arn:aws:secretsmanager:" + region + ":000000000000:secret:s-AbCdEf")}}}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(region string, args ...string) (string, error) {
		cmd := exec.Command("aws", append(args, "--output", "text", "--cli-connect-timeout", "2", "--cli-read-timeout", "5")...)
		cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+emu.URL, "AWS_DEFAULT_REGION="+region, "AWS_REGION="+region,
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	version, _ := run("us-east-1", "--version")
	m := regexp.MustCompile(`^aws-cli/(\d+)\.(\d+)`).FindStringSubmatch(version)
	if m == nil {
		t.Fatalf("aws --version: %q", version)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major == 2 && minor < 13 {
		t.Skipf("%s predates AWS_ENDPOINT_URL (AWS CLI v2 reads it from 2.13 on)", version)
	}
	// Every service but rds in us-east-1.
	if out, err := run("us-east-1", "sts", "get-caller-identity", "--query", "Account"); err != nil || out != "000000000000" {
		t.Errorf("%s: sts get-caller-identity through AWS_ENDPOINT_URL: %v: %s", version, err, out)
	}
	if out, err := run("us-east-1", "secretsmanager", "list-secrets", "--query", "length(SecretList)"); err != nil || out != "0" {
		t.Errorf("%s: secretsmanager list-secrets: %v: %s", version, err, out)
	}
	if out, err := run("eu-west-1", "rds", "describe-db-proxies", "--query", "DBProxies[].DBProxyName"); err != nil || out != "p-eu-west-1" {
		t.Errorf("%s: rds in eu-west-1: %v: %s", version, err, out)
	}
	out, err := run("us-east-1", "rds", "describe-db-proxies", "--query", "DBProxies[].DBProxyName")
	reached := err == nil && out == "p-us-east-1"
	if major == 1 && reached {
		t.Errorf("%s now honours AWS_ENDPOINT_URL for rds in us-east-1: update the README", version)
	}
	if major == 2 && !reached {
		t.Errorf("%s: rds in us-east-1 did not reach rdslocal: %v: %s", version, err, out)
	}
	// With --endpoint-url, as the README's recipes pass it.
	if out, err := run("us-east-1", "rds", "describe-db-proxies", "--endpoint-url", emu.URL, "--query", "DBProxies[].DBProxyName"); err != nil || out != "p-us-east-1" {
		t.Errorf("%s: rds with --endpoint-url: %v: %s", version, err, out)
	}
}
