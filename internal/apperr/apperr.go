// Package apperr owns the service's single error type. Domain packages
// return *Error with a Code; the HTTP layer maps codes to status codes in
// one table and writes one JSON shape. Only CodeInternal errors are logged
// with their detail, because every other code is the caller's fault and its
// message is already safe to show.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for callers; it decides the HTTP status.
type Code string

const (
	Invalid      Code = "invalid"            // 400: the request is malformed or fails validation
	Unauthorized Code = "unauthorized"       // 401: missing or bad credentials (JWT, API key)
	Forbidden    Code = "forbidden"          // 403: authenticated but not allowed
	NotFound     Code = "not_found"          // 404
	NotAllowed   Code = "method_not_allowed" // 405
	Conflict     Code = "conflict"           // 409
	TooLarge     Code = "too_large"          // 413
	RateLimited  Code = "rate_limited"       // 429
	Unavailable  Code = "unavailable"        // 503: a dependency is down; retry later
	Internal     Code = "internal"           // 500: a bug or an unexpected failure
)

// Error is the one error type of the service.
//
// Message is shown to the caller and must never contain a secret. Reason is a
// short machine label (for metrics and logs, e.g. "bad_signature") that is
// deliberately not shown, so callers cannot tell one rejection from another
// where that would let them probe (unknown issuer vs bad signature).
type Error struct {
	Code       Code
	Message    string
	Reason     string
	Fields     map[string]string // per-field validation messages
	RetryAfter time.Duration     // for RateLimited / Unavailable
	Err        error             // wrapped cause; logged only for Internal
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code and a caller-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code and message that keeps err as its cause.
func Wrap(err error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// WithReason sets the machine-readable reason and returns e.
func (e *Error) WithReason(reason string) *Error { e.Reason = reason; return e }

// Unauth returns the uniform authentication failure with a hidden reason.
func Unauth(reason string) *Error {
	return &Error{Code: Unauthorized, Message: "authentication failed", Reason: reason}
}

// Validation returns an Invalid error with one message per field.
func Validation(fields map[string]string) *Error {
	return &Error{Code: Invalid, Message: "validation failed", Fields: fields}
}

// CodeOf returns the code of err, Internal for foreign errors and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// ReasonOf returns the machine reason of err, or "" if it has none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// As returns err as *Error, converting foreign errors to Internal ones.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}
