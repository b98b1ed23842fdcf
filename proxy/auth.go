package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
)

// The core's needs from the rest of the emulator, as small interfaces the
// server adapts its services to (so that this package imports none of
// them).

// CredentialSource reads the credentials stored in a Secrets Manager
// secret (its AWSCURRENT value's username and password). It is called at
// every login (so that a PutSecretValue takes effect on the next one),
// whenever the proxy opens a database connection, and by health checks,
// and must be safe for concurrent use.
type CredentialSource interface {
	Credentials(account, region, secretArn string) (user, password string, err error)
}

// TokenChecker validates RDS IAM auth tokens. It must be safe for
// concurrent use.
type TokenChecker interface {
	CheckToken(token string, want TokenCheck) error
}

// TokenCheck is what a token must have been made for.
type TokenCheck struct {
	// Addresses are the host:port pairs the token may be signed for (the
	// endpoint's advertised addresses).
	Addresses []string
	Region    string
	User      string
	// Resource is the rds-db:connect resource of the login
	// (arn:aws:rds-db:<region>:<account>:dbuser:<proxy id>/<user>), for
	// checkers that enforce IAM policies.
	Resource string
}

// CertSource issues endpoint certificates. TLSConfig returns a server
// configuration for a listener known by dnsNames and ips (renewed by the
// source as needed). It must be safe for concurrent use.
type CertSource interface {
	TLSConfig(dnsNames []string, ips []net.IP) (*tls.Config, error)
}

// lookupUser finds the Auth entry whose secret's username is user, reading
// the secrets now (a cached index is tried first, and verified).
func (p *proxyState) lookupUser(spec *ProxySpec, user string) (AuthSpec, string, bool) {
	read := func(i int) (string, bool) {
		a := spec.Auth[i]
		u, pw, err := p.m.cfg.Credentials.Credentials(spec.Account, spec.Region, a.SecretArn)
		if err != nil || u != user {
			return "", false
		}
		return pw, true
	}
	p.userMu.Lock()
	i, ok := p.userIdx[user]
	p.userMu.Unlock()
	if ok && i < len(spec.Auth) {
		if pw, ok := read(i); ok {
			return spec.Auth[i], pw, true
		}
	}
	for i := range spec.Auth {
		if pw, ok := read(i); ok {
			p.userMu.Lock()
			if len(p.userIdx) > 1024 {
				clear(p.userIdx)
			}
			p.userIdx[user] = i
			p.userMu.Unlock()
			return spec.Auth[i], pw, true
		}
	}
	return AuthSpec{}, "", false
}

// checkToken validates an IAM token for a login of user on endpoint ep.
func (p *proxyState) checkToken(ep *endpoint, token, user string) error {
	tc := p.m.cfg.Tokens
	if tc == nil {
		return &Error{Kind: AuthFailed, Msg: "IAM authentication is not available"}
	}
	sp := p.spec()
	err := tc.CheckToken(token, TokenCheck{Addresses: ep.addrs, Region: sp.Region, User: user,
		Resource: "arn:aws:rds-db:" + sp.Region + ":" + sp.Account + ":dbuser:" + sp.ID + "/" + user})
	if err != nil {
		return &Error{Kind: AuthFailed, Err: err}
	}
	return nil
}

// password reads the pool's secret now (so that a rotated password is used
// for new connections), falling back to the last one that worked.
func (p *proxyState) password(pl *pool) (string, error) {
	spec := p.spec()
	pl.t.mu.Lock()
	arn := pl.secretArn
	pl.t.mu.Unlock()
	_, pw, err := p.m.cfg.Credentials.Credentials(spec.Account, spec.Region, arn)
	if err == nil {
		return pw, nil
	}
	pl.t.mu.Lock()
	last := pl.password
	pl.t.mu.Unlock()
	if last != "" {
		return last, nil
	}
	return "", &Error{Kind: NoCredentials, Msg: fmt.Sprintf("cannot read secret %s: %v", arn, err), Err: err}
}
