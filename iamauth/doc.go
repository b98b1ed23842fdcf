// Package iamauth owns AWS authentication and authorization in rdslocal: the
// credentials the emulator knows (access keys and STS session credentials),
// verification of SigV4-signed API requests, validation of the RDS IAM auth
// tokens that database clients present as passwords to a proxy endpoint, a
// minimal IAM and STS API that creates those credentials, and the identity
// policy evaluation behind rds-db:connect checks.
//
// # Credentials
//
// A CredentialLookup maps an access key id to a Credential: its secret, its
// session token and expiry when it is temporary, the principal ARN and the
// account. StaticCredentials is the built-in LocalStack-compatible set
// (test/test in account 000000000000; a 12-digit key id with secret "test"
// in the account of that number). Store is the mutable set the IAM and STS
// actions fill, snapshotted to JSON for persistence. Chain combines them,
// typically Chain{store, StaticCredentials{}}.
//
// # The IAM and STS front-end
//
// Directory holds the IAM state of every account (users, roles, managed and
// inline policies, attachments, access keys) plus a Store of every secret:
// the keys CreateAccessKey makes (AKIA…, Principal the user's ARN, Account
// the caller's account) and the temporary credentials AssumeRole and
// GetSessionToken issue (ASIA…, with session token, expiry and the
// assumed-role or caller principal). IAMService and STSService expose it as
// two query-protocol services sharing one state and one saved snapshot
// (StateKey "iam"); Snapshot, Restore and Reset cover all of it, secrets
// included. A request flows like this:
//
//  1. the gateway validates the form against the IAM or STS model and calls
//     the handler; a wrapper first applies the model's length and range
//     limits (ValidationError), which the query decoder does not check;
//  2. the handler resolves the caller from its access key through the
//     directory: a key the directory issued carries its own account and
//     principal; test/test, 12-digit keys and unknown keys are the account
//     root, as in LocalStack;
//  3. it works on that account's state under the directory's lock and
//     answers AWS's shapes and errors (NoSuchEntity 404, EntityAlreadyExists
//     409, DeleteConflict 409, LimitExceeded 409, MalformedPolicyDocument
//     400, ValidationError 400). Policy documents are checked against IAM's
//     grammar when stored and returned URL-encoded, as IAM does.
//
// AssumeRole accepts any well-formed role ARN unless Directory.Strict is set
// (--enforce-iam), when the role must exist; trust policies are stored but
// not evaluated, and session policies are validated but not applied.
//
// Directory is also the CredentialLookup for the gateway and the token
// validator (Lookup): the store first, then StaticCredentials.
//
// # Policy evaluation
//
// Directory.Authorize(identity, action, resource) decides an rds-db:connect
// (or any) request under --enforce-iam. The root principal is always
// allowed. For an IAM user it gathers the user's inline and attached managed
// policies; for an assumed-role session, the role's. The request is allowed
// iff some Allow statement matches and no Deny statement does. A statement
// matches when its Action (or NotAction) and Resource (or NotResource) match:
// string or list values, '*' and '?' wildcards, actions compared without
// regard to case, resources with. What is not modelled errs on the safe
// side: a Condition block is never evaluated, so a conditional Allow never
// allows and a conditional Deny always denies when its Action and Resource
// match; policy variables such as ${aws:username} are not substituted, so an
// Allow resource holding one matches only itself literally and a Deny
// resource holding one matches everything. Permissions boundaries (stored
// and shown), session policies, resource policies and SCPs are not
// evaluated. A denial is an *Error of kind ErrAccessDenied whose Reason names
// the principal, the action, the resource and, for an explicit Deny, the
// policy, for the proxy's log.
//
// # API requests
//
// The HTTP gateway reads the body, then calls Authenticate (or VerifyRequest)
// with the request as received, the exact body bytes, a CredentialLookup and
// the current time:
//
//  1. the Authorization header is parsed (ParseAuthorization), or, when
//     there is none, the X-Amz-* query parameters (ParsePresignedQuery);
//  2. the request date is checked against the clock;
//  3. the access key is looked up, and a temporary key's expiry and session
//     token checked;
//  4. the canonical request is rebuilt from the method, the path, the
//     sorted query, exactly the headers listed in SignedHeaders and the
//     SHA-256 of the body, and its signature compared in constant time.
//
// Every failure is an *Error wrapping one sentinel (ErrUnknownKey,
// ErrSignatureMismatch, …) so the gateway picks the AWS error code with
// errors.Is, and carrying a Reason for the log.
//
// # RDS IAM auth tokens
//
// A token is a presigned GET of https://host:port/?Action=connect&DBUser=…
// for service rds-db, with the scheme stripped. The proxy, once the client's
// password arrives over TLS, calls TokenValidator.Validate with the password
// and a TokenExpectation: the endpoint addresses the client may have dialled,
// the proxy's region and the login user. Validate parses the token
// (ParseToken: both the CLI's "host:port/?…" and aws-sdk-go-v2's
// "host:port?…" forms), checks what it claims against the expectation and
// the clock, looks up the key and recomputes the signature. Accepted tokens
// are cached until they expire, so a client reconnecting with the same token
// costs a cache lookup and a credential lookup (which notices deleted or
// rotated keys). Validate returns the signer's Identity, which the proxy
// passes to Directory.Authorize for rds-db:connect when IAM is enforced.
//
// The package has no package-level mutable state (the one built-in AWS
// managed policy, AdministratorAccess, is a read-only value) and does no I/O.
package iamauth
