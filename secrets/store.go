package secrets

import "github.com/rdslocal/rdslocal/api"

// Store is the Secrets Manager state of every account and region.
type Store struct{}

// New returns an empty store.
func New() *Store { return &Store{} }

// Service returns the Secrets Manager API.
func (s *Store) Service() *api.Service {
	return &api.Service{Model: api.MustLoadModel("secretsmanager"), Handlers: map[string]api.Handler{}}
}
