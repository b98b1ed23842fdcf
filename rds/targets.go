package rds

import (
	"fmt"

	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/engine"
)

const defaultTargetGroup = "default"

func defaultPool() poolConfig {
	return poolConfig{MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50, ConnectionBorrowTimeout: 120, SessionPinningFilters: []string{}}
}

func (r *RDS) targetGroupXML(st *regionState, p *proxy) xmlTargetGroup {
	tg := p.TargetGroup
	filters := api.List[string](tg.Pool.SessionPinningFilters)
	if filters == nil {
		filters = api.List[string]{}
	}
	return xmlTargetGroup{
		DBProxyName: p.Name, TargetGroupName: defaultTargetGroup,
		TargetGroupArn: arn(st.Region, st.Account, "target-group:"+tg.ID), IsDefault: true, Status: "available",
		ConnectionPoolConfig: xmlPoolConfig{
			MaxConnectionsPercent: tg.Pool.MaxConnectionsPercent, MaxIdleConnectionsPercent: tg.Pool.MaxIdleConnectionsPercent,
			ConnectionBorrowTimeout: tg.Pool.ConnectionBorrowTimeout, SessionPinningFilters: filters, InitQuery: tg.Pool.InitQuery,
		},
		CreatedDate: api.ISOTime(tg.Created), UpdatedDate: api.ISOTime(tg.Updated),
	}
}

// proxyAndGroup resolves DBProxyName and an optional TargetGroupName (only
// "default" exists, as in RDS).
func proxyAndGroup(st *regionState, name string, group *string) (*proxy, error) {
	p, ok := st.Proxies[name]
	if !ok {
		return nil, proxyNotFound(name)
	}
	if group != nil && *group != defaultTargetGroup {
		return nil, targetGroupNotFound(*group, name)
	}
	return p, nil
}

