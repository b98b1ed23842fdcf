package rds_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
	"github.com/rdslocal/rdslocal/testsuite"
)

const secretArn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-creds-AbCdEf"
const roleArn = "arn:aws:iam::000000000000:role/proxy-role"

func newClient(t *testing.T) *rds.Client {
	t.Helper()
	// These tests check the API; the engine layer has its own tests.
	emu := testsuite.Start(t, testsuite.WithDBBackend("none"))
	return rds.NewFromConfig(emu.AWSConfig)
}

func createProxy(t *testing.T, c *rds.Client, name, family string) *types.DBProxy {
	t.Helper()
	out, err := c.CreateDBProxy(context.Background(), &rds.CreateDBProxyInput{
		DBProxyName:  aws.String(name),
		EngineFamily: types.EngineFamily(family),
		RoleArn:      aws.String(roleArn),
		VpcSubnetIds: []string{"subnet-a", "subnet-b"},
		Auth:         []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: aws.String(secretArn)}},
	})
	if err != nil {
		t.Fatalf("CreateDBProxy %s: %v", name, err)
	}
	return out.DBProxy
}

func createInstance(t *testing.T, c *rds.Client, id, engine string) *types.DBInstance {
	t.Helper()
	out, err := c.CreateDBInstance(context.Background(), &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(id),
		DBInstanceClass:      aws.String("db.t3.micro"),
		Engine:               aws.String(engine),
		MasterUsername:       aws.String("master"),
		MasterUserPassword:   aws.String("secret-pass-1"),
	})
	if err != nil {
		t.Fatalf("CreateDBInstance %s: %v", id, err)
	}
	return out.DBInstance
}

// wantCode asserts err is an AWS API error with the code and HTTP status.
func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want %s, got %v", code, err)
	}
	if apiErr.ErrorCode() != code {
		t.Fatalf("want code %s, got %s: %s", code, apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() != status {
		t.Fatalf("%s: want HTTP %d, got %d", code, status, re.HTTPStatusCode())
	}
}

func TestCreateDescribeProxy(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	p := createProxy(t, c, "my-proxy", "POSTGRESQL")
	if *p.DBProxyName != "my-proxy" || p.Status != types.DBProxyStatusCreating {
		t.Fatalf("unexpected proxy %+v", p)
	}
	if !strings.HasPrefix(*p.DBProxyArn, "arn:aws:rds:us-east-1:000000000000:db-proxy:prx-") || len(*p.DBProxyArn) != len("arn:aws:rds:us-east-1:000000000000:db-proxy:prx-")+17 {
		t.Fatalf("bad arn %s", *p.DBProxyArn)
	}
	if ip := net.ParseIP(*p.Endpoint); ip == nil || !ip.IsLoopback() {
		t.Fatalf("endpoint %s is not a loopback address", *p.Endpoint)
	}
	if *p.IdleClientTimeout != 1800 || *p.RequireTLS || *p.DebugLogging {
		t.Fatalf("defaults wrong: %+v", p)
	}
	if len(p.Auth) != 1 || p.Auth[0].IAMAuth != types.IAMAuthModeDisabled || *p.Auth[0].SecretArn != secretArn {
		t.Fatalf("auth echoed wrong: %+v", p.Auth)
	}
	if !strings.HasPrefix(*p.VpcId, "vpc-") || len(p.VpcSecurityGroupIds) != 1 {
		t.Fatalf("vpc/sg: %v %v", *p.VpcId, p.VpcSecurityGroupIds)
	}
	d, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("my-proxy")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DBProxies) != 1 || d.DBProxies[0].Status != types.DBProxyStatusAvailable || *d.DBProxies[0].VpcId != *p.VpcId {
		t.Fatalf("describe: %+v", d.DBProxies)
	}
	tg, err := c.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("my-proxy")})
	if err != nil {
		t.Fatal(err)
	}
	g := tg.TargetGroups[0]
	if *g.TargetGroupName != "default" || !*g.IsDefault || !strings.Contains(*g.TargetGroupArn, ":target-group:prx-tg-") {
		t.Fatalf("target group: %+v", g)
	}
	pc := g.ConnectionPoolConfig
	if *pc.MaxConnectionsPercent != 100 || *pc.MaxIdleConnectionsPercent != 50 || *pc.ConnectionBorrowTimeout != 120 || len(pc.SessionPinningFilters) != 0 {
		t.Fatalf("pool defaults: %+v", pc)
	}
}

