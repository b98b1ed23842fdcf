package server

import (
	"bufio"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The process gauges let a soak tell whether goroutines or file
// descriptors pile up.
func TestMetricsProcessGauges(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		got[name] = n
	}
	want := []string{"go_goroutines", "go_threads"}
	if runtime.GOOS == "linux" {
		want = append(want, "process_open_fds")
	}
	for _, name := range want {
		if got[name] <= 0 {
			t.Errorf("%s = %d, want a positive gauge (all: %v)", name, got[name], got)
		}
	}
}
