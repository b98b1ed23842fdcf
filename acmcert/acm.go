package acmcert

import "github.com/rdslocal/rdslocal/api"

// ACM is the Certificate Manager API over the local CA.
type ACM struct {
	ca *CA
}

// NewACM returns an ACM with no certificates.
func NewACM(ca *CA) *ACM { return &ACM{ca: ca} }

// Service returns the ACM API.
func (a *ACM) Service() *api.Service {
	return &api.Service{Model: api.MustLoadModel("acm"), Handlers: map[string]api.Handler{}}
}