func TestCreateProxyErrors(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	createProxy(t, c, "taken", "MYSQL")
	base := func() *rds.CreateDBProxyInput {
		return &rds.CreateDBProxyInput{
			DBProxyName: aws.String("p1"), EngineFamily: types.EngineFamilyPostgresql, RoleArn: aws.String(roleArn),
			VpcSubnetIds: []string{"subnet-a"},
			Auth:         []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: aws.String(secretArn)}},
		}
	}
	cases := []struct {
		name   string
		mutate func(*rds.CreateDBProxyInput)
		code   string
		status int
	}{
		{"duplicate", func(i *rds.CreateDBProxyInput) { i.DBProxyName = aws.String("taken") }, "DBProxyAlreadyExistsFault", 400},
		{"bad name", func(i *rds.CreateDBProxyInput) { i.DBProxyName = aws.String("1bad--name") }, "InvalidParameterValue", 400},
		{"trailing hyphen", func(i *rds.CreateDBProxyInput) { i.DBProxyName = aws.String("bad-") }, "InvalidParameterValue", 400},
		{"long name", func(i *rds.CreateDBProxyInput) { i.DBProxyName = aws.String(strings.Repeat("a", 64)) }, "InvalidParameterValue", 400},
		{"bad family", func(i *rds.CreateDBProxyInput) { i.EngineFamily = "ORACLE" }, "InvalidParameterValue", 400},
		{"idle timeout 0", func(i *rds.CreateDBProxyInput) { i.IdleClientTimeout = aws.Int32(0) }, "InvalidParameterValue", 400},
		{"idle timeout too big", func(i *rds.CreateDBProxyInput) { i.IdleClientTimeout = aws.Int32(28801) }, "InvalidParameterValue", 400},
		{"no auth", func(i *rds.CreateDBProxyInput) { i.Auth = nil }, "InvalidParameterCombination", 400},
		{"bad role", func(i *rds.CreateDBProxyInput) { i.RoleArn = aws.String("arn:aws:iam::000000000000:user/bob") }, "InvalidParameterValue", 400},
		{"mysql auth type on pg", func(i *rds.CreateDBProxyInput) {
			i.Auth[0].ClientPasswordAuthType = types.ClientPasswordAuthTypeMysqlNativePassword
		}, "InvalidParameterValue", 400},
		{"iam enabled", func(i *rds.CreateDBProxyInput) { i.Auth[0].IAMAuth = types.IAMAuthModeEnabled }, "InvalidParameterValue", 400},
		{"bad secret arn", func(i *rds.CreateDBProxyInput) { i.Auth[0].SecretArn = aws.String("arn:aws:s3:::bucket-name-xx") }, "InvalidParameterValue", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mutate(in)
			_, err := c.CreateDBProxy(ctx, in)
			wantCode(t, err, tc.code, tc.status)
		})
	}
	// IAM_AUTH default scheme needs no Auth.
	in := base()
	in.DBProxyName, in.Auth, in.DefaultAuthScheme = aws.String("iam-only"), nil, types.DefaultAuthSchemeIamAuth
	if _, err := c.CreateDBProxy(ctx, in); err != nil {
		t.Fatalf("IAM_AUTH without Auth: %v", err)
	}
}

