package store

import (
	"errors"

	"gorm.io/gorm"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// mapError turns a gorm/driver error into the service's error type. what
// names the thing for the caller-safe message ("installation").
func mapError(err error, what string) error {
	if err == nil {
		return nil
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return ae
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return apperr.Wrap(err, apperr.NotFound, "%s not found", what)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return apperr.Wrap(err, apperr.Conflict, "%s already exists", what).WithReason("unique_violation")
	default:
		return apperr.Wrap(err, apperr.Internal, "database error (%s)", what)
	}
}
