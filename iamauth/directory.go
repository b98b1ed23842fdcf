package iamauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// Directory is the IAM and STS state of every account: users, roles,
// managed and inline policies, attachments, access keys and temporary
// credentials. It serves the IAM and STS APIs (IAMService, STSService), is
// the CredentialLookup the gateway and the token validator use, and answers
// rds-db:connect policy checks (Authorize). It is safe for concurrent use.
type Directory struct {
	// Strict makes AssumeRole refuse roles that do not exist (AccessDenied,
	// as AWS answers). Without it, as in LocalStack, any well-formed role
	// ARN can be assumed. Set it before the directory serves requests.
	Strict bool

	mu       sync.RWMutex
	accounts map[string]*account // by 12-digit account id
	// creds holds the secret of every access key (CreateAccessKey) and
	// temporary credential (AssumeRole, GetSessionToken). Lookups read it
	// without taking mu; writes happen under mu so it stays consistent with
	// the users' key lists.
	creds Store
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory { return &Directory{accounts: map[string]*account{}} }

// LookupAccessKey implements CredentialLookup: the keys and temporary
// credentials the IAM and STS actions created first, then the built-in
// StaticCredentials (test/test and 12-digit key ids).
func (d *Directory) LookupAccessKey(akid string) (Credential, bool) {
	if c, ok := d.creds.LookupAccessKey(akid); ok {
		return c, true
	}
	return StaticCredentials{}.LookupAccessKey(akid)
}

// Lookup returns d as a CredentialLookup, for the gateway's request
// verification and the proxy's TokenValidator.
func (d *Directory) Lookup() CredentialLookup { return d }

// IAMService returns the IAM API. It shares its state (and its saved
// snapshot, key "iam") with STSService.
func (d *Directory) IAMService() *api.Service {
	m := serviceModel("iam")
	h := map[string]api.Handler{
		"CreateUser":               d.createUser,
		"GetUser":                  d.getUser,
		"ListUsers":                d.listUsers,
		"DeleteUser":               d.deleteUser,
		"CreateAccessKey":          d.createAccessKey,
		"ListAccessKeys":           d.listAccessKeys,
		"DeleteAccessKey":          d.deleteAccessKey,
		"CreateRole":               d.createRole,
		"GetRole":                  d.getRole,
		"ListRoles":                d.listRoles,
		"DeleteRole":               d.deleteRole,
		"PutUserPolicy":            d.putUserPolicy,
		"GetUserPolicy":            d.getUserPolicy,
		"DeleteUserPolicy":         d.deleteUserPolicy,
		"PutRolePolicy":            d.putRolePolicy,
		"GetRolePolicy":            d.getRolePolicy,
		"DeleteRolePolicy":         d.deleteRolePolicy,
		"CreatePolicy":             d.createPolicy,
		"GetPolicy":                d.getPolicy,
		"DeletePolicy":             d.deletePolicy,
		"AttachUserPolicy":         d.attachUserPolicy,
		"DetachUserPolicy":         d.detachUserPolicy,
		"AttachRolePolicy":         d.attachRolePolicy,
		"DetachRolePolicy":         d.detachRolePolicy,
		"ListAttachedUserPolicies": d.listAttachedUserPolicies,
		"ListAttachedRolePolicies": d.listAttachedRolePolicies,
		"ListPolicies":             d.listPolicies,
		"GetPolicyVersion":         d.getPolicyVersion,
		"ListUserPolicies":         d.listUserPolicies,
		"ListRolePolicies":         d.listRolePolicies,
	}
	return &api.Service{Model: m, Handlers: withConstraints(m, h), State: d, StateKey: "iam"}
}

// STSService returns the STS API. It shares its state with IAMService.
func (d *Directory) STSService() *api.Service {
	m := serviceModel("sts")
	h := map[string]api.Handler{
		"GetCallerIdentity": d.getCallerIdentity,
		"AssumeRole":        d.assumeRole,
		"GetSessionToken":   d.getSessionToken,
	}
	return &api.Service{
		Model: m, Handlers: withConstraints(m, h), State: d, StateKey: "iam",
		// GetSessionToken issues a credential: it must be saved.
		ReadOnly: func(action string) bool { return action == "GetCallerIdentity" },
	}
}

// serviceModel loads a model and fills in its signing name: botocore's IAM
// and STS models carry no signingName (it defaults to the endpoint prefix),
// and the gateway routes on it.
func serviceModel(name string) *api.Model {
	m := api.MustLoadModel(name)
	if m.Metadata.SigningName == "" {
		m.Metadata.SigningName = name
	}
	return m
}

// withConstraints wraps each handler so its input is checked against the
// model's length and range constraints first (the query decoder checks only
// types, enums and required members), answering IAM/STS's ValidationError.
func withConstraints(m *api.Model, hs map[string]api.Handler) map[string]api.Handler {
	out := make(map[string]api.Handler, len(hs))
	for op, h := range hs {
		out[op] = func(c *api.Call) (any, error) {
			var raw json.RawMessage
			if err := c.Decode(&raw); err != nil {
				return nil, err
			}
			if len(raw) > 0 {
				if _, err := m.DecodeJSON(op, raw); err != nil {
					e := api.AsError(err)
					if e.Code == "ValidationException" {
						return nil, validationError("%s", e.Message)
					}
					return nil, e
				}
			}
			return h(c)
		}
	}
	return out
}

// account is the IAM state of one AWS account. Names are unique without
// regard to case, as in IAM, so the maps are keyed by the lower-cased name.
type account struct {
	ID       string
	Created  time.Time                 // when rdslocal first saw the account: the root user's CreateDate
	Users    map[string]*user          `json:",omitempty"`
	Roles    map[string]*role          `json:",omitempty"`
	Policies map[string]*managedPolicy `json:",omitempty"`
	// RootKeys are access keys of the account's root user
	// (CreateAccessKey called by root without UserName).
	RootKeys []accessKey `json:",omitempty"`
}

func newAccount(id string) *account {
	return &account{ID: id, Users: map[string]*user{}, Roles: map[string]*role{}, Policies: map[string]*managedPolicy{}}
}

type tag struct{ Key, Value string }

type accessKey struct {
	ID      string
	Status  string
	Created time.Time
}

type inlinePolicy struct{ Name, Document string }

type user struct {
	Name, ID, Path      string
	Created             time.Time
	PermissionsBoundary string         `json:",omitempty"`
	Tags                []tag          `json:",omitempty"`
	Keys                []accessKey    `json:",omitempty"`
	Inline              []inlinePolicy `json:",omitempty"`
	Attached            []string       `json:",omitempty"` // policy ARNs, in attach order
}

type role struct {
	Name, ID, Path      string
	Created             time.Time
	AssumeRolePolicy    string
	Description         string `json:",omitempty"`
	MaxSessionDuration  int
	PermissionsBoundary string         `json:",omitempty"`
	Tags                []tag          `json:",omitempty"`
	Inline              []inlinePolicy `json:",omitempty"`
	Attached            []string       `json:",omitempty"`
}

type managedPolicy struct {
	Name, ID, Path, Arn string
	Description         string `json:",omitempty"`
	Document            string
	Created, Updated    time.Time
	Tags                []tag `json:",omitempty"`
}

func (u *user) arn(acct string) string { return "arn:aws:iam::" + acct + ":user" + u.Path + u.Name }
func (r *role) arn(acct string) string { return "arn:aws:iam::" + acct + ":role" + r.Path + r.Name }

func findInline(list []inlinePolicy, name string) int {
	for i, p := range list {
		if strings.EqualFold(p.Name, name) {
			return i
		}
	}
	return -1
}

func putInline(list []inlinePolicy, name, doc string) []inlinePolicy {
	if i := findInline(list, name); i >= 0 {
		list[i].Document = doc
		return list
	}
	return append(list, inlinePolicy{Name: name, Document: doc})
}

// acct returns the state of an account, creating it; the caller holds d.mu
// for writing.
func (d *Directory) acct(id string) *account {
	if d.accounts == nil {
		d.accounts = map[string]*account{}
	}
	a := d.accounts[id]
	if a == nil {
		a = newAccount(id)
		a.Created = time.Now().UTC()
		d.accounts[id] = a
	}
	return a
}

// peek returns the state of an account or an empty one, without creating
// it; the caller holds d.mu.
func (d *Directory) peek(id string) *account {
	if a := d.accounts[id]; a != nil {
		return a
	}
	return newAccount(id)
}

// caller is who sent an API request, resolved from its access key.
type caller struct {
	Account   string
	Arn       string // user, root or assumed-role session ARN
	Temporary bool   // signed with STS credentials
	Principal principal
}

// callerOf resolves the access key of c. A key the directory knows gives its
// own account and principal (the gateway derives the account from the key
// id alone, which is right only for test/test and 12-digit keys); any other
// key is the root of the gateway's account, as in LocalStack.
func (d *Directory) callerOf(c *api.Call) caller {
	if cred, ok := d.LookupAccessKey(c.AccessKey); ok && c.AccessKey != "" {
		return caller{Account: cred.Account, Arn: cred.Principal, Temporary: cred.Temporary(), Principal: parsePrincipal(cred.Principal)}
	}
	acct := c.Account
	if !isAccountID(acct) {
		acct = DefaultAccount
	}
	arn := rootArn(acct)
	return caller{Account: acct, Arn: arn, Principal: parsePrincipal(arn)}
}

func rootArn(acct string) string { return "arn:aws:iam::" + acct + ":root" }

// principalKind tells the principal ARNs apart.
type principalKind int

const (
	principalUnknown principalKind = iota
	principalRoot
	principalUser
	principalAssumedRole
)

// principal is a parsed principal ARN.
type principal struct {
	Kind    principalKind
	Account string
	Name    string // user or role name
	Path    string // user path
	Session string // role session name
}

// parsePrincipal reads arn:aws:iam::<acct>:root, arn:aws:iam::<acct>:user/<path><name>
// and arn:aws:sts::<acct>:assumed-role/<role>/<session>.
func parsePrincipal(arn string) principal {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || !isAccountID(parts[4]) {
		return principal{}
	}
	acct, res := parts[4], parts[5]
	switch {
	case parts[2] == "iam" && res == "root":
		return principal{Kind: principalRoot, Account: acct}
	case parts[2] == "iam" && strings.HasPrefix(res, "user/"):
		rest := res[len("user"):]
		i := strings.LastIndexByte(rest, '/')
		if rest[i+1:] == "" {
			return principal{}
		}
		return principal{Kind: principalUser, Account: acct, Path: rest[:i+1], Name: rest[i+1:]}
	case parts[2] == "sts" && strings.HasPrefix(res, "assumed-role/"):
		role, session, ok := strings.Cut(res[len("assumed-role/"):], "/")
		if !ok || role == "" || session == "" {
			return principal{}
		}
		return principal{Kind: principalAssumedRole, Account: acct, Name: role, Session: session}
	}
	return principal{}
}

// Snapshot implements api.Persister: every account's users, roles, policies
// and attachments, and every access key and temporary credential with its
// secret, as JSON.
func (d *Directory) Snapshot() ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ids := make([]string, 0, len(d.accounts))
	for id := range d.accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	snap := directorySnapshot{Accounts: make([]*account, 0, len(ids)), Credentials: d.creds.List()}
	for _, id := range ids {
		snap.Accounts = append(snap.Accounts, d.accounts[id])
	}
	return json.Marshal(snap)
}