func TestProxyQuota(t *testing.T) {
	c := newClient(t)
	for i := 0; i < 20; i++ {
		createProxy(t, c, fmt.Sprintf("p%d", i), "POSTGRESQL")
	}
	_, err := c.CreateDBProxy(context.Background(), &rds.CreateDBProxyInput{
		DBProxyName: aws.String("one-too-many"), EngineFamily: types.EngineFamilyMysql, RoleArn: aws.String(roleArn),
		VpcSubnetIds: []string{"subnet-a"}, Auth: []types.UserAuthConfig{{SecretArn: aws.String(secretArn)}},
	})
	wantCode(t, err, "DBProxyQuotaExceededFault", 400)
}

func TestNotFoundErrors(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	createProxy(t, c, "exists", "POSTGRESQL")
	cases := []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"describe proxy", func() error {
			_, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("nope")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"modify proxy", func() error {
			_, err := c.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{DBProxyName: aws.String("nope")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"delete proxy", func() error {
			_, err := c.DeleteDBProxy(ctx, &rds.DeleteDBProxyInput{DBProxyName: aws.String("nope")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"target groups", func() error {
			_, err := c.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("nope")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"target group name", func() error {
			_, err := c.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("exists"), TargetGroupName: aws.String("other")})
			return err
		}, "DBProxyTargetGroupNotFoundFault", 404},
		{"targets", func() error {
			_, err := c.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String("nope")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"register unknown instance", func() error {
			_, err := c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("exists"), DBInstanceIdentifiers: []string{"ghost"}})
			return err
		}, "DBInstanceNotFound", 404},
		{"register unknown cluster", func() error {
			_, err := c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("exists"), DBClusterIdentifiers: []string{"ghost"}})
			return err
		}, "DBClusterNotFoundFault", 404},
		{"deregister unregistered", func() error {
			_, err := c.DeregisterDBProxyTargets(ctx, &rds.DeregisterDBProxyTargetsInput{DBProxyName: aws.String("exists"), DBInstanceIdentifiers: []string{"ghost"}})
			return err
		}, "DBProxyTargetNotFoundFault", 404},
		{"endpoint", func() error {
			_, err := c.DescribeDBProxyEndpoints(ctx, &rds.DescribeDBProxyEndpointsInput{DBProxyEndpointName: aws.String("nope")})
			return err
		}, "DBProxyEndpointNotFoundFault", 404},
		{"delete endpoint", func() error {
			_, err := c.DeleteDBProxyEndpoint(ctx, &rds.DeleteDBProxyEndpointInput{DBProxyEndpointName: aws.String("nope")})
			return err
		}, "DBProxyEndpointNotFoundFault", 404},
		{"modify endpoint", func() error {
			_, err := c.ModifyDBProxyEndpoint(ctx, &rds.ModifyDBProxyEndpointInput{DBProxyEndpointName: aws.String("nope")})
			return err
		}, "DBProxyEndpointNotFoundFault", 404},
		{"endpoint of missing proxy", func() error {
			_, err := c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("nope"), DBProxyEndpointName: aws.String("ep"), VpcSubnetIds: []string{"s"}})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"instance", func() error {
			_, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("nope")})
			return err
		}, "DBInstanceNotFound", 404},
		{"cluster", func() error {
			_, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("nope")})
			return err
		}, "DBClusterNotFoundFault", 404},
		{"tags on missing proxy", func() error {
			_, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String("arn:aws:rds:us-east-1:000000000000:db-proxy:prx-00000000000000000")})
			return err
		}, "DBProxyNotFoundFault", 404},
		{"max records", func() error {
			_, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{MaxRecords: aws.Int32(5)})
			return err
		}, "InvalidParameterValue", 400},
		{"bad marker", func() error {
			_, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{Marker: aws.String("garbage")})
			return err
		}, "InvalidParameterValue", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.status) })
	}
	// The exact AWS text for a missing proxy.
	_, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("nope")})
	var nf *types.DBProxyNotFoundFault
	if !errors.As(err, &nf) || nf.ErrorMessage() != "The specified proxy name nope doesn't correspond to a proxy owned by your Amazon Web Services account in the specified Amazon Web Services Region." {
		t.Fatalf("message: %v", err)
	}
}

