package iamauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/rdslocal/rdslocal/testsuite"
)

// The tests in this package drive the real aws-sdk-go-v2 IAM and STS clients
// against an in-process rdslocal (testsuite.Start).

const (
	trustDoc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	connect  = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds-db:connect", "Resource": "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-*/alice"}]}`
)

var ctx = context.Background()

type clients struct {
	emu *testsuite.Emulator
	iam *iam.Client
	sts *sts.Client
}

func start(t *testing.T, opts ...testsuite.Option) clients {
	t.Helper()
	emu := testsuite.Start(t, opts...)
	return clients{emu: emu, iam: iam.NewFromConfig(emu.AWSConfig), sts: sts.NewFromConfig(emu.AWSConfig)}
}

// as returns clients that sign with another key pair (and session token).
func (c clients) as(akid, secret, token string) clients {
	cfg := testsuite.Config(c.emu.URL, akid, secret)
	if token != "" {
		cfg = sessionConfig(c.emu.URL, akid, secret, token)
	}
	return clients{emu: c.emu, iam: iam.NewFromConfig(cfg), sts: sts.NewFromConfig(cfg)}
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
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("%s: want HTTP %d, got %v", code, status, err)
	}
}

// isType reports whether err wraps the SDK's typed error *T.
func isType[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// errCase is one failing call and the error it must produce.
type errCase struct {
	name   string
	call   func() error
	code   string
	status int
	typed  func(error) bool // the SDK's typed error, when the model has one
	msg    string           // substring of the message, when set
}

func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantCode(t, err, tc.code, tc.status)
			if tc.typed != nil && !tc.typed(err) {
				t.Fatalf("error %T is not the SDK's typed error for %s", err, tc.code)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not contain %q", err.Error(), tc.msg)
			}
		})
	}
}

var (
	noSuchEntity   = isType[*types.NoSuchEntityException]
	alreadyExists  = isType[*types.EntityAlreadyExistsException]
	malformed      = isType[*types.MalformedPolicyDocumentException]
	deleteConflict = isType[*types.DeleteConflictException]
	limitExceeded  = isType[*types.LimitExceededException]
	invalidInput   = isType[*types.InvalidInputException]
	uniqueID       = regexp.MustCompile(`^[A-Z0-9]{21}$`)
)

func createUser(t *testing.T, c clients, name string) *types.User {
	t.Helper()
	out, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateUser %s: %v", name, err)
	}
	return out.User
}

func createRole(t *testing.T, c clients, name string) *types.Role {
	t.Helper()
	out, err := c.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trustDoc)})
	if err != nil {
		t.Fatalf("CreateRole %s: %v", name, err)
	}
	return out.Role
}

func createPolicy(t *testing.T, c clients, name, doc string) *types.Policy {
	t.Helper()
	out, err := c.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
	if err != nil {
		t.Fatalf("CreatePolicy %s: %v", name, err)
	}
	return out.Policy
}

func createKey(t *testing.T, c clients, user string) *types.AccessKey {
	t.Helper()
	out, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatalf("CreateAccessKey %s: %v", user, err)
	}
	return out.AccessKey
}

