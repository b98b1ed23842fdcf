package iamauth

import (
	"errors"
	"testing"

	"github.com/rdslocal/rdslocal/api"
)

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything:at/all", true},
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "aéc", true},
		{"a*c", "ac", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxa", false},
		{"arn:aws:rds-db:us-east-1:000000000000:dbuser:*/*", "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/alice", true},
		{"arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-*/alice", "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/alice", true},
		{"arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-*/alice", "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/bob", false},
		{"arn:aws:rds-db:*:*:dbuser:*/al?ce", "arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-X/alice", true},
		{"**", "x", true},
		{"a**b", "ab", true},
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	const ok = ""
	for _, tc := range []struct {
		name string
		doc  string
		kind policyKind
		want string // "" = valid, else the error message
	}{
		{"minimal", `{"Statement":{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}}`, identityPolicy, ok},
		{"full", `{"Version":"2012-10-17","Id":"x","Statement":[{"Sid":"s","Effect":"Deny","NotAction":["s3:*"],"NotResource":"arn:aws:s3:::b","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`, identityPolicy, ok},
		{"not json", `{"Statement":`, identityPolicy, "Syntax errors in policy."},
		{"trailing", `{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}} {}`, identityPolicy, "Syntax errors in policy."},
		{"array top", `[]`, identityPolicy, "Syntax errors in policy."},
		{"null", `null`, identityPolicy, "Syntax errors in policy."},
		{"no statement", `{"Version":"2012-10-17"}`, identityPolicy, "Syntax errors in policy."},
		{"empty statement list", `{"Statement":[]}`, identityPolicy, "Syntax errors in policy."},
		{"bad version", `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}}`, identityPolicy, "The policy failed legacy parsing"},
		{"unknown top key", `{"Statment":[]}`, identityPolicy, "Syntax errors in policy."},
		{"unknown statement key", `{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Foo":1}}`, identityPolicy, "Syntax errors in policy."},
		{"bad effect", `{"Statement":{"Effect":"allow","Action":"a:b","Resource":"*"}}`, identityPolicy, "Invalid effect: allow"},
		{"no effect", `{"Statement":{"Action":"a:b","Resource":"*"}}`, identityPolicy, "Missing required field Effect"},
		{"no action", `{"Statement":{"Effect":"Allow","Resource":"*"}}`, identityPolicy, "Policy statement must contain actions."},
		{"action and notaction", `{"Statement":{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}}`, identityPolicy, "Syntax errors in policy."},
		{"no resource", `{"Statement":{"Effect":"Allow","Action":"a:b"}}`, identityPolicy, "Policy statement must contain resources."},
		{"principal in identity", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}}`, identityPolicy, "Policy document should not specify a principal."},
		{"action without vendor", `{"Statement":{"Effect":"Allow","Action":"connect","Resource":"*"}}`, identityPolicy, "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."},
		{"resource not arn", `{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"db"}}`, identityPolicy, `Resource db must be in ARN format or "*".`},
		{"action number", `{"Statement":{"Effect":"Allow","Action":5,"Resource":"*"}}`, identityPolicy, "Syntax errors in policy."},
		{"empty action list", `{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`, identityPolicy, "Syntax errors in policy."},
		{"condition not object", `{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":"x"}}`, identityPolicy, "Syntax errors in policy."},
		{"trust", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`, trustPolicy, ok},
		{"trust star", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}`, trustPolicy, ok},
		{"trust no principal", `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`, trustPolicy, "Missing required field Principal"},
		{"trust resource", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}]}`, trustPolicy, "Has prohibited field Resource"},
		{"trust bad principal", `{"Statement":[{"Effect":"Allow","Principal":"me","Action":"sts:AssumeRole"}]}`, trustPolicy, "Invalid principal in policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePolicy(tc.doc, tc.kind)
			if tc.want == ok {
				if err != nil {
					t.Fatalf("parsePolicy: %v", err)
				}
				return
			}
			var e *api.Error
			if !errors.As(err, &e) || e.Code != "MalformedPolicyDocument" || e.Status != 400 || e.Message != tc.want {
				t.Fatalf("parsePolicy error = %v, want MalformedPolicyDocument %q", err, tc.want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	const res = "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/alice"
	allow := func(action, resource string) string {
		return `{"Statement":{"Effect":"Allow","Action":` + action + `,"Resource":` + resource + `}}`
	}
	for _, tc := range []struct {
		name   string
		docs   []string
		action string
		want   decision
	}{
		{"nothing", nil, "rds-db:connect", implicitDeny},
		{"exact", []string{allow(`"rds-db:connect"`, `"`+res+`"`)}, "rds-db:connect", allowed},
		{"action case", []string{allow(`"RDS-DB:Connect"`, `"`+res+`"`)}, "rds-db:connect", allowed},
		{"action wildcard", []string{allow(`["s3:*","rds-db:*"]`, `"*"`)}, "rds-db:connect", allowed},
		{"other action", []string{allow(`"rds-db:other"`, `"*"`)}, "rds-db:connect", implicitDeny},
		{"resource case-sensitive", []string{allow(`"rds-db:connect"`, `"arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/ALICE"`)}, "rds-db:connect", implicitDeny},
		{"NotAction", []string{`{"Statement":{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}}`}, "rds-db:connect", allowed},
		{"NotAction excludes", []string{`{"Statement":{"Effect":"Allow","NotAction":"rds-db:*","Resource":"*"}}`}, "rds-db:connect", implicitDeny},
		{"NotResource", []string{`{"Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:rds-db:*:*:dbuser:*/bob"}}`}, "rds-db:connect", allowed},
		{"NotResource excludes", []string{`{"Statement":{"Effect":"Allow","Action":"*","NotResource":"arn:aws:rds-db:*:*:dbuser:*/alice"}}`}, "rds-db:connect", implicitDeny},
		{"deny wins", []string{allow(`"*"`, `"*"`), `{"Statement":{"Effect":"Deny","Action":"rds-db:connect","Resource":"*"}}`}, "rds-db:connect", explicitDeny},
		{"deny elsewhere", []string{allow(`"*"`, `"*"`), `{"Statement":{"Effect":"Deny","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:*/bob"}}`}, "rds-db:connect", allowed},
		{"allow with condition never allows", []string{`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}}`}, "rds-db:connect", implicitDeny},
		{"deny with condition always denies", []string{allow(`"*"`, `"*"`), `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`}, "rds-db:connect", explicitDeny},
		{"deny with condition elsewhere", []string{allow(`"*"`, `"*"`), `{"Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"Bool":{"x":"y"}}}}`}, "rds-db:connect", allowed},
		{"allow with variable is literal", []string{allow(`"*"`, `"arn:aws:rds-db:*:*:dbuser:*/${aws:username}"`)}, "rds-db:connect", implicitDeny},
		{"deny with variable matches", []string{allow(`"*"`, `"*"`), `{"Statement":{"Effect":"Deny","Action":"*","Resource":"arn:aws:rds-db:*:*:dbuser:*/${aws:username}"}}`}, "rds-db:connect", explicitDeny},
		{"unparseable grants nothing", []string{`{`}, "rds-db:connect", implicitDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []namedPolicy
			for i, d := range tc.docs {
				ps = append(ps, namedPolicy{Name: string(rune('a' + i)), Doc: d})
			}
			if got, _ := evaluate(ps, tc.action, res); got != tc.want {
				t.Fatalf("evaluate = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:*:*:dbuser:prx-*/alice"}]}`,
		`{"Statement":{"Effect":"Deny","NotAction":["a:*"],"NotResource":"*","Condition":{"A":{"b":"c"}}}}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:root"]},"Action":"sts:AssumeRole"}]}`,
		`{"Statement":[]}`, `{}`, `[`, ``,
	} {
		f.Add(s, "rds-db:connect", "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0/alice")
	}
	f.Fuzz(func(t *testing.T, doc, action, resource string) {
		for _, kind := range []policyKind{identityPolicy, trustPolicy} {
			p, err := parsePolicy(doc, kind)
			if (p == nil) == (err == nil) {
				t.Fatalf("parsePolicy returned %v, %v", p, err)
			}
		}
		_, _ = evaluate([]namedPolicy{{Name: "p", Doc: doc}}, action, resource)
		_ = wildcardMatch(action, resource)
	})
}