func TestModifyProxy(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	p := createProxy(t, c, "old-name", "POSTGRESQL")
	createProxy(t, c, "other", "POSTGRESQL")
	_, err := c.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{DBProxyName: aws.String("old-name"), NewDBProxyName: aws.String("other")})
	wantCode(t, err, "DBProxyAlreadyExistsFault", 400)

	newSecret := "arn:aws:secretsmanager:us-east-1:000000000000:secret:other-QwErTy"
	out, err := c.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{
		DBProxyName: aws.String("old-name"), NewDBProxyName: aws.String("new-name"),
		RequireTLS: aws.Bool(true), IdleClientTimeout: aws.Int32(900), DebugLogging: aws.Bool(true),
		SecurityGroups: []string{"sg-1", "sg-2"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: aws.String(newSecret), IAMAuth: types.IAMAuthModeRequired,
			ClientPasswordAuthType: types.ClientPasswordAuthTypePostgresMd5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := out.DBProxy
	if *m.DBProxyName != "new-name" || !*m.RequireTLS || *m.IdleClientTimeout != 900 || !*m.DebugLogging ||
		len(m.VpcSecurityGroupIds) != 2 || *m.DBProxyArn != *p.DBProxyArn || *m.Endpoint != *p.Endpoint {
		t.Fatalf("modify: %+v", m)
	}
	if len(m.Auth) != 1 || *m.Auth[0].SecretArn != newSecret || m.Auth[0].IAMAuth != types.IAMAuthModeRequired || m.Auth[0].ClientPasswordAuthType != types.ClientPasswordAuthTypePostgresMd5 {
		t.Fatalf("auth not replaced: %+v", m.Auth)
	}
	if _, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("old-name")}); err == nil {
		t.Fatal("old name still answers")
	}
	_, err = c.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{DBProxyName: aws.String("new-name"), IdleClientTimeout: aws.Int32(30000)})
	wantCode(t, err, "InvalidParameterValue", 400)
}

