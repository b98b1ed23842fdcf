package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// perfRuns profiles rdslocal with perf(1) during extra runs that are not
// part of the figures: one pgbench run per mode at the largest client
// count, and TLS+SCRAM connects. Flat profiles go to the work directory.
func (b *bench) perfRuns(ctx context.Context) error {
	if _, err := exec.LookPath("perf"); err != nil {
		logf("perf is not installed; skipping profiles")
		return nil
	}
	clients := b.opt.clients[len(b.opt.clients)-1]
	logDir := filepath.Join(b.tmp, "pgbench-logs")
	for _, mode := range b.opt.modes {
		stop := b.perfStart(ctx, fmt.Sprintf("pgbench-%s-%d", mode, clients))
		r := runResult{mode: mode, clients: clients, target: "rdslocal"}
		b.pgbench(ctx, b.proxy, logDir, &r)
		stop()
		logf("  (profiled run: %.0f TPS)", r.tps)
	}
	saved := b.opt.connTime
	if saved == 0 {
		saved = 10 * time.Second
	}
	stop := b.perfStart(ctx, "tls-connects")
	rates := b.res.connRates
	b.opt.connTime, b.res.connRates = saved, nil
	err := b.connectRateOne(ctx, b.proxy, b.rdslocal.Process.Pid)
	b.res.connRates = rates
	stop()
	return err
}

// perfStart records rdslocal until the returned function is called, then
// writes the flat report and prints its head.
func (b *bench) perfStart(ctx context.Context, name string) func() {
	data := filepath.Join(b.tmp, "perf-"+name+".data")
	args := []string{"record", "-F", "999", "-p", strconv.Itoa(b.rdslocal.Process.Pid), "-o", data}
	if b.opt.perfGraph {
		args = append(args, "-g") // Go keeps frame pointers
	}
	cmd := exec.CommandContext(ctx, "perf", args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		logf("perf record: %v", err)
		return func() {}
	}
	time.Sleep(300 * time.Millisecond)
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		rargs := []string{"report", "-i", data, "--no-children", "--stdio", "--percent-limit", "0.7", "--sort", "symbol"}
		if b.opt.perfGraph {
			// Inclusive time per function: where the time goes, callees
			// included.
			rargs = []string{"report", "-i", data, "--children", "--stdio", "--percent-limit", "2", "--sort", "symbol", "-g", "none"}
		}
		out, err := exec.Command("perf", rargs...).Output()
		if err != nil {
			logf("perf report: %v", err)
			return
		}
		txt := filepath.Join(b.tmp, "perf-"+name+".txt")
		os.WriteFile(txt, out, 0o644)
		var head []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			head = append(head, line)
			if len(head) == 25 {
				break
			}
		}
		logf("perf %s (%s):\n%s", name, txt, strings.Join(head, "\n"))
		os.Remove(data)
	}
}