func (r *RDS) describeDBProxyTargetGroups(c *api.Call) (any, error) {
	var in struct {
		DBProxyName     string
		TargetGroupName *string
		Marker          *string
		MaxRecords      *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, err := proxyAndGroup(st, in.DBProxyName, in.TargetGroupName)
	if err != nil {
		return nil, err
	}
	pg, marker, err := page([]xmlTargetGroup{r.targetGroupXML(st, p)}, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	return struct {
		TargetGroups api.List[xmlTargetGroup]
		Marker       string `xml:",omitempty"`
	}{append(api.List[xmlTargetGroup]{}, pg...), marker}, nil
}

func (r *RDS) modifyDBProxyTargetGroup(c *api.Call) (any, error) {
	var in struct {
		TargetGroupName      string
		DBProxyName          string
		NewName              *string
		ConnectionPoolConfig *struct {
			MaxConnectionsPercent     *int
			MaxIdleConnectionsPercent *int
			ConnectionBorrowTimeout   *int
			SessionPinningFilters     []string
			InitQuery                 *string
		}
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, err := proxyAndGroup(st, in.DBProxyName, &in.TargetGroupName)
	if err != nil {
		return nil, err
	}
	if in.NewName != nil && *in.NewName != defaultTargetGroup {
		return nil, api.InvalidParameterValue("The default target group can't be renamed.")
	}
	pool := p.TargetGroup.Pool
	if cfg := in.ConnectionPoolConfig; cfg != nil {
		if cfg.MaxConnectionsPercent != nil {
			if *cfg.MaxConnectionsPercent < 1 || *cfg.MaxConnectionsPercent > 100 {
				return nil, api.InvalidParameterValue("MaxConnectionsPercent must be between 1 and 100.")
			}
			pool.MaxConnectionsPercent = *cfg.MaxConnectionsPercent
			// As RDS does: an explicit Max without Idle sets Idle to half.
			if cfg.MaxIdleConnectionsPercent == nil {
				pool.MaxIdleConnectionsPercent = pool.MaxConnectionsPercent / 2
			}
		}
		if cfg.MaxIdleConnectionsPercent != nil {
			idle := *cfg.MaxIdleConnectionsPercent
			if idle < 0 || idle > pool.MaxConnectionsPercent {
				return nil, api.InvalidParameterValue("MaxIdleConnectionsPercent must be between 0 and MaxConnectionsPercent (%d).", pool.MaxConnectionsPercent)
			}
			pool.MaxIdleConnectionsPercent = idle
		}
		if cfg.ConnectionBorrowTimeout != nil {
			if *cfg.ConnectionBorrowTimeout < 0 || *cfg.ConnectionBorrowTimeout > 300 {
				return nil, api.InvalidParameterValue("ConnectionBorrowTimeout must be between 0 and 300 seconds.")
			}
			pool.ConnectionBorrowTimeout = *cfg.ConnectionBorrowTimeout
		}
		if cfg.SessionPinningFilters != nil {
			for _, f := range cfg.SessionPinningFilters {
				if f != "EXCLUDE_VARIABLE_SETS" {
					return nil, api.InvalidParameterValue("Invalid session pinning filter %s: the only filter is EXCLUDE_VARIABLE_SETS.", f)
				}
			}
			if len(cfg.SessionPinningFilters) > 0 && p.EngineFamily != "MYSQL" {
				return nil, api.InvalidParameterValue("Session pinning filters are supported only for the MYSQL engine family.")
			}
			pool.SessionPinningFilters = cfg.SessionPinningFilters
		}
		if cfg.InitQuery != nil {
			pool.InitQuery = *cfg.InitQuery
		}
	}
	p.TargetGroup.Pool = pool
	p.TargetGroup.Updated = c.Now
	return struct{ DBProxyTargetGroup xmlTargetGroup }{r.targetGroupXML(st, p)}, nil
}

// engineFamilyOf maps a DB engine to the proxy engine family that can front it.
func engineFamilyOf(engine string) string {
	switch engine {
	case "mysql", "mariadb", "aurora-mysql":
		return "MYSQL"
	case "postgres", "aurora-postgresql":
		return "POSTGRESQL"
	}
	return ""
}

type registerInput struct {
	DBProxyName           string
	TargetGroupName       *string
	DBInstanceIdentifiers []string
	DBClusterIdentifiers  []string
}

func (r *RDS) registerDBProxyTargets(c *api.Call) (any, error) {
	var in registerInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, err := proxyAndGroup(st, in.DBProxyName, in.TargetGroupName)
	if err != nil {
		return nil, err
	}
	n := len(in.DBInstanceIdentifiers) + len(in.DBClusterIdentifiers)
	if n == 0 {
		return nil, api.InvalidParameterCombination("Specify DBInstanceIdentifiers or DBClusterIdentifiers.")
	}
	if n > 1 {
		return nil, api.InvalidParameterCombination("A DB proxy can have only one target: one DB instance or one DB cluster.")
	}
	tg := &p.TargetGroup
	for _, id := range in.DBInstanceIdentifiers {
		inst, ok := st.Instances[id]
		if !ok {
			return nil, instanceNotFound(id)
		}
		if engineFamilyOf(inst.Engine) != p.EngineFamily {
			return nil, api.InvalidParameterValue("The DB instance %s has engine %s, which isn't compatible with the %s engine family of proxy %s.", id, inst.Engine, p.EngineFamily, p.Name)
		}
		if inst.Cluster != "" {
			return nil, api.InvalidParameterValue("The DB instance %s is a member of the DB cluster %s; register the cluster instead.", id, inst.Cluster)
		}
		if inst.Status != "available" {
			return nil, invalidInstanceState("DB instance %s is not in the available state (it is %s).", id, inst.Status)
		}
	}
	for _, id := range in.DBClusterIdentifiers {
		cl, ok := st.Clusters[id]
		if !ok {
			return nil, clusterNotFound(id)
		}
		if engineFamilyOf(cl.Engine) != p.EngineFamily {
			return nil, api.InvalidParameterValue("The DB cluster %s has engine %s, which isn't compatible with the %s engine family of proxy %s.", id, cl.Engine, p.EngineFamily, p.Name)
		}
		if cl.Status != "available" {
			return nil, invalidClusterState("DB cluster %s is not in the available state (it is %s).", id, cl.Status)
		}
	}
	if len(tg.Instances)+len(tg.Clusters) > 0 {
		if contains(tg.Instances, in.DBInstanceIdentifiers) || contains(tg.Clusters, in.DBClusterIdentifiers) {
			return nil, targetAlreadyRegistered("The proxy %s is already associated with the specified RDS DB instance or Aurora DB cluster.", p.Name)
		}
		return nil, targetAlreadyRegistered("The proxy %s already has a target; a DB proxy has one DB instance or one DB cluster. Deregister it first.", p.Name)
	}
	tg.Instances, tg.Clusters = in.DBInstanceIdentifiers, in.DBClusterIdentifiers
	tg.Updated = c.Now
	rows := r.targetRows(st, p, true)
	return struct{ DBProxyTargets api.List[xmlTarget] }{rows}, nil
}

func contains(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

// targetRows computes the DBProxyTarget rows of a proxy from the current
// instances and clusters, so roles follow failovers. A cluster yields a
// TRACKED_CLUSTER row plus one RDS_INSTANCE row per member.
func (r *RDS) targetRows(st *regionState, p *proxy, registering bool) api.List[xmlTarget] {
	rows := api.List[xmlTarget]{}
	health := func(inst *instance, writer string) *xmlTargetHealth {
		if registering {
			return &xmlTargetHealth{State: "REGISTERING"}
		}
		if reason, desc := r.outOfService(st, inst, writer); reason != "" {
			return &xmlTargetHealth{State: "UNAVAILABLE", Reason: reason, Description: desc}
		}
		if r.opts.DataPlane != nil {
			if state, reason, desc := r.opts.DataPlane.TargetHealth(p.ID, inst.ID); state != "" {
				return &xmlTargetHealth{State: state, Reason: reason, Description: desc}
			}
		}
		return &xmlTargetHealth{State: "AVAILABLE"}
	}
	for _, id := range p.TargetGroup.Instances {
		inst := st.Instances[id]
		row := xmlTarget{TargetArn: arn(st.Region, st.Account, "db:"+id), RdsResourceId: id, Type: "RDS_INSTANCE", Role: "READ_WRITE", TargetHealth: health(inst, id)}
		if inst != nil {
			row.Endpoint, row.Port = inst.Address, inst.Port
		}
		rows = append(rows, row)
	}
	for _, id := range p.TargetGroup.Clusters {
		cl := st.Clusters[id]
		row := xmlTarget{TargetArn: arn(st.Region, st.Account, "cluster:"+id), TrackedClusterId: id, RdsResourceId: id, Type: "TRACKED_CLUSTER"}
		if cl != nil {
			row.Port = cl.Port
		}
		rows = append(rows, row)
		if cl == nil {
			continue
		}
		writer := r.clusterWriter(st, cl)
		for _, m := range clusterMembers(st, id) {
			role := "READ_ONLY"
			if m.ID == writer {
				role = "READ_WRITE"
			}
			rows = append(rows, xmlTarget{
				TargetArn: arn(st.Region, st.Account, "db:"+m.ID), Endpoint: m.Address, TrackedClusterId: id,
				RdsResourceId: m.ID, Port: m.Port, Type: "RDS_INSTANCE", Role: role, TargetHealth: health(m, writer),
			})
		}
	}
	return rows
}

// outOfService says why an instance cannot serve as a proxy target in its
// role ("" when it can): it is not available, no server runs behind it
// (--db-backend none), its server is down, or —
// for a reader — it does not replicate from the writer (not re-pointed
// yet after a failover, replication stopped, or too far behind). Such an
// instance is not handed to the data plane. The caller holds r.mu.
func (r *RDS) outOfService(st *regionState, in *instance, writer string) (reason, description string) {
	if in == nil || in.Status != "available" {
		return "UNREACHABLE", "DB instance is not available"
	}
	if in.ExternalEndpoint != "" {
		return "", ""
	}
	if r.opts.Engines == nil {
		// A record only: nothing listens at its address (or something
		// else does), so the proxy must not dial it. No connection can be
		// made, as with a target the proxy cannot log in to.
		return "CONNECTION_FAILED", "No database server runs behind this DB instance: rdslocal runs with --db-backend none"
	}
	g, err := r.opts.Engines.Get(primaryEID(st, in))
	if err != nil || g.Status != engine.StatusAvailable {
		return "UNREACHABLE", "The DB instance's database server is not running"
	}
	if in.ID == writer {
		return "", ""
	}
	switch {
	case in.ReplicaOf != writer:
		return "INVALID_REPLICATION_STATE", fmt.Sprintf("The DB instance does not replicate from the cluster writer %s yet", writer)
	case !g.Replication.Running:
		desc := "The DB instance is not replicating from the cluster writer"
		if g.Replication.Error != "" {
			desc += ": " + g.Replication.Error
		}
		return "INVALID_REPLICATION_STATE", desc
	}
	return "", ""
}

func (r *RDS) describeDBProxyTargets(c *api.Call) (any, error) {
	var in struct {
		DBProxyName     string
		TargetGroupName *string
		Marker          *string
		MaxRecords      *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, err := proxyAndGroup(st, in.DBProxyName, in.TargetGroupName)
	if err != nil {
		return nil, err
	}
	pg, marker, err := page(r.targetRows(st, p, false), in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	return struct {
		Targets api.List[xmlTarget]
		Marker  string `xml:",omitempty"`
	}{append(api.List[xmlTarget]{}, pg...), marker}, nil
}

func (r *RDS) deregisterDBProxyTargets(c *api.Call) (any, error) {
	var in registerInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, err := proxyAndGroup(st, in.DBProxyName, in.TargetGroupName)
	if err != nil {
		return nil, err
	}
	tg := &p.TargetGroup
	for _, id := range in.DBInstanceIdentifiers {
		if !contains(tg.Instances, []string{id}) {
			return nil, targetNotFound(id, p.Name)
		}
	}
	for _, id := range in.DBClusterIdentifiers {
		if !contains(tg.Clusters, []string{id}) {
			return nil, targetNotFound(id, p.Name)
		}
	}
	tg.Instances = without(tg.Instances, in.DBInstanceIdentifiers)
	tg.Clusters = without(tg.Clusters, in.DBClusterIdentifiers)
	tg.Updated = c.Now
	return struct{}{}, nil
}

func without(list, drop []string) []string {
	var out []string
	for _, v := range list {
		if !contains(drop, []string{v}) {
			out = append(out, v)
		}
	}
	return out
}
