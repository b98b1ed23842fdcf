package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
)

// serveMetrics renders, in the Prometheus text format, the proxies'
// metrics (RDS CloudWatch names, prefixed rdslocal_) and the process's own
// gauges under the names Prometheus client libraries give them, so a
// scrape or a soak (cmd/rdslocal-soak) can tell whether goroutines,
// threads or file descriptors pile up.
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.proxies.WriteMetrics(w)
	writeProcessMetrics(w)
}

// writeProcessMetrics writes go_goroutines, go_threads and, where /proc
// tells, process_open_fds.
func writeProcessMetrics(w io.Writer) {
	gauge := func(name, help string, v int) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("go_goroutines", "Number of goroutines that currently exist.", runtime.NumGoroutine())
	gauge("go_threads", "Number of OS threads created.", pprof.Lookup("threadcreate").Count())
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		gauge("process_open_fds", "Number of open file descriptors.", len(fds)-1) // less the one reading the directory
	}
}
