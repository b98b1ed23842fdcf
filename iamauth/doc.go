// Package iamauth owns AWS authentication in rdslocal: the credentials the
// emulator knows (access keys and STS session credentials), verification of
// SigV4-signed API requests, and validation of the RDS IAM auth tokens that
// database clients present as passwords to a proxy endpoint. The IAM/STS API
// front-end and rds-db:connect policy checks will live here too; they are not
// written yet.
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
// rotated keys). Validate returns the signer's Identity, which the
// proxy will use for rds-db:connect authorization.
//
// The package has no package-level mutable state and does no I/O.
package iamauth
