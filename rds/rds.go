package rds

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/rdslocal/rdslocal/api"
)

// Options configures the RDS front-end.
type Options struct {
	// ProxyAddressing is "loopback" or "ports" (see addressing.go).
	ProxyAddressing string
	// ProxyListenHost is the host ports-mode proxy endpoints listen on
	// (default 127.0.0.1; 0.0.0.0 in a container whose ports are
	// published).
	ProxyListenHost string
	// AdvertiseHost, when set, replaces 127.0.0.1 in the Endpoint of
	// ports-mode proxy endpoints: the host clients reach the published
	// ports at. IAM tokens signed for it, for 127.0.0.1 and for localhost
	// validate, and endpoint certificates name it.
	AdvertiseHost string
	// PortMin and PortMax bound the ports handed out (end excluded).
	PortMin, PortMax int
	// Engines runs the real servers behind DB instances; nil keeps
	// instances as records only.
	Engines Engines
	// OnChange is called after state changed outside a request (a server
	// became available, a delete finished), so the server saves it.
	OnChange func()
	// Roles, when set (--enforce-iam), must know the role a proxy names.
	Roles interface{ RoleExists(roleArn string) bool }
	// DataPlane runs the proxy listeners; nil keeps proxies as records.
	DataPlane DataPlane
	// Logger receives one line per instance state change.
	Logger *slog.Logger
}

// RDS is the RDS front-end and its state.
type RDS struct {
	opts   Options
	mu     sync.Mutex
	states map[string]*regionState // by account + "/" + region
	addrs  *addressPlan
	log    *slog.Logger
	// applyMu orders data-plane applications (see applyDataPlane).
	applyMu sync.Mutex
	// haBusy marks the clusters and instances a failover works on
	// (failover.go); guarded by mu.
	haBusy map[string]bool
}

// New returns an RDS front-end with empty state.
func New(o Options) *RDS {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &RDS{opts: o, states: map[string]*regionState{}, log: o.Logger, haBusy: map[string]bool{}}
	r.addrs = newAddressPlan(o.ProxyAddressing, o.PortMin, o.PortMax)
	if o.Engines != nil {
		o.Engines.Watch(r.onEngineEvent)
	}
	return r
}

// Service returns the RDS API for the gateway.
func (r *RDS) Service() *api.Service {
	h := map[string]api.Handler{
		"CreateDBProxy":               r.createDBProxy,
		"DescribeDBProxies":           r.describeDBProxies,
		"ModifyDBProxy":               r.modifyDBProxy,
		"DeleteDBProxy":               r.deleteDBProxy,
		"CreateDBProxyEndpoint":       r.createDBProxyEndpoint,
		"DescribeDBProxyEndpoints":    r.describeDBProxyEndpoints,
		"ModifyDBProxyEndpoint":       r.modifyDBProxyEndpoint,
		"DeleteDBProxyEndpoint":       r.deleteDBProxyEndpoint,
		"DescribeDBProxyTargetGroups": r.describeDBProxyTargetGroups,
		"ModifyDBProxyTargetGroup":    r.modifyDBProxyTargetGroup,
		"RegisterDBProxyTargets":      r.registerDBProxyTargets,
		"DescribeDBProxyTargets":      r.describeDBProxyTargets,
		"DeregisterDBProxyTargets":    r.deregisterDBProxyTargets,
		"CreateDBInstance":            r.createDBInstance,
		"DescribeDBInstances":         r.describeDBInstances,
		"ModifyDBInstance":            r.modifyDBInstance,
		"DeleteDBInstance":            r.deleteDBInstance,
		"RebootDBInstance":            r.rebootDBInstance,
		"CreateDBCluster":             r.createDBCluster,
		"DescribeDBClusters":          r.describeDBClusters,
		"ModifyDBCluster":             r.modifyDBCluster,
		"DeleteDBCluster":             r.deleteDBCluster,
		"FailoverDBCluster":           r.failoverDBCluster,
		"DescribeEvents":              r.describeEvents,
		"AddTagsToResource":           r.addTagsToResource,
		"ListTagsForResource":         r.listTagsForResource,
		"RemoveTagsFromResource":      r.removeTagsFromResource,
	}
	svc := &api.Service{Model: api.MustLoadModel("rds"), Handlers: h, State: r}
	// After every change the data plane gets the new desired state.
	for action, handler := range h {
		if svc.IsReadOnly(action) {
			continue
		}
		h[action] = func(c *api.Call) (any, error) {
			out, err := handler(c)
			if err == nil {
				r.applyDataPlane()
			}
			return out, err
		}
	}
	return svc
}

// ApplyDataPlane hands the data plane the desired state of every proxy;
// the server calls it once at start, after restoring state.
func (r *RDS) ApplyDataPlane() { r.applyDataPlane() }

// region returns the state of the call's account and region, creating it.
// The caller holds r.mu.
func (r *RDS) region(c *api.Call) *regionState {
	key := c.Account + "/" + c.Region
	st := r.states[key]
	if st == nil {
		st = newRegionState(c.Account, c.Region)
		r.states[key] = st
	}
	return st
}

// lookup returns the state for an account and region named in an ARN, or nil.
func (r *RDS) lookup(account, region string) *regionState {
	return r.states[account+"/"+region]
}

// Snapshot implements api.Persister.
func (r *RDS) Snapshot() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.states))
	for k := range r.states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := make([]*regionState, 0, len(keys))
	for _, k := range keys {
		list = append(list, r.states[k])
	}
	return json.Marshal(struct{ Regions []*regionState }{list})
}

// Restore implements api.Persister.
func (r *RDS) Restore(data []byte) error {
	var snap struct{ Regions []*regionState }
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("rds state: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = map[string]*regionState{}
	r.addrs = newAddressPlan(r.opts.ProxyAddressing, r.opts.PortMin, r.opts.PortMax)
	for _, st := range snap.Regions {
		fresh := newRegionState(st.Account, st.Region)
		for k, v := range st.Proxies {
			fresh.Proxies[k] = v
			r.addrs.claim(v.Address)
		}
		for k, v := range st.Endpoints {
			fresh.Endpoints[k] = v
			r.addrs.claim(v.Address)
		}
		for k, v := range st.Instances {
			fresh.Instances[k] = v
			r.addrs.claimPort(v.Port)
			if r.opts.Engines != nil && v.Status != "deleting" {
				v.Status = "starting" // until StartEngines has its server back
			}
		}
		for k, v := range st.Clusters {
			fresh.Clusters[k] = v
			if v.Status == "failing-over" {
				v.Status = "available" // the engine layer finishes its part at start
			}
		}
		fresh.Events = st.Events
		r.states[st.Account+"/"+st.Region] = fresh
	}
	return nil
}

// Reset implements api.Persister.
func (r *RDS) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = map[string]*regionState{}
	r.addrs = newAddressPlan(r.opts.ProxyAddressing, r.opts.PortMin, r.opts.PortMax)
}

// SetOnChange sets the callback that saves state changed outside a request.
func (r *RDS) SetOnChange(f func()) {
	r.mu.Lock()
	r.opts.OnChange = f
	r.mu.Unlock()
}
