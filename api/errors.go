package api

import (
	"fmt"
	"net/http"
)

// Error is an AWS error as both protocols render it: a code, a message, the
// HTTP status from the service model, and whether the caller is at fault.
type Error struct {
	Code    string
	Message string
	Status  int
	// Receiver marks a server-side fault (<Type>Receiver</Type>); client
	// errors, the common case, are Sender faults.
	Receiver bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError returns a client (Sender) error with the given code and status.
func NewError(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// InvalidParameterValue is the query protocol's error for a bad value.
func InvalidParameterValue(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, "InvalidParameterValue", format, args...)
}

// InvalidParameterCombination is the query protocol's error for parameters
// that cannot be used together.
func InvalidParameterCombination(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, "InvalidParameterCombination", format, args...)
}

// MissingParameter is the query protocol's error for an absent required
// parameter.
func MissingParameter(name string) *Error {
	return NewError(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter %s", name)
}

// InternalFailure is the error for a fault inside rdslocal.
func InternalFailure(msg string) *Error {
	return &Error{Code: "InternalFailure", Status: http.StatusInternalServerError, Message: msg, Receiver: true}
}
