package rds

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// Defaults and limits from the RDS Proxy documentation.
const (
	defaultIdleClientTimeout = 1800
	maxIdleClientTimeout     = 28800
	proxyQuota               = 20 // proxies per account and region
	endpointQuota            = 20 // user endpoints per proxy
	maxAuthEntries           = 200
)

type tagInput struct{ Key, Value *string }

type authInput struct {
	Description            *string
	UserName               *string
	AuthScheme             *string
	SecretArn              *string
	IAMAuth                *string
	ClientPasswordAuthType *string
}

var roleArnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
var secretArnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$`)

// checkRole validates a proxy's RoleArn; under --enforce-iam the role must
// exist in IAM.
func (r *RDS) checkRole(arn string) error {
	if !roleArnPattern.MatchString(arn) {
		return api.InvalidParameterValue("The parameter RoleArn %s is not a valid IAM role ARN (arn:aws:iam::<account>:role/<name>).", arn)
	}
	if r.opts.Roles != nil && !r.opts.Roles.RoleExists(arn) {
		return api.InvalidParameterValue("IAM role ARN value is invalid or does not include the required permissions for: %s (rdslocal --enforce-iam: create the role with aws iam create-role)", arn)
	}
	return nil
}

// checkAuth validates the Auth list against the engine family and returns
// the records to store. IAMAuth defaults to DISABLED.
func checkAuth(family string, in []authInput) ([]authConfig, error) {
	if len(in) > maxAuthEntries {
		return nil, api.InvalidParameterValue("A proxy can have at most %d Auth entries.", maxAuthEntries)
	}
	out := make([]authConfig, 0, len(in))
	for i, a := range in {
		c := authConfig{
			Description: deref(a.Description), UserName: deref(a.UserName), AuthScheme: deref(a.AuthScheme),
			SecretArn: deref(a.SecretArn), IAMAuth: deref(a.IAMAuth), ClientPasswordAuthType: deref(a.ClientPasswordAuthType),
		}
		if c.AuthScheme == "" {
			c.AuthScheme = "SECRETS"
		}
		if c.IAMAuth == "" {
			c.IAMAuth = "DISABLED"
		}
		if c.SecretArn == "" {
			return nil, api.InvalidParameterValue("Auth.member.%d: SecretArn is required for the SECRETS auth scheme.", i+1)
		}
		if !secretArnPattern.MatchString(c.SecretArn) {
			return nil, api.InvalidParameterValue("Auth.member.%d: SecretArn %s is not a valid Secrets Manager ARN.", i+1, c.SecretArn)
		}
		if c.IAMAuth == "ENABLED" && family != "SQLSERVER" {
			return nil, api.InvalidParameterValue("IAMAuth ENABLED is supported only for the SQLSERVER engine family.")
		}
		if t := c.ClientPasswordAuthType; t != "" {
			ok := map[string]string{"MYSQL": "MYSQL_", "POSTGRESQL": "POSTGRES_", "SQLSERVER": "SQL_SERVER_"}[family]
			if !strings.HasPrefix(t, ok) {
				return nil, api.InvalidParameterValue("ClientPasswordAuthType %s isn't valid for the %s engine family.", t, family)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func tagsFrom(in []tagInput) []tag {
	out := make([]tag, 0, len(in))
	for _, t := range in {
		if t.Key == nil {
			continue
		}
		out = mergeTags(out, []tag{{Key: *t.Key, Value: deref(t.Value)}})
	}
	return out
}

// vpcOf derives the VPC id from the subnet ids, deterministically: rdslocal
// emulates no EC2, so the same subnets always name the same VPC.
func vpcOf(subnets []string) string {
	s := append([]string(nil), subnets...)
	sort.Strings(s)
	return "vpc-" + hashID(17, s...)
}

func defaultSecurityGroups(vpc string, given []string) []string {
	if len(given) > 0 {
		return given
	}
	return []string{"sg-" + hashID(17, "default", vpc)}
}

func (r *RDS) proxyXML(st *regionState, p *proxy, status string) xmlDBProxy {
	auth := api.List[authConfig](p.Auth)
	if auth == nil {
		auth = api.List[authConfig]{}
	}
	return xmlDBProxy{
		DBProxyName: p.Name, DBProxyArn: arn(st.Region, st.Account, "db-proxy:"+p.ID), Status: status,
		EngineFamily: p.EngineFamily, VpcId: vpcOf(p.VpcSubnetIds),
		VpcSecurityGroupIds: p.VpcSecurityGroupIds, VpcSubnetIds: p.VpcSubnetIds,
		DefaultAuthScheme: p.DefaultAuthScheme, Auth: auth, RoleArn: p.RoleArn,
		Endpoint: r.advertised(p.Address), RequireTLS: p.RequireTLS, IdleClientTimeout: p.IdleClientTimeout,
		DebugLogging: p.DebugLogging, CreatedDate: api.ISOTime(p.Created), UpdatedDate: api.ISOTime(p.Updated),
		EndpointNetworkType: p.EndpointNetworkType, TargetConnectionNetworkType: p.TargetConnectionNetworkType,
	}
}

func (r *RDS) createDBProxy(c *api.Call) (any, error) {
	var in struct {
		DBProxyName                 string
		EngineFamily                string
		DefaultAuthScheme           *string
		Auth                        []authInput
		RoleArn                     string
		VpcSubnetIds                []string
		VpcSecurityGroupIds         []string
		RequireTLS                  *bool
		IdleClientTimeout           *int
		DebugLogging                *bool
		Tags                        []tagInput
		EndpointNetworkType         *string
		TargetConnectionNetworkType *string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkProxyName("DBProxyName", in.DBProxyName); err != nil {
		return nil, err
	}
	if in.EngineFamily == "SQLSERVER" {
		return nil, api.InvalidParameterValue("rdslocal emulates the MYSQL and POSTGRESQL engine families; SQLSERVER is not supported.")
	}
	if err := r.checkRole(in.RoleArn); err != nil {
		return nil, err
	}
	if len(in.VpcSubnetIds) == 0 {
		return nil, api.InvalidParameterValue("The parameter VpcSubnetIds must contain at least one subnet.")
	}
	scheme := deref(in.DefaultAuthScheme)
	if len(in.Auth) == 0 && scheme != "IAM_AUTH" {
		return nil, api.InvalidParameterCombination("You must specify the Auth option if DefaultAuthScheme is NONE or not specified.")
	}
	auth, err := checkAuth(in.EngineFamily, in.Auth)
	if err != nil {
		return nil, err
	}
	idle := defaultIdleClientTimeout
	if in.IdleClientTimeout != nil {
		idle = *in.IdleClientTimeout
		if idle < 1 || idle > maxIdleClientTimeout {
			return nil, api.InvalidParameterValue("IdleClientTimeout must be between 1 and %d seconds.", maxIdleClientTimeout)
		}
	}
	netType := deref(in.EndpointNetworkType)
	if netType == "" {
		netType = "IPV4"
	}
	targetNet := deref(in.TargetConnectionNetworkType)
	if targetNet == "" {
		targetNet = "IPV4"
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	if _, ok := st.Proxies[in.DBProxyName]; ok {
		return nil, proxyAlreadyExists(in.DBProxyName)
	}
	if len(st.Proxies) >= proxyQuota {
		return nil, proxyQuotaExceeded()
	}
	addr, err := r.addrs.endpointAddress(in.EngineFamily)
	if err != nil {
		return nil, api.NewError(400, "InsufficientAvailableIPsInSubnetFault", "%v", err)
	}
	p := &proxy{
		Name: in.DBProxyName, ID: newProxyID(proxyPrefix), EngineFamily: in.EngineFamily, RoleArn: in.RoleArn,
		VpcSubnetIds: in.VpcSubnetIds, VpcSecurityGroupIds: defaultSecurityGroups(vpcOf(in.VpcSubnetIds), in.VpcSecurityGroupIds),
		DefaultAuthScheme: scheme, Auth: auth, RequireTLS: deref(in.RequireTLS), IdleClientTimeout: idle,
		DebugLogging: deref(in.DebugLogging), EndpointNetworkType: netType, TargetConnectionNetworkType: targetNet,
		Address: addr, Created: c.Now, Updated: c.Now, Tags: tagsFrom(in.Tags),
		TargetGroup: targetGroup{ID: newProxyID("prx-tg-"), Pool: defaultPool(), Created: c.Now, Updated: c.Now},
	}
	if p.DefaultAuthScheme == "" {
		p.DefaultAuthScheme = "NONE"
	}
	st.Proxies[p.Name] = p
	r.event(st, srcProxy, p.Name, "RDS-EVENT-0203", "creation", fmt.Sprintf("RDS created DB proxy %s.", p.Name))
	return struct{ DBProxy xmlDBProxy }{r.proxyXML(st, p, "creating")}, nil
}

func (r *RDS) describeDBProxies(c *api.Call) (any, error) {
	var in struct {
		DBProxyName *string
		Marker      *string
		MaxRecords  *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	var list []*proxy
	if in.DBProxyName != nil {
		p, ok := st.Proxies[*in.DBProxyName]
		if !ok {
			return nil, proxyNotFound(*in.DBProxyName)
		}
		list = append(list, p)
	} else {
		list = sortedProxies(st)
	}
	pg, marker, err := page(list, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	out := api.List[xmlDBProxy]{}
	for _, p := range pg {
		out = append(out, r.proxyXML(st, p, r.proxyStatus(p)))
	}
	return struct {
		DBProxies api.List[xmlDBProxy]
		Marker    string `xml:",omitempty"`
	}{out, marker}, nil
}

func sortedProxies(st *regionState) []*proxy {
	list := make([]*proxy, 0, len(st.Proxies))
	for _, p := range st.Proxies {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].Created.Equal(list[j].Created) {
			return list[i].Created.Before(list[j].Created)
		}
		return list[i].Name < list[j].Name
	})
	return list
}

func (r *RDS) modifyDBProxy(c *api.Call) (any, error) {
	var in struct {
		DBProxyName       string
		NewDBProxyName    *string
		DefaultAuthScheme *string
		Auth              []authInput
		RequireTLS        *bool
		IdleClientTimeout *int
		DebugLogging      *bool
		RoleArn           *string
		SecurityGroups    []string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, ok := st.Proxies[in.DBProxyName]
	if !ok {
		return nil, proxyNotFound(in.DBProxyName)
	}
	if in.NewDBProxyName != nil && *in.NewDBProxyName != p.Name {
		if err := checkProxyName("NewDBProxyName", *in.NewDBProxyName); err != nil {
			return nil, err
		}
		if _, taken := st.Proxies[*in.NewDBProxyName]; taken {
			return nil, proxyAlreadyExists(*in.NewDBProxyName)
		}
	}
	if in.RoleArn != nil {
		if err := r.checkRole(*in.RoleArn); err != nil {
			return nil, err
		}
	}
	if in.IdleClientTimeout != nil && (*in.IdleClientTimeout < 1 || *in.IdleClientTimeout > maxIdleClientTimeout) {
		return nil, api.InvalidParameterValue("IdleClientTimeout must be between 1 and %d seconds.", maxIdleClientTimeout)
	}
	scheme := p.DefaultAuthScheme
	if in.DefaultAuthScheme != nil {
		scheme = *in.DefaultAuthScheme
	}
	auth := p.Auth
	if in.Auth != nil {
		var err error
		if auth, err = checkAuth(p.EngineFamily, in.Auth); err != nil {
			return nil, err
		}
	}
	if len(auth) == 0 && scheme != "IAM_AUTH" {
		return nil, api.InvalidParameterCombination("You must specify the Auth option if DefaultAuthScheme is NONE or not specified.")
	}
	// All checks passed: apply.
	p.DefaultAuthScheme, p.Auth = scheme, auth
	if in.NewDBProxyName != nil && *in.NewDBProxyName != p.Name {
		delete(st.Proxies, p.Name)
		for _, ep := range st.Endpoints {
			if ep.Proxy == p.Name {
				ep.Proxy = *in.NewDBProxyName
			}
		}
		p.Name = *in.NewDBProxyName
		st.Proxies[p.Name] = p
	}
	if in.RequireTLS != nil {
		p.RequireTLS = *in.RequireTLS
	}
	if in.IdleClientTimeout != nil {
		p.IdleClientTimeout = *in.IdleClientTimeout
	}
	if in.DebugLogging != nil {
		p.DebugLogging = *in.DebugLogging
	}
	if in.RoleArn != nil {
		p.RoleArn = *in.RoleArn
	}
	if in.SecurityGroups != nil {
		p.VpcSecurityGroupIds = defaultSecurityGroups(vpcOf(p.VpcSubnetIds), in.SecurityGroups)
	}
	p.Updated = c.Now
	r.event(st, srcProxy, p.Name, "RDS-EVENT-0204", "configuration change", fmt.Sprintf("RDS modified DB proxy %s.", p.Name))
	return struct{ DBProxy xmlDBProxy }{r.proxyXML(st, p, r.proxyStatus(p))}, nil
}

func (r *RDS) deleteDBProxy(c *api.Call) (any, error) {
	var in struct{ DBProxyName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, ok := st.Proxies[in.DBProxyName]
	if !ok {
		return nil, proxyNotFound(in.DBProxyName)
	}
	for name, ep := range st.Endpoints {
		if ep.Proxy == p.Name {
			r.addrs.release(ep.Address)
			delete(st.Endpoints, name)
		}
	}
	r.addrs.release(p.Address)
	r.event(st, srcProxy, p.Name, "RDS-EVENT-0205", "deletion", fmt.Sprintf("RDS deleted DB proxy %s.", p.Name))
	delete(st.Proxies, p.Name)
	return struct{ DBProxy xmlDBProxy }{r.proxyXML(st, p, "deleting")}, nil
}
