package testsuite_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rdslocal/rdslocal/testsuite"
)

// awsCLI runs the real AWS CLI against the emulator and decodes its JSON
// output into out (when non-nil).
type awsCLI struct {
	t   *testing.T
	url string
}

func (a awsCLI) run(out any, args ...string) {
	a.t.Helper()
	if err := a.try(out, args...); err != nil {
		a.t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
}

func (a awsCLI) try(out any, args ...string) error {
	a.t.Helper()
	cmd := exec.Command("aws", append([]string{"--endpoint-url", a.url, "--region", "us-east-1", "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_PAGER=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	stdout, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return &cliError{stderr: string(ee.Stderr)}
		}
		return err
	}
	if out != nil && len(strings.TrimSpace(string(stdout))) > 0 {
		if err := json.Unmarshal(stdout, out); err != nil {
			a.t.Fatalf("aws %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout)
		}
	}
	return nil
}

type cliError struct{ stderr string }

func (e *cliError) Error() string { return strings.TrimSpace(e.stderr) }

// TestAWSCLIFlow is the README's walk-through, run with the real AWS CLI.
func TestAWSCLIFlow(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (make deps installs it)")
	}
	emu := testsuite.Start(t)
	aws := awsCLI{t: t, url: emu.URL}

	var secret struct{ ARN, Name string }
	aws.run(&secret, "secretsmanager", "create-secret", "--name", "app-db-creds",
		"--secret-string", `{"username":"app","password":"app-password-1"}`)
	if !strings.HasPrefix(secret.ARN, "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-db-creds-") {
		t.Fatalf("secret ARN %q", secret.ARN)
	}

	var inst struct {
		DBInstance struct{ DBInstanceIdentifier, DBInstanceStatus string }
	}
	aws.run(&inst, "rds", "create-db-instance", "--db-instance-identifier", "app-db", "--engine", "postgres",
		"--db-instance-class", "db.t3.micro", "--master-username", "app", "--master-user-password", "app-password-1")
	if inst.DBInstance.DBInstanceIdentifier != "app-db" {
		t.Fatalf("create-db-instance: %+v", inst)
	}
	aws.run(nil, "rds", "wait", "db-instance-available", "--db-instance-identifier", "app-db")

	var proxy struct {
		DBProxy struct {
			DBProxyName, Status, Endpoint, EngineFamily string
			Auth                                        []struct{ SecretArn, IAMAuth string }
		}
	}
	aws.run(&proxy, "rds", "create-db-proxy", "--db-proxy-name", "app-proxy", "--engine-family", "POSTGRESQL",
		"--auth", "AuthScheme=SECRETS,SecretArn="+secret.ARN+",IAMAuth=DISABLED",
		"--role-arn", "arn:aws:iam::000000000000:role/proxy-role", "--vpc-subnet-ids", "subnet-1", "subnet-2", "--require-tls")
	if proxy.DBProxy.Status != "creating" || proxy.DBProxy.Endpoint == "" || len(proxy.DBProxy.Auth) != 1 {
		t.Fatalf("create-db-proxy: %+v", proxy)
	}

	var targets struct {
		DBProxyTargets []struct{ RdsResourceId, Type string }
	}
	aws.run(&targets, "rds", "register-db-proxy-targets", "--db-proxy-name", "app-proxy", "--db-instance-identifiers", "app-db")
	if len(targets.DBProxyTargets) != 1 || targets.DBProxyTargets[0].RdsResourceId != "app-db" || targets.DBProxyTargets[0].Type != "RDS_INSTANCE" {
		t.Fatalf("register: %+v", targets)
	}

	var endpoint string
	aws.run(&endpoint, "rds", "describe-db-proxies", "--db-proxy-name", "app-proxy", "--query", "DBProxies[0].Endpoint")
	if endpoint != proxy.DBProxy.Endpoint {
		t.Fatalf("--query endpoint %q, want %q", endpoint, proxy.DBProxy.Endpoint)
	}
	var status []string
	aws.run(&status, "rds", "describe-db-proxy-targets", "--db-proxy-name", "app-proxy", "--query", "Targets[].TargetHealth.State")
	if len(status) != 1 || status[0] != "AVAILABLE" {
		t.Fatalf("target health %v", status)
	}

	var tg struct {
		DBProxyTargetGroup struct {
			ConnectionPoolConfig struct{ MaxConnectionsPercent, MaxIdleConnectionsPercent, ConnectionBorrowTimeout int }
		}
	}
	aws.run(&tg, "rds", "modify-db-proxy-target-group", "--db-proxy-name", "app-proxy", "--target-group-name", "default",
		"--connection-pool-config", "MaxConnectionsPercent=50,ConnectionBorrowTimeout=30")
	if pc := tg.DBProxyTargetGroup.ConnectionPoolConfig; pc.MaxConnectionsPercent != 50 || pc.MaxIdleConnectionsPercent != 25 || pc.ConnectionBorrowTimeout != 30 {
		t.Fatalf("modify target group: %+v", pc)
	}

	var ep struct {
		DBProxyEndpoint struct{ DBProxyEndpointName, Endpoint, TargetRole string }
	}
	aws.run(&ep, "rds", "create-db-proxy-endpoint", "--db-proxy-name", "app-proxy", "--db-proxy-endpoint-name", "app-ro",
		"--vpc-subnet-ids", "subnet-1", "--target-role", "READ_ONLY")
	if ep.DBProxyEndpoint.TargetRole != "READ_ONLY" || ep.DBProxyEndpoint.Endpoint == "" {
		t.Fatalf("create endpoint: %+v", ep)
	}
	var names []string
	aws.run(&names, "rds", "describe-db-proxy-endpoints", "--db-proxy-name", "app-proxy", "--query", "DBProxyEndpoints[].DBProxyEndpointName")
	if strings.Join(names, ",") != "default,app-ro" {
		t.Fatalf("endpoints %v", names)
	}
	aws.run(nil, "rds", "delete-db-proxy-endpoint", "--db-proxy-endpoint-name", "app-ro")
	aws.run(nil, "rds", "deregister-db-proxy-targets", "--db-proxy-name", "app-proxy", "--db-instance-identifiers", "app-db")
	var deleted struct{ DBProxy struct{ Status string } }
	aws.run(&deleted, "rds", "delete-db-proxy", "--db-proxy-name", "app-proxy")
	if deleted.DBProxy.Status != "deleting" {
		t.Fatalf("delete-db-proxy: %+v", deleted)
	}
	err := aws.try(nil, "rds", "describe-db-proxies", "--db-proxy-name", "app-proxy")
	if err == nil || !strings.Contains(err.Error(), "DBProxyNotFoundFault") {
		t.Fatalf("describe after delete: %v", err)
	}
	aws.run(nil, "rds", "delete-db-instance", "--db-instance-identifier", "app-db", "--skip-final-snapshot")
	aws.run(nil, "rds", "wait", "db-instance-deleted", "--db-instance-identifier", "app-db")
	err = aws.try(nil, "rds", "describe-db-snapshots")
	if err == nil || !strings.Contains(err.Error(), "InvalidAction") {
		t.Fatalf("unsupported action: %v", err)
	}
}
