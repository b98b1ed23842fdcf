package rds

import (
	"fmt"
	"sort"

	"github.com/rdslocal/rdslocal/api"
)

// defaultEndpointName is the reserved name of the endpoint every proxy has.
const defaultEndpointName = "default"

func (r *RDS) endpointXML(st *regionState, ep *proxyEndpoint, status string) xmlDBProxyEndpoint {
	return xmlDBProxyEndpoint{
		DBProxyEndpointName: ep.Name, DBProxyEndpointArn: arn(st.Region, st.Account, "db-proxy-endpoint:"+ep.ID),
		DBProxyName: ep.Proxy, Status: status, VpcId: vpcOf(ep.VpcSubnetIds),
		VpcSecurityGroupIds: ep.VpcSecurityGroupIds, VpcSubnetIds: ep.VpcSubnetIds, Endpoint: r.advertised(ep.Address),
		CreatedDate: api.ISOTime(ep.Created), TargetRole: ep.TargetRole, EndpointNetworkType: ep.EndpointNetworkType,
	}
}

// defaultEndpointXML is the proxy's own endpoint as DescribeDBProxyEndpoints
// lists it (IsDefault true). Endpoint statuses follow the proxy's
// (proxyStatus): available only while every endpoint of it listens.
func (r *RDS) defaultEndpointXML(p *proxy) xmlDBProxyEndpoint {
	return xmlDBProxyEndpoint{
		DBProxyEndpointName: defaultEndpointName, DBProxyName: p.Name, Status: r.proxyStatus(p),
		VpcId: vpcOf(p.VpcSubnetIds), VpcSecurityGroupIds: p.VpcSecurityGroupIds, VpcSubnetIds: p.VpcSubnetIds,
		Endpoint: r.advertised(p.Address), CreatedDate: api.ISOTime(p.Created), TargetRole: "READ_WRITE", IsDefault: true,
		EndpointNetworkType: p.EndpointNetworkType,
	}
}