func TestEndpoints(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	p := createProxy(t, c, "ep-proxy", "POSTGRESQL")
	ep, err := c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{
		DBProxyName: aws.String("ep-proxy"), DBProxyEndpointName: aws.String("reader"), VpcSubnetIds: []string{"subnet-x"},
		TargetRole: types.DBProxyEndpointTargetRoleReadOnly,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := ep.DBProxyEndpoint
	if *e.DBProxyEndpointName != "reader" || e.TargetRole != types.DBProxyEndpointTargetRoleReadOnly || *e.IsDefault ||
		!strings.Contains(*e.DBProxyEndpointArn, ":db-proxy-endpoint:prx-endpoint-") || *e.Endpoint == *p.Endpoint {
		t.Fatalf("endpoint: %+v", e)
	}
	_, err = c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("ep-proxy"), DBProxyEndpointName: aws.String("reader"), VpcSubnetIds: []string{"s"}})
	wantCode(t, err, "DBProxyEndpointAlreadyExistsFault", 400)

	d, err := c.DescribeDBProxyEndpoints(ctx, &rds.DescribeDBProxyEndpointsInput{DBProxyName: aws.String("ep-proxy")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DBProxyEndpoints) != 2 || !*d.DBProxyEndpoints[0].IsDefault || *d.DBProxyEndpoints[0].Endpoint != *p.Endpoint {
		t.Fatalf("describe endpoints: %+v", d.DBProxyEndpoints)
	}
	mod, err := c.ModifyDBProxyEndpoint(ctx, &rds.ModifyDBProxyEndpointInput{DBProxyEndpointName: aws.String("reader"), NewDBProxyEndpointName: aws.String("reader2"), VpcSecurityGroupIds: []string{"sg-9"}})
	if err != nil || *mod.DBProxyEndpoint.DBProxyEndpointName != "reader2" || mod.DBProxyEndpoint.VpcSecurityGroupIds[0] != "sg-9" {
		t.Fatalf("modify endpoint: %v %+v", err, mod)
	}
	_, err = c.ModifyDBProxyEndpoint(ctx, &rds.ModifyDBProxyEndpointInput{DBProxyEndpointName: aws.String("default"), NewDBProxyEndpointName: aws.String("x")})
	wantCode(t, err, "InvalidDBProxyEndpointStateFault", 400)
	for i := 0; i < 19; i++ {
		if _, err := c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("ep-proxy"), DBProxyEndpointName: aws.String(fmt.Sprintf("e%d", i)), VpcSubnetIds: []string{"s"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("ep-proxy"), DBProxyEndpointName: aws.String("e-last"), VpcSubnetIds: []string{"s"}})
	wantCode(t, err, "DBProxyEndpointQuotaExceededFault", 400)

	// Pagination through the SDK paginator visits every endpoint once.
	pager := rds.NewDescribeDBProxyEndpointsPaginator(c, &rds.DescribeDBProxyEndpointsInput{DBProxyName: aws.String("ep-proxy"), MaxRecords: aws.Int32(20)})
	seen := map[string]bool{}
	pages := 0
	for pager.HasMorePages() {
		pg, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range pg.DBProxyEndpoints {
			if seen[*e.DBProxyEndpointName] {
				t.Fatalf("endpoint %s twice", *e.DBProxyEndpointName)
			}
			seen[*e.DBProxyEndpointName] = true
		}
	}
	if len(seen) != 21 || pages != 2 {
		t.Fatalf("paginated %d endpoints in %d pages", len(seen), pages)
	}
	del, err := c.DeleteDBProxyEndpoint(ctx, &rds.DeleteDBProxyEndpointInput{DBProxyEndpointName: aws.String("reader2")})
	if err != nil || del.DBProxyEndpoint.Status != types.DBProxyEndpointStatusDeleting {
		t.Fatalf("delete endpoint: %v", err)
	}
	_, err = c.DeleteDBProxyEndpoint(ctx, &rds.DeleteDBProxyEndpointInput{DBProxyEndpointName: aws.String("default")})
	wantCode(t, err, "InvalidDBProxyEndpointStateFault", 400)
	// Deleting the proxy removes its endpoints.
	if _, err := c.DeleteDBProxy(ctx, &rds.DeleteDBProxyInput{DBProxyName: aws.String("ep-proxy")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeDBProxyEndpoints(ctx, &rds.DescribeDBProxyEndpointsInput{DBProxyEndpointName: aws.String("e1")})
	wantCode(t, err, "DBProxyEndpointNotFoundFault", 404)
}

func TestDescribeProxiesPagination(t *testing.T) {
	c := newClient(t)
	for i := 0; i < 20; i++ {
		createProxy(t, c, fmt.Sprintf("pg%02d", i), "POSTGRESQL")
	}
	pager := rds.NewDescribeDBProxiesPaginator(c, &rds.DescribeDBProxiesInput{MaxRecords: aws.Int32(20)})
	n, pages := 0, 0
	for pager.HasMorePages() {
		pg, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += len(pg.DBProxies)
		pages++
	}
	if n != 20 || pages != 1 {
		t.Fatalf("%d proxies in %d pages", n, pages)
	}
	empty := newClient(t)
	out, err := empty.DescribeDBProxies(context.Background(), &rds.DescribeDBProxiesInput{})
	if err != nil || out.DBProxies == nil || len(out.DBProxies) != 0 || out.Marker != nil {
		t.Fatalf("empty describe: %v %+v", err, out)
	}
}

func TestTargetGroupModify(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	createProxy(t, c, "tg", "POSTGRESQL")
	createProxy(t, c, "tgm", "MYSQL")
	cases := []struct {
		name             string
		proxy            string
		cfg              *types.ConnectionPoolConfiguration
		code             string
		wantMax, wantIdl int32
	}{
		{"max sets idle to half", "tg", &types.ConnectionPoolConfiguration{MaxConnectionsPercent: aws.Int32(80)}, "", 80, 40},
		{"explicit idle", "tg", &types.ConnectionPoolConfiguration{MaxConnectionsPercent: aws.Int32(60), MaxIdleConnectionsPercent: aws.Int32(10)}, "", 60, 10},
		{"idle above max", "tg", &types.ConnectionPoolConfiguration{MaxConnectionsPercent: aws.Int32(20), MaxIdleConnectionsPercent: aws.Int32(30)}, "InvalidParameterValue", 0, 0},
		{"max 0", "tg", &types.ConnectionPoolConfiguration{MaxConnectionsPercent: aws.Int32(0)}, "InvalidParameterValue", 0, 0},
		{"max 101", "tg", &types.ConnectionPoolConfiguration{MaxConnectionsPercent: aws.Int32(101)}, "InvalidParameterValue", 0, 0},
		{"borrow timeout 301", "tg", &types.ConnectionPoolConfiguration{ConnectionBorrowTimeout: aws.Int32(301)}, "InvalidParameterValue", 0, 0},
		{"pinning filter on pg", "tg", &types.ConnectionPoolConfiguration{SessionPinningFilters: []string{"EXCLUDE_VARIABLE_SETS"}}, "InvalidParameterValue", 0, 0},
		{"pinning filter on mysql", "tgm", &types.ConnectionPoolConfiguration{SessionPinningFilters: []string{"EXCLUDE_VARIABLE_SETS"}, InitQuery: aws.String("SET x=1")}, "", 100, 50},
		{"bad pinning filter", "tgm", &types.ConnectionPoolConfiguration{SessionPinningFilters: []string{"NOPE"}}, "InvalidParameterValue", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String(tc.proxy), TargetGroupName: aws.String("default"), ConnectionPoolConfig: tc.cfg})
			if tc.code != "" {
				wantCode(t, err, tc.code, 400)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pc := out.DBProxyTargetGroup.ConnectionPoolConfig
			if *pc.MaxConnectionsPercent != tc.wantMax || *pc.MaxIdleConnectionsPercent != tc.wantIdl {
				t.Fatalf("pool %d/%d, want %d/%d", *pc.MaxConnectionsPercent, *pc.MaxIdleConnectionsPercent, tc.wantMax, tc.wantIdl)
			}
		})
	}
	_, err := c.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String("tg"), TargetGroupName: aws.String("default"), NewName: aws.String("renamed")})
	wantCode(t, err, "InvalidParameterValue", 400)
	_, err = c.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String("tg"), TargetGroupName: aws.String("nope")})
	wantCode(t, err, "DBProxyTargetGroupNotFoundFault", 404)
	out, _ := c.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("tgm")})
	if pc := out.TargetGroups[0].ConnectionPoolConfig; *pc.InitQuery != "SET x=1" || len(pc.SessionPinningFilters) != 1 {
		t.Fatalf("mysql pool: %+v", pc)
	}
}

