package iamauth

import (
	"sort"
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// The IAM output shapes as XML. Element names are the model's member names;
// absent optional members are omitted.

type xmlBoundary struct {
	PermissionsBoundaryType string
	PermissionsBoundaryArn  string
}

func boundary(arn string) *xmlBoundary {
	if arn == "" {
		return nil
	}
	return &xmlBoundary{PermissionsBoundaryType: "PermissionsBoundaryPolicy", PermissionsBoundaryArn: arn}
}

type xmlUser struct {
	Path                string `xml:",omitempty"`
	UserName            string `xml:",omitempty"`
	UserId              string
	Arn                 string
	CreateDate          string
	PermissionsBoundary *xmlBoundary  `xml:",omitempty"`
	Tags                api.List[tag] `xml:",omitempty"`
}

func (u *user) xml(acct string, withTags bool) xmlUser {
	x := xmlUser{Path: u.Path, UserName: u.Name, UserId: u.ID, Arn: u.arn(acct), CreateDate: api.ISOTime(u.Created),
		PermissionsBoundary: boundary(u.PermissionsBoundary)}
	if withTags {
		x.Tags = xmlTags(u.Tags)
	}
	return x
}

type xmlRole struct {
	Path                     string
	RoleName                 string
	RoleId                   string
	Arn                      string
	CreateDate               string
	AssumeRolePolicyDocument string `xml:",omitempty"`
	Description              string `xml:",omitempty"`
	MaxSessionDuration       int
	PermissionsBoundary      *xmlBoundary  `xml:",omitempty"`
	Tags                     api.List[tag] `xml:",omitempty"`
}

func (r *role) xml(acct string, withTags bool) xmlRole {
	x := xmlRole{Path: r.Path, RoleName: r.Name, RoleId: r.ID, Arn: r.arn(acct), CreateDate: api.ISOTime(r.Created),
		AssumeRolePolicyDocument: encodeDocument(r.AssumeRolePolicy), Description: r.Description,
		MaxSessionDuration: r.MaxSessionDuration, PermissionsBoundary: boundary(r.PermissionsBoundary)}
	if withTags {
		x.Tags = xmlTags(r.Tags)
	}
	return x
}

type xmlPolicy struct {
	PolicyName                    string
	PolicyId                      string
	Arn                           string
	Path                          string
	DefaultVersionId              string
	AttachmentCount               int
	PermissionsBoundaryUsageCount int
	IsAttachable                  bool
	Description                   string `xml:",omitempty"`
	CreateDate                    string
	UpdateDate                    string
	Tags                          api.List[tag] `xml:",omitempty"`
}

type xmlAccessKey struct {
	UserName        string `xml:",omitempty"`
	AccessKeyId     string
	Status          string
	SecretAccessKey string `xml:",omitempty"`
	CreateDate      string
}

type xmlAttachedPolicy struct {
	PolicyName string
	PolicyArn  string
}

// administratorAccess is the one AWS managed policy rdslocal knows, so that
// attaching arn:aws:iam::aws:policy/AdministratorAccess works.
var administratorAccess = managedPolicy{
	Name: "AdministratorAccess", ID: "ANPAIWMBCKSKIEE64ZLYK", Path: "/",
	Arn:         "arn:aws:iam::aws:policy/AdministratorAccess",
	Description: "Provides full access to AWS services and resources.",
	Document:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
	Created:     time.Date(2015, 2, 6, 18, 39, 46, 0, time.UTC),
	Updated:     time.Date(2015, 2, 6, 18, 39, 46, 0, time.UTC),
}

// parsePolicyArn splits arn:aws:iam::<acct|aws>:policy/<path><name>.
func parsePolicyArn(arn string) (acct, path, name string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || parts[2] != "iam" || parts[3] != "" ||
		(parts[4] != "aws" && !isAccountID(parts[4])) || !strings.HasPrefix(parts[5], "policy/") {
		return "", "", "", false
	}
	rest := parts[5][len("policy"):]
	i := strings.LastIndexByte(rest, '/')
	if rest[i+1:] == "" {
		return "", "", "", false
	}
	return parts[4], rest[:i+1], rest[i+1:], true
}

// managed returns the managed policy an ARN names, or nil; the caller holds
// d.mu.
func (d *Directory) managed(arn string) *managedPolicy {
	if arn == administratorAccess.Arn {
		return &administratorAccess
	}
	acct, path, name, ok := parsePolicyArn(arn)
	if !ok || acct == "aws" {
		return nil
	}
	a := d.accounts[acct]
	if a == nil {
		return nil
	}
	p := a.Policies[strings.ToLower(name)]
	if p == nil || p.Path != path || p.Name != name {
		return nil
	}
	return p
}

// visiblePolicy finds a managed policy the caller's account may use: its
// own, or an AWS managed one.
func (d *Directory) visiblePolicy(acct, arn string) (*managedPolicy, error) {
	pa, _, _, ok := parsePolicyArn(arn)
	if !ok {
		return nil, invalidInput("ARN %s is not valid.", arn)
	}
	if pa != acct && pa != "aws" {
		return nil, nil
	}
	return d.managed(arn), nil
}

func (d *Directory) xmlPolicy(a *account, p *managedPolicy, withTags bool) xmlPolicy {
	x := xmlPolicy{PolicyName: p.Name, PolicyId: p.ID, Arn: p.Arn, Path: p.Path, DefaultVersionId: "v1",
		AttachmentCount: attachmentCount(a, p.Arn), IsAttachable: true, Description: p.Description,
		CreateDate: api.ISOTime(p.Created), UpdateDate: api.ISOTime(p.Updated)}
	for _, u := range a.Users {
		if u.PermissionsBoundary == p.Arn {
			x.PermissionsBoundaryUsageCount++
		}
	}
	for _, r := range a.Roles {
		if r.PermissionsBoundary == p.Arn {
			x.PermissionsBoundaryUsageCount++
		}
	}
	if withTags {
		x.Tags = xmlTags(p.Tags)
	}
	return x
}

func attachmentCount(a *account, arn string) int {
	n := 0
	for _, u := range a.Users {
		if indexOf(u.Attached, arn) >= 0 {
			n++
		}
	}
	for _, r := range a.Roles {
		if indexOf(r.Attached, arn) >= 0 {
			n++
		}
	}
	return n
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func noSuchUser(name string) error {
	return noSuchEntity("The user with name %s cannot be found.", name)
}

func noSuchRole(name string) error {
	return noSuchEntity("The role with name %s cannot be found.", name)
}

// findUser returns a user of a; the caller holds d.mu.
func findUser(a *account, name string) (*user, error) {
	if u := a.Users[strings.ToLower(name)]; u != nil {
		return u, nil
	}
	return nil, noSuchUser(name)
}

func findRole(a *account, name string) (*role, error) {
	if r := a.Roles[strings.ToLower(name)]; r != nil {
		return r, nil
	}
	return nil, noSuchRole(name)
}

// checkBoundary accepts a permissions boundary ARN naming a managed policy
// the account can see. Boundaries are stored and shown, not evaluated.
func (d *Directory) checkBoundary(acct string, arn *string) (string, error) {
	if arn == nil {
		return "", nil
	}
	p, err := d.visiblePolicy(acct, *arn)
	if err != nil {
		return "", err
	}
	if p == nil {
		return "", noSuchEntity("Scope ARN: %s does not exist or is not attachable.", *arn)
	}
	return *arn, nil
}

// ---- users ----

func (d *Directory) createUser(c *api.Call) (any, error) {
	var in struct {
		UserName            string
		Path                *string
		PermissionsBoundary *string
		Tags                []tag
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkName("userName", in.UserName); err != nil {
		return nil, err
	}
	path := pathOrDefault(in.Path)
	if err := checkPath("path", path); err != nil {
		return nil, err
	}
	tags, err := inputTags(in.Tags)
	if err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	if _, ok := a.Users[strings.ToLower(in.UserName)]; ok {
		return nil, entityAlreadyExists("User with name %s already exists.", in.UserName)
	}
	pb, err := d.checkBoundary(who.Account, in.PermissionsBoundary)
	if err != nil {
		return nil, err
	}
	u := &user{Name: in.UserName, ID: newUniqueID(prefixUser), Path: path, Created: c.Now, PermissionsBoundary: pb, Tags: tags}
	a.Users[strings.ToLower(u.Name)] = u
	return struct{ User xmlUser }{u.xml(who.Account, true)}, nil
}

func (d *Directory) getUser(c *api.Call) (any, error) {
	var in struct{ UserName *string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.peek(who.Account)
	name := ""
	switch {
	case in.UserName != nil:
		name = *in.UserName
	case who.Principal.Kind == principalUser:
		name = who.Principal.Name
	case who.Principal.Kind == principalRoot:
		// The root user, as AWS shows it: no name or path, the account id
		// as its id.
		created := a.Created
		if created.IsZero() {
			created = c.Now
		}
		return struct{ User xmlUser }{xmlUser{UserId: who.Account, Arn: who.Arn, CreateDate: api.ISOTime(created)}}, nil
	default:
		return nil, validationError("Must specify userName when calling with non-User credentials")
	}
	u, err := findUser(a, name)
	if err != nil {
		return nil, err
	}
	return struct{ User xmlUser }{u.xml(who.Account, true)}, nil
}

type listInput struct {
	PathPrefix *string
	Marker     *string
	MaxItems   *int64
}

type xmlListUsers struct {
	Users       api.List[xmlUser]
	IsTruncated bool
	Marker      string `xml:",omitempty"`
}

func (d *Directory) listUsers(c *api.Call) (any, error) {
	var in listInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.peek(who.Account)
	keys := sortedKeys(a.Users)
	var all []xmlUser
	for _, k := range keys {
		u := a.Users[k]
		if in.PathPrefix == nil || strings.HasPrefix(u.Path, *in.PathPrefix) {
			all = append(all, u.xml(who.Account, false))
		}
	}
	items, next, err := page(all, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return xmlListUsers{Users: items, IsTruncated: next != "", Marker: next}, nil
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *Directory) deleteUser(c *api.Call) (any, error) {
	var in struct{ UserName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	u, err := findUser(a, in.UserName)
	if err != nil {
		return nil, err
	}
	switch {
	case len(u.Keys) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete access keys first.")
	case len(u.Inline) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete policies first.")
	case len(u.Attached) > 0:
		return nil, deleteConflict("Cannot delete entity, must detach all policies first.")
	}
	delete(a.Users, strings.ToLower(u.Name))
	return nil, nil
}

// ---- access keys ----

// maxAccessKeys is IAM's quota of access keys per user.
const maxAccessKeys = 2

// keyOwner resolves the user whose keys an access-key action works on: the
// named user, else the caller (an IAM user, or the root user, whose keys
// live on the account). It returns the user (nil for root), a pointer to its
// key list and the principal ARN. The caller holds d.mu.
func keyOwner(a *account, who caller, name *string) (*user, *[]accessKey, string, error) {
	switch {
	case name != nil:
		u, err := findUser(a, *name)
		if err != nil {
			return nil, nil, "", err
		}
		return u, &u.Keys, u.arn(a.ID), nil
	case who.Principal.Kind == principalUser:
		u, err := findUser(a, who.Principal.Name)
		if err != nil {
			return nil, nil, "", err
		}
		return u, &u.Keys, u.arn(a.ID), nil
	case who.Principal.Kind == principalRoot:
		return nil, &a.RootKeys, rootArn(a.ID), nil
	}
	return nil, nil, "", validationError("Must specify userName when calling with non-User credentials")
}

func (d *Directory) createAccessKey(c *api.Call) (any, error) {
	var in struct{ UserName *string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	u, keys, principalArn, err := keyOwner(a, who, in.UserName)
	if err != nil {
		return nil, err
	}
	if len(*keys) >= maxAccessKeys {
		return nil, limitExceeded("Cannot exceed quota for AccessKeysPerUser: %d", maxAccessKeys)
	}
	id := d.newKeyID(prefixAccessKey)
	secret := newSecret()
	if err := d.creds.Put(Credential{AccessKeyID: id, SecretAccessKey: secret, Principal: principalArn, Account: who.Account}); err != nil {
		return nil, api.InternalFailure(err.Error())
	}
	*keys = append(*keys, accessKey{ID: id, Status: "Active", Created: c.Now})
	out := xmlAccessKey{AccessKeyId: id, Status: "Active", SecretAccessKey: secret, CreateDate: api.ISOTime(c.Now)}
	if u != nil {
		out.UserName = u.Name
	}
	return struct{ AccessKey xmlAccessKey }{out}, nil
}

// newKeyID returns an access key id no credential uses yet; the caller holds
// d.mu.
func (d *Directory) newKeyID(prefix string) string {
	for {
		id := prefix + randomUpper(accessKeyIDLength-len(prefix))
		if _, taken := d.LookupAccessKey(id); !taken {
			return id
		}
	}
}

type xmlListAccessKeys struct {
	AccessKeyMetadata api.List[xmlAccessKey]
	IsTruncated       bool
	Marker            string `xml:",omitempty"`
}

func (d *Directory) listAccessKeys(c *api.Call) (any, error) {
	var in struct {
		UserName *string
		Marker   *string
		MaxItems *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, keys, _, err := keyOwner(d.peek(who.Account), who, in.UserName)
	if err != nil {
		return nil, err
	}
	all := make([]xmlAccessKey, 0, len(*keys))
	for _, k := range *keys {
		x := xmlAccessKey{AccessKeyId: k.ID, Status: k.Status, CreateDate: api.ISOTime(k.Created)}
		if u != nil {
			x.UserName = u.Name
		}
		all = append(all, x)
	}
	items, next, err := page(all, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return xmlListAccessKeys{AccessKeyMetadata: items, IsTruncated: next != "", Marker: next}, nil
}

func (d *Directory) deleteAccessKey(c *api.Call) (any, error) {
	var in struct {
		UserName    *string
		AccessKeyId string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	_, keys, _, err := keyOwner(d.acct(who.Account), who, in.UserName)
	if err != nil {
		return nil, err
	}
	for i, k := range *keys {
		if k.ID == in.AccessKeyId {
			*keys = append((*keys)[:i:i], (*keys)[i+1:]...)
			d.creds.Delete(k.ID)
			return nil, nil
		}
	}
	return nil, noSuchEntity("The Access Key with id %s cannot be found.", in.AccessKeyId)
}

// ---- roles ----

func (d *Directory) createRole(c *api.Call) (any, error) {
	var in struct {
		RoleName                 string
		AssumeRolePolicyDocument string
		Path                     *string
		Description              string
		MaxSessionDuration       *int64
		PermissionsBoundary      *string
		Tags                     []tag
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkName("roleName", in.RoleName); err != nil {
		return nil, err
	}
	path := pathOrDefault(in.Path)
	if err := checkPath("path", path); err != nil {
		return nil, err
	}
	if _, err := parsePolicy(in.AssumeRolePolicyDocument, trustPolicy); err != nil {
		return nil, err
	}
	tags, err := inputTags(in.Tags)
	if err != nil {
		return nil, err
	}
	maxSession := 3600
	if in.MaxSessionDuration != nil {
		maxSession = int(*in.MaxSessionDuration)
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	if _, ok := a.Roles[strings.ToLower(in.RoleName)]; ok {
		return nil, entityAlreadyExists("Role with name %s already exists.", in.RoleName)
	}
	pb, err := d.checkBoundary(who.Account, in.PermissionsBoundary)
	if err != nil {
		return nil, err
	}
	r := &role{Name: in.RoleName, ID: newUniqueID(prefixRole), Path: path, Created: c.Now,
		AssumeRolePolicy: in.AssumeRolePolicyDocument, Description: in.Description,
		MaxSessionDuration: maxSession, PermissionsBoundary: pb, Tags: tags}
	a.Roles[strings.ToLower(r.Name)] = r
	return struct{ Role xmlRole }{r.xml(who.Account, true)}, nil
}

func (d *Directory) getRole(c *api.Call) (any, error) {
	var in struct{ RoleName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	r, err := findRole(d.peek(who.Account), in.RoleName)
	if err != nil {
		return nil, err
	}
	return struct{ Role xmlRole }{r.xml(who.Account, true)}, nil
}

type xmlListRoles struct {
	Roles       api.List[xmlRole]
	IsTruncated bool
	Marker      string `xml:",omitempty"`
}

func (d *Directory) listRoles(c *api.Call) (any, error) {
	var in listInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.peek(who.Account)
	var all []xmlRole
	for _, k := range sortedKeys(a.Roles) {
		r := a.Roles[k]
		if in.PathPrefix == nil || strings.HasPrefix(r.Path, *in.PathPrefix) {
			all = append(all, r.xml(who.Account, false))
		}
	}
	items, next, err := page(all, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return xmlListRoles{Roles: items, IsTruncated: next != "", Marker: next}, nil
}

func (d *Directory) deleteRole(c *api.Call) (any, error) {
	var in struct{ RoleName string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	r, err := findRole(a, in.RoleName)
	if err != nil {
		return nil, err
	}
	switch {
	case len(r.Inline) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete policies first.")
	case len(r.Attached) > 0:
		return nil, deleteConflict("Cannot delete entity, must detach all policies first.")
	}
	delete(a.Roles, strings.ToLower(r.Name))
	return nil, nil
}

// ---- inline policies ----

// inlineTarget is the user or role an inline-policy action names.
type inlineTarget struct {
	kind   string // "user" or "role"
	name   string
	inline *[]inlinePolicy
}

func (d *Directory) inlineTarget(a *account, kind, name string) (inlineTarget, error) {
	if kind == "user" {
		u, err := findUser(a, name)
		if err != nil {
			return inlineTarget{}, err
		}
		return inlineTarget{kind, u.Name, &u.Inline}, nil
	}
	r, err := findRole(a, name)
	if err != nil {
		return inlineTarget{}, err
	}
	return inlineTarget{kind, r.Name, &r.Inline}, nil
}

type inlineInput struct {
	UserName, RoleName string
	PolicyName         string
	PolicyDocument     string
}

func (in inlineInput) owner(kind string) string {
	if kind == "user" {
		return in.UserName
	}
	return in.RoleName
}

func (d *Directory) putInlinePolicy(c *api.Call, kind string) (any, error) {
	var in inlineInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkName("policyName", in.PolicyName); err != nil {
		return nil, err
	}
	if _, err := parsePolicy(in.PolicyDocument, identityPolicy); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.inlineTarget(d.acct(who.Account), kind, in.owner(kind))
	if err != nil {
		return nil, err
	}
	*t.inline = putInline(*t.inline, in.PolicyName, in.PolicyDocument)
	return nil, nil
}

type xmlGetUserPolicy struct {
	UserName       string
	PolicyName     string
	PolicyDocument string
}

type xmlGetRolePolicy struct {
	RoleName       string
	PolicyName     string
	PolicyDocument string
}

func (d *Directory) getInlinePolicy(c *api.Call, kind string) (any, error) {
	var in inlineInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, err := d.inlineTarget(d.peek(who.Account), kind, in.owner(kind))
	if err != nil {
		return nil, err
	}
	i := findInline(*t.inline, in.PolicyName)
	if i < 0 {
		return nil, noSuchEntity("The %s policy with name %s cannot be found.", kind, in.PolicyName)
	}
	p := (*t.inline)[i]
	if kind == "user" {
		return xmlGetUserPolicy{UserName: t.name, PolicyName: p.Name, PolicyDocument: encodeDocument(p.Document)}, nil
	}
	return xmlGetRolePolicy{RoleName: t.name, PolicyName: p.Name, PolicyDocument: encodeDocument(p.Document)}, nil
}

type xmlListInline struct {
	PolicyNames api.List[string]
	IsTruncated bool
	Marker      string `xml:",omitempty"`
}

// listInline lists the names of a user's or role's inline policies (in the
// order they were put).
func (d *Directory) listInline(c *api.Call, kind string) (any, error) {
	var in struct {
		inlineInput
		Marker   *string
		MaxItems *int64
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, err := d.inlineTarget(d.peek(who.Account), kind, in.owner(kind))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(*t.inline))
	for _, p := range *t.inline {
		names = append(names, p.Name)
	}
	items, next, err := page(names, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return xmlListInline{PolicyNames: items, IsTruncated: next != "", Marker: next}, nil
}

func (d *Directory) listUserPolicies(c *api.Call) (any, error) { return d.listInline(c, "user") }
func (d *Directory) listRolePolicies(c *api.Call) (any, error) { return d.listInline(c, "role") }

func (d *Directory) deleteInlinePolicy(c *api.Call, kind string) (any, error) {
	var in inlineInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.inlineTarget(d.acct(who.Account), kind, in.owner(kind))
	if err != nil {
		return nil, err
	}
	i := findInline(*t.inline, in.PolicyName)
	if i < 0 {
		return nil, noSuchEntity("The %s policy with name %s cannot be found.", kind, in.PolicyName)
	}
	*t.inline = append((*t.inline)[:i:i], (*t.inline)[i+1:]...)
	return nil, nil
}

func (d *Directory) putUserPolicy(c *api.Call) (any, error) { return d.putInlinePolicy(c, "user") }
func (d *Directory) getUserPolicy(c *api.Call) (any, error) { return d.getInlinePolicy(c, "user") }
func (d *Directory) deleteUserPolicy(c *api.Call) (any, error) {
	return d.deleteInlinePolicy(c, "user")
}
func (d *Directory) putRolePolicy(c *api.Call) (any, error) { return d.putInlinePolicy(c, "role") }
func (d *Directory) getRolePolicy(c *api.Call) (any, error) { return d.getInlinePolicy(c, "role") }
func (d *Directory) deleteRolePolicy(c *api.Call) (any, error) {
	return d.deleteInlinePolicy(c, "role")
}

// ---- managed policies ----

func (d *Directory) createPolicy(c *api.Call) (any, error) {
	var in struct {
		PolicyName     string
		PolicyDocument string
		Path           *string
		Description    string
		Tags           []tag
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkName("policyName", in.PolicyName); err != nil {
		return nil, err
	}
	path := pathOrDefault(in.Path)
	if err := checkPath("path", path); err != nil {
		return nil, err
	}
	if _, err := parsePolicy(in.PolicyDocument, identityPolicy); err != nil {
		return nil, err
	}
	tags, err := inputTags(in.Tags)
	if err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	if _, ok := a.Policies[strings.ToLower(in.PolicyName)]; ok {
		return nil, entityAlreadyExists("A policy called %s already exists. Duplicate names are not allowed.", in.PolicyName)
	}
	p := &managedPolicy{Name: in.PolicyName, ID: newUniqueID(prefixPolicy), Path: path,
		Arn:         "arn:aws:iam::" + who.Account + ":policy" + path + in.PolicyName,
		Description: in.Description, Document: in.PolicyDocument, Created: c.Now, Updated: c.Now, Tags: tags}
	a.Policies[strings.ToLower(p.Name)] = p
	return struct{ Policy xmlPolicy }{d.xmlPolicy(a, p, true)}, nil
}

func (d *Directory) getPolicy(c *api.Call) (any, error) {
	var in struct{ PolicyArn string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, err := d.visiblePolicy(who.Account, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, noSuchEntity("Policy %s was not found.", in.PolicyArn)
	}
	return struct{ Policy xmlPolicy }{d.xmlPolicy(d.peek(who.Account), p, true)}, nil
}

// listPolicies lists managed policies: the account's own (Scope Local),
// the AWS managed ones rdslocal knows (AWS), or both (All, the default).
func (d *Directory) listPolicies(c *api.Call) (any, error) {
	var in struct {
		listInput
		Scope        *string
		OnlyAttached *bool
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	scope := "All"
	if in.Scope != nil {
		scope = *in.Scope
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.peek(who.Account)
	var list []*managedPolicy
	if scope != "Local" {
		list = append(list, &administratorAccess)
	}
	if scope != "AWS" {
		for _, k := range sortedKeys(a.Policies) {
			list = append(list, a.Policies[k])
		}
	}
	var all []xmlPolicy
	for _, p := range list {
		x := d.xmlPolicy(a, p, false)
		if in.PathPrefix != nil && !strings.HasPrefix(p.Path, *in.PathPrefix) {
			continue
		}
		if in.OnlyAttached != nil && *in.OnlyAttached && x.AttachmentCount == 0 {
			continue
		}
		all = append(all, x)
	}
	items, next, err := page(all, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return struct {
		Policies    api.List[xmlPolicy]
		IsTruncated bool
		Marker      string `xml:",omitempty"`
	}{items, next != "", next}, nil
}

// getPolicyVersion returns a managed policy's document. rdslocal keeps one
// version per policy, v1, the default.
func (d *Directory) getPolicyVersion(c *api.Call) (any, error) {
	var in struct{ PolicyArn, VersionId string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, err := d.visiblePolicy(who.Account, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	if p == nil || in.VersionId != "v1" {
		return nil, noSuchEntity("Policy %s version %s does not exist or is not attachable.", in.PolicyArn, in.VersionId)
	}
	type xmlPolicyVersion struct {
		Document         string
		VersionId        string
		IsDefaultVersion bool
		CreateDate       string
	}
	return struct{ PolicyVersion xmlPolicyVersion }{xmlPolicyVersion{
		Document: encodeDocument(p.Document), VersionId: "v1", IsDefaultVersion: true, CreateDate: api.ISOTime(p.Created),
	}}, nil
}

func (d *Directory) deletePolicy(c *api.Call) (any, error) {
	var in struct{ PolicyArn string }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.visiblePolicy(who.Account, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, noSuchEntity("Policy %s was not found.", in.PolicyArn)
	}
	if p == &administratorAccess {
		return nil, invalidInput("Policy %s is an AWS managed policy and cannot be deleted.", in.PolicyArn)
	}
	a := d.acct(who.Account)
	if attachmentCount(a, p.Arn) > 0 {
		return nil, deleteConflict("Cannot delete a policy attached to entities.")
	}
	delete(a.Policies, strings.ToLower(p.Name))
	return nil, nil
}

// maxAttachedPolicies is IAM's default quota of managed policies attached
// to one user or role.
const maxAttachedPolicies = 10

type attachInput struct {
	UserName, RoleName string
	PolicyArn          string
	PathPrefix         *string
	Marker             *string
	MaxItems           *int64
}

// attachedList returns the attached-policy list of the user or role in; the
// caller holds d.mu.
func attachedList(a *account, kind string, in attachInput) (*[]string, error) {
	if kind == "user" {
		u, err := findUser(a, in.UserName)
		if err != nil {
			return nil, err
		}
		return &u.Attached, nil
	}
	r, err := findRole(a, in.RoleName)
	if err != nil {
		return nil, err
	}
	return &r.Attached, nil
}

func (d *Directory) attachPolicy(c *api.Call, kind string) (any, error) {
	var in attachInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.acct(who.Account)
	list, err := attachedList(a, kind, in)
	if err != nil {
		return nil, err
	}
	p, err := d.visiblePolicy(who.Account, in.PolicyArn)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, noSuchEntity("Policy %s does not exist or is not attachable.", in.PolicyArn)
	}
	if indexOf(*list, p.Arn) >= 0 {
		return nil, nil
	}
	if len(*list) >= maxAttachedPolicies {
		quota := "PoliciesPerUser"
		if kind == "role" {
			quota = "PoliciesPerRole"
		}
		return nil, limitExceeded("Cannot exceed quota for %s: %d", quota, maxAttachedPolicies)
	}
	*list = append(*list, p.Arn)
	return nil, nil
}

func (d *Directory) detachPolicy(c *api.Call, kind string) (any, error) {
	var in attachInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.Lock()
	defer d.mu.Unlock()
	list, err := attachedList(d.acct(who.Account), kind, in)
	if err != nil {
		return nil, err
	}
	if _, _, _, ok := parsePolicyArn(in.PolicyArn); !ok {
		return nil, invalidInput("ARN %s is not valid.", in.PolicyArn)
	}
	i := indexOf(*list, in.PolicyArn)
	if i < 0 {
		return nil, noSuchEntity("Policy %s was not found.", in.PolicyArn)
	}
	*list = append((*list)[:i:i], (*list)[i+1:]...)
	return nil, nil
}

type xmlListAttached struct {
	AttachedPolicies api.List[xmlAttachedPolicy]
	IsTruncated      bool
	Marker           string `xml:",omitempty"`
}

func (d *Directory) listAttached(c *api.Call, kind string) (any, error) {
	var in attachInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	list, err := attachedList(d.peek(who.Account), kind, in)
	if err != nil {
		return nil, err
	}
	all := make([]xmlAttachedPolicy, 0, len(*list))
	for _, arn := range *list {
		_, path, name, _ := parsePolicyArn(arn)
		if in.PathPrefix == nil || strings.HasPrefix(path, *in.PathPrefix) {
			all = append(all, xmlAttachedPolicy{PolicyName: name, PolicyArn: arn})
		}
	}
	items, next, err := page(all, in.Marker, in.MaxItems)
	if err != nil {
		return nil, err
	}
	return xmlListAttached{AttachedPolicies: items, IsTruncated: next != "", Marker: next}, nil
}

func (d *Directory) attachUserPolicy(c *api.Call) (any, error) { return d.attachPolicy(c, "user") }
func (d *Directory) detachUserPolicy(c *api.Call) (any, error) { return d.detachPolicy(c, "user") }
func (d *Directory) attachRolePolicy(c *api.Call) (any, error) { return d.attachPolicy(c, "role") }
func (d *Directory) detachRolePolicy(c *api.Call) (any, error) { return d.detachPolicy(c, "role") }
func (d *Directory) listAttachedUserPolicies(c *api.Call) (any, error) {
	return d.listAttached(c, "user")
}
func (d *Directory) listAttachedRolePolicies(c *api.Call) (any, error) {
	return d.listAttached(c, "role")
}