func TestUsers(t *testing.T) {
	c := start(t)
	out, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{
		UserName: aws.String("alice"), Path: aws.String("/eng/"),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("db")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := out.User
	if *u.UserName != "alice" || *u.Path != "/eng/" || *u.Arn != "arn:aws:iam::000000000000:user/eng/alice" ||
		!strings.HasPrefix(*u.UserId, "AIDA") || !uniqueID.MatchString(*u.UserId) || u.CreateDate == nil ||
		len(u.Tags) != 1 || *u.Tags[0].Key != "team" {
		t.Fatalf("CreateUser: %+v", u)
	}
	got, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if *got.User.UserId != *u.UserId || *got.User.Arn != *u.Arn || !got.User.CreateDate.Equal(*u.CreateDate) {
		t.Fatalf("GetUser: %+v", got.User)
	}
	// IAM names are unique without regard to case.
	if got, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("ALICE")}); err != nil || *got.User.UserName != "alice" {
		t.Fatalf("GetUser ALICE: %v", err)
	}

	// No UserName: the caller. test/test is the account root.
	root, err := c.iam.GetUser(ctx, &iam.GetUserInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *root.User.Arn != "arn:aws:iam::000000000000:root" || *root.User.UserId != "000000000000" || root.User.UserName != nil {
		t.Fatalf("GetUser as root: %+v", root.User)
	}
	// A 12-digit key id is the root of that account.
	other := c.as("123456789012", "test", "")
	if r, err := other.iam.GetUser(ctx, &iam.GetUserInput{}); err != nil || *r.User.Arn != "arn:aws:iam::123456789012:root" {
		t.Fatalf("GetUser as 123456789012: %v", err)
	}
	// Accounts are separate.
	if _, err := other.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("alice")}); !noSuchEntity(err) {
		t.Fatalf("alice visible from another account: %v", err)
	}
	// An IAM user's own key: GetUser answers that user.
	key := createKey(t, c, "alice")
	if me, err := c.as(*key.AccessKeyId, *key.SecretAccessKey, "").iam.GetUser(ctx, &iam.GetUserInput{}); err != nil || *me.User.Arn != *u.Arn {
		t.Fatalf("GetUser as alice: %v %+v", err, me)
	}

	createUser(t, c, "bob")
	list, err := c.iam.ListUsers(ctx, &iam.ListUsersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Users) != 2 || *list.Users[0].UserName != "alice" || *list.Users[1].UserName != "bob" || list.IsTruncated {
		t.Fatalf("ListUsers: %+v", list.Users)
	}
	list, err = c.iam.ListUsers(ctx, &iam.ListUsersInput{PathPrefix: aws.String("/eng/")})
	if err != nil || len(list.Users) != 1 || *list.Users[0].UserName != "alice" {
		t.Fatalf("ListUsers /eng/: %v %+v", err, list)
	}
	if _, err := c.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("bob")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("bob")}); !noSuchEntity(err) {
		t.Fatalf("GetUser after delete: %v", err)
	}

	// alice with a key, an inline policy and an attached policy cannot be
	// deleted until each is removed, in that order.
	if _, err := c.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p"), PolicyDocument: aws.String(connect)}); err != nil {
		t.Fatal(err)
	}
	mp := createPolicy(t, c, "managed", connect)
	if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: mp.Arn}); err != nil {
		t.Fatal(err)
	}
	deleteAlice := func() error {
		_, err := c.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("alice")})
		return err
	}
	runErrCases(t, []errCase{
		{"duplicate", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("Alice")})
			return err
		}, "EntityAlreadyExists", 409, alreadyExists, "User with name Alice already exists."},
		{"get missing", func() error {
			_, err := c.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The user with name nobody cannot be found."},
		{"delete missing", func() error {
			_, err := c.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		{"bad name", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("a b")})
			return err
		}, "ValidationError", 400, nil, "regular expression"},
		{"long name", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(strings.Repeat("a", 65))})
			return err
		}, "ValidationError", 400, nil, "length less than or equal to 64"},
		{"bad path", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("carol"), Path: aws.String("eng")})
			return err
		}, "ValidationError", 400, nil, "must begin and end with /"},
		{"duplicate tag keys", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("carol"),
				Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("A"), Value: aws.String("2")}}})
			return err
		}, "InvalidInput", 400, invalidInput, ""},
		{"missing boundary policy", func() error {
			_, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("carol"),
				PermissionsBoundary: aws.String("arn:aws:iam::000000000000:policy/none")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		{"delete with keys", deleteAlice, "DeleteConflict", 409, deleteConflict, "must delete access keys first"},
	})
	if _, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: key.AccessKeyId}); err != nil {
		t.Fatal(err)
	}
	runErrCases(t, []errCase{{"delete with inline policy", deleteAlice, "DeleteConflict", 409, deleteConflict, "must delete policies first"}})
	if _, err := c.iam.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p")}); err != nil {
		t.Fatal(err)
	}
	runErrCases(t, []errCase{{"delete with attached policy", deleteAlice, "DeleteConflict", 409, deleteConflict, "must detach all policies first"}})
	if _, err := c.iam.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: mp.Arn}); err != nil {
		t.Fatal(err)
	}
	if err := deleteAlice(); err != nil {
		t.Fatal(err)
	}
	// A boundary that exists is accepted and shown.
	out, err = c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("carol"), PermissionsBoundary: mp.Arn})
	if err != nil || out.User.PermissionsBoundary == nil || *out.User.PermissionsBoundary.PermissionsBoundaryArn != *mp.Arn {
		t.Fatalf("CreateUser with boundary: %v %+v", err, out)
	}
}

