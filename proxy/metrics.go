package proxy

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Latency accumulates a CloudWatch-style latency statistic in microseconds.
type Latency struct{ sum, count atomic.Int64 }

// Observe adds one sample.
func (l *Latency) Observe(d time.Duration) {
	l.sum.Add(d.Microseconds())
	l.count.Add(1)
}

// EndpointMetrics are the client-side metrics of one proxy endpoint
// (CloudWatch dimensions ProxyName, EndpointName). The core counts client
// connections; protocols count requests (Client.Metrics, Client.QueryDone).
type EndpointMetrics struct {
	ClientConnections                atomic.Int64 // gauge
	ClientConnectionsTLS             atomic.Int64 // gauge
	ClientConnectionsNoTLS           atomic.Int64 // gauge
	ClientConnectionsReceived        atomic.Int64
	ClientConnectionsSetupSucceeded  atomic.Int64
	ClientConnectionsSetupFailedAuth atomic.Int64
	ClientConnectionsClosed          atomic.Int64
	QueryRequests                    atomic.Int64
	QueryRequestsTLS                 atomic.Int64
	QueryRequestsNoTLS               atomic.Int64
	QueryResponseLatency             Latency
}

// TargetMetrics are the database-side metrics of one target (dimensions
// ProxyName, TargetGroup, Target). The core counts connections, borrows and
// pins; protocols count database latency (Pooled.Metrics).
type TargetMetrics struct {
	DatabaseConnections                       atomic.Int64 // gauge
	DatabaseConnectionsCurrentlyBorrowed      atomic.Int64 // gauge
	DatabaseConnectionsCurrentlyInTransaction atomic.Int64 // gauge
	DatabaseConnectionsCurrentlySessionPinned atomic.Int64 // gauge
	DatabaseConnectionRequests                atomic.Int64
	DatabaseConnectionRequestsWithTLS         atomic.Int64
	DatabaseConnectionsSetupSucceeded         atomic.Int64
	DatabaseConnectionsSetupFailed            atomic.Int64
	DatabaseConnectionsBorrowLatency          Latency
	QueryDatabaseResponseLatency              Latency
	MaxDatabaseConnectionsAllowed             atomic.Int64 // gauge
}

type sample struct {
	name, labels string
	value        int64
}

func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

func (em *EndpointMetrics) samples(lb string, out []sample) []sample {
	add := func(n string, v int64) { out = append(out, sample{n, lb, v}) }
	add("ClientConnections", em.ClientConnections.Load())
	add("ClientConnectionsTLS", em.ClientConnectionsTLS.Load())
	add("ClientConnectionsNoTLS", em.ClientConnectionsNoTLS.Load())
	add("ClientConnectionsReceived", em.ClientConnectionsReceived.Load())
	add("ClientConnectionsSetupSucceeded", em.ClientConnectionsSetupSucceeded.Load())
	add("ClientConnectionsSetupFailedAuth", em.ClientConnectionsSetupFailedAuth.Load())
	add("ClientConnectionsClosed", em.ClientConnectionsClosed.Load())
	add("QueryRequests", em.QueryRequests.Load())
	add("QueryRequestsTLS", em.QueryRequestsTLS.Load())
	add("QueryRequestsNoTLS", em.QueryRequestsNoTLS.Load())
	add("QueryResponseLatency_sum", em.QueryResponseLatency.sum.Load())
	add("QueryResponseLatency_count", em.QueryResponseLatency.count.Load())
	return out
}

func (tm *TargetMetrics) samples(lb string, out []sample) []sample {
	add := func(n string, v int64) { out = append(out, sample{n, lb, v}) }
	add("DatabaseConnections", tm.DatabaseConnections.Load())
	add("DatabaseConnectionsCurrentlyBorrowed", tm.DatabaseConnectionsCurrentlyBorrowed.Load())
	add("DatabaseConnectionsCurrentlyInTransaction", tm.DatabaseConnectionsCurrentlyInTransaction.Load())
	add("DatabaseConnectionsCurrentlySessionPinned", tm.DatabaseConnectionsCurrentlySessionPinned.Load())
	add("DatabaseConnectionRequests", tm.DatabaseConnectionRequests.Load())
	add("DatabaseConnectionRequestsWithTLS", tm.DatabaseConnectionRequestsWithTLS.Load())
	add("DatabaseConnectionsSetupSucceeded", tm.DatabaseConnectionsSetupSucceeded.Load())
	add("DatabaseConnectionsSetupFailed", tm.DatabaseConnectionsSetupFailed.Load())
	add("DatabaseConnectionsBorrowLatency_sum", tm.DatabaseConnectionsBorrowLatency.sum.Load())
	add("DatabaseConnectionsBorrowLatency_count", tm.DatabaseConnectionsBorrowLatency.count.Load())
	add("QueryDatabaseResponseLatency_sum", tm.QueryDatabaseResponseLatency.sum.Load())
	add("QueryDatabaseResponseLatency_count", tm.QueryDatabaseResponseLatency.count.Load())
	add("MaxDatabaseConnectionsAllowed", tm.MaxDatabaseConnectionsAllowed.Load())
	return out
}

// WriteMetrics writes every proxy's metrics in the Prometheus text format:
// rdslocal_<CloudWatch name>{proxy, endpoint} for client-side metrics and
// rdslocal_<CloudWatch name>{proxy, target} for database-side ones. Latencies
// are in microseconds, as CloudWatch reports them, as _sum and _count pairs.
func (m *Manager) WriteMetrics(w io.Writer) {
	var out []sample
	m.mu.Lock()
	for _, p := range m.proxies {
		name := p.spec().Name
		for _, ep := range p.endpoints {
			out = ep.metrics.samples(labels("proxy", name, "endpoint", ep.spec.Name), out)
		}
		for _, t := range p.targets {
			out = t.metrics.samples(labels("proxy", name, "target", t.spec.ID), out)
		}
	}
	m.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	last := ""
	for _, s := range out {
		if s.name != last {
			kind := "gauge"
			if strings.HasSuffix(s.name, "_sum") || strings.HasSuffix(s.name, "_count") ||
				strings.HasSuffix(s.name, "Received") || strings.Contains(s.name, "Requests") ||
				strings.Contains(s.name, "Setup") || strings.HasSuffix(s.name, "Closed") {
				kind = "counter"
			}
			fmt.Fprintf(w, "# TYPE rdslocal_%s %s\n", s.name, kind)
			last = s.name
		}
		fmt.Fprintf(w, "rdslocal_%s%s %d\n", s.name, s.labels, s.value)
	}
}
