package httpapi

import (
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/lifecycle"
)

var (
	notFound         = apperr.New(apperr.NotFound, "no such route")
	methodNotAllowed = apperr.New(apperr.NotAllowed, "method not allowed for this route")
)

func (h *handlers) healthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 503 until the database answers and its schema is current,
// so a load balancer keeps traffic away from a replica that cannot serve it.
func (h *handlers) readyz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if err := h.Ready(c.Request.Context()); err != nil {
		h.Log.WarnContext(c.Request.Context(), "not ready", "error", err.Error())
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": apperr.As(err).Message})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (h *handlers) descriptor(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json; charset=utf-8", h.Descriptor.JSON)
}

// decodeJSON reads one JSON value from the (size-limited) body of a call
// from Jira, tolerating fields Atlassian adds over time. Malformed input is
// the caller's fault: 400, never 500.
func decodeJSON(c *gin.Context, v any) error { return decodeBody(c, v, false) }

// verifyInstall authenticates installed/uninstalled: an RS256 token signed
// by Atlassian's install key whose iss is the body's clientKey. The token is
// verified before the body is even parsed.
func (h *handlers) verifyInstall(c *gin.Context) (*lifecycle.Payload, bool) {
	tok, err := atlassianjwt.ExtractToken(c.Request)
	var claims *atlassianjwt.Claims
	if err == nil {
		claims, err = h.Install.Verify(c.Request.Context(), tok, c.Request.Method, c.Request.URL)
	}
	if err != nil {
		h.reject(c, err)
		return nil, false
	}
	var p lifecycle.Payload
	if err := decodeJSON(c, &p); err != nil {
		writeError(c, h.Log, err)
		return nil, false
	}
	if p.ClientKey == "" || claims.Issuer != p.ClientKey {
		h.reject(c, apperr.Unauth("iss_mismatch"))
		return nil, false
	}
	c.Set(ctxClientKey, p.ClientKey)
	return &p, true
}

func (h *handlers) installed(c *gin.Context) {
	p, ok := h.verifyInstall(c)
	if !ok {
		return
	}
	if err := h.Lifecycle.Installed(c.Request.Context(), p); err != nil {
		writeError(c, h.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *handlers) uninstalled(c *gin.Context) {
	p, ok := h.verifyInstall(c)
	if !ok {
		return
	}
	if err := h.Lifecycle.Uninstalled(c.Request.Context(), p.ClientKey); err != nil {
		writeError(c, h.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *handlers) enabled(c *gin.Context)  { h.setEnabled(c, true) }
func (h *handlers) disabled(c *gin.Context) { h.setEnabled(c, false) }

// setEnabled handles enabled/disabled, signed with the shared secret. Jira
// can send a last disabled after the uninstall erased that secret; such a
// call cannot verify, so when its clientKey names no live installation it
// gets 204 and changes nothing (there is nothing left to change).
func (h *handlers) setEnabled(c *gin.Context, enabled bool) {
	claims, verr := h.verifyHS256(c, false)
	var p lifecycle.Payload
	if err := decodeJSON(c, &p); err != nil {
		if verr != nil {
			h.reject(c, verr)
			return
		}
		writeError(c, h.Log, err)
		return
	}
	if verr != nil {
		if !enabled && p.ClientKey != "" {
			if gone, err := h.Lifecycle.IsGone(c.Request.Context(), p.ClientKey); err == nil && gone {
				c.Status(http.StatusNoContent)
				return
			}
		}
		h.reject(c, verr)
		return
	}
	if claims.Issuer != p.ClientKey {
		h.reject(c, apperr.Unauth("iss_mismatch"))
		return
	}
	c.Set(ctxClientKey, p.ClientKey)
	if err := h.Lifecycle.SetEnabled(c.Request.Context(), p.ClientKey, enabled); err != nil {
		writeError(c, h.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// webhook accepts a verified Jira webhook: it records which issue changed
// and schedules a fresh read of it, without calling Jira, so Jira has its
// answer in milliseconds.
func (h *handlers) webhook(c *gin.Context) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	if err := h.Webhooks.Accept(c.Request.Context(), claimsOf(c).Issuer, body); err != nil {
		writeError(c, h.Log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func frameAncestors(hosts []string) string {
	parts := []string{"'self'"}
	for _, p := range hosts {
		if strings.HasPrefix(p, "*.") {
			parts = append(parts, "https://"+p)
		} else {
			parts = append(parts, "https://"+p, "http://"+p+":*")
		}
	}
	return strings.Join(parts, " ")
}