func TestAccessKeys(t *testing.T) {
	c := start(t)
	u := createUser(t, c, "alice")
	k1 := createKey(t, c, "alice")
	if !regexp.MustCompile(`^AKIA[A-Z0-9]{16}$`).MatchString(*k1.AccessKeyId) || len(*k1.SecretAccessKey) != 40 ||
		*k1.UserName != "alice" || k1.Status != types.StatusTypeActive || k1.CreateDate == nil {
		t.Fatalf("CreateAccessKey: %+v", k1)
	}
	k2 := createKey(t, c, "alice")

	// The key signs requests as alice, in the account that created it.
	id, err := c.as(*k1.AccessKeyId, *k1.SecretAccessKey, "").sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *id.Arn != *u.Arn || *id.UserId != *u.UserId || *id.Account != "000000000000" {
		t.Fatalf("GetCallerIdentity with alice's key: %+v", id)
	}

	list, err := c.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.AccessKeyMetadata) != 2 || *list.AccessKeyMetadata[0].AccessKeyId != *k1.AccessKeyId ||
		*list.AccessKeyMetadata[1].AccessKeyId != *k2.AccessKeyId || *list.AccessKeyMetadata[0].UserName != "alice" {
		t.Fatalf("ListAccessKeys: %+v", list.AccessKeyMetadata)
	}
	// Without UserName, alice's key lists alice's keys.
	if own, err := c.as(*k1.AccessKeyId, *k1.SecretAccessKey, "").iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{}); err != nil || len(own.AccessKeyMetadata) != 2 {
		t.Fatalf("ListAccessKeys as alice: %v", err)
	}

	runErrCases(t, []errCase{
		{"third key", func() error {
			_, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
			return err
		}, "LimitExceeded", 409, limitExceeded, "AccessKeysPerUser: 2"},
		{"missing user", func() error {
			_, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The user with name nobody cannot be found."},
		{"list missing user", func() error {
			_, err := c.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		{"delete unknown key", func() error {
			_, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String("AKIAAAAAAAAAAAAAAAAA")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The Access Key with id AKIAAAAAAAAAAAAAAAAA cannot be found."},
		{"short key id", func() error {
			_, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String("AKIA")})
			return err
		}, "ValidationError", 400, nil, "length greater than or equal to 16"},
	})

	if _, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: k1.AccessKeyId}); err != nil {
		t.Fatal(err)
	}
	list, err = c.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")})
	if err != nil || len(list.AccessKeyMetadata) != 1 || *list.AccessKeyMetadata[0].AccessKeyId != *k2.AccessKeyId {
		t.Fatalf("ListAccessKeys after delete: %v %+v", err, list)
	}
	// The deleted key no longer resolves to alice (unknown keys act as root,
	// as in LocalStack, while signatures are not enforced).
	id, err = c.as(*k1.AccessKeyId, *k1.SecretAccessKey, "").sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || *id.Arn != "arn:aws:iam::000000000000:root" {
		t.Fatalf("GetCallerIdentity with a deleted key: %v %+v", err, id)
	}

	// Root keys: CreateAccessKey without UserName as root.
	rk, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{})
	if err != nil || rk.AccessKey.UserName != nil {
		t.Fatalf("root CreateAccessKey: %v %+v", err, rk)
	}
	id, err = c.as(*rk.AccessKey.AccessKeyId, *rk.AccessKey.SecretAccessKey, "").sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || *id.Arn != "arn:aws:iam::000000000000:root" || *id.UserId != "000000000000" {
		t.Fatalf("GetCallerIdentity with a root key: %v %+v", err, id)
	}
	if own, err := c.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{}); err != nil || len(own.AccessKeyMetadata) != 1 {
		t.Fatalf("root ListAccessKeys: %v %+v", err, own)
	}
}

