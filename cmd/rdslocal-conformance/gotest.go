package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
)

// Outcomes of one test.
const (
	outPass = "pass"
	outFail = "fail"
	outSkip = "skip"
	outHung = "hung" // started, never finished: the package timed out or crashed
)

// results maps a test ("pgxpool.TestX/sub") to its outcome.
type results map[string]string

// count returns how many tests had outcome o.
func (rs results) count(o string) int {
	n := 0
	for _, v := range rs {
		if v == o {
			n++
		}
	}
	return n
}

// event is one line of `go test -json`.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// runSuite runs every selected package of a driver against its instance
// (mode direct) or proxy and collects the outcome of each test. A
// package's go test output is kept in the work directory
// (mode-package.log).
func (r *runner) runSuite(ctx context.Context, s *suite, mode string) (results, error) {
	rs := results{}
	t0 := time.Now()
	ran := false
	for _, p := range s.packages {
		if len(r.opt.pkgs) > 0 && !slices.Contains(r.opt.pkgs, s.label(p)) {
			continue
		}
		ran = true
		start := time.Now()
		if err := r.runPackage(ctx, s, mode, p, rs); err != nil {
			return nil, err
		}
		logf("%-6s %-8s %s", mode, s.label(p), time.Since(start).Round(time.Second))
	}
	if ran {
		logf("%s %s: %d passed, %d failed, %d hung, %d skipped in %s", s.title, mode, rs.count(outPass), rs.count(outFail),
			rs.count(outHung), rs.count(outSkip), time.Since(t0).Round(time.Second))
	}
	return rs, nil
}

func (r *runner) runPackage(ctx context.Context, s *suite, mode string, p pkg, rs results) error {
	label := s.label(p)
	args := []string{"test", "-json", "-count=1", "-timeout", p.timeout.String()}
	if r.opt.race {
		args = append(args, "-race")
	}
	if r.opt.run != "" {
		args = append(args, "-run", r.opt.run)
	}
	if skip := s.skipped(label, mode); len(skip) > 0 {
		slices.Sort(skip)
		args = append(args, "-skip", "^("+strings.Join(skip, "|")+")$")
	}
	args = append(args, "./"+strings.TrimPrefix(p.name, "."))
	cmd := exec.CommandContext(ctx, "go", args...)
	// On Ctrl-C the test binary goes too, not only go test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Dir = s.dir
	// The driver's own go.mod and go.sum decide its dependencies; the
	// module cache is read-only, which go test does not mind.
	a := s.addr(mode)
	cmd.Env = append(append(os.Environ(), s.env(a[0], a[1])...), "GOFLAGS=-mod=readonly", "GOWORK=off")
	logPath := filepath.Join(r.tmp, mode+"-"+label+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	perr := parseEvents(io.TeeReader(out, lf), label, rs)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if perr != nil {
		return fmt.Errorf("go test %s: %v", label, perr)
	}
	if werr != nil {
		if _, ok := werr.(*exec.ExitError); !ok {
			return fmt.Errorf("go test %s: %v", label, werr)
		}
		// Test failures exit 1; a build failure shows no test at all.
		if !hasPackage(rs, label) {
			return fmt.Errorf("go test %s (%s) ran no test: %v\n%s", label, mode, werr, rdsproc.Tail(logPath, 30))
		}
	}
	return nil
}

// tempDigits matches the random part of temporary names that some tests
// put in their subtest names (t.TempDir paths), so that runs compare.
var tempDigits = regexp.MustCompile(`[0-9]{6,}`)

// parseEvents reads `go test -json` output and records each test's last
// outcome under label.Test; tests left running count as hung.
func parseEvents(rd io.Reader, label string, rs results) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Test == "" {
			continue // build output, package-level lines
		}
		key := label + "." + tempDigits.ReplaceAllString(e.Test, "N")
		switch e.Action {
		case "run":
			rs[key] = outHung
		case "pass":
			rs[key] = outPass
		case "fail":
			rs[key] = outFail
		case "skip":
			rs[key] = outSkip
		}
	}
	return sc.Err()
}

func hasPackage(rs results, label string) bool {
	for k := range rs {
		if strings.HasPrefix(k, label+".") {
			return true
		}
	}
	return false
}

// suiteResults are a driver's results by mode.
type suiteResults struct {
	*suite
	res map[string]results
}

// report prints the comparison per driver and for all of them, and says
// whether the proxy failed a test that is not excluded.
func report(w io.Writer, reps []suiteResults) (failed bool) {
	passed, regressed, excluded := 0, 0, 0
	for i, sr := range reps {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s %s ==\n", sr.title, sr.version)
		p, f, e, bad := sr.report(w)
		passed, regressed, excluded = passed+p, regressed+f, excluded+e
		failed = failed || bad
	}
	if len(reps) > 1 {
		fmt.Fprintf(w, "\n== all drivers ==\n%d excluded\n%d passed, %d failed\n", excluded, passed, regressed)
	}
	return failed
}

// report prints one driver's comparison: among the tests that passed
// directly, how many passed and failed through the proxy, and how many
// were excluded.
func (sr suiteResults) report(w io.Writer) (passed, regressed, excluded int, failed bool) {
	direct, proxy := sr.res["direct"], sr.res["proxy"]
	for _, mode := range []string{"direct", "proxy"} {
		if rs, ok := sr.res[mode]; ok {
			fmt.Fprintf(w, "%-6s: %d passed, %d failed, %d hung, %d skipped\n", mode, rs.count(outPass), rs.count(outFail), rs.count(outHung), rs.count(outSkip))
		}
	}
	if direct == nil || proxy == nil {
		return 0, 0, 0, false
	}
	var regress, excl []string
	for t, o := range direct {
		if o != outPass {
			continue
		}
		switch {
		case proxy[t] == outPass:
			passed++
		case sr.exclusion(t) != "":
			excl = append(excl, t)
		default:
			regress = append(regress, t)
		}
	}
	slices.Sort(regress)
	slices.Sort(excl)
	if len(excl) > 0 {
		fmt.Fprintf(w, "\nExcluded (pass directly; not run or not counted through the proxy):\n")
		for _, t := range excl {
			fmt.Fprintf(w, "  %s: %s\n", t, sr.exclusion(t))
		}
	}
	if len(regress) > 0 {
		fmt.Fprintf(w, "\nPass directly, not through the proxy:\n")
		for _, t := range regress {
			fmt.Fprintf(w, "  %s (%s)\n", t, outcome(proxy[t]))
		}
	}
	if len(sr.notRun) > 0 {
		fmt.Fprintf(w, "\nNot run:\n")
		for _, t := range slices.Sorted(maps.Keys(sr.notRun)) {
			fmt.Fprintf(w, "  %s: %s\n", t, sr.notRun[t])
		}
	}
	fmt.Fprintf(w, "\n%d excluded\n%d passed, %d failed\n", len(excl), passed, len(regress))
	// Nothing passing directly means a broken setup, unless -run matched
	// none of this driver's tests.
	return passed, len(regress), len(excl), len(regress) > 0 || (passed == 0 && len(direct) > 0)
}

func outcome(o string) string {
	if o == "" {
		return "not run"
	}
	return o
}
