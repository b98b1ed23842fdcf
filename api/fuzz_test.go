package api

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
)

// FuzzDecodeQuery feeds arbitrary form bodies through the query decoder of
// every RDS operation: it must return JSON or an *Error, never panic.
func FuzzDecodeQuery(f *testing.F) {
	m := MustLoadModel("rds")
	for _, seed := range []string{
		"DBProxyName=p&EngineFamily=MYSQL&RoleArn=arn:aws:iam::000000000000:role/r&VpcSubnetIds.member.1=a&VpcSubnetIds.member.2=b",
		"Auth.member.1.SecretArn=x&Auth.member.2.UserName=y&VpcSecurityGroupIds=",
		"Filters.Filter.1.Name=engine&Filters.Filter.1.Values.Value.1=postgres",
		"ConnectionPoolConfig.MaxConnectionsPercent=80&ConnectionPoolConfig.SessionPinningFilters.member.1=EXCLUDE_VARIABLE_SETS",
		"Tags.Tag.1.Key=a&Tags.Tag.1.Value=b&Tags.Tag.0.Key=c",
		"VpcSubnetIds.member.99999999999999999999=a",
		"IdleClientTimeout=99999999999999999999999",
		"a.b.c.d=1&.=2&..=3&x.member.=4",
		"%zz", "",
	} {
		f.Add("CreateDBProxy", seed)
		f.Add("DescribeDBInstances", seed)
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		if _, ok := m.Operations[op]; !ok {
			op = "CreateDBProxy"
		}
		out, err := m.DecodeQuery(op, form)
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Code == "" || apiErr.Status < 400 {
				t.Fatalf("not an AWS error: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}

// FuzzDecodeJSON feeds arbitrary bodies through the JSON 1.1 validator of
// every Secrets Manager operation.
func FuzzDecodeJSON(f *testing.F) {
	m := MustLoadModel("secretsmanager")
	for _, seed := range []string{
		`{}`, ``, `{"SecretId":"x"}`, `{"SecretId":5}`, `{"Name":"n","Tags":[{"Key":"a","Value":"b"}]}`,
		`{"Filters":[{"Key":"name","Values":["a"]}],"MaxResults":1e400}`, `{"PasswordLength":-1}`,
		`[`, `null`, `{"SecretBinary":"AAAA","VersionStages":[]}`, `{"a":1}{"b":2}`, `{"SecretIdList":[1,{"x":[]}]}`,
	} {
		f.Add("CreateSecret", seed)
		f.Add("ListSecrets", seed)
	}
	f.Fuzz(func(t *testing.T, op, body string) {
		if _, ok := m.Operations[op]; !ok {
			op = "GetSecretValue"
		}
		out, err := m.DecodeJSON(op, []byte(body))
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Code == "" || apiErr.Status != 400 {
				t.Fatalf("not an AWS error: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("accepted invalid JSON: %q", out)
		}
	})
}

func TestDecodeQueryShapes(t *testing.T) {
	m := MustLoadModel("rds")
	cases := []struct {
		op, body, want string
	}{
		{"CreateDBProxyEndpoint", "DBProxyName=p&DBProxyEndpointName=e&VpcSubnetIds.member.2=b&VpcSubnetIds.member.1=a&VpcSecurityGroupIds=",
			`{"DBProxyEndpointName":"e","DBProxyName":"p","VpcSecurityGroupIds":[],"VpcSubnetIds":["a","b"]}`},
		{"ModifyDBProxyTargetGroup", "DBProxyName=p&TargetGroupName=default&ConnectionPoolConfig.MaxConnectionsPercent=80",
			`{"ConnectionPoolConfig":{"MaxConnectionsPercent":80},"DBProxyName":"p","TargetGroupName":"default"}`},
		{"DescribeDBInstances", "Filters.Filter.1.Name=engine&Filters.Filter.1.Values.Value.1=postgres&Filters.Filter.1.Values.Value.2=mysql",
			`{"Filters":[{"Name":"engine","Values":["postgres","mysql"]}]}`},
		{"CreateDBInstance", "DBInstanceIdentifier=d&DBInstanceClass=db.t3.micro&Engine=postgres&VpcSecurityGroupIds.VpcSecurityGroupId.1=sg-1&MultiAZ=true&AllocatedStorage=20",
			`{"AllocatedStorage":20,"DBInstanceClass":"db.t3.micro","DBInstanceIdentifier":"d","Engine":"postgres","MultiAZ":true,"VpcSecurityGroupIds":["sg-1"]}`},
	}
	for _, tc := range cases {
		t.Run(tc.op, func(t *testing.T) {
			form, _ := url.ParseQuery(tc.body)
			out, err := m.DecodeQuery(tc.op, form)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Fatalf("got  %s\nwant %s", out, tc.want)
			}
		})
	}
}