func TestRegisterTargets(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	createProxy(t, c, "pgp", "POSTGRESQL")
	createInstance(t, c, "pgdb", "postgres")
	createInstance(t, c, "mydb", "mariadb")
	di, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("pgdb")})
	if err != nil {
		t.Fatal(err)
	}
	inst := di.DBInstances[0]

	_, err = c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("pgp"), DBInstanceIdentifiers: []string{"mydb"}})
	wantCode(t, err, "InvalidParameterValue", 400)

	reg, err := c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("pgp"), TargetGroupName: aws.String("default"), DBInstanceIdentifiers: []string{"pgdb"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.DBProxyTargets) != 1 {
		t.Fatalf("register: %+v", reg.DBProxyTargets)
	}
	tg := reg.DBProxyTargets[0]
	if tg.Type != types.TargetTypeRdsInstance || *tg.RdsResourceId != "pgdb" || tg.TargetHealth.State != types.TargetStateRegistering ||
		*tg.Port != *inst.Endpoint.Port || *tg.Endpoint != *inst.Endpoint.Address || tg.Role != types.TargetRoleReadWrite {
		t.Fatalf("target row: %+v", tg)
	}
	_, err = c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("pgp"), DBInstanceIdentifiers: []string{"pgdb"}})
	wantCode(t, err, "DBProxyTargetAlreadyRegisteredFault", 400)

	// Records-only instances have no server behind them: the target is
	// unavailable, and the proxy does not dial whatever listens at the
	// record's address.
	d, err := c.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String("pgp")})
	if err != nil || len(d.Targets) != 1 {
		t.Fatalf("describe targets: %v %+v", err, d)
	}
	if h := d.Targets[0].TargetHealth; h.State != types.TargetStateUnavailable || h.Reason != types.TargetHealthReasonConnectionFailed ||
		!strings.Contains(aws.ToString(h.Description), "--db-backend none") {
		t.Fatalf("target health: %s %s %s", h.State, h.Reason, aws.ToString(h.Description))
	}
	if _, err := c.DeregisterDBProxyTargets(ctx, &rds.DeregisterDBProxyTargetsInput{DBProxyName: aws.String("pgp"), DBInstanceIdentifiers: []string{"pgdb"}}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String("pgp")})
	if len(d.Targets) != 0 {
		t.Fatalf("targets after deregister: %+v", d.Targets)
	}
}

