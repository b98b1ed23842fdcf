package server

import (
	"io"
	"net/http"
	"testing"
)

// TestCAPersists checks that /_rdslocal/ca.pem serves the same CA after a
// restart with the same data directory, so clients that trust it keep
// working.
func TestCAPersists(t *testing.T) {
	dir := t.TempDir()
	get := func() string {
		ts := newTestServer(t, Config{DataDir: dir})
		defer ts.Close()
		resp, err := http.Get(ts.URL + "/_rdslocal/ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || len(b) < 100 {
			t.Fatalf("ca.pem: %d %q", resp.StatusCode, b)
		}
		return string(b)
	}
	if a, b := get(), get(); a != b {
		t.Fatal("the CA changed across a restart with the same data directory")
	}
	other := newTestServer(t, Config{})
	resp, err := http.Get(other.URL + "/_rdslocal/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) == get() {
		t.Fatal("an in-memory server reused the persisted CA")
	}
}