func TestRoles(t *testing.T) {
	c := start(t)
	out, err := c.iam.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String("proxy-role"), Path: aws.String("/service/"), AssumeRolePolicyDocument: aws.String(trustDoc),
		Description: aws.String("RDS Proxy"), MaxSessionDuration: aws.Int32(7200),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Role
	if *r.Arn != "arn:aws:iam::000000000000:role/service/proxy-role" || !strings.HasPrefix(*r.RoleId, "AROA") ||
		!uniqueID.MatchString(*r.RoleId) || *r.MaxSessionDuration != 7200 || *r.Description != "RDS Proxy" {
		t.Fatalf("CreateRole: %+v", r)
	}
	got, err := c.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("proxy-role")})
	if err != nil {
		t.Fatal(err)
	}
	// The Go SDK does not decode policy documents; IAM sends them URL-encoded.
	if strings.ContainsAny(*got.Role.AssumeRolePolicyDocument, "{\" ") {
		t.Fatalf("AssumeRolePolicyDocument is not URL-encoded: %s", *got.Role.AssumeRolePolicyDocument)
	}
	if doc, err := url.QueryUnescape(*got.Role.AssumeRolePolicyDocument); err != nil || doc != trustDoc {
		t.Fatalf("AssumeRolePolicyDocument decodes to %q (%v)", doc, err)
	}
	if *got.Role.RoleId != *r.RoleId || *got.Role.Path != "/service/" {
		t.Fatalf("GetRole: %+v", got.Role)
	}
	createRole(t, c, "another")
	list, err := c.iam.ListRoles(ctx, &iam.ListRolesInput{})
	if err != nil || len(list.Roles) != 2 || *list.Roles[0].RoleName != "another" || *list.Roles[1].RoleName != "proxy-role" {
		t.Fatalf("ListRoles: %v %+v", err, list)
	}
	if list, err = c.iam.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String("/service")}); err != nil || len(list.Roles) != 1 {
		t.Fatalf("ListRoles /service: %v %+v", err, list)
	}

	createRoleWith := func(name, doc string, maxSession *int32) func() error {
		return func() error {
			_, err := c.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(doc), MaxSessionDuration: maxSession})
			return err
		}
	}
	runErrCases(t, []errCase{
		{"duplicate", createRoleWith("PROXY-ROLE", trustDoc, nil), "EntityAlreadyExists", 409, alreadyExists, "Role with name PROXY-ROLE already exists."},
		{"not json", createRoleWith("r1", "{not json", nil), "MalformedPolicyDocument", 400, malformed, "Syntax errors in policy."},
		{"no principal", createRoleWith("r1", `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}`, nil), "MalformedPolicyDocument", 400, malformed, "Principal"},
		{"session too long", createRoleWith("r1", trustDoc, aws.Int32(50000)), "ValidationError", 400, nil, "less than or equal to 43200"},
		{"session too short", createRoleWith("r1", trustDoc, aws.Int32(60)), "ValidationError", 400, nil, "greater than or equal to 3600"},
		{"get missing", func() error {
			_, err := c.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("nope")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The role with name nope cannot be found."},
		{"delete missing", func() error {
			_, err := c.iam.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("nope")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
	})
	if _, err := c.iam.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("another")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("another")}); !noSuchEntity(err) {
		t.Fatalf("GetRole after delete: %v", err)
	}
	// A role with policies cannot be deleted.
	if _, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("proxy-role"), PolicyName: aws.String("p"), PolicyDocument: aws.String(connect)}); err != nil {
		t.Fatal(err)
	}
	mp := createPolicy(t, c, "m", connect)
	if _, err := c.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("proxy-role"), PolicyArn: mp.Arn}); err != nil {
		t.Fatal(err)
	}
	deleteRole := func() error {
		_, err := c.iam.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("proxy-role")})
		return err
	}
	runErrCases(t, []errCase{{"delete with inline policy", deleteRole, "DeleteConflict", 409, deleteConflict, "must delete policies first"}})
	if _, err := c.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("proxy-role"), PolicyName: aws.String("p")}); err != nil {
		t.Fatal(err)
	}
	runErrCases(t, []errCase{{"delete with attached policy", deleteRole, "DeleteConflict", 409, deleteConflict, "must detach all policies first"}})
	if _, err := c.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String("proxy-role"), PolicyArn: mp.Arn}); err != nil {
		t.Fatal(err)
	}
	if err := deleteRole(); err != nil {
		t.Fatal(err)
	}
}

// inlineOps is the user or role flavour of the inline-policy actions.
type inlineOps struct {
	kind  string
	owner func(t *testing.T, c clients, name string)
	put   func(c clients, owner, name, doc string) error
	get   func(c clients, owner, name string) (string, error)
	del   func(c clients, owner, name string) error
}

