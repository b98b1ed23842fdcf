package iamauth

import "github.com/rdslocal/rdslocal/api"

// Directory is the IAM and STS state of every account: users, roles,
// policies, access keys and temporary credentials. It is the
// CredentialLookup the gateway and the token validator use.
type Directory struct {
	Store
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory { return &Directory{} }

// IAMService returns the IAM API.
func (d *Directory) IAMService() *api.Service {
	return &api.Service{Model: api.MustLoadModel("iam"), Handlers: map[string]api.Handler{}}
}

// STSService returns the STS API.
func (d *Directory) STSService() *api.Service {
	return &api.Service{Model: api.MustLoadModel("sts"), Handlers: map[string]api.Handler{}}
}
