package iamauth

import (
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// STS session lifetimes (AWS: AssumeRole, GetSessionToken).
const (
	defaultRoleSession    = time.Hour
	chainedRoleSessionMax = time.Hour
	defaultSessionToken   = 12 * time.Hour
	rootSessionTokenMax   = time.Hour
	// expiredCredentialGrace is how long an expired temporary credential is
	// kept, so that using it reports "expired" rather than "unknown key".
	expiredCredentialGrace = time.Hour
)

type xmlCredentials struct {
	AccessKeyId     string
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

type xmlAssumedRoleUser struct {
	AssumedRoleId string
	Arn           string
}

type xmlAssumeRole struct {
	Credentials      xmlCredentials
	AssumedRoleUser  xmlAssumedRoleUser
	PackedPolicySize *int `xml:",omitempty"`
}

type xmlCallerIdentity struct {
	UserId  string
	Account string
	Arn     string
}

// userID is the UserId GetCallerIdentity reports for a principal: the
// account id for root, the user's AIDA… id, or AROA…:session for an
// assumed role. The caller holds d.mu.
func (d *Directory) userID(p principal, arn string) string {
	a := d.accounts[p.Account]
	switch p.Kind {
	case principalRoot:
		return p.Account
	case principalUser:
		if a != nil {
			if u := a.Users[strings.ToLower(p.Name)]; u != nil {
				return u.ID
			}
		}
		return derivedID(prefixUser, arn)
	case principalAssumedRole:
		return d.roleID(p.Account, p.Name) + ":" + p.Session
	}
	return derivedID(prefixUser, arn)
}

// roleID is the id of a role, or a stable derived one for a role that does
// not exist (assumable without --enforce-iam). The caller holds d.mu.
func (d *Directory) roleID(acct, name string) string {
	if a := d.accounts[acct]; a != nil {
		if r := a.Roles[strings.ToLower(name)]; r != nil {
			return r.ID
		}
	}
	return derivedID(prefixRole, "arn:aws:iam::"+acct+":role/"+name)
}

func (d *Directory) getCallerIdentity(c *api.Call) (any, error) {
	who := d.callerOf(c)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return xmlCallerIdentity{UserId: d.userID(who.Principal, who.Arn), Account: who.Account, Arn: who.Arn}, nil
}

// parseRoleArn splits arn:aws:iam::<acct>:role/<path><name>.
func parseRoleArn(arn string) (acct, path, name string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || parts[2] != "iam" || parts[3] != "" ||
		!isAccountID(parts[4]) || !strings.HasPrefix(parts[5], "role/") {
		return "", "", "", false
	}
	rest := parts[5][len("role"):]
	i := strings.LastIndexByte(rest, '/')
	name = rest[i+1:]
	if name == "" || checkName("roleName", name) != nil {
		return "", "", "", false
	}
	return parts[4], rest[:i+1], name, true
}

func (d *Directory) assumeRole(c *api.Call) (any, error) {
	var in struct {
		RoleArn         string
		RoleSessionName string
		DurationSeconds *int64
		Policy          *string
		PolicyArns      []struct{ Arn string }
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	acct, path, name, ok := parseRoleArn(in.RoleArn)
	if !ok {
		return nil, validationError("%s is invalid: a role ARN is arn:aws:iam::<account>:role/<name>", in.RoleArn)
	}
	if err := checkName("roleSessionName", in.RoleSessionName); err != nil {
		return nil, err
	}
	if in.Policy != nil {
		if _, err := parsePolicy(*in.Policy, identityPolicy); err != nil {
			return nil, err
		}
	}
	duration := defaultRoleSession
	if in.DurationSeconds != nil {
		duration = time.Duration(*in.DurationSeconds) * time.Second
	}
	who := d.callerOf(c)
	if who.Temporary && who.Principal.Kind == principalAssumedRole && duration > chainedRoleSessionMax {
		return nil, validationError("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var r *role
	if a := d.accounts[acct]; a != nil {
		if r = a.Roles[strings.ToLower(name)]; r != nil && r.Path != path {
			r = nil
		}
	}
	if r == nil && d.Strict {
		return nil, accessDenied("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", who.Arn, in.RoleArn)
	}
	roleName := name
	if r != nil {
		roleName = r.Name
		if duration > time.Duration(r.MaxSessionDuration)*time.Second {
			return nil, validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
	}
	sessionArn := "arn:aws:sts::" + acct + ":assumed-role/" + roleName + "/" + in.RoleSessionName
	cred, err := d.issue(c.Now, duration, sessionArn, acct)
	if err != nil {
		return nil, err
	}
	out := xmlAssumeRole{
		Credentials:     xmlCredentialsOf(cred),
		AssumedRoleUser: xmlAssumedRoleUser{AssumedRoleId: d.roleID(acct, roleName) + ":" + in.RoleSessionName, Arn: sessionArn},
	}
	if in.Policy != nil || len(in.PolicyArns) > 0 {
		// Session policies are accepted but not evaluated; report a
		// plausible packed size (percent of the limit).
		size := 1
		if in.Policy != nil {
			size = min(99, 1+len(*in.Policy)*100/2048)
		}
		out.PackedPolicySize = &size
	}
	return out, nil
}

func (d *Directory) getSessionToken(c *api.Call) (any, error) {
	var in struct{ DurationSeconds *int64 }
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	who := d.callerOf(c)
	if who.Temporary {
		return nil, accessDenied("Cannot call GetSessionToken with session credentials")
	}
	duration := defaultSessionToken
	if in.DurationSeconds != nil {
		duration = time.Duration(*in.DurationSeconds) * time.Second
	}
	if who.Principal.Kind == principalRoot && (in.DurationSeconds == nil || duration > rootSessionTokenMax) {
		// Sessions of the root user last at most an hour.
		duration = rootSessionTokenMax
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cred, err := d.issue(c.Now, duration, who.Arn, who.Account)
	if err != nil {
		return nil, err
	}
	return struct{ Credentials xmlCredentials }{xmlCredentialsOf(cred)}, nil
}

// issue creates a temporary credential for principal and puts it in the
// store, dropping credentials that expired long enough ago. The caller holds
// d.mu.
func (d *Directory) issue(now time.Time, duration time.Duration, principalArn, acct string) (Credential, error) {
	for _, old := range d.creds.List() {
		if old.Temporary() && old.expired(now.Add(-expiredCredentialGrace)) {
			d.creds.Delete(old.AccessKeyID)
		}
	}
	cred := Credential{
		AccessKeyID:     d.newKeyID(prefixSessionKey),
		SecretAccessKey: newSecret(),
		SessionToken:    newSessionToken(),
		Expires:         now.Add(duration).UTC().Truncate(time.Second),
		Principal:       principalArn,
		Account:         acct,
	}
	if err := d.creds.Put(cred); err != nil {
		return Credential{}, api.InternalFailure(err.Error())
	}
	return cred, nil
}

func xmlCredentialsOf(c Credential) xmlCredentials {
	return xmlCredentials{AccessKeyId: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
		Expiration: api.ISOTime(c.Expires)}
}