var inlineFlavours = []inlineOps{
	{
		kind:  "user",
		owner: func(t *testing.T, c clients, name string) { createUser(t, c, name) },
		put: func(c clients, owner, name, doc string) error {
			_, err := c.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(owner), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
			return err
		},
		get: func(c clients, owner, name string) (string, error) {
			out, err := c.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String(owner), PolicyName: aws.String(name)})
			if err != nil {
				return "", err
			}
			if *out.UserName != owner || *out.PolicyName != name {
				return "", fmt.Errorf("GetUserPolicy names %s/%s", *out.UserName, *out.PolicyName)
			}
			return *out.PolicyDocument, nil
		},
		del: func(c clients, owner, name string) error {
			_, err := c.iam.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: aws.String(owner), PolicyName: aws.String(name)})
			return err
		},
	},
	{
		kind:  "role",
		owner: func(t *testing.T, c clients, name string) { createRole(t, c, name) },
		put: func(c clients, owner, name, doc string) error {
			_, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(owner), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})
			return err
		},
		get: func(c clients, owner, name string) (string, error) {
			out, err := c.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(owner), PolicyName: aws.String(name)})
			if err != nil {
				return "", err
			}
			if *out.RoleName != owner || *out.PolicyName != name {
				return "", fmt.Errorf("GetRolePolicy names %s/%s", *out.RoleName, *out.PolicyName)
			}
			return *out.PolicyDocument, nil
		},
		del: func(c clients, owner, name string) error {
			_, err := c.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(owner), PolicyName: aws.String(name)})
			return err
		},
	},
}

