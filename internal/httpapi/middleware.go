package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
)

const ctxRequestID = "request_id"

// observe assigns a request id, records metrics and writes one access log
// line. It logs the path only, never the query string: Jira puts the `jwt`
// token there on page loads.
func observe(m *Metrics, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := newRequestID()
		c.Set(ctxRequestID, id)
		c.Header("X-Request-Id", id)
		c.Next()

		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		elapsed := time.Since(start)
		m.Requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
		m.Latency.WithLabelValues(route, c.Request.Method).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		log.LogAttrs(c.Request.Context(), level, "request",
			slog.String("request_id", id),
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", elapsed),
			slog.String("client_key", c.GetString(ctxClientKey)),
		)
	}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recovery turns a panic into a logged internal error instead of a dropped
// connection.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				writeError(c, log, apperr.New(apperr.Internal, "panic: %v", r))
			}
		}()
		c.Next()
	}
}

// securityHeaders sets the headers every answer carries. HSTS only makes
// sense, and is only honoured, over https.
func securityHeaders(https bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if https {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		c.Next()
	}
}

// noStore marks API answers as not cacheable by browsers or proxies.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// limitBody caps how much of a request body handlers may read; reading
// beyond it fails with a *http.MaxBytesError that writeError maps to 413.
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}