func (r *RDS) createDBProxyEndpoint(c *api.Call) (any, error) {
	var in struct {
		DBProxyName         string
		DBProxyEndpointName string
		VpcSubnetIds        []string
		VpcSecurityGroupIds []string
		TargetRole          *string
		Tags                []tagInput
		EndpointNetworkType *string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkProxyName("DBProxyEndpointName", in.DBProxyEndpointName); err != nil {
		return nil, err
	}
	if in.DBProxyEndpointName == defaultEndpointName {
		return nil, api.InvalidParameterValue("The DB proxy endpoint name default is reserved.")
	}
	if len(in.VpcSubnetIds) == 0 {
		return nil, api.InvalidParameterValue("The parameter VpcSubnetIds must contain at least one subnet.")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	p, ok := st.Proxies[in.DBProxyName]
	if !ok {
		return nil, proxyNotFound(in.DBProxyName)
	}
	if _, taken := st.Endpoints[in.DBProxyEndpointName]; taken {
		return nil, endpointAlreadyExists(in.DBProxyEndpointName)
	}
	n := 0
	for _, ep := range st.Endpoints {
		if ep.Proxy == p.Name {
			n++
		}
	}
	if n >= endpointQuota {
		return nil, endpointQuotaExceeded(p.Name)
	}
	addr, err := r.addrs.endpointAddress(p.EngineFamily)
	if err != nil {
		return nil, api.NewError(400, "InsufficientAvailableIPsInSubnetFault", "%v", err)
	}
	role := deref(in.TargetRole)
	if role == "" {
		role = "READ_WRITE"
	}
	if role == "UNKNOWN" {
		return nil, api.InvalidParameterValue("TargetRole must be READ_WRITE or READ_ONLY.")
	}
	netType := deref(in.EndpointNetworkType)
	if netType == "" {
		netType = p.EndpointNetworkType
	}
	ep := &proxyEndpoint{
		Name: in.DBProxyEndpointName, ID: newProxyID("prx-endpoint-"), Proxy: p.Name,
		VpcSubnetIds: in.VpcSubnetIds, VpcSecurityGroupIds: defaultSecurityGroups(vpcOf(in.VpcSubnetIds), in.VpcSecurityGroupIds),
		TargetRole: role, EndpointNetworkType: netType, Address: addr, Created: c.Now, Tags: tagsFrom(in.Tags),
	}
	st.Endpoints[ep.Name] = ep
	r.event(st, srcProxy, ep.Proxy, "RDS-EVENT-0206", "creation", fmt.Sprintf("RDS created endpoint %s for DB proxy %s.", ep.Name, ep.Proxy))
	return struct{ DBProxyEndpoint xmlDBProxyEndpoint }{r.endpointXML(st, ep, "creating")}, nil
}

func (r *RDS) describeDBProxyEndpoints(c *api.Call) (any, error) {
	var in struct {
		DBProxyName         *string
		DBProxyEndpointName *string
		Marker              *string
		MaxRecords          *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	if in.DBProxyName != nil {
		if _, ok := st.Proxies[*in.DBProxyName]; !ok {
			return nil, proxyNotFound(*in.DBProxyName)
		}
	}
	var all []xmlDBProxyEndpoint
	if in.DBProxyEndpointName == nil || *in.DBProxyEndpointName == defaultEndpointName {
		for _, p := range sortedProxies(st) {
			if in.DBProxyName == nil || *in.DBProxyName == p.Name {
				all = append(all, r.defaultEndpointXML(p))
			}
		}
	}
	eps := make([]*proxyEndpoint, 0, len(st.Endpoints))
	for _, ep := range st.Endpoints {
		if in.DBProxyName != nil && ep.Proxy != *in.DBProxyName {
			continue
		}
		if in.DBProxyEndpointName != nil && ep.Name != *in.DBProxyEndpointName {
			continue
		}
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool {
		if !eps[i].Created.Equal(eps[j].Created) {
			return eps[i].Created.Before(eps[j].Created)
		}
		return eps[i].Name < eps[j].Name
	})
	for _, ep := range eps {
		status := "creating"
		if p := st.Proxies[ep.Proxy]; p != nil {
			status = r.listenerStatus(p.ID, ep.Name)
		}
		all = append(all, r.endpointXML(st, ep, status))
	}
	if in.DBProxyEndpointName != nil && len(all) == 0 {
		return nil, endpointNotFound(*in.DBProxyEndpointName)
	}
	pg, marker, err := page(all, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	return struct {
		DBProxyEndpoints api.List[xmlDBProxyEndpoint]
		Marker           string `xml:",omitempty"`
	}{append(api.List[xmlDBProxyEndpoint]{}, pg...), marker}, nil
}

func (r *RDS) modifyDBProxyEndpoint(c *api.Call) (any, error) {
	var in struct {
		DBProxyEndpointName    string
		NewDBProxyEndpointName *string
		VpcSecurityGroupIds    []string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.DBProxyEndpointName == defaultEndpointName {
		return nil, invalidEndpointState("The default DB proxy endpoint can't be modified.")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	ep, ok := st.Endpoints[in.DBProxyEndpointName]
	if !ok {
		return nil, endpointNotFound(in.DBProxyEndpointName)
	}
	if n := in.NewDBProxyEndpointName; n != nil && *n != ep.Name {
		if err := checkProxyName("NewDBProxyEndpointName", *n); err != nil {
			return nil, err
		}
		if *n == defaultEndpointName {
			return nil, api.InvalidParameterValue("The DB proxy endpoint name default is reserved.")
		}
		if _, taken := st.Endpoints[*n]; taken {
			return nil, endpointAlreadyExists(*n)
		}
		delete(st.Endpoints, ep.Name)
		ep.Name = *n
		st.Endpoints[ep.Name] = ep
	}
	if in.VpcSecurityGroupIds != nil {
		ep.VpcSecurityGroupIds = defaultSecurityGroups(vpcOf(ep.VpcSubnetIds), in.VpcSecurityGroupIds)
	}
	r.event(st, srcProxy, ep.Proxy, "RDS-EVENT-0207", "configuration change", fmt.Sprintf("RDS modified the end point of the DB proxy %s.", ep.Proxy))
	return struct{ DBProxyEndpoint xmlDBProxyEndpoint }{r.endpointXML(st, ep, "available")}, nil
}

func (r *RDS) deleteDBProxyEndpoint(c *api.Call) (any, error) {
	var in struct{ DBProxyEndpointName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.DBProxyEndpointName == defaultEndpointName {
		return nil, invalidEndpointState("The default DB proxy endpoint can't be deleted; delete the proxy instead.")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	ep, ok := st.Endpoints[in.DBProxyEndpointName]
	if !ok {
		return nil, endpointNotFound(in.DBProxyEndpointName)
	}
	delete(st.Endpoints, ep.Name)
	r.addrs.release(ep.Address)
	r.event(st, srcProxy, ep.Proxy, "RDS-EVENT-0208", "deletion", fmt.Sprintf("RDS deleted endpoint %s for DB proxy %s.", ep.Name, ep.Proxy))
	return struct{ DBProxyEndpoint xmlDBProxyEndpoint }{r.endpointXML(st, ep, "deleting")}, nil
}
