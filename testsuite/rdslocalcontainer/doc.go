// Package rdslocalcontainer is a testcontainers-go module for the rdslocal
// image (docker/Dockerfile, `make image`): an RDS Proxy emulator in a
// container, its resources made at start from a fixture file, ready when
// Run returns.
//
//	ctr, err := rdslocalcontainer.Run(ctx, "rdslocal:latest", rdslocalcontainer.WithFixtures("fixtures.yaml"))
//	testcontainers.CleanupContainer(t, ctr)
//	cfg, err := ctr.AWSConfig(ctx) // any aws-sdk-go-v2 client
//
// Inside the container proxies listen on ports from a range (ports
// addressing) that Run exposes on random host ports, and their Endpoint
// values name the Docker host (RDSLOCAL_ADVERTISE_HOST). A client signs
// IAM auth tokens for the Endpoint, as it would for RDS Proxy, and dials
// ProxyAddress(Endpoint): the mapped host port. TLS names the Docker host
// too, so verify-full works with the CA from CACertPEM.
//
// It follows testcontainers-go's module conventions: Run(ctx, image,
// options…) returns the container even when it fails to start, so cleanup
// works; options are testcontainers.CustomizeRequestOption values.
package rdslocalcontainer
