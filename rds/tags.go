package rds

import (
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// mergeTags sets each tag of add on list, replacing the value of an existing
// key, as AddTagsToResource does.
func mergeTags(list, add []tag) []tag {
	for _, t := range add {
		replaced := false
		for i := range list {
			if list[i].Key == t.Key {
				list[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			list = append(list, t)
		}
	}
	return list
}

// taggable resolves a resource ARN to the tag list it owns.
func (r *RDS) taggable(arnStr string) (*[]tag, error) {
	parts := strings.SplitN(arnStr, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "rds" {
		return nil, api.InvalidParameterValue("The specified resource name does not match an RDS resource in this region: %s", arnStr)
	}
	region, account, kind, name := parts[3], parts[4], parts[5], parts[6]
	st := r.lookup(account, region)
	if st == nil {
		st = newRegionState(account, region) // nothing exists there: every lookup below fails
	}
	switch kind {
	case "db":
		if inst, ok := st.Instances[name]; ok {
			return &inst.Tags, nil
		}
		return nil, instanceNotFound(name)
	case "cluster":
		if cl, ok := st.Clusters[name]; ok {
			return &cl.Tags, nil
		}
		return nil, clusterNotFound(name)
	case "db-proxy":
		for _, p := range st.Proxies {
			if p.ID == name {
				return &p.Tags, nil
			}
		}
		return nil, proxyNotFound(name)
	case "target-group":
		for _, p := range st.Proxies {
			if p.TargetGroup.ID == name {
				return &p.TargetGroup.Tags, nil
			}
		}
		return nil, targetGroupNotFound(name, "")
	case "db-proxy-endpoint":
		for _, ep := range st.Endpoints {
			if ep.ID == name {
				return &ep.Tags, nil
			}
		}
		return nil, endpointNotFound(name)
	}
	return nil, api.InvalidParameterValue("The specified resource name does not match an RDS resource in this region: %s", arnStr)
}

func (r *RDS) addTagsToResource(c *api.Call) (any, error) {
	var in struct {
		ResourceName string
		Tags         []tagInput
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tags, err := r.taggable(in.ResourceName)
	if err != nil {
		return nil, err
	}
	add := tagsFrom(in.Tags)
	if len(mergeTags(append([]tag(nil), *tags...), add)) > 50 {
		return nil, api.NewError(400, "TagQuotaPerResourceExceeded", "A resource can have at most 50 tags.")
	}
	*tags = mergeTags(*tags, add)
	return nil, nil
}

func (r *RDS) listTagsForResource(c *api.Call) (any, error) {
	var in struct{ ResourceName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tags, err := r.taggable(in.ResourceName)
	if err != nil {
		return nil, err
	}
	return struct{ TagList xmlTagList }{append(xmlTagList{}, *tags...)}, nil
}

func (r *RDS) removeTagsFromResource(c *api.Call) (any, error) {
	var in struct {
		ResourceName string
		TagKeys      []string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tags, err := r.taggable(in.ResourceName)
	if err != nil {
		return nil, err
	}
	var kept []tag
	for _, t := range *tags {
		if !contains(in.TagKeys, []string{t.Key}) {
			kept = append(kept, t)
		}
	}
	*tags = kept
	return nil, nil
}
