package rds

import "time"

// regionState is everything RDS holds for one account in one region. The
// records are plain data so the whole state can be saved as JSON.
type regionState struct {
	Account, Region string
	Proxies         map[string]*proxy         // by DBProxyName
	Endpoints       map[string]*proxyEndpoint // user endpoints, by DBProxyEndpointName
	Instances       map[string]*instance      // by DBInstanceIdentifier
	Clusters        map[string]*cluster       // by DBClusterIdentifier
	Events          []event                   // oldest first, 14 days at most
}

func newRegionState(account, region string) *regionState {
	return &regionState{
		Account: account, Region: region,
		Proxies:   map[string]*proxy{},
		Endpoints: map[string]*proxyEndpoint{},
		Instances: map[string]*instance{},
		Clusters:  map[string]*cluster{},
	}
}

type tag struct{ Key, Value string }

type authConfig struct {
	Description            string `json:",omitempty" xml:",omitempty"`
	UserName               string `json:",omitempty" xml:",omitempty"`
	AuthScheme             string `json:",omitempty" xml:",omitempty"`
	SecretArn              string `json:",omitempty" xml:",omitempty"`
	IAMAuth                string `json:",omitempty" xml:",omitempty"`
	ClientPasswordAuthType string `json:",omitempty" xml:",omitempty"`
}

type proxy struct {
	Name, ID                    string // ID is prx-<17 hex>
	EngineFamily                string
	RoleArn                     string
	VpcSubnetIds                []string
	VpcSecurityGroupIds         []string
	DefaultAuthScheme           string
	Auth                        []authConfig
	RequireTLS                  bool
	IdleClientTimeout           int
	DebugLogging                bool
	EndpointNetworkType         string
	TargetConnectionNetworkType string
	// Address is what Endpoint reports and where the default endpoint's
	// listener is: a loopback IP, or 127.0.0.1:port in ports mode.
	Address          string
	Created, Updated time.Time
	Tags             []tag
	TargetGroup      targetGroup
}

type poolConfig struct {
	MaxConnectionsPercent     int
	MaxIdleConnectionsPercent int
	ConnectionBorrowTimeout   int
	SessionPinningFilters     []string
	InitQuery                 string
}

type targetGroup struct {
	ID               string // prx-tg-<17 hex>
	Pool             poolConfig
	Created, Updated time.Time
	Tags             []tag
	// Instances and Clusters are the registered targets (at most one in
	// all, as in RDS).
	Instances []string
	Clusters  []string
}

type proxyEndpoint struct {
	Name, ID            string // ID is prx-endpoint-<17 hex>
	Proxy               string // DBProxyName
	VpcSubnetIds        []string
	VpcSecurityGroupIds []string
	TargetRole          string
	EndpointNetworkType string
	Address             string
	Created             time.Time
	Tags                []tag
}

type instance struct {
	ID                   string
	Class                string
	Engine               string
	EngineVersion        string
	MasterUsername       string
	MasterPassword       string
	DBName               string
	Status               string
	StatusMessage        string // why the instance failed, when it did
	Address              string
	Port                 int
	Cluster              string
	ReplicaOf            string // the instance this one replicates (cluster readers)
	MultiAZ              bool
	AllocatedStorage     int
	StorageType          string
	AvailabilityZone     string
	VpcSecurityGroupIds  []string
	SubnetGroup          string
	PubliclyAccessible   bool
	IAMAuth              bool
	DeletionProtection   bool
	ResourceID           string // db-<26 upper alnum>
	PromotionTier        int
	Created              time.Time
	Tags                 []tag
	ExternalEndpoint     string // rdslocal:endpoint tag: an existing server
	BackupRetentionDays  int
	PreferredMaintenance string
	// EngineID names the instance's server in the engine layer (its
	// original account.region.identifier: it does not follow renames).
	// Empty in state saved before it existed: engineID then.
	EngineID string `json:",omitempty"`
	// StandbyActive: a Multi-AZ failover made the hidden standby
	// (EngineID.standby) the primary; EngineID is now the standby.
	StandbyActive bool `json:",omitempty"`
}

type cluster struct {
	ID                  string
	Engine              string
	EngineVersion       string
	MasterUsername      string
	MasterPassword      string
	DatabaseName        string
	Status              string
	Port                int
	Writer              string // instance id of the writer, "" before the first member
	VpcSecurityGroupIds []string
	AvailabilityZones   []string
	SubnetGroup         string
	IAMAuth             bool
	DeletionProtection  bool
	ResourceID          string // cluster-<26 upper alnum>
	Created             time.Time
	Tags                []tag
}
