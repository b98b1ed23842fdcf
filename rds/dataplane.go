package rds

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	dp "github.com/rdslocal/rdslocal/proxy"
)

// DataPlane runs the proxy listeners (package proxy's Manager). The RDS
// front-end hands it the desired state of every proxy after each change.
//
// Concurrency contract (proxy.Manager keeps it):
//   - Apply takes the full list every time and may block: it returns once
//     new listeners are open and the sessions of removed endpoints and
//     proxies have ended. The front-end calls it without holding r.mu,
//     one call at a time in the order of the changes (applyMu).
//   - Status and TargetHealth are cheap (no I/O), safe from any goroutine,
//     and never wait for an Apply in progress to drain sessions; the
//     front-end calls them with r.mu held, while rendering Describe
//     answers.
//   - The data plane never calls back into the front-end, so these locks
//     cannot deadlock.
type DataPlane interface {
	Apply(specs []dp.ProxySpec) error
	Status(proxyID, endpoint string) (listening bool, err error)
	TargetHealth(proxyID, targetID string) (state, reason, description string)
}

// standardPort is where clients of RDS Proxy connect for each engine family.
func standardPort(family string) int {
	if family == "MYSQL" {
		return 3306
	}
	return 5432
}

// listenAddr is the host:port an endpoint's listener binds: its loopback
// address on the family's standard port, or the ports-mode port on
// ProxyListenHost (127.0.0.1 by default).
func (r *RDS) listenAddr(addr, family string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if r.opts.ProxyListenHost != "" {
			host = r.opts.ProxyListenHost
		}
		return net.JoinHostPort(host, port)
	}
	return net.JoinHostPort(addr, strconv.Itoa(standardPort(family)))
}

// advertised is the Endpoint value of a proxy endpoint address: a
// ports-mode address names AdvertiseHost when one is set.
func (r *RDS) advertised(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && r.opts.AdvertiseHost != "" {
		return net.JoinHostPort(r.opts.AdvertiseHost, port)
	}
	return addr
}

// proxyDNSNames are the AWS-style names of a proxy endpoint, for its
// certificate (clients that verify-full against a name they map locally).
func proxyDNSNames(st *regionState, p *proxy, endpoint string) []string {
	zone := fmt.Sprintf("proxy-%s.%s.rds.amazonaws.com", accountDNSLabel(st.Account, st.Region), st.Region)
	names := []string{"localhost", "*." + zone, "*.endpoint." + zone}
	if endpoint == "" {
		return append(names, p.Name+"."+zone)
	}
	return append(names, endpoint+".endpoint."+zone)
}

