package rds

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// addressPlan hands out the addresses proxy endpoints listen on and the
// ports DB instances listen on. Real RDS Proxy gives each endpoint a DNS
// name and clients connect on the engine's standard port, so in loopback
// mode each endpoint gets its own 127.0.x.y on that port and Endpoint is the
// bare address; a client written for RDS Proxy works unchanged. In ports
// mode (where extra loopback addresses or the standard port cannot be had)
// Endpoint is 127.0.0.1:<port from the range>.
type addressPlan struct {
	mode             string
	portMin, portMax int
	addrs            map[string]bool
	ports            map[int]bool
}

// firstLoopback is where loopback-mode endpoint addresses start; 127.0.0.x
// is left to the host.
var firstLoopback = netip.MustParseAddr("127.0.10.1")

func newAddressPlan(mode string, portMin, portMax int) *addressPlan {
	return &addressPlan{mode: mode, portMin: portMin, portMax: portMax, addrs: map[string]bool{}, ports: map[int]bool{}}
}

// claim marks an address (restored from saved state) as taken.
func (a *addressPlan) claim(addr string) {
	if addr == "" {
		return
	}
	a.addrs[addr] = true
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if p, err := strconv.Atoi(port); err == nil {
			a.ports[p] = true
		}
	}
}

func (a *addressPlan) claimPort(p int) {
	if p > 0 {
		a.ports[p] = true
	}
}

// release returns an endpoint address to the plan.
func (a *addressPlan) release(addr string) {
	delete(a.addrs, addr)
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if p, err := strconv.Atoi(port); err == nil {
			delete(a.ports, p)
		}
	}
}

func (a *addressPlan) releasePort(p int) { delete(a.ports, p) }

// endpointAddress allocates the address of a new proxy endpoint of an
// engine family. In loopback mode an address is taken only if the family's
// standard port can be bound on it; when none can (a server holds the port
// on the wildcard address, or the host has no 127/8 routing), the endpoint
// falls back to a ports-mode address.
func (a *addressPlan) endpointAddress(family string) (string, error) {
	if a.mode != "ports" {
		failed := 0
		for ip := firstLoopback; ip.Is4() && ip.As4()[0] == 127 && failed < 64; ip = ip.Next() {
			b := ip.As4()
			if b[3] == 0 || b[3] == 255 || a.addrs[ip.String()] {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(standardPort(family))))
			if err != nil {
				failed++
				continue
			}
			_ = ln.Close()
			a.addrs[ip.String()] = true
			return ip.String(), nil
		}
	}
	p, err := a.port()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	a.addrs[addr] = true
	return addr, nil
}

// port allocates a free port from the range: one no record holds and nothing
// on this host listens on.
func (a *addressPlan) port() (int, error) {
	for p := a.portMin; p < a.portMax; p++ {
		if a.ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = ln.Close()
		a.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port in the range %d-%d (end excluded); widen it with --port-range", a.portMin, a.portMax)
}
