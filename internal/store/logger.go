package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// gormLogger reports failed statements at slog error level and nothing
// else. SQL is logged with its placeholders, never with parameter values
// (which include sealed secrets and customer data). Outcomes the store
// turns into NotFound or Conflict, and cancellations by the caller, are not
// failures of the database and are not logged.
type gormLogger struct {
	inner logger.Interface
}

func newGormLogger(l *slog.Logger) *gormLogger {
	return &gormLogger{inner: logger.NewSlogLogger(l.With("component", "gorm"), logger.Config{
		LogLevel:                  logger.Error,
		ParameterizedQueries:      true,
		IgnoreRecordNotFoundError: true,
		SlowThreshold:             0, // no warnings: silent except errors
	})}
}

func (g *gormLogger) LogMode(level logger.LogLevel) logger.Interface {
	return &gormLogger{inner: g.inner.LogMode(level)}
}

func (g *gormLogger) Info(context.Context, string, ...any) {}
func (g *gormLogger) Warn(context.Context, string, ...any) {}

func (g *gormLogger) Error(ctx context.Context, msg string, data ...any) {
	g.inner.Error(ctx, msg, data...)
}

func (g *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err == nil || expectedErr(err) {
		return
	}
	g.inner.Trace(ctx, begin, fc, err)
}

// ParamsFilter is what makes gorm hand Trace the SQL without values.
func (g *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

func expectedErr(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) ||
		errors.Is(err, gorm.ErrDuplicatedKey) ||
		errors.Is(err, context.Canceled)
}
