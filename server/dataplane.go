package server

import (
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql"
	"github.com/rdslocal/rdslocal/proxy/postgres"
	"github.com/rdslocal/rdslocal/secrets"
)

// The data plane's wiring: the wire protocols it serves, and the services
// it reads secrets, IAM tokens and certificates from, adapted to the small
// interfaces package proxy defines.

// newDataPlane returns the proxy Manager with every wire protocol. Adding
// a protocol is one entry in Protocols.
func newDataPlane(sec *secrets.Store, tokens *iamauth.TokenValidator, certs *acmcert.EndpointCerts, log *slog.Logger) *proxy.Manager {
	return proxy.NewManager(proxy.ManagerConfig{
		Protocols: []proxy.Protocol{
			postgres.New(postgres.Config{Logger: log}),
			mysql.New(mysql.Config{Logger: log}),
		},
		Credentials: secretCredentials{sec},
		Tokens:      tokenChecker{tokens},
		Certs:       endpointCerts{certs},
		Logger:      log,
	})
}

// secretCredentials reads a secret's username and password at AWSCURRENT.
type secretCredentials struct{ s *secrets.Store }

func (c secretCredentials) Credentials(account, region, secretArn string) (string, string, error) {
	v, err := c.s.CurrentValue(account, region, secretArn)
	if err != nil {
		return "", "", err
	}
	return secrets.ParseCredentials(v)
}

// tokenChecker validates RDS IAM auth tokens (and, under --enforce-iam,
// rds-db:connect).
type tokenChecker struct{ v *iamauth.TokenValidator }

func (c tokenChecker) CheckToken(token string, want proxy.TokenCheck) error {
	_, err := c.v.Validate(token, iamauth.TokenExpectation{Addresses: want.Addresses, Region: want.Region,
		User: want.User, Resource: want.Resource})
	return err
}

// endpointCerts issues proxy endpoint certificates from the local CA.
type endpointCerts struct{ c *acmcert.EndpointCerts }

func (c endpointCerts) TLSConfig(dnsNames []string, ips []net.IP) (*tls.Config, error) {
	return c.c.TLSConfig(acmcert.Endpoint{DNSNames: dnsNames, IPs: ips})
}
