package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rdslocal/rdslocal/fixture"
	"github.com/rdslocal/rdslocal/server"
)

// defaultEndpoint is the URL of the rdslocal the subcommands talk to:
// AWS_ENDPOINT_URL when set (a CI job sets it for the AWS CLI anyway),
// else the address of RDSLOCAL_LISTEN.
func defaultEndpoint() string {
	if u := os.Getenv("AWS_ENDPOINT_URL"); u != "" {
		return u
	}
	listen := env("RDSLOCAL_LISTEN", "127.0.0.1:4566")
	if host, port, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			listen = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + listen
}

// waitReady polls the health endpoint until start-up is done: every
// fixture ready and every init hook run. It fails at once when a fixture
// or a hook failed, and after the timeout otherwise, saying what was
// still pending.
func waitReady(args []string) error {
	fs := flag.NewFlagSet("rdslocal wait", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait")
	endpoint := fs.String("endpoint", defaultEndpoint(), "URL of rdslocal (default: AWS_ENDPOINT_URL, else from RDSLOCAL_LISTEN)")
	quiet := fs.Bool("quiet", false, "print nothing when ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	url := strings.TrimSuffix(*endpoint, "/") + "/_rdslocal/health"
	client := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	deadline := start.Add(*timeout)
	last := "no answer yet"
	for {
		h, err := health(client, url)
		switch {
		case err != nil:
			last = err.Error()
		case h.Ready:
			if !*quiet {
				fmt.Fprintf(os.Stderr, "rdslocal is ready (%d fixtures, %d init hooks) after %s\n",
					len(h.Init.Fixtures), len(h.Init.Scripts), time.Since(start).Round(100*time.Millisecond))
			}
			return nil
		case h.Init.State == server.PhaseFailed:
			return fmt.Errorf("start-up failed:\n  %s", strings.Join(h.Init.Errors, "\n  "))
		default:
			last = pending(h)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s at %s: %s", *timeout, *endpoint, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func health(client *http.Client, url string) (*server.Health, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	var h server.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &h, nil
}

// pending says what start-up still waits for.
func pending(h *server.Health) string {
	var wait []string
	for _, f := range h.Init.Fixtures {
		if f.State != fixture.StateReady {
			s := fmt.Sprintf("%s %s %s", f.Kind, f.Name, f.State)
			if f.Status != "" {
				s += " (" + f.Status + ")"
			}
			wait = append(wait, s)
		}
	}
	for _, sc := range h.Init.Scripts {
		if sc.State != server.ScriptSuccessful {
			wait = append(wait, "init hook "+sc.Name+" "+sc.State)
		}
	}
	if len(wait) == 0 {
		return h.Init.State
	}
	return h.Init.State + ": " + strings.Join(wait, ", ")
}

// fixtures runs `rdslocal fixtures export|check`.
func fixtures(args []string) error {
	usage := errors.New(`usage:
  rdslocal fixtures apply [--endpoint URL] [--timeout D] FILE   apply a fixture file to a running rdslocal and wait until it is ready
  rdslocal fixtures check FILE                                  check a fixture file without applying it
  rdslocal fixtures export [-o FILE] [--endpoint URL] [--region R] [--account A]
                                                                write what a running rdslocal holds as a fixture file`)
	if len(args) == 0 {
		return usage
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return usage
		}
		f, err := fixture.ReadFile(args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %d resources, no problem found\n", f.Path, len(f.Resources))
		return nil
	case "export":
		return exportFixtures(args[1:])
	case "apply":
		return applyFixtures(args[1:])
	}
	return usage
}

// applyFixtures applies a fixture file to a running rdslocal through its
// API, as --init-file does at start, and waits until it is ready. It is
// for an rdslocal that starts before the file is at hand (a CI service
// container starts before the job checks out its repository).
func applyFixtures(args []string) error {
	fs := flag.NewFlagSet("rdslocal fixtures apply", flag.ContinueOnError)
	endpoint := fs.String("endpoint", defaultEndpoint(), "URL of rdslocal (default: AWS_ENDPOINT_URL, else from RDSLOCAL_LISTEN)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the resources to be ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: rdslocal fixtures apply [--endpoint URL] [--timeout D] FILE")
	}
	f, err := fixture.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	client := &http.Client{Timeout: 30 * time.Second}
	ap := &fixture.Applier{
		Config: aws.Config{BaseEndpoint: aws.String(*endpoint), HTTPClient: client},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Poll:   250 * time.Millisecond,
	}
	if err := ap.Apply(ctx, f, nil); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: %d resources ready after %s\n", f.Path, len(f.Resources), time.Since(start).Round(100*time.Millisecond))
	return nil
}

// exportFixtures writes what a running rdslocal holds in one account and
// region as a fixture file.
func exportFixtures(args []string) error {
	fs := flag.NewFlagSet("rdslocal fixtures export", flag.ContinueOnError)
	endpoint := fs.String("endpoint", defaultEndpoint(), "URL of rdslocal (default: AWS_ENDPOINT_URL, else from RDSLOCAL_LISTEN)")
	region := fs.String("region", firstEnv("AWS_REGION", "AWS_DEFAULT_REGION", "us-east-1"), "region to export (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)")
	account := fs.String("account", server.DefaultAccount, "account to export")
	out := fs.String("o", "-", "file to write (- is standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := aws.Config{BaseEndpoint: aws.String(*endpoint), HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	data, notes, err := fixture.Export(context.Background(), cfg, *account, *region)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "note:", n)
	}
	if *out == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(*out, data, 0o600)
}

func firstEnv(names ...string) string {
	for _, n := range names[:len(names)-1] {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return names[len(names)-1]
}
