package rds_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

func TestInstanceLifecycle(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	created := createInstance(t, c, "App-DB", "postgres")
	if *created.DBInstanceIdentifier != "app-db" || *created.DBInstanceStatus != "creating" {
		t.Fatalf("create: %+v", created)
	}
	waiter := rds.NewDBInstanceAvailableWaiter(c)
	if err := waiter.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("app-db")}, 30*time.Second); err != nil {
		t.Fatalf("available waiter: %v", err)
	}
	d, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("app-db")})
	if err != nil {
		t.Fatal(err)
	}
	inst := d.DBInstances[0]
	if inst.Endpoint == nil || *inst.Endpoint.Address == "" || *inst.Endpoint.Port == 0 ||
		*inst.DBInstanceArn != "arn:aws:rds:us-east-1:000000000000:db:app-db" || !strings.HasPrefix(*inst.DbiResourceId, "db-") ||
		*inst.Engine != "postgres" || *inst.MasterUsername != "master" {
		t.Fatalf("describe: %+v", inst)
	}
	_, err = c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("app-db"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("m"), MasterUserPassword: aws.String("password1")})
	wantCode(t, err, "DBInstanceAlreadyExists", 400)

	mod, err := c.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String("app-db"), MasterUserPassword: aws.String("new-password-2"),
		DBInstanceClass: aws.String("db.t3.small"), ApplyImmediately: aws.Bool(true)})
	if err != nil || *mod.DBInstance.DBInstanceClass != "db.t3.small" {
		t.Fatalf("modify: %v", err)
	}
	rb, err := c.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String("app-db")})
	if err != nil || *rb.DBInstance.DBInstanceStatus != "rebooting" {
		t.Fatalf("reboot: %v", err)
	}
	_, err = c.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String("app-db"), ForceFailover: aws.Bool(true)})
	wantCode(t, err, "InvalidParameterCombination", 400)

	_, err = c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("app-db")})
	wantCode(t, err, "InvalidParameterCombination", 400)
	del, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("app-db"), SkipFinalSnapshot: aws.Bool(true)})
	if err != nil || *del.DBInstance.DBInstanceStatus != "deleting" {
		t.Fatalf("delete: %v", err)
	}
	if err := rds.NewDBInstanceDeletedWaiter(c).Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("app-db")}, 30*time.Second); err != nil {
		t.Fatalf("deleted waiter: %v", err)
	}
}

func TestCreateInstanceErrors(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	base := func() *rds.CreateDBInstanceInput {
		return &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("db1"), DBInstanceClass: aws.String("db.t3.micro"),
			Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String("password1")}
	}
	cases := []struct {
		name   string
		mutate func(*rds.CreateDBInstanceInput)
		code   string
	}{
		{"engine", func(i *rds.CreateDBInstanceInput) { i.Engine = aws.String("oracle-ee") }, "InvalidParameterValue"},
		{"identifier", func(i *rds.CreateDBInstanceInput) { i.DBInstanceIdentifier = aws.String("9lives") }, "InvalidParameterValue"},
		{"short password", func(i *rds.CreateDBInstanceInput) { i.MasterUserPassword = aws.String("short") }, "InvalidParameterValue"},
		{"password with slash", func(i *rds.CreateDBInstanceInput) { i.MasterUserPassword = aws.String("pass/word1") }, "InvalidParameterValue"},
		{"no user", func(i *rds.CreateDBInstanceInput) { i.MasterUsername = nil }, "InvalidParameterValue"},
		{"reserved user", func(i *rds.CreateDBInstanceInput) { i.MasterUsername = aws.String("rdsadmin") }, "InvalidParameterValue"},
		{"class", func(i *rds.CreateDBInstanceInput) { i.DBInstanceClass = aws.String("m5.large") }, "InvalidParameterValue"},
		{"aurora without cluster", func(i *rds.CreateDBInstanceInput) { i.Engine = aws.String("aurora-mysql") }, "InvalidParameterCombination"},
		{"unknown cluster", func(i *rds.CreateDBInstanceInput) {
			i.Engine, i.DBClusterIdentifier, i.MasterUsername, i.MasterUserPassword = aws.String("aurora-mysql"), aws.String("ghost"), nil, nil
		}, "DBClusterNotFoundFault"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mutate(in)
			_, err := c.CreateDBInstance(ctx, in)
			status := 400
			if strings.HasSuffix(tc.code, "NotFoundFault") {
				status = 404
			}
			wantCode(t, err, tc.code, status)
		})
	}
}

func TestDescribeInstancesFiltersAndPages(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	for _, id := range []string{"a1", "a2", "a3"} {
		createInstance(t, c, id, "mariadb")
	}
	createInstance(t, c, "p1", "postgres")
	out, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("engine"), Values: []string{"mariadb"}}}})
	if err != nil || len(out.DBInstances) != 3 {
		t.Fatalf("engine filter: %v %d", err, len(out.DBInstances))
	}
	out, err = c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("db-instance-id"), Values: []string{"p1", "a2"}}}})
	if err != nil || len(out.DBInstances) != 2 {
		t.Fatalf("id filter: %v %d", err, len(out.DBInstances))
	}
	_, err = c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("bogus"), Values: []string{"x"}}}})
	wantCode(t, err, "InvalidParameterValue", 400)
	n := 0
	pager := rds.NewDescribeDBInstancesPaginator(c, &rds.DescribeDBInstancesInput{MaxRecords: aws.Int32(20)})
	for pager.HasMorePages() {
		pg, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(pg.DBInstances)
	}
	if n != 4 {
		t.Fatalf("paginated %d instances", n)
	}
}

func TestTags(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	p := createProxy(t, c, "tagged", "MYSQL")
	inst := createInstance(t, c, "tagdb", "mysql")
	tgs, _ := c.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("tagged")})
	ep, err := c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("tagged"), DBProxyEndpointName: aws.String("tep"), VpcSubnetIds: []string{"s"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String("tagclu"), Engine: aws.String("aurora-mysql"),
		MasterUsername: aws.String("master"), MasterUserPassword: aws.String("password1"), Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
	if err != nil {
		t.Fatal(err)
	}
	arns := []string{*p.DBProxyArn, *inst.DBInstanceArn, *tgs.TargetGroups[0].TargetGroupArn, *ep.DBProxyEndpoint.DBProxyEndpointArn,
		"arn:aws:rds:us-east-1:000000000000:cluster:tagclu"}
	for _, a := range arns {
		t.Run(a, func(t *testing.T) {
			if _, err := c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: aws.String(a), Tags: []types.Tag{
				{Key: aws.String("env"), Value: aws.String("dev")}, {Key: aws.String("team"), Value: aws.String("db")}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: aws.String(a), Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RemoveTagsFromResource(ctx, &rds.RemoveTagsFromResourceInput{ResourceName: aws.String(a), TagKeys: []string{"team"}}); err != nil {
				t.Fatal(err)
			}
			l, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String(a)})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, tg := range l.TagList {
				m[*tg.Key] = *tg.Value
			}
			if m["env"] != "prod" || m["team"] != "" {
				t.Fatalf("tags: %v", m)
			}
		})
	}
	_, err = c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String("not-an-arn")})
	wantCode(t, err, "InvalidParameterValue", 400)
	_, err = c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String("arn:aws:rds:us-east-1:000000000000:db:ghost")})
	wantCode(t, err, "DBInstanceNotFound", 404)
}
