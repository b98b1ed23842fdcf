package iamauth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzSeedTokens are real tokens (reference/api-surface.md §7) and broken
// variants of them.
var fuzzSeedTokens = []string{
	"myproxy.proxy-abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=d524227d93976f873ab88a6df1bb512302b38e616dbb9730d62e9857959baf3c",
	"myproxy.proxy-abc.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=al%20ice%2Bx%40y&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=sessiontok&X-Amz-Signature=8aa197ab545e178c421e24fb01b10f5fdc3f9f8d03a406e29c80f6ae482b6b38",
	"myproxy.proxy-abc.us-east-1.rds.amazonaws.com:5432?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=d524227d93976f873ab88a6df1bb512302b38e616dbb9730d62e9857959baf3c",
	"[::1]:443?Action=connect&DBUser=a&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + strings.Repeat("0", 64),
	"h:1?Action=connect&DBUser=a&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=99999999999999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=x",
	"h:1?DBUser=%&DBUser=%zz&=&&",
	"h:99999999999999999999?",
	"[::1?Action=connect",
	"?",
	"",
	"hunter2",
	"https://h:1/?Action=connect",
}

func FuzzParseToken(f *testing.F) {
	for _, s := range fuzzSeedTokens {
		f.Add(s)
	}
	v := &TokenValidator{Creds: StaticCredentials{}, Now: func() time.Time { return time.Date(2026, 11, 25, 19, 20, 0, 0, time.UTC) }}
	want := TokenExpectation{Addresses: []string{"myproxy.proxy-abc.us-east-1.rds.amazonaws.com:5432", "[::1]:443"}, Region: "us-east-1", User: "alice"}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err == nil {
			if tok.Address == "" || tok.DBUser == "" || len(tok.Signature) != 64 || tok.Expires <= 0 {
				t.Fatalf("ParseToken(%q) accepted an incomplete token: %+v", s, tok)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseToken(%q) error %v is not ErrMalformed", s, err)
		}
		_, err = v.Validate(s, want)
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Reason == "") {
			t.Fatalf("Validate(%q) error %#v is not an *Error with a reason", s, err)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	sig := strings.Repeat("0f", 32)
	for _, s := range []string{
		"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig,
		"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request,SignedHeaders=host,Signature=" + sig,
		"AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=",
		"AWS4-HMAC-SHA256 ,,,===",
		"AWS4-HMAC-SHA256",
		"",
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthorization(s)
		if err == nil {
			if a.Algorithm != Algorithm || a.Credential.AccessKeyID == "" || len(a.Signature) != 64 || len(a.SignedHeaders) == 0 {
				t.Fatalf("ParseAuthorization(%q) accepted %+v", s, a)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseAuthorization(%q) error %v is not ErrMalformed", s, err)
		}
		if q, err := url.ParseQuery(s); err == nil {
			if _, err := ParsePresignedQuery(q); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParsePresignedQuery(%q) error %v is not ErrMalformed", s, err)
			}
		}
	})
}
