package rds

import (
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// Engines rdslocal can run behind a DB instance, with their standard ports
// and the versions reported until the engine layer reads the real one.
var engines = map[string]struct {
	port    int
	version string
}{
	"postgres":          {5432, "15.19"},
	"aurora-postgresql": {5432, "15.19"},
	"mysql":             {3306, "10.11.19"},
	"mariadb":           {3306, "10.11.19"},
	"aurora-mysql":      {3306, "10.11.19"},
}

var masterUserPattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)

func checkMasterUser(engine, user string) error {
	max := 63
	if engineFamilyOf(engine) == "MYSQL" {
		max = 16
	}
	if user == "" || len(user) > max || !masterUserPattern.MatchString(user) {
		return api.InvalidParameterValue("The parameter MasterUsername is not a valid user name: it must begin with a letter, contain only ASCII letters, digits and underscores, and be 1 to %d characters long.", max)
	}
	if strings.EqualFold(user, "rdsadmin") {
		return api.InvalidParameterValue("MasterUsername %s cannot be used as it is a reserved word used by the engine", user)
	}
	return nil
}

func checkMasterPassword(pw string) error {
	if len(pw) < 8 {
		return api.InvalidParameterValue("The parameter MasterUserPassword is not a valid password because it is shorter than 8 characters.")
	}
	if len(pw) > 128 {
		return api.InvalidParameterValue("The parameter MasterUserPassword is not a valid password because it is longer than 128 characters.")
	}
	if strings.ContainsAny(pw, "/\"@ ") {
		return api.InvalidParameterValue("The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used.")
	}
	for _, r := range pw {
		if r < 0x21 || r > 0x7e {
			return api.InvalidParameterValue("The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used.")
		}
	}
	return nil
}

func (r *RDS) instanceXML(st *regionState, in *instance, status string) xmlDBInstance {
	x := xmlDBInstance{
		DBInstanceIdentifier: in.ID, DBInstanceClass: in.Class, Engine: in.Engine, DBInstanceStatus: status,
		MasterUsername: in.MasterUsername, DBName: in.DBName, AllocatedStorage: in.AllocatedStorage,
		InstanceCreateTime: api.ISOTime(in.Created), PreferredBackupWindow: "03:00-03:30",
		BackupRetentionPeriod: in.BackupRetentionDays, VpcSecurityGroups: securityGroups(in.VpcSecurityGroupIds),
		AvailabilityZone: in.AvailabilityZone, PreferredMaintenanceWindow: "sun:05:00-sun:05:30",
		MultiAZ: in.MultiAZ, EngineVersion: in.EngineVersion, AutoMinorVersionUpgrade: true,
		LicenseModel: licenseModel(in.Engine), PubliclyAccessible: in.PubliclyAccessible, StorageType: in.StorageType,
		DBClusterIdentifier: in.Cluster, DbiResourceId: in.ResourceID, CACertificateIdentifier: "rds-ca-rsa2048-g1",
		DBInstanceArn: arn(st.Region, st.Account, "db:"+in.ID), IAMDatabaseAuthenticationEnabled: in.IAMAuth,
		DeletionProtection: in.DeletionProtection, TagList: in.Tags, NetworkType: "IPV4",
	}
	if in.Cluster != "" {
		x.PromotionTier = in.PromotionTier
	}
	if in.MultiAZ && in.Cluster == "" {
		// The standby is in another zone of the region; after a failover
		// the instance is served from there.
		primary, secondary := in.AvailabilityZone, standbyZone(in.AvailabilityZone)
		if in.StandbyActive {
			primary, secondary = secondary, primary
		}
		x.AvailabilityZone, x.SecondaryAvailabilityZone = primary, secondary
	}
	if in.StatusMessage != "" {
		x.StatusInfos = xmlStatusInfos{{StatusType: "rdslocal", Normal: false, Status: in.Status, Message: in.StatusMessage}}
	}
	if in.Address != "" && status != "creating" {
		x.Endpoint = &xmlEndpoint{Address: in.Address, Port: in.Port, HostedZoneId: hostedZoneID}
	}
	if x.TagList == nil {
		x.TagList = xmlTagList{}
	}
	return x
}

