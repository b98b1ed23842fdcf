package acmcert

import (
	"fmt"
	"net/http"
	"regexp"

	"github.com/rdslocal/rdslocal/api"
)

// ACM's error codes. The model gives none of them an HTTP status, so
// awsJson1.1 sends 400 for all.
const (
	codeResourceNotFound     = "ResourceNotFoundException"
	codeInvalidARN           = "InvalidArnException"
	codeValidation           = "ValidationException"
	codeInvalidArgs          = "InvalidArgsException"
	codeResourceInUse        = "ResourceInUseException"
	codeInvalidTag           = "InvalidTagException"
	codeTooManyTags          = "TooManyTagsException"
	codeLimitExceeded        = "LimitExceededException"
	codeInvalidDomainOptions = "InvalidDomainValidationOptionsException"
)

// Patterns of the ACM model that the embedded model does not carry; a value
// that does not fit is a ValidationException, as ACM's request validation
// reports it.
var (
	arnPattern    = regexp.MustCompile(`^arn:[\w+=/,.@-]+:acm:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*$`)
	pcaARNPattern = regexp.MustCompile(`^arn:[\w+=/,.@-]+:acm-pca:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*$`)
	tokenPattern  = regexp.MustCompile(`^\w+$`)
	tagPattern    = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// patternText is how ACM's messages spell each pattern.
var patternText = map[*regexp.Regexp]string{
	arnPattern:    `arn:[\w+=/,.@-]+:acm:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*`,
	pcaARNPattern: `arn:[\w+=/,.@-]+:acm-pca:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*`,
	tokenPattern:  `\w+`,
	tagPattern:    `[\p{L}\p{Z}\p{N}_.:\/=+\-@]*`,
}

// domainPatternText is the model's DomainNameString pattern, which Go's
// regexp cannot express (it uses lookahead); validDomainName implements it.
const domainPatternText = `(\*\.)?(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])`

func acmError(code, format string, args ...any) *api.Error {
	return api.NewError(http.StatusBadRequest, code, "%s", fmt.Sprintf(format, args...))
}

// errValidation is one constraint violation in the framework's wording.
func errValidation(value, path, constraint string) *api.Error {
	return acmError(codeValidation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, path, constraint)
}

func errPattern(value, path string, re *regexp.Regexp) *api.Error {
	return errValidation(value, path, "Member must satisfy regular expression pattern: "+patternText[re])
}

func errDomainPattern(value, path string) *api.Error {
	return errValidation(value, path, "Member must satisfy regular expression pattern: "+domainPatternText)
}

func errCertNotFound(arn string) *api.Error {
	return acmError(codeResourceNotFound, "Could not find certificate with arn %s.", arn)
}

func errInvalidARN(arn string) *api.Error {
	return acmError(codeInvalidARN, "String '%s' is not a valid certificate ARN.", arn)
}
