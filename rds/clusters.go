package rds

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// clusterMembers returns the instances of a cluster, oldest first.
func clusterMembers(st *regionState, id string) []*instance {
	var out []*instance
	for _, inst := range st.Instances {
		if inst.Cluster == id {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// clusterWriter is the id of the cluster's writer instance, "" without one.
func (r *RDS) clusterWriter(st *regionState, cl *cluster) string {
	if _, ok := st.Instances[cl.Writer]; ok {
		return cl.Writer
	}
	if m := clusterMembers(st, cl.ID); len(m) > 0 {
		return m[0].ID
	}
	return ""
}

func (r *RDS) clusterXML(st *regionState, cl *cluster, status string) xmlDBCluster {
	label := accountDNSLabel(st.Account, st.Region)
	x := xmlDBCluster{
		AllocatedStorage: 1, AvailabilityZones: cl.AvailabilityZones, BackupRetentionPeriod: 1,
		DatabaseName: cl.DatabaseName, DBClusterIdentifier: cl.ID, DBClusterParameterGroup: "default." + cl.Engine,
		Status: status, Engine: cl.Engine, EngineVersion: cl.EngineVersion, Port: cl.Port, MasterUsername: cl.MasterUsername,
		Endpoint:              fmt.Sprintf("%s.cluster-%s.%s.rds.amazonaws.com", cl.ID, label, st.Region),
		ReaderEndpoint:        fmt.Sprintf("%s.cluster-ro-%s.%s.rds.amazonaws.com", cl.ID, label, st.Region),
		PreferredBackupWindow: "03:00-03:30", PreferredMaintenanceWindow: "sun:05:00-sun:05:30",
		DBClusterMembers: xmlClusterMembers{}, VpcSecurityGroups: securityGroups(cl.VpcSecurityGroupIds),
		HostedZoneId: hostedZoneID, DbClusterResourceId: cl.ResourceID, DBClusterArn: arn(st.Region, st.Account, "cluster:"+cl.ID),
		IAMDatabaseAuthenticationEnabled: cl.IAMAuth, ClusterCreateTime: api.ISOTime(cl.Created), EngineMode: "provisioned",
		DeletionProtection: cl.DeletionProtection, TagList: cl.Tags, NetworkType: "IPV4",
	}
	writer := r.clusterWriter(st, cl)
	for _, m := range clusterMembers(st, cl.ID) {
		x.DBClusterMembers = append(x.DBClusterMembers, xmlClusterMember{
			DBInstanceIdentifier: m.ID, IsClusterWriter: m.ID == writer, DBClusterParameterGroupStatus: "in-sync", PromotionTier: m.PromotionTier,
		})
		if m.ID == writer && m.Address != "" {
			// The writer is where a client of the cluster endpoint lands.
			x.Endpoint, x.Port = m.Address, m.Port
		}
	}
	x.MultiAZ = len(x.DBClusterMembers) > 1
	if x.TagList == nil {
		x.TagList = xmlTagList{}
	}
	return x
}

func (r *RDS) createDBCluster(c *api.Call) (any, error) {
	var in struct {
		DBClusterIdentifier             string
		Engine                          string
		EngineVersion                   *string
		MasterUsername                  *string
		MasterUserPassword              *string
		DatabaseName                    *string
		Port                            *int
		VpcSecurityGroupIds             []string
		AvailabilityZones               []string
		DBSubnetGroupName               *string
		EnableIAMDatabaseAuthentication *bool
		DeletionProtection              *bool
		ManageMasterUserPassword        *bool
		Tags                            []tagInput
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkIdentifier("DBClusterIdentifier", in.DBClusterIdentifier); err != nil {
		return nil, err
	}
	id := strings.ToLower(in.DBClusterIdentifier)
	if in.Engine != "aurora-postgresql" && in.Engine != "aurora-mysql" {
		return nil, api.InvalidParameterValue("Invalid DB engine for a cluster: %s. rdslocal runs aurora-postgresql and aurora-mysql clusters.", in.Engine)
	}
	if deref(in.ManageMasterUserPassword) {
		return nil, api.InvalidParameterValue("ManageMasterUserPassword is not supported by rdslocal: pass MasterUserPassword.")
	}
	if in.MasterUsername == nil || *in.MasterUsername == "" {
		return nil, api.InvalidParameterValue("The parameter MasterUsername must be provided and must not be blank.")
	}
	if in.MasterUserPassword == nil || *in.MasterUserPassword == "" {
		return nil, api.InvalidParameterValue("The parameter MasterUserPassword must be provided and must not be blank.")
	}
	if err := checkMasterUser(in.Engine, *in.MasterUsername); err != nil {
		return nil, err
	}
	if err := checkMasterPassword(*in.MasterUserPassword); err != nil {
		return nil, err
	}
	version := deref(in.EngineVersion)
	if version == "" {
		version = engines[in.Engine].version
	}
	port := engines[in.Engine].port
	if in.Port != nil {
		port = *in.Port
	}
	azs := in.AvailabilityZones
	if len(azs) == 0 {
		azs = []string{c.Region + "a", c.Region + "b", c.Region + "c"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	if _, taken := st.Clusters[id]; taken {
		return nil, clusterAlreadyExists()
	}
	cl := &cluster{
		ID: id, Engine: in.Engine, EngineVersion: version, MasterUsername: *in.MasterUsername,
		MasterPassword: *in.MasterUserPassword, DatabaseName: deref(in.DatabaseName), Status: "available", Port: port,
		VpcSecurityGroupIds: in.VpcSecurityGroupIds, AvailabilityZones: azs, SubnetGroup: deref(in.DBSubnetGroupName),
		IAMAuth: deref(in.EnableIAMDatabaseAuthentication), DeletionProtection: deref(in.DeletionProtection),
		ResourceID: "cluster-" + randomString(upperAlnum, 26), Created: c.Now, Tags: tagsFrom(in.Tags),
	}
	if len(cl.VpcSecurityGroupIds) == 0 {
		cl.VpcSecurityGroupIds = []string{"sg-" + hashID(17, "default", st.Account, st.Region)}
	}
	st.Clusters[id] = cl
	r.event(st, srcCluster, cl.ID, "RDS-EVENT-0170", "creation", "DB cluster created.")
	return struct{ DBCluster xmlDBCluster }{r.clusterXML(st, cl, "creating")}, nil
}

var clusterFilters = map[string]func(st *regionState, cl *cluster, v string) bool{
	"db-cluster-id": func(st *regionState, cl *cluster, v string) bool {
		return cl.ID == strings.ToLower(v) || arn(st.Region, st.Account, "cluster:"+cl.ID) == v
	},
	"engine": func(_ *regionState, cl *cluster, v string) bool { return cl.Engine == v },
}

func (r *RDS) describeDBClusters(c *api.Call) (any, error) {
	var in struct {
		DBClusterIdentifier *string
		Filters             []filterInput
		Marker              *string
		MaxRecords          *int64
		IncludeShared       *bool
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	for _, f := range in.Filters {
		if clusterFilters[f.Name] == nil {
			return nil, api.InvalidParameterValue("Unrecognized filter name: %s. rdslocal supports db-cluster-id and engine.", f.Name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	var list []*cluster
	if in.DBClusterIdentifier != nil {
		cl, ok := st.Clusters[strings.ToLower(*in.DBClusterIdentifier)]
		if !ok {
			return nil, clusterNotFound(*in.DBClusterIdentifier)
		}
		list = append(list, cl)
	} else {
		for _, cl := range st.Clusters {
			list = append(list, cl)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	var filtered []*cluster
	for _, cl := range list {
		if matchesFilters(st, cl, in.Filters, clusterFilters) {
			filtered = append(filtered, cl)
		}
	}
	pg, marker, err := page(filtered, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	out := xmlDBClusters{}
	for _, cl := range pg {
		out = append(out, r.clusterXML(st, cl, cl.Status))
	}
	return struct {
		Marker     string `xml:",omitempty"`
		DBClusters xmlDBClusters
	}{marker, out}, nil
}

func clusterFor(st *regionState, id string) (*cluster, error) {
	cl, ok := st.Clusters[strings.ToLower(id)]
	if !ok {
		return nil, clusterNotFound(id)
	}
	return cl, nil
}

func (r *RDS) modifyDBCluster(c *api.Call) (any, error) {
	var in struct {
		DBClusterIdentifier             string
		NewDBClusterIdentifier          *string
		MasterUserPassword              *string
		VpcSecurityGroupIds             []string
		EnableIAMDatabaseAuthentication *bool
		DeletionProtection              *bool
		Port                            *int
		ApplyImmediately                *bool
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	cl, err := clusterFor(st, in.DBClusterIdentifier)
	if err != nil {
		return nil, err
	}
	if cl.Status != "available" {
		return nil, invalidClusterState("DB cluster %s is not in the available state (it is %s).", cl.ID, cl.Status)
	}
	if in.MasterUserPassword != nil {
		if err := checkMasterPassword(*in.MasterUserPassword); err != nil {
			return nil, err
		}
	}
	newID := ""
	if in.NewDBClusterIdentifier != nil {
		if err := checkIdentifier("NewDBClusterIdentifier", *in.NewDBClusterIdentifier); err != nil {
			return nil, err
		}
		newID = strings.ToLower(*in.NewDBClusterIdentifier)
		if _, taken := st.Clusters[newID]; taken && newID != cl.ID {
			return nil, clusterAlreadyExists()
		}
	}
	if in.MasterUserPassword != nil {
		r.event(st, srcCluster, cl.ID, "RDS-EVENT-0016", "configuration change", "Reset master credentials.")
		cl.MasterPassword = *in.MasterUserPassword
		writer := r.clusterWriter(st, cl)
		for _, m := range clusterMembers(st, cl.ID) {
			m.MasterPassword = cl.MasterPassword
			if m.ID == writer {
				// Readers replicate the change from the writer.
				r.startSetPassword(st, m, cl.MasterPassword)
			}
		}
	}
	if in.VpcSecurityGroupIds != nil {
		cl.VpcSecurityGroupIds = in.VpcSecurityGroupIds
	}
	if in.EnableIAMDatabaseAuthentication != nil {
		cl.IAMAuth = *in.EnableIAMDatabaseAuthentication
	}
	if in.DeletionProtection != nil {
		cl.DeletionProtection = *in.DeletionProtection
	}
	if in.Port != nil {
		cl.Port = *in.Port
	}
	if newID != "" && newID != cl.ID {
		old := cl.ID
		for _, m := range clusterMembers(st, old) {
			m.Cluster = newID
		}
		delete(st.Clusters, old)
		cl.ID = newID
		st.Clusters[newID] = cl
		for _, p := range st.Proxies {
			for i, id := range p.TargetGroup.Clusters {
				if id == old {
					p.TargetGroup.Clusters[i] = newID
				}
			}
		}
	}
	return struct{ DBCluster xmlDBCluster }{r.clusterXML(st, cl, cl.Status)}, nil
}

func (r *RDS) deleteDBCluster(c *api.Call) (any, error) {
	var in struct {
		DBClusterIdentifier       string
		SkipFinalSnapshot         *bool
		FinalDBSnapshotIdentifier *string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	cl, err := clusterFor(st, in.DBClusterIdentifier)
	if err != nil {
		return nil, err
	}
	if !deref(in.SkipFinalSnapshot) && deref(in.FinalDBSnapshotIdentifier) == "" {
		return nil, api.InvalidParameterCombination("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
	}
	if cl.DeletionProtection {
		return nil, invalidClusterState("Cannot delete protected Cluster, please disable deletion protection and try again.")
	}
	if len(clusterMembers(st, cl.ID)) > 0 {
		return nil, invalidClusterState("Cluster cannot be deleted, it still contains DB instances in non-deleting state.")
	}
	delete(st.Clusters, cl.ID)
	r.event(st, srcCluster, cl.ID, "RDS-EVENT-0171", "deletion", "DB cluster deleted.")
	for _, p := range st.Proxies {
		if contains(p.TargetGroup.Clusters, []string{cl.ID}) {
			p.TargetGroup.Clusters = without(p.TargetGroup.Clusters, []string{cl.ID})
			r.event(st, srcProxy, p.Name, "RDS-EVENT-0215", "configuration change",
				fmt.Sprintf("RDS detected deletion of DB cluster %s and automatically removed it from target group %s of DB proxy %s.", cl.ID, defaultTargetGroup, p.Name))
		}
	}
	return struct{ DBCluster xmlDBCluster }{r.clusterXML(st, cl, "deleting")}, nil
}

func (r *RDS) failoverDBCluster(c *api.Call) (any, error) {
	var in struct {
		DBClusterIdentifier        string
		TargetDBInstanceIdentifier *string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	cl, err := clusterFor(st, in.DBClusterIdentifier)
	if err != nil {
		return nil, err
	}
	if cl.Status != "available" {
		return nil, invalidClusterState("DB cluster %s is not in the available state (it is %s).", cl.ID, cl.Status)
	}
	if r.haBusy[haKey(st, "cluster", cl.ID)] {
		return nil, invalidClusterState("DB cluster %s is still recovering from a failover: a member is being rebuilt as a reader.", cl.ID)
	}
	members := clusterMembers(st, cl.ID)
	writer := r.clusterWriter(st, cl)
	if len(members) == 0 {
		return nil, invalidClusterState("DB cluster %s has no DB instances to fail over to.", cl.ID)
	}
	target := ""
	if in.TargetDBInstanceIdentifier != nil {
		target = strings.ToLower(*in.TargetDBInstanceIdentifier)
		inst, ok := st.Instances[target]
		if !ok || inst.Cluster != cl.ID {
			return nil, api.InvalidParameterValue("The DB instance %s is not a member of the DB cluster %s.", *in.TargetDBInstanceIdentifier, cl.ID)
		}
		if inst.Status != "available" {
			return nil, invalidInstanceState("Database instance is not in available state.")
		}
	} else {
		// The reader with the best (lowest) promotion tier takes over.
		best := -1
		for _, m := range members {
			if m.ID != writer && m.Status == "available" && (best < 0 || m.PromotionTier < members[best].PromotionTier) {
				best = indexOf(members, m)
			}
		}
		if best < 0 {
			target = writer // a single-instance cluster restarts its writer
		} else {
			target = members[best].ID
		}
	}
	switch {
	case r.opts.Engines == nil:
		// Records only: the roles change at once.
		cl.Writer = target
	case target == writer:
		w := st.Instances[writer]
		r.event(st, srcCluster, cl.ID, failoverStartID(w, w), "failover", failoverStartMessage(w, w))
		r.startReboot(st, w, func() {
			r.event(st, srcCluster, cl.ID, "RDS-EVENT-0071", "failover", fmt.Sprintf("Completed failover to DB instance: %s.", w.ID))
		})
	case st.Instances[target].ReplicaOf != writer:
		return nil, invalidInstanceState("DB instance %s does not replicate from the writer %s yet.", target, writer)
	default:
		if g, err := r.opts.Engines.Get(primaryEID(st, st.Instances[target])); err != nil || !g.Replication.Running {
			why := g.Replication.Error
			if err != nil {
				why = err.Error()
			}
			return nil, invalidInstanceState("DB instance %s is not replicating from the writer %s: %s", target, writer, why)
		}
		key := haKey(st, "cluster", cl.ID)
		r.claimHA(key)
		cl.Status = "failing-over"
		go func() {
			defer r.releaseHA(key)
			r.failoverCluster(st, cl, writer, target, true)
		}()
	}
	return struct{ DBCluster xmlDBCluster }{r.clusterXML(st, cl, cl.Status)}, nil
}

func indexOf(list []*instance, want *instance) int {
	for i, v := range list {
		if v == want {
			return i
		}
	}
	return -1
}