type directorySnapshot struct {
	Accounts    []*account
	Credentials []Credential
}

// Restore implements api.Persister. On error the directory is unchanged.
func (d *Directory) Restore(data []byte) error {
	var snap directorySnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("iam state: %w", err)
	}
	accounts := map[string]*account{}
	for _, a := range snap.Accounts {
		if a == nil || !isAccountID(a.ID) {
			return errors.New("iam state: account without a valid id")
		}
		fresh := newAccount(a.ID)
		fresh.Created, fresh.RootKeys = a.Created, a.RootKeys
		for _, u := range a.Users {
			fresh.Users[strings.ToLower(u.Name)] = u
		}
		for _, r := range a.Roles {
			fresh.Roles[strings.ToLower(r.Name)] = r
		}
		for _, p := range a.Policies {
			fresh.Policies[strings.ToLower(p.Name)] = p
		}
		accounts[a.ID] = fresh
	}
	var store Store
	creds, _ := json.Marshal(storeSnapshot{Credentials: snap.Credentials})
	if err := store.UnmarshalJSON(creds); err != nil {
		return fmt.Errorf("iam state: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.accounts = accounts
	d.creds.mu.Lock()
	d.creds.keys = store.keys
	d.creds.mu.Unlock()
	return nil
}

// Reset implements api.Persister: it forgets every account, key and
// temporary credential.
func (d *Directory) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.accounts = map[string]*account{}
	d.creds.mu.Lock()
	d.creds.keys = nil
	d.creds.mu.Unlock()
}

