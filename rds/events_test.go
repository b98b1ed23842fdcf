package rds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// TestDescribeEvents: the events of proxies, instances and clusters with
// RDS's messages and categories, through the real SDK client: filters by
// source type and identifier, category, time window, and pagination.
func TestDescribeEvents(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	for i := range 19 {
		createProxy(t, c, fmt.Sprintf("evp-%02d", i), "POSTGRESQL")
	}
	if _, err := c.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("evp-00"), DBProxyEndpointName: aws.String("ro"),
		VpcSubnetIds: []string{"subnet-a"}, TargetRole: types.DBProxyEndpointTargetRoleReadOnly}); err != nil {
		t.Fatal(err)
	}
	createInstance(t, c, "evdb", "postgres")
	if _, err := c.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String("evdb")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String("evc"), Engine: aws.String("aurora-postgresql"),
		MasterUsername: aws.String("master"), MasterUserPassword: aws.String("secret-pass-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteDBProxy(ctx, &rds.DeleteDBProxyInput{DBProxyName: aws.String("evp-18")}); err != nil {
		t.Fatal(err)
	}

	messages := func(in *rds.DescribeEventsInput) []types.Event {
		t.Helper()
		var all []types.Event
		p := rds.NewDescribeEventsPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, out.Events...)
		}
		return all
	}
	all := messages(&rds.DescribeEventsInput{})
	if len(all) < 24 {
		t.Fatalf("%d events, want at least 24", len(all))
	}
	first := all[0]
	if *first.SourceIdentifier != "evp-00" || first.SourceType != types.SourceTypeDbProxy || *first.Message != "RDS created DB proxy evp-00." ||
		len(first.EventCategories) != 1 || first.EventCategories[0] != "creation" || first.Date == nil ||
		first.SourceArn == nil || *first.SourceArn == "" {
		t.Fatalf("first event %+v", first)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Date.Before(*all[i-1].Date) {
			t.Fatalf("events out of order at %d", i)
		}
	}

	// One page of 20, then the rest.
	page, err := c.DescribeEvents(ctx, &rds.DescribeEventsInput{MaxRecords: aws.Int32(20)})
	if err != nil || len(page.Events) != 20 || page.Marker == nil {
		t.Fatalf("first page: %d events, marker %v, %v", len(page.Events), page.Marker, err)
	}

	for _, tc := range []struct {
		name string
		in   rds.DescribeEventsInput
		want []string
	}{
		{"instance", rds.DescribeEventsInput{SourceType: types.SourceTypeDbInstance, SourceIdentifier: aws.String("EvDB")},
			[]string{"DB instance created.", "DB instance restarted."}},
		{"cluster", rds.DescribeEventsInput{SourceType: types.SourceTypeDbCluster}, []string{"DB cluster created."}},
		{"proxy deleted", rds.DescribeEventsInput{SourceType: types.SourceTypeDbProxy, SourceIdentifier: aws.String("evp-18")},
			[]string{"RDS created DB proxy evp-18.", "RDS deleted DB proxy evp-18."}},
		{"endpoint", rds.DescribeEventsInput{SourceType: types.SourceTypeDbProxy, SourceIdentifier: aws.String("evp-00"), EventCategories: []string{"creation"}},
			[]string{"RDS created DB proxy evp-00.", "RDS created endpoint ro for DB proxy evp-00."}},
		{"category", rds.DescribeEventsInput{SourceType: types.SourceTypeDbInstance, EventCategories: []string{"availability"}},
			[]string{"DB instance restarted."}},
		{"window", rds.DescribeEventsInput{StartTime: aws.Time(start), EndTime: aws.Time(start.Add(-time.Minute).Add(2 * time.Minute)),
			SourceType: types.SourceTypeDbCluster}, []string{"DB cluster created."}},
		{"past", rds.DescribeEventsInput{StartTime: aws.Time(start.Add(-2 * time.Hour)), Duration: aws.Int32(30)}, nil},
		{"none of that type", rds.DescribeEventsInput{SourceType: types.SourceTypeDbSnapshot}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range messages(&tc.in) {
				got = append(got, *e.Message)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}

	_, err = c.DescribeEvents(ctx, &rds.DescribeEventsInput{SourceIdentifier: aws.String("evdb")})
	wantCode(t, err, "InvalidParameterCombination", 400)
	_, err = c.DescribeEvents(ctx, &rds.DescribeEventsInput{MaxRecords: aws.Int32(5)})
	wantCode(t, err, "InvalidParameterValue", 400)
	_, err = c.DescribeEvents(ctx, &rds.DescribeEventsInput{StartTime: aws.Time(start), EndTime: aws.Time(start.Add(-time.Hour))})
	wantCode(t, err, "InvalidParameterValue", 400)
}