func TestClusterTargetsAndFailover(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	createProxy(t, c, "aurora-proxy", "POSTGRESQL")
	_, err := c.CreateDBCluster(ctx, &rds.CreateDBClusterInput{
		DBClusterIdentifier: aws.String("clu"), Engine: aws.String("aurora-postgresql"),
		MasterUsername: aws.String("master"), MasterUserPassword: aws.String("secret-pass-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"clu-1", "clu-2"} {
		if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
			DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.r6g.large"),
			Engine: aws.String("aurora-postgresql"), DBClusterIdentifier: aws.String("clu"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A cluster member can't be registered alone.
	_, err = c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("aurora-proxy"), DBInstanceIdentifiers: []string{"clu-1"}})
	wantCode(t, err, "InvalidParameterValue", 400)
	if _, err := c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("aurora-proxy"), DBClusterIdentifiers: []string{"clu"}}); err != nil {
		t.Fatal(err)
	}
	roles := func() map[string]types.TargetRole {
		d, err := c.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String("aurora-proxy")})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]types.TargetRole{}
		for _, tg := range d.Targets {
			if tg.Type == types.TargetTypeTrackedCluster {
				m["cluster:"+*tg.RdsResourceId] = tg.Role
				continue
			}
			if *tg.TrackedClusterId != "clu" {
				t.Fatalf("member row without TrackedClusterId: %+v", tg)
			}
			m[*tg.RdsResourceId] = tg.Role
		}
		return m
	}
	if r := roles(); r["clu-1"] != types.TargetRoleReadWrite || r["clu-2"] != types.TargetRoleReadOnly || len(r) != 3 {
		t.Fatalf("roles before failover: %v", r)
	}
	fo, err := c.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String("clu")})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fo.DBCluster.DBClusterMembers {
		if *m.IsClusterWriter != (*m.DBInstanceIdentifier == "clu-2") {
			t.Fatalf("writer after failover: %+v", fo.DBCluster.DBClusterMembers)
		}
	}
	if r := roles(); r["clu-2"] != types.TargetRoleReadWrite || r["clu-1"] != types.TargetRoleReadOnly {
		t.Fatalf("roles after failover: %v", r)
	}
	_, err = c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("clu"), SkipFinalSnapshot: aws.Bool(true)})
	wantCode(t, err, "InvalidDBClusterStateFault", 400)
}