// The IAM/STS errors, with the codes and HTTP statuses of the service model.

func noSuchEntity(format string, args ...any) error {
	return api.NewError(http.StatusNotFound, "NoSuchEntity", format, args...)
}

func entityAlreadyExists(format string, args ...any) error {
	return api.NewError(http.StatusConflict, "EntityAlreadyExists", format, args...)
}

func malformedPolicy(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "MalformedPolicyDocument", format, args...)
}

func validationError(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "ValidationError", format, args...)
}

func deleteConflict(format string, args ...any) error {
	return api.NewError(http.StatusConflict, "DeleteConflict", format, args...)
}

func limitExceeded(format string, args ...any) error {
	return api.NewError(http.StatusConflict, "LimitExceeded", format, args...)
}

func invalidInput(format string, args ...any) error {
	return api.NewError(http.StatusBadRequest, "InvalidInput", format, args...)
}

func accessDenied(format string, args ...any) error {
	return api.NewError(http.StatusForbidden, "AccessDenied", format, args...)
}

// RoleExists reports whether roleArn (arn:aws:iam::<account>:role/<path><name>)
// names a role of its account; CreateDBProxy checks it under --enforce-iam.
func (d *Directory) RoleExists(roleArn string) bool {
	parts := strings.SplitN(roleArn, ":", 6)
	if len(parts) != 6 || !strings.HasPrefix(parts[5], "role/") {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.peek(parts[4]).Roles {
		if r.arn(parts[4]) == roleArn {
			return true
		}
	}
	return false
}
