package rds

import (
	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/secrets"
)

// Options configures the RDS front-end.
type Options struct {
	ProxyAddressing  string
	PortMin, PortMax int
	Secrets          *secrets.Store
}

// RDS is the RDS front-end.
type RDS struct{ opts Options }

// New returns the RDS front-end.
func New(o Options) *RDS { return &RDS{opts: o} }

// Service returns the RDS API.
func (r *RDS) Service() *api.Service {
	return &api.Service{Model: api.MustLoadModel("rds"), Handlers: map[string]api.Handler{}}
}