func TestInlinePolicies(t *testing.T) {
	c := start(t)
	for _, f := range inlineFlavours {
		t.Run(f.kind, func(t *testing.T) {
			owner := "owner-" + f.kind
			f.owner(t, c, owner)
			if err := f.put(c, owner, "connect", connect); err != nil {
				t.Fatal(err)
			}
			enc, err := f.get(c, owner, "connect")
			if err != nil {
				t.Fatal(err)
			}
			// URL-encoded as IAM sends it; spaces are %20, not +.
			if strings.Contains(enc, "+") || !strings.Contains(enc, "%20") {
				t.Fatalf("PolicyDocument encoding: %s", enc)
			}
			if doc, err := url.PathUnescape(enc); err != nil || doc != connect {
				t.Fatalf("PolicyDocument decodes to %q (%v)", doc, err)
			}
			// Put again replaces.
			other := strings.Replace(connect, "alice", "bob", 1)
			if err := f.put(c, owner, "connect", other); err != nil {
				t.Fatal(err)
			}
			if enc, _ := f.get(c, owner, "connect"); !strings.Contains(enc, "bob") {
				t.Fatalf("PolicyDocument after replace: %s", enc)
			}
			runErrCases(t, []errCase{
				{"malformed", func() error {
					return f.put(c, owner, "bad", `{"Statement":[{"Effect":"Allow","Action":"rds-db:connect"}]}`)
				},
					"MalformedPolicyDocument", 400, malformed, "Policy statement must contain resources."},
				{"principal", func() error {
					return f.put(c, owner, "bad", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"rds-db:connect","Resource":"*"}]}`)
				}, "MalformedPolicyDocument", 400, malformed, "should not specify a principal"},
				{"put missing owner", func() error { return f.put(c, "nobody", "p", connect) }, "NoSuchEntity", 404, noSuchEntity, "nobody cannot be found"},
				{"get missing owner", func() error { _, err := f.get(c, "nobody", "p"); return err }, "NoSuchEntity", 404, noSuchEntity, ""},
				{"get missing policy", func() error { _, err := f.get(c, owner, "nope"); return err }, "NoSuchEntity", 404, noSuchEntity,
					"The " + f.kind + " policy with name nope cannot be found."},
				{"delete missing policy", func() error { return f.del(c, owner, "nope") }, "NoSuchEntity", 404, noSuchEntity, ""},
			})
			if err := f.del(c, owner, "connect"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.get(c, owner, "connect"); !noSuchEntity(err) {
				t.Fatalf("get after delete: %v", err)
			}
		})
	}
}

func TestManagedPolicies(t *testing.T) {
	c := start(t)
	out, err := c.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{
		PolicyName: aws.String("db-connect"), Path: aws.String("/db/"), PolicyDocument: aws.String(connect),
		Description: aws.String("connect as alice"),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := out.Policy
	if *p.Arn != "arn:aws:iam::000000000000:policy/db/db-connect" || !strings.HasPrefix(*p.PolicyId, "ANPA") ||
		!uniqueID.MatchString(*p.PolicyId) || *p.DefaultVersionId != "v1" || *p.AttachmentCount != 0 || !p.IsAttachable ||
		*p.Path != "/db/" || *p.Description != "connect as alice" {
		t.Fatalf("CreatePolicy: %+v", p)
	}
	createUser(t, c, "alice")
	createRole(t, c, "role")
	attachments := []struct {
		kind   string
		attach func(arn string) error
		detach func(arn string) error
		list   func(prefix *string) ([]types.AttachedPolicy, error)
	}{
		{"user",
			func(arn string) error {
				_, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)})
				return err
			},
			func(arn string) error {
				_, err := c.iam.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)})
				return err
			},
			func(prefix *string) ([]types.AttachedPolicy, error) {
				out, err := c.iam.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: aws.String("alice"), PathPrefix: prefix})
				if err != nil {
					return nil, err
				}
				return out.AttachedPolicies, nil
			}},
		{"role",
			func(arn string) error {
				_, err := c.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("role"), PolicyArn: aws.String(arn)})
				return err
			},
			func(arn string) error {
				_, err := c.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String("role"), PolicyArn: aws.String(arn)})
				return err
			},
			func(prefix *string) ([]types.AttachedPolicy, error) {
				out, err := c.iam.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("role"), PathPrefix: prefix})
				if err != nil {
					return nil, err
				}
				return out.AttachedPolicies, nil
			}},
	}
	const admin = "arn:aws:iam::aws:policy/AdministratorAccess"
	for i, a := range attachments {
		if err := a.attach(*p.Arn); err != nil {
			t.Fatalf("attach to %s: %v", a.kind, err)
		}
		if err := a.attach(*p.Arn); err != nil { // idempotent
			t.Fatalf("attach twice to %s: %v", a.kind, err)
		}
		if err := a.attach(admin); err != nil {
			t.Fatalf("attach AdministratorAccess to %s: %v", a.kind, err)
		}
		list, err := a.list(nil)
		if err != nil || len(list) != 2 || *list[0].PolicyArn != *p.Arn || *list[0].PolicyName != "db-connect" || *list[1].PolicyArn != admin {
			t.Fatalf("list attached to %s: %v %+v", a.kind, err, list)
		}
		if list, err := a.list(aws.String("/db/")); err != nil || len(list) != 1 {
			t.Fatalf("list attached to %s under /db/: %v %+v", a.kind, err, list)
		}
		got, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: p.Arn})
		if err != nil || *got.Policy.AttachmentCount != int32(i+1) || *got.Policy.PolicyId != *p.PolicyId {
			t.Fatalf("GetPolicy after attaching to %s: %v %+v", a.kind, err, got)
		}
	}
	if got, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(admin)}); err != nil || *got.Policy.PolicyName != "AdministratorAccess" {
		t.Fatalf("GetPolicy AdministratorAccess: %v", err)
	}

	deletePolicy := func(arn string) func() error {
		return func() error {
			_, err := c.iam.DeletePolicy(ctx, &iam.DeletePolicyInput{PolicyArn: aws.String(arn)})
			return err
		}
	}
	cases := []errCase{
		{"duplicate", func() error {
			_, err := c.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("DB-CONNECT"), PolicyDocument: aws.String(connect)})
			return err
		}, "EntityAlreadyExists", 409, alreadyExists, "A policy called DB-CONNECT already exists."},
		{"malformed", func() error {
			_, err := c.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("x"), PolicyDocument: aws.String(`{"Statement":"x"}`)})
			return err
		}, "MalformedPolicyDocument", 400, malformed, ""},
		{"get missing", func() error {
			_, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String("arn:aws:iam::000000000000:policy/none")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "Policy arn:aws:iam::000000000000:policy/none was not found."},
		{"get wrong path", func() error {
			_, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String("arn:aws:iam::000000000000:policy/db-connect")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		{"get other account", func() error {
			_, err := c.as("123456789012", "test", "").iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: p.Arn})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		{"invalid arn", func() error {
			_, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String("arn:aws:s3:::bucket/policy")})
			return err
		}, "InvalidInput", 400, invalidInput, "is not valid"},
		{"delete attached", deletePolicy(*p.Arn), "DeleteConflict", 409, deleteConflict, "Cannot delete a policy attached to entities."},
		{"delete missing", deletePolicy("arn:aws:iam::000000000000:policy/none"), "NoSuchEntity", 404, noSuchEntity, ""},
		{"delete aws managed", deletePolicy(admin), "InvalidInput", 400, invalidInput, ""},
	}
	for _, a := range attachments {
		cases = append(cases,
			errCase{"attach missing policy to " + a.kind, func() error { return a.attach("arn:aws:iam::000000000000:policy/none") },
				"NoSuchEntity", 404, noSuchEntity, "does not exist or is not attachable"},
			errCase{"attach invalid arn to " + a.kind, func() error { return a.attach("arn:aws:iam::000000000000:user/alice") },
				"InvalidInput", 400, invalidInput, ""},
			errCase{"detach unattached from " + a.kind, func() error { return a.detach("arn:aws:iam::000000000000:policy/none") },
				"NoSuchEntity", 404, noSuchEntity, "was not found"},
		)
	}
	cases = append(cases,
		errCase{"attach to missing user", func() error {
			_, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("nobody"), PolicyArn: p.Arn})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The user with name nobody cannot be found."},
		errCase{"attach to missing role", func() error {
			_, err := c.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("nobody"), PolicyArn: p.Arn})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, "The role with name nobody cannot be found."},
		errCase{"list for missing user", func() error {
			_, err := c.iam.ListAttachedUserPolicies(ctx, &iam.ListAttachedUserPoliciesInput{UserName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
		errCase{"list for missing role", func() error {
			_, err := c.iam.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("nobody")})
			return err
		}, "NoSuchEntity", 404, noSuchEntity, ""},
	)
	runErrCases(t, cases)

	// Quota: ten managed policies per user.
	for i := range 8 {
		mp := createPolicy(t, c, fmt.Sprintf("q%d", i), connect)
		if err := attachments[0].attach(*mp.Arn); err != nil {
			t.Fatalf("attach policy %d: %v", i+3, err)
		}
	}
	extra := createPolicy(t, c, "q-extra", connect)
	runErrCases(t, []errCase{{"eleventh policy", func() error { return attachments[0].attach(*extra.Arn) },
		"LimitExceeded", 409, limitExceeded, "PoliciesPerUser: 10"}})

	for _, a := range attachments {
		if err := a.detach(*p.Arn); err != nil {
			t.Fatalf("detach from %s: %v", a.kind, err)
		}
	}
	if err := deletePolicy(*p.Arn)(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: p.Arn}); !noSuchEntity(err) {
		t.Fatalf("GetPolicy after delete: %v", err)
	}
}

func TestPagination(t *testing.T) {
	c := start(t)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("user-%02d", i)
		want = append(want, name)
		createUser(t, c, name)
		createRole(t, c, fmt.Sprintf("role-%02d", i))
	}
	for _, tc := range []struct {
		name      string
		maxItems  int32
		wantPages int
	}{
		{"pages of 10", 10, 3},
		{"pages of 1", 1, 25},
		{"pages of 25", 25, 1},
		{"default", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &iam.ListUsersInput{}
			if tc.maxItems > 0 {
				in.MaxItems = aws.Int32(tc.maxItems)
			}
			var got []string
			pages := 0
			for p := iam.NewListUsersPaginator(c.iam, in); p.HasMorePages(); {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, u := range out.Users {
					got = append(got, *u.UserName)
				}
				if out.IsTruncated != (out.Marker != nil) {
					t.Fatalf("IsTruncated %v with marker %v", out.IsTruncated, out.Marker)
				}
			}
			if pages != tc.wantPages || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("%d pages: %v", pages, got)
			}
			roles := 0
			for p := iam.NewListRolesPaginator(c.iam, &iam.ListRolesInput{MaxItems: in.MaxItems}); p.HasMorePages(); {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				roles += len(out.Roles)
			}
			if roles != 25 {
				t.Fatalf("ListRoles paginator saw %d roles", roles)
			}
		})
	}
	// The other list actions page the same way.
	for i := range 3 {
		mp := createPolicy(t, c, fmt.Sprintf("p%d", i), connect)
		if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("user-00"), PolicyArn: mp.Arn}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("role-00"), PolicyArn: mp.Arn}); err != nil {
			t.Fatal(err)
		}
	}
	createKey(t, c, "user-00")
	createKey(t, c, "user-00")
	count := func(next func() (int, bool, error)) int {
		t.Helper()
		n := 0
		for more := true; more; {
			got, m, err := next()
			if err != nil {
				t.Fatal(err)
			}
			n, more = n+got, m
		}
		return n
	}
	up := iam.NewListAttachedUserPoliciesPaginator(c.iam, &iam.ListAttachedUserPoliciesInput{UserName: aws.String("user-00"), MaxItems: aws.Int32(2)})
	rp := iam.NewListAttachedRolePoliciesPaginator(c.iam, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("role-00"), MaxItems: aws.Int32(2)})
	kp := iam.NewListAccessKeysPaginator(c.iam, &iam.ListAccessKeysInput{UserName: aws.String("user-00"), MaxItems: aws.Int32(1)})
	if n := count(func() (int, bool, error) {
		o, err := up.NextPage(ctx)
		if err != nil {
			return 0, false, err
		}
		return len(o.AttachedPolicies), up.HasMorePages(), nil
	}); n != 3 {
		t.Fatalf("ListAttachedUserPolicies paginator: %d", n)
	}
	if n := count(func() (int, bool, error) {
		o, err := rp.NextPage(ctx)
		if err != nil {
			return 0, false, err
		}
		return len(o.AttachedPolicies), rp.HasMorePages(), nil
	}); n != 3 {
		t.Fatalf("ListAttachedRolePolicies paginator: %d", n)
	}
	if n := count(func() (int, bool, error) {
		o, err := kp.NextPage(ctx)
		if err != nil {
			return 0, false, err
		}
		return len(o.AccessKeyMetadata), kp.HasMorePages(), nil
	}); n != 2 {
		t.Fatalf("ListAccessKeys paginator: %d", n)
	}

	runErrCases(t, []errCase{
		{"bad marker", func() error {
			_, err := c.iam.ListUsers(ctx, &iam.ListUsersInput{Marker: aws.String("garbage")})
			return err
		}, "ValidationError", 400, nil, "Marker"},
		{"MaxItems 0", func() error {
			_, err := c.iam.ListUsers(ctx, &iam.ListUsersInput{MaxItems: aws.Int32(0)})
			return err
		}, "ValidationError", 400, nil, "greater than or equal to 1"},
		{"MaxItems 1001", func() error {
			_, err := c.iam.ListRoles(ctx, &iam.ListRolesInput{MaxItems: aws.Int32(1001)})
			return err
		}, "ValidationError", 400, nil, "less than or equal to 1000"},
	})
}

// TestReadingPolicies covers the actions that read policies back (what
// `rdslocal fixtures export` uses): ListPolicies by scope, GetPolicyVersion,
// ListUserPolicies and ListRolePolicies.
func TestReadingPolicies(t *testing.T) {
	c := start(t)
	mp, err := c.iam.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("connect"), Path: aws.String("/app/"), PolicyDocument: aws.String(connect)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(mp.Policy.Arn)
	if _, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("proxy"), AssumeRolePolicyDocument: aws.String(trustDoc)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b-second", "a-first"} {
		if _, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("proxy"), PolicyName: aws.String(name), PolicyDocument: aws.String(connect)}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		scope types.PolicyScopeType
		only  bool
		want  []string
	}{
		{types.PolicyScopeTypeLocal, false, []string{arn}},
		{types.PolicyScopeTypeAws, false, []string{"arn:aws:iam::aws:policy/AdministratorAccess"}},
		{types.PolicyScopeTypeAll, false, []string{"arn:aws:iam::aws:policy/AdministratorAccess", arn}},
		{types.PolicyScopeTypeAll, true, []string{arn}},
	}
	for _, tt := range tests {
		out, err := c.iam.ListPolicies(ctx, &iam.ListPoliciesInput{Scope: tt.scope, OnlyAttached: tt.only})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range out.Policies {
			got = append(got, aws.ToString(p.Arn))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ListPolicies(%s, only attached %v) = %v, want %v", tt.scope, tt.only, got, tt.want)
		}
	}

	v, err := c.iam.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: mp.Policy.DefaultVersionId})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := url.QueryUnescape(aws.ToString(v.PolicyVersion.Document))
	if err != nil || doc != connect || !v.PolicyVersion.IsDefaultVersion {
		t.Errorf("GetPolicyVersion: document %q (%v), default %v", doc, err, v.PolicyVersion.IsDefaultVersion)
	}
	_, err = c.iam.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: aws.String("v2")})
	wantCode(t, err, "NoSuchEntity", 404)

	rp, err := c.iam.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String("proxy")})
	if err != nil || fmt.Sprint(rp.PolicyNames) != "[b-second a-first]" {
		t.Errorf("ListRolePolicies = %v, %v; want [b-second a-first]", rp, err)
	}
	up, err := c.iam.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: aws.String("alice")})
	if err != nil || len(up.PolicyNames) != 0 {
		t.Errorf("ListUserPolicies = %v, %v; want none", up, err)
	}
	_, err = c.iam.ListUserPolicies(ctx, &iam.ListUserPoliciesInput{UserName: aws.String("bob")})
	wantCode(t, err, "NoSuchEntity", 404)
}
