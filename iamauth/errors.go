package iamauth

import (
	"errors"
	"fmt"
)

// Sentinel kinds of authentication failure. Every error returned by this
// package is an *Error wrapping exactly one of them, so callers map a failure
// to an AWS error code with errors.Is and log Error() for the human reason.
var (
	// ErrMissingAuth: the request carries no Authorization header and no
	// presigned X-Amz-Signature (AWS: MissingAuthenticationToken).
	ErrMissingAuth = errors.New("missing authentication")
	// ErrMalformed: the Authorization header, presigned query or IAM auth
	// token is not well formed, or uses an algorithm, action, signed-header
	// set or expiry this package does not accept (AWS: IncompleteSignature
	// for API requests; for tokens the login simply fails).
	ErrMalformed = errors.New("malformed signature")
	// ErrUnknownKey: the access key id is not known to the credential store
	// (AWS: InvalidClientTokenId for query services,
	// UnrecognizedClientException for JSON services).
	ErrUnknownKey = errors.New("unknown access key")
	// ErrSignatureMismatch: the recomputed signature differs from the one
	// presented (AWS: SignatureDoesNotMatch).
	ErrSignatureMismatch = errors.New("signature does not match")
	// ErrExpired: the request or token is older than its validity window
	// (AWS: RequestExpired, or SignatureDoesNotMatch "Signature expired").
	ErrExpired = errors.New("signature expired")
	// ErrNotYetValid: the request or token is dated further in the future
	// than the allowed clock skew (AWS: SignatureDoesNotMatch "Signature not
	// yet current").
	ErrNotYetValid = errors.New("signature not yet valid")
	// ErrCredentialsExpired: the access key is a temporary credential whose
	// expiry has passed (AWS: ExpiredToken).
	ErrCredentialsExpired = errors.New("credentials expired")
	// ErrInvalidSessionToken: a temporary access key was used without its
	// session token or with a different one (AWS: InvalidClientTokenId,
	// "The security token included in the request is invalid").
	ErrInvalidSessionToken = errors.New("invalid session token")
	// ErrScopeMismatch: a well-formed, possibly correctly signed token was
	// issued for another host, port, database user, region or service than
	// the connection it is presented on.
	ErrScopeMismatch = errors.New("token scope mismatch")
)

// Error is an authentication failure: a Kind (one of the sentinel errors
// above, reachable with errors.Is) and a Reason written for the operator's
// log. Reasons name access key ids, hosts, users and times, never secrets,
// session tokens or signatures.
type Error struct {
	Kind   error
	Reason string
}

// Error returns the human reason.
func (e *Error) Error() string { return e.Reason }

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}
