package rds

import (
	"net"
	"strings"
	"testing"
)

func TestAddressPlan(t *testing.T) {
	lo := newAddressPlan("loopback", 4510, 4560)
	a, err := lo.endpointAddress("POSTGRESQL")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := lo.endpointAddress("POSTGRESQL")
	if a == b || !strings.HasPrefix(a, "127.0.") || strings.Contains(a, ":") {
		t.Fatalf("loopback addresses %q %q", a, b)
	}
	lo.release(a)
	if lo.addrs[a] {
		t.Fatalf("released address %q still held", a)
	}
	// Other processes may hold a loopback port meanwhile, so which free
	// address comes next is not fixed; a held one never does.
	if c, _ := lo.endpointAddress("MYSQL"); c == b {
		t.Fatalf("held address %q handed out again", b)
	}

	ports := newAddressPlan("ports", 4510, 4560)
	p, err := ports.endpointAddress("POSTGRESQL")
	if err != nil || !strings.HasPrefix(p, "127.0.0.1:45") {
		t.Fatalf("ports mode: %q %v", p, err)
	}

	// When no loopback address has the standard port free, the endpoint
	// falls back to a ports-mode address.
	fallback := newAddressPlan("loopback", 4510, 4560)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for ip := firstLoopback; len(held) < 80; ip = ip.Next() {
		if l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "3306")); err == nil {
			held = append(held, l)
		}
	}
	f, err := fallback.endpointAddress("MYSQL")
	if err != nil || !strings.HasPrefix(f, "127.0.0.1:") {
		t.Fatalf("fallback: %q %v", f, err)
	}
	empty := newAddressPlan("ports", 4510, 4510)
	if _, err := empty.port(); err == nil {
		t.Fatal("an empty range gave a port")
	}
}
