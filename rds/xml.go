package rds

import (
	"encoding/xml"

	"github.com/rdslocal/rdslocal/api"
)

// The output shapes of the model, as XML. Element names are the model's
// member names; absent optional members are omitted (an empty <Port/> would
// fail integer parsing in strict SDKs).

type xmlDBProxy struct {
	DBProxyName                 string
	DBProxyArn                  string
	Status                      string
	EngineFamily                string
	VpcId                       string
	VpcSecurityGroupIds         api.List[string]
	VpcSubnetIds                api.List[string]
	DefaultAuthScheme           string `xml:",omitempty"`
	Auth                        api.List[authConfig]
	RoleArn                     string
	Endpoint                    string
	RequireTLS                  bool
	IdleClientTimeout           int
	DebugLogging                bool
	CreatedDate                 string
	UpdatedDate                 string
	EndpointNetworkType         string `xml:",omitempty"`
	TargetConnectionNetworkType string `xml:",omitempty"`
}

type xmlDBProxyEndpoint struct {
	DBProxyEndpointName string
	DBProxyEndpointArn  string `xml:",omitempty"`
	DBProxyName         string
	Status              string
	VpcId               string
	VpcSecurityGroupIds api.List[string]
	VpcSubnetIds        api.List[string]
	Endpoint            string
	CreatedDate         string
	TargetRole          string
	IsDefault           bool
	EndpointNetworkType string `xml:",omitempty"`
}

type xmlPoolConfig struct {
	MaxConnectionsPercent     int
	MaxIdleConnectionsPercent int
	ConnectionBorrowTimeout   int
	SessionPinningFilters     api.List[string]
	InitQuery                 string `xml:",omitempty"`
}

type xmlTargetGroup struct {
	DBProxyName          string
	TargetGroupName      string
	TargetGroupArn       string
	IsDefault            bool
	Status               string
	ConnectionPoolConfig xmlPoolConfig
	CreatedDate          string
	UpdatedDate          string
}

type xmlTargetHealth struct {
	State       string
	Reason      string `xml:",omitempty"`
	Description string `xml:",omitempty"`
}

type xmlTarget struct {
	TargetArn        string `xml:",omitempty"`
	Endpoint         string `xml:",omitempty"`
	TrackedClusterId string `xml:",omitempty"`
	RdsResourceId    string `xml:",omitempty"`
	Port             int    `xml:",omitempty"`
	Type             string `xml:",omitempty"`
	Role             string `xml:",omitempty"`
	TargetHealth     *xmlTargetHealth
}

type xmlEndpoint struct {
	Address      string `xml:",omitempty"`
	Port         int    `xml:",omitempty"`
	HostedZoneId string
}

type xmlSecurityGroup struct {
	VpcSecurityGroupId string
	Status             string
}

type xmlSecurityGroups []xmlSecurityGroup

func (l xmlSecurityGroups) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "VpcSecurityGroupMembership", l)
}

func securityGroups(ids []string) xmlSecurityGroups {
	out := xmlSecurityGroups{}
	for _, id := range ids {
		out = append(out, xmlSecurityGroup{VpcSecurityGroupId: id, Status: "active"})
	}
	return out
}

type xmlTagList []tag

func (l xmlTagList) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "Tag", l)
}

type xmlAZList []string

func (l xmlAZList) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "AvailabilityZone", l)
}

type xmlPending struct {
	MasterUserPassword string `xml:",omitempty"`
}

type xmlDBInstance struct {
	DBInstanceIdentifier             string
	DBInstanceClass                  string
	Engine                           string
	DBInstanceStatus                 string
	MasterUsername                   string `xml:",omitempty"`
	DBName                           string `xml:",omitempty"`
	Endpoint                         *xmlEndpoint
	AllocatedStorage                 int
	InstanceCreateTime               string `xml:",omitempty"`
	PreferredBackupWindow            string
	BackupRetentionPeriod            int
	VpcSecurityGroups                xmlSecurityGroups
	AvailabilityZone                 string
	SecondaryAvailabilityZone        string `xml:",omitempty"`
	PreferredMaintenanceWindow       string
	PendingModifiedValues            xmlPending
	MultiAZ                          bool
	EngineVersion                    string
	AutoMinorVersionUpgrade          bool
	LicenseModel                     string
	PubliclyAccessible               bool
	StatusInfos                      xmlStatusInfos `xml:",omitempty"`
	StorageType                      string
	DbInstancePort                   int
	DBClusterIdentifier              string `xml:",omitempty"`
	StorageEncrypted                 bool
	DbiResourceId                    string
	CACertificateIdentifier          string
	PromotionTier                    int `xml:",omitempty"`
	DBInstanceArn                    string
	IAMDatabaseAuthenticationEnabled bool
	DeletionProtection               bool
	TagList                          xmlTagList
	NetworkType                      string
}

type xmlDBInstances []xmlDBInstance

func (l xmlDBInstances) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "DBInstance", l)
}

type xmlClusterMember struct {
	DBInstanceIdentifier          string
	IsClusterWriter               bool
	DBClusterParameterGroupStatus string
	PromotionTier                 int
}

type xmlClusterMembers []xmlClusterMember

func (l xmlClusterMembers) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "DBClusterMember", l)
}

type xmlDBCluster struct {
	AllocatedStorage                 int
	AvailabilityZones                xmlAZList
	BackupRetentionPeriod            int
	DatabaseName                     string `xml:",omitempty"`
	DBClusterIdentifier              string
	DBClusterParameterGroup          string
	Status                           string
	Endpoint                         string
	ReaderEndpoint                   string
	MultiAZ                          bool
	Engine                           string
	EngineVersion                    string
	Port                             int
	MasterUsername                   string
	PreferredBackupWindow            string
	PreferredMaintenanceWindow       string
	DBClusterMembers                 xmlClusterMembers
	VpcSecurityGroups                xmlSecurityGroups
	HostedZoneId                     string
	StorageEncrypted                 bool
	DbClusterResourceId              string
	DBClusterArn                     string
	IAMDatabaseAuthenticationEnabled bool
	ClusterCreateTime                string
	EngineMode                       string
	DeletionProtection               bool
	TagList                          xmlTagList
	NetworkType                      string
}

type xmlDBClusters []xmlDBCluster

func (l xmlDBClusters) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "DBCluster", l)
}

// xmlStatusInfo explains an abnormal status; rdslocal uses it to say why an
// instance failed.
type xmlStatusInfo struct {
	StatusType string
	Normal     bool
	Status     string
	Message    string
}

type xmlStatusInfos []xmlStatusInfo

func (l xmlStatusInfos) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "DBInstanceStatusInfo", l)
}
