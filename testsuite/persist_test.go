package testsuite_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/rdslocal/rdslocal/testsuite"
)

// buildBinary compiles rdslocal once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "rdslocal-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rdslocal")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/rdslocal/rdslocal").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess runs the rdslocal binary and waits until it answers.
func startProcess(t *testing.T, addr, dataDir string) *exec.Cmd {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--listen", addr, "--data-dir", dataDir, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/_rdslocal/health")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	t.Fatalf("rdslocal did not start on %s", addr)
	return nil
}

// TestKillDuringWrites SIGKILLs the server in the middle of a burst of
// writes; after a restart every acknowledged write is there.
func TestKillDuringWrites(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	cmd := startProcess(t, addr, dataDir)
	cfg := testsuite.Config("http://"+addr, "test", "test")
	cfg.RetryMaxAttempts = 1
	sm := secretsmanager.NewFromConfig(cfg)
	rc := rds.NewFromConfig(cfg)

	var mu sync.Mutex
	var secrets, proxies []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("s-%d-%d", w, i)
				if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"username":"u","password":"p"}`)}); err == nil {
					mu.Lock()
					secrets = append(secrets, name)
					mu.Unlock()
				}
				if i%4 == 0 && i < 60 {
					pname := fmt.Sprintf("p-%d-%d", w, i)
					_, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(pname), EngineFamily: rdstypes.EngineFamilyPostgresql,
						RoleArn: aws.String("arn:aws:iam::000000000000:role/r"), VpcSubnetIds: []string{"subnet-1"},
						Auth: []rdstypes.UserAuthConfig{{SecretArn: aws.String("arn:aws:secretsmanager:us-east-1:000000000000:secret:x-AbCdEf")}}})
					if err == nil {
						mu.Lock()
						proxies = append(proxies, pname)
						mu.Unlock()
					}
				}
			}
		}(w)
	}
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	cancel()
	wg.Wait()
	if len(secrets) < 10 {
		t.Fatalf("only %d writes acknowledged before the kill", len(secrets))
	}

	cmd = startProcess(t, addr, dataDir)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	for _, name := range secrets {
		if _, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err != nil {
			t.Fatalf("acknowledged secret %s lost: %v", name, err)
		}
	}
	for _, name := range proxies {
		if _, err := rc.DescribeDBProxies(context.Background(), &rds.DescribeDBProxiesInput{DBProxyName: aws.String(name)}); err != nil {
			t.Fatalf("acknowledged proxy %s lost: %v", name, err)
		}
	}
	t.Logf("%d secrets and %d proxies acknowledged and recovered", len(secrets), len(proxies))
	info, err := os.Stat(filepath.Join(dataDir, "state", "secretsmanager.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret state file mode: %v %v", err, info)
	}
}

// TestCleanShutdown stops the server with SIGTERM and expects exit status 0.
func TestCleanShutdown(t *testing.T) {
	addr := freeAddr(t)
	cmd := startProcess(t, addr, t.TempDir())
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("rdslocal did not stop after SIGTERM")
	}
}