// standbyZone is the zone of a Multi-AZ standby: the region's zone "b",
// or "a" when the primary is in "b".
func standbyZone(az string) string {
	if az == "" {
		return ""
	}
	if strings.HasSuffix(az, "b") {
		return az[:len(az)-1] + "a"
	}
	return az[:len(az)-1] + "b"
}

// externalEndpointTag on CreateDBInstance makes the instance an existing
// server (host:port) reached with the master credentials; nothing is spawned.
const externalEndpointTag = "rdslocal:endpoint"

// hostedZoneID is the Route 53 zone RDS reports for us-east-1 endpoints.
const hostedZoneID = "Z2R2ITUGPM61AM"

func licenseModel(engine string) string {
	if engineFamilyOf(engine) == "MYSQL" {
		return "general-public-license"
	}
	return "postgresql-license"
}

func (r *RDS) createDBInstance(c *api.Call) (any, error) {
	// Answered once the engine operation ended (or settleWait passed),
	// after r.mu is released.
	var started <-chan struct{}
	defer func() { awaitSettled(c.Ctx, started) }()
	var in struct {
		DBInstanceIdentifier            string
		DBInstanceClass                 string
		Engine                          string
		EngineVersion                   *string
		MasterUsername                  *string
		MasterUserPassword              *string
		DBName                          *string
		AllocatedStorage                *int
		StorageType                     *string
		AvailabilityZone                *string
		MultiAZ                         *bool
		DBClusterIdentifier             *string
		VpcSecurityGroupIds             []string
		DBSubnetGroupName               *string
		PubliclyAccessible              *bool
		EnableIAMDatabaseAuthentication *bool
		DeletionProtection              *bool
		BackupRetentionPeriod           *int
		PromotionTier                   *int
		ManageMasterUserPassword        *bool
		Tags                            []tagInput
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkIdentifier("DBInstanceIdentifier", in.DBInstanceIdentifier); err != nil {
		return nil, err
	}
	id := strings.ToLower(in.DBInstanceIdentifier)
	eng, ok := engines[in.Engine]
	if !ok {
		return nil, api.InvalidParameterValue("Invalid DB engine: %s. rdslocal runs postgres, mysql, mariadb, aurora-postgresql and aurora-mysql.", in.Engine)
	}
	if !strings.HasPrefix(in.DBInstanceClass, "db.") {
		return nil, api.InvalidParameterValue("Invalid DB Instance class: %s", in.DBInstanceClass)
	}
	if deref(in.ManageMasterUserPassword) {
		return nil, api.InvalidParameterValue("ManageMasterUserPassword is not supported by rdslocal: pass MasterUserPassword.")
	}
	aurora := strings.HasPrefix(in.Engine, "aurora-")
	clusterID := strings.ToLower(deref(in.DBClusterIdentifier))
	if aurora && clusterID == "" {
		return nil, api.InvalidParameterCombination("DBClusterIdentifier is required for the %s engine: create the cluster with CreateDBCluster first.", in.Engine)
	}
	if !aurora && clusterID != "" {
		return nil, api.InvalidParameterCombination("The %s engine can't be a member of a DB cluster; use aurora-postgresql or aurora-mysql.", in.Engine)
	}
	if !aurora {
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
	} else if in.MasterUsername != nil || in.MasterUserPassword != nil {
		return nil, api.InvalidParameterCombination("The requested DB Instance will be a member of a DB Cluster. Set master user name and password for the DB Cluster.")
	}
	version := deref(in.EngineVersion)
	if version == "" {
		version = eng.version
	}
	if err := r.checkEngine(in.Engine, version); err != nil {
		return nil, api.InvalidParameterCombination("Cannot find version %s for %s: %v", version, in.Engine, err)
	}
	storage := deref(in.AllocatedStorage)
	if storage == 0 {
		storage = 20
	}
	region := c.Region
	az := deref(in.AvailabilityZone)
	if az == "" {
		az = region + "a"
	}
	storageType := deref(in.StorageType)
	if storageType == "" {
		storageType = "gp2"
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	if _, taken := st.Instances[id]; taken {
		return nil, instanceAlreadyExists()
	}
	inst := &instance{
		ID: id, Class: in.DBInstanceClass, Engine: in.Engine, EngineVersion: version,
		MasterUsername: deref(in.MasterUsername), MasterPassword: deref(in.MasterUserPassword), DBName: deref(in.DBName),
		MultiAZ: deref(in.MultiAZ), AllocatedStorage: storage, StorageType: storageType, AvailabilityZone: az,
		VpcSecurityGroupIds: in.VpcSecurityGroupIds, SubnetGroup: deref(in.DBSubnetGroupName),
		PubliclyAccessible: deref(in.PubliclyAccessible), IAMAuth: deref(in.EnableIAMDatabaseAuthentication),
		DeletionProtection: deref(in.DeletionProtection), ResourceID: "db-" + randomString(upperAlnum, 26),
		PromotionTier: 1, Created: c.Now, Tags: tagsFrom(in.Tags), BackupRetentionDays: 1,
	}
	if in.BackupRetentionPeriod != nil {
		inst.BackupRetentionDays = *in.BackupRetentionPeriod
	}
	if in.PromotionTier != nil {
		inst.PromotionTier = *in.PromotionTier
	}
	if clusterID != "" {
		cl, ok := st.Clusters[clusterID]
		if !ok {
			return nil, clusterNotFound(clusterID)
		}
		if cl.Engine != in.Engine {
			return nil, api.InvalidParameterCombination("The engine %s of the DB instance doesn't match the engine %s of the DB cluster %s.", in.Engine, cl.Engine, clusterID)
		}
		if cl.Status != "available" {
			return nil, invalidClusterState("DB cluster %s is not in the available state (it is %s).", clusterID, cl.Status)
		}
		inst.Cluster = cl.ID
		inst.MasterUsername, inst.MasterPassword, inst.DBName = cl.MasterUsername, cl.MasterPassword, cl.DatabaseName
		inst.EngineVersion, inst.IAMAuth = cl.EngineVersion, cl.IAMAuth
		if w := r.clusterWriter(st, cl); w != "" {
			inst.ReplicaOf = w
		} else {
			cl.Writer = inst.ID
		}
	}
	for _, t := range inst.Tags {
		if t.Key == externalEndpointTag {
			if _, _, err := net.SplitHostPort(t.Value); err != nil {
				return nil, api.InvalidParameterValue("Tag %s must be host:port of an existing server, got %q.", externalEndpointTag, t.Value)
			}
			inst.ExternalEndpoint = t.Value
		}
	}
	if len(inst.VpcSecurityGroupIds) == 0 {
		inst.VpcSecurityGroupIds = []string{"sg-" + hashID(17, "default", st.Account, st.Region)}
	}
	if inst.ExternalEndpoint != "" {
		host, port, _ := net.SplitHostPort(inst.ExternalEndpoint)
		inst.Address = host
		inst.Port, _ = strconv.Atoi(port)
	} else {
		port, err := r.addrs.port()
		if err != nil {
			return nil, api.NewError(400, "InsufficientDBInstanceCapacity", "%v", err)
		}
		inst.Address, inst.Port = "127.0.0.1", port
	}
	inst.Status, inst.EngineID = "creating", engineID(st, inst.ID)
	st.Instances[inst.ID] = inst
	out := r.instanceXML(st, inst, "creating")
	started = r.startCreate(st, inst)
	return struct{ DBInstance xmlDBInstance }{out}, nil
}

// instanceFilters are the DescribeDBInstances filters rdslocal supports.
var instanceFilters = map[string]func(st *regionState, in *instance, v string) bool{
	"db-instance-id": func(st *regionState, in *instance, v string) bool {
		return in.ID == strings.ToLower(v) || arn(st.Region, st.Account, "db:"+in.ID) == v
	},
	"db-cluster-id": func(st *regionState, in *instance, v string) bool {
		return in.Cluster != "" && (in.Cluster == strings.ToLower(v) || arn(st.Region, st.Account, "cluster:"+in.Cluster) == v)
	},
	"dbi-resource-id": func(_ *regionState, in *instance, v string) bool { return in.ResourceID == v },
	"engine":          func(_ *regionState, in *instance, v string) bool { return in.Engine == v },
}

type filterInput struct {
	Name   string
	Values []string
}

func (r *RDS) describeDBInstances(c *api.Call) (any, error) {
	var in struct {
		DBInstanceIdentifier *string
		Filters              []filterInput
		Marker               *string
		MaxRecords           *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	for _, f := range in.Filters {
		if instanceFilters[f.Name] == nil {
			return nil, api.InvalidParameterValue("Unrecognized filter name: %s. rdslocal supports db-instance-id, db-cluster-id, dbi-resource-id and engine.", f.Name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	var list []*instance
	if in.DBInstanceIdentifier != nil {
		inst, ok := st.Instances[strings.ToLower(*in.DBInstanceIdentifier)]
		if !ok {
			return nil, instanceNotFound(*in.DBInstanceIdentifier)
		}
		list = append(list, inst)
	} else {
		for _, inst := range st.Instances {
			list = append(list, inst)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	}
	var filtered []*instance
	for _, inst := range list {
		if matchesFilters(st, inst, in.Filters, instanceFilters) {
			filtered = append(filtered, inst)
		}
	}
	pg, marker, err := page(filtered, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	out := xmlDBInstances{}
	for _, inst := range pg {
		out = append(out, r.instanceXML(st, inst, inst.Status))
	}
	return struct {
		Marker      string `xml:",omitempty"`
		DBInstances xmlDBInstances
	}{marker, out}, nil
}

// matchesFilters reports whether x passes every filter: each filter needs
// at least one of its values to match, per the filter table.
func matchesFilters[T any](st *regionState, x T, filters []filterInput, table map[string]func(*regionState, T, string) bool) bool {
	for _, f := range filters {
		match := false
		for _, v := range f.Values {
			match = match || table[f.Name](st, x, v)
		}
		if !match {
			return false
		}
	}
	return true
}

// instanceFor returns an instance that must exist and be available.
func instanceFor(st *regionState, id string, needAvailable bool) (*instance, error) {
	inst, ok := st.Instances[strings.ToLower(id)]
	if !ok {
		return nil, instanceNotFound(id)
	}
	if needAvailable && inst.Status != "available" {
		return nil, invalidInstanceState("Database instance is not in available state.")
	}
	return inst, nil
}

func (r *RDS) modifyDBInstance(c *api.Call) (any, error) {
	var in struct {
		DBInstanceIdentifier            string
		NewDBInstanceIdentifier         *string
		DBInstanceClass                 *string
		MasterUserPassword              *string
		MultiAZ                         *bool
		VpcSecurityGroupIds             []string
		EnableIAMDatabaseAuthentication *bool
		DeletionProtection              *bool
		AllocatedStorage                *int
		BackupRetentionPeriod           *int
		ApplyImmediately                *bool
		PromotionTier                   *int
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	inst, err := instanceFor(st, in.DBInstanceIdentifier, true)
	if err != nil {
		return nil, err
	}
	if in.MasterUserPassword != nil {
		if inst.Cluster != "" {
			return nil, api.InvalidParameterCombination("The specified DB instance is a member of a DB cluster. Modify the master user password for the DB cluster using the ModifyDbCluster API.")
		}
		if err := checkMasterPassword(*in.MasterUserPassword); err != nil {
			return nil, err
		}
	}
	if in.DBInstanceClass != nil && !strings.HasPrefix(*in.DBInstanceClass, "db.") {
		return nil, api.InvalidParameterValue("Invalid DB Instance class: %s", *in.DBInstanceClass)
	}
	if in.MultiAZ != nil && inst.Cluster != "" {
		return nil, api.InvalidParameterCombination("MultiAZ can't be modified for a DB instance of a DB cluster.")
	}
	if in.MultiAZ != nil && *in.MultiAZ != inst.MultiAZ && in.MasterUserPassword != nil {
		return nil, api.InvalidParameterCombination("Change MultiAZ and MasterUserPassword in separate ModifyDBInstance calls.")
	}
	newID := ""
	if in.NewDBInstanceIdentifier != nil {
		if err := checkIdentifier("NewDBInstanceIdentifier", *in.NewDBInstanceIdentifier); err != nil {
			return nil, err
		}
		newID = strings.ToLower(*in.NewDBInstanceIdentifier)
		if _, taken := st.Instances[newID]; taken && newID != inst.ID {
			return nil, instanceAlreadyExists()
		}
	}
	if in.MasterUserPassword != nil {
		inst.MasterPassword = *in.MasterUserPassword
		r.startSetPassword(st, inst, inst.MasterPassword)
	}
	if in.DBInstanceClass != nil {
		inst.Class = *in.DBInstanceClass
	}
	if in.MultiAZ != nil && *in.MultiAZ != inst.MultiAZ {
		inst.MultiAZ = *in.MultiAZ
		r.startMultiAZ(st, inst, inst.MultiAZ)
	}
	if in.VpcSecurityGroupIds != nil {
		inst.VpcSecurityGroupIds = in.VpcSecurityGroupIds
	}
	if in.EnableIAMDatabaseAuthentication != nil {
		inst.IAMAuth = *in.EnableIAMDatabaseAuthentication
	}
	if in.DeletionProtection != nil {
		inst.DeletionProtection = *in.DeletionProtection
	}
	if in.AllocatedStorage != nil {
		inst.AllocatedStorage = *in.AllocatedStorage
	}
	if in.BackupRetentionPeriod != nil {
		inst.BackupRetentionDays = *in.BackupRetentionPeriod
	}
	if in.PromotionTier != nil {
		inst.PromotionTier = *in.PromotionTier
	}
	if newID != "" && newID != inst.ID {
		r.renameInstance(st, inst, newID)
	}
	return struct{ DBInstance xmlDBInstance }{r.instanceXML(st, inst, inst.Status)}, nil
}

// renameInstance moves an instance to a new identifier and updates the
// records that name it.
func (r *RDS) renameInstance(st *regionState, inst *instance, newID string) {
	old := inst.ID
	delete(st.Instances, old)
	inst.ID = newID
	st.Instances[newID] = inst
	for _, p := range st.Proxies {
		for i, id := range p.TargetGroup.Instances {
			if id == old {
				p.TargetGroup.Instances[i] = newID
			}
		}
	}
	for _, cl := range st.Clusters {
		if cl.Writer == old {
			cl.Writer = newID
		}
	}
}

func (r *RDS) deleteDBInstance(c *api.Call) (any, error) {
	// Answered once the engine operation ended (or settleWait passed),
	// after r.mu is released.
	var started <-chan struct{}
	defer func() { awaitSettled(c.Ctx, started) }()
	var in struct {
		DBInstanceIdentifier      string
		SkipFinalSnapshot         *bool
		FinalDBSnapshotIdentifier *string
		DeleteAutomatedBackups    *bool
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	inst, err := instanceFor(st, in.DBInstanceIdentifier, false)
	if err != nil {
		return nil, err
	}
	if inst.Cluster == "" && !deref(in.SkipFinalSnapshot) && deref(in.FinalDBSnapshotIdentifier) == "" {
		return nil, api.InvalidParameterCombination("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
	}
	if inst.DeletionProtection {
		return nil, api.InvalidParameterCombination("Cannot delete protected DB Instance, please disable deletion protection and try again.")
	}
	if inst.Status == "deleting" {
		return nil, invalidInstanceState("Instance %s is already being deleted.", inst.ID)
	}
	out := r.instanceXML(st, inst, "deleting")
	started = r.startDelete(st, inst)
	return struct{ DBInstance xmlDBInstance }{out}, nil
}

func (r *RDS) rebootDBInstance(c *api.Call) (any, error) {
	// Answered once the engine operation ended (or settleWait passed),
	// after r.mu is released.
	var started <-chan struct{}
	defer func() { awaitSettled(c.Ctx, started) }()
	var in struct {
		DBInstanceIdentifier string
		ForceFailover        *bool
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	inst, err := instanceFor(st, in.DBInstanceIdentifier, true)
	if err != nil {
		return nil, err
	}
	if deref(in.ForceFailover) && !inst.MultiAZ {
		return nil, api.InvalidParameterCombination("ForceFailover option is not supported for a non-Multi-AZ DB instance %s.", inst.ID)
	}
	out := r.instanceXML(st, inst, "rebooting")
	key := haKey(st, "instance", inst.ID)
	if r.haBusy[key] {
		return nil, invalidInstanceState("DB instance %s is still recovering from a failover: its standby is being rebuilt.", inst.ID)
	}
	if deref(in.ForceFailover) && r.opts.Engines != nil && inst.ExternalEndpoint == "" {
		// The standby takes over; the former primary becomes the standby.
		r.claimHA(key)
		inst.Status = "rebooting"
		go func() {
			defer r.releaseHA(key)
			r.failoverMultiAZ(st, inst, true)
		}()
		return struct{ DBInstance xmlDBInstance }{out}, nil
	}
	started = r.startReboot(st, inst, nil)
	return struct{ DBInstance xmlDBInstance }{out}, nil
}
