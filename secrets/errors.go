package secrets

import (
	"fmt"
	"net/http"

	"github.com/rdslocal/rdslocal/api"
)

// Secrets Manager's error codes. The model gives none of them an HTTP status,
// so awsJson1.1 sends 400 for all.
const (
	codeNotFound         = "ResourceNotFoundException"
	codeExists           = "ResourceExistsException"
	codeInvalidParameter = "InvalidParameterException"
	codeInvalidRequest   = "InvalidRequestException"
	codeInvalidNextToken = "InvalidNextTokenException"
)

func newError(code, format string, args ...any) *api.Error {
	return api.NewError(http.StatusBadRequest, code, "%s", fmt.Sprintf(format, args...))
}

func invalidParameter(format string, args ...any) *api.Error {
	return newError(codeInvalidParameter, format, args...)
}

func invalidRequest(format string, args ...any) *api.Error {
	return newError(codeInvalidRequest, format, args...)
}

func errSecretNotFound() *api.Error {
	return newError(codeNotFound, "Secrets Manager can't find the specified secret.")
}

func errNoStage(stage string) *api.Error {
	return newError(codeNotFound, "Secrets Manager can't find the specified secret value for staging label: %s", stage)
}

func errNoVersion(id string) *api.Error {
	return newError(codeNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s", id)
}

func errMarkedForDeletion() *api.Error {
	return invalidRequest("You can't perform this operation on the secret because it was marked for deletion.")
}

func errVersionExists() *api.Error {
	return newError(codeExists, "You can't modify an existing version, you can only create a new version.")
}

func errBothValues() *api.Error {
	return invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.")
}

func errInvalidNextToken() *api.Error {
	return newError(codeInvalidNextToken, "The NextToken value is invalid.")
}