// dataPlaneSpecs computes the desired state of every proxy. The caller
// holds r.mu.
func (r *RDS) dataPlaneSpecs() []dp.ProxySpec {
	var specs []dp.ProxySpec
	for _, st := range r.states {
		for _, p := range st.Proxies {
			spec := dp.ProxySpec{
				ID: p.ID, Name: p.Name, Account: st.Account, Region: st.Region, EngineFamily: p.EngineFamily,
				RequireTLS: p.RequireTLS, IdleClientTimeout: time.Duration(p.IdleClientTimeout) * time.Second,
				DebugLogging: p.DebugLogging,
				Pool: dp.PoolSpec{
					MaxConnectionsPercent:     p.TargetGroup.Pool.MaxConnectionsPercent,
					MaxIdleConnectionsPercent: p.TargetGroup.Pool.MaxIdleConnectionsPercent,
					BorrowTimeout:             time.Duration(p.TargetGroup.Pool.ConnectionBorrowTimeout) * time.Second,
					InitQuery:                 p.TargetGroup.Pool.InitQuery,
					SessionPinningFilters:     p.TargetGroup.Pool.SessionPinningFilters,
				},
			}
			for _, a := range p.Auth {
				spec.Auth = append(spec.Auth, dp.AuthSpec{UserName: a.UserName, SecretArn: a.SecretArn, IAMAuth: a.IAMAuth, ClientPasswordAuthType: a.ClientPasswordAuthType})
			}
			// READ_ONLY endpoints need readers: an Aurora cluster with a
			// member besides its writer, whether or not it serves now (an
			// RDS instance has none, even a Multi-AZ one).
			for _, id := range p.TargetGroup.Clusters {
				if cl := st.Clusters[id]; cl != nil {
					writer := r.clusterWriter(st, cl)
					for _, m := range clusterMembers(st, id) {
						if m.ID != writer {
							spec.HasReaders = true
						}
					}
				}
			}
			for _, row := range r.targetRows(st, p, false) {
				// An instance that cannot serve its role is no target
				// of any endpoint: a writer that is down or handing
				// over, a reader that does not replicate the writer.
				if row.Type != "RDS_INSTANCE" || row.Endpoint == "" {
					continue
				}
				writer := row.RdsResourceId
				if cl := st.Clusters[row.TrackedClusterId]; cl != nil {
					writer = r.clusterWriter(st, cl)
				}
				if reason, _ := r.outOfService(st, st.Instances[row.RdsResourceId], writer); reason != "" {
					continue
				}
				spec.Targets = append(spec.Targets, dp.TargetSpec{ID: row.RdsResourceId, Host: row.Endpoint, Port: row.Port, Role: row.Role})
			}
			spec.Endpoints = append(spec.Endpoints, r.endpointSpec(st, p, "default", p.Address, "READ_WRITE"))
			for _, ep := range st.Endpoints {
				if ep.Proxy == p.Name {
					spec.Endpoints = append(spec.Endpoints, r.endpointSpec(st, p, ep.Name, ep.Address, ep.TargetRole))
				}
			}
			specs = append(specs, spec)
		}
	}
	return specs
}

func (r *RDS) endpointSpec(st *regionState, p *proxy, name, addr, role string) dp.EndpointSpec {
	listen := r.listenAddr(addr, p.EngineFamily)
	// The addresses clients may dial (and sign IAM tokens for): the
	// Endpoint, and for a ports-mode address also 127.0.0.1 and localhost
	// (clients beside rdslocal, such as init hooks in its container).
	advertised := []string{r.advertised(addr)}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		for _, h := range []string{"127.0.0.1", "localhost"} {
			if a := net.JoinHostPort(h, port); !slices.Contains(advertised, a) {
				advertised = append(advertised, a)
			}
		}
	} else {
		advertised[0] = listen
	}
	dnsName := ""
	if name != "default" {
		dnsName = name
	}
	return dp.EndpointSpec{Name: name, Listen: listen, Advertised: advertised, DNSNames: proxyDNSNames(st, p, dnsName), TargetRole: role}
}

// applyDataPlane hands the current desired state to the data plane.
// applyMu keeps the applications in the order of the changes.
func (r *RDS) applyDataPlane() {
	if r.opts.DataPlane == nil {
		return
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	specs := r.dataPlaneSpecs()
	r.mu.Unlock()
	if err := r.opts.DataPlane.Apply(specs); err != nil {
		r.log.Warn("applying proxy configuration", "err", err)
	}
}

// proxyStatus is the Status DescribeDBProxies shows: available once the
// proxy's own endpoint listens.
func (r *RDS) proxyStatus(p *proxy) string {
	return r.listenerStatus(p.ID, defaultEndpointName)
}

// listenerStatus is the Status of a proxy or proxy endpoint that is not
// being changed or deleted: available only while its listener is open,
// incompatible-network while its address cannot be bound, creating until
// the data plane has applied it.
func (r *RDS) listenerStatus(proxyID, endpoint string) string {
	if r.opts.DataPlane == nil {
		return "available"
	}
	listening, err := r.opts.DataPlane.Status(proxyID, endpoint)
	switch {
	case listening:
		return "available"
	case err != nil && !errors.Is(err, dp.ErrNotRunning):
		return "incompatible-network"
	}
	return "creating"
}
