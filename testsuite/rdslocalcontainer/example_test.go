package rdslocalcontainer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/rdslocal/rdslocal/testsuite/rdslocalcontainer"
	"github.com/testcontainers/testcontainers-go"
)

// A container with the resources of a fixture file, and an RDS client
// talking to it. (Needs Docker and the image: `make image`.)
func ExampleRun() {
	ctx := context.Background()
	ctr, err := rdslocalcontainer.Run(ctx, "rdslocal:latest", rdslocalcontainer.WithFixtures("fixtures.yaml"))
	defer func() { _ = testcontainers.TerminateContainer(ctr) }()
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := ctr.AWSConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	out, err := rds.NewFromConfig(cfg).DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("app-proxy")})
	if err != nil {
		log.Fatal(err)
	}
	endpoint := aws.ToString(out.DBProxies[0].Endpoint) // sign IAM tokens for this
	addr, err := ctr.ProxyAddress(ctx, endpoint)        // dial this
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(endpoint, addr)
}
