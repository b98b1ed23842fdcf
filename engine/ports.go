package engine

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// portPool hands out ports from [min, max) on 127.0.0.1. A port is given
// only when no instance of this Manager holds it and a listener can bind
// it right now (someone else may hold it: the system's servers, a proxy
// endpoint).
type portPool struct {
	mu       sync.Mutex
	min, max int
	used     map[int]string // port -> instance ID
}

func newPortPool(min, max int) *portPool {
	return &portPool{min: min, max: max, used: map[int]string{}}
}

// allocate reserves the first free port of the range for id, skipping the
// ports in skip (ones that just failed to bind).
func (p *portPool) allocate(id string, skip ...int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
next:
	for port := p.min; port < p.max; port++ {
		for _, s := range skip {
			if s == port {
				continue next
			}
		}
		if _, taken := p.used[port]; taken || !portFree(port) {
			continue
		}
		p.used[port] = id
		return port, nil
	}
	return 0, fmt.Errorf("%w: every port in %d–%d on 127.0.0.1 is in use", ErrNoFreePort, p.min, p.max-1)
}

// reserve claims a given port for id; with probe it must also be bindable.
func (p *portPool) reserve(id string, port int, probe bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if owner, taken := p.used[port]; taken && owner != id {
		return fmt.Errorf("%w: port %d already belongs to instance %s", ErrNoFreePort, port, owner)
	}
	if probe && !portFree(port) {
		return fmt.Errorf("%w: port %d on 127.0.0.1 is in use by another process", ErrNoFreePort, port)
	}
	p.used[port] = id
	return nil
}

// release gives port back if id holds it.
func (p *portPool) release(id string, port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[port] == id {
		delete(p.used, port)
	}
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// loopback is the only address spawned servers listen on.
const loopback = "127.0.0.1"
