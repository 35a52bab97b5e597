package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/integrations"
)

func timeParam(c *gin.Context, name string, fields map[string]string) *time.Time {
	s := c.Query(name)
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		fields[name] = "must be an RFC 3339 time such as 2026-01-31T00:00:00Z"
		return nil
	}
	return &t
}

func (h *handlers) listIssues(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	f := map[string]string{}
	q := integrations.IssueQuery{Project: c.Query("project"), Status: c.Query("status"), Cursor: cursor, Limit: limit,
		UpdatedFrom: timeParam(c, "updated_from", f), UpdatedTo: timeParam(c, "updated_to", f)}
	if len(f) > 0 {
		writeError(c, h.Log, apperr.Validation(f))
		return
	}
	p, err := h.Integrations.Issues(c.Request.Context(), tenantOf(c), c.Param("id"), q)
	h.respond(c, http.StatusOK, p, err)
}

func (h *handlers) getIssue(c *gin.Context) {
	is, err := h.Integrations.Issue(c.Request.Context(), tenantOf(c), c.Param("id"), c.Param("key"))
	h.respond(c, http.StatusOK, is, err)
}

func (h *handlers) listUsers(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	p, err := h.Integrations.Users(c.Request.Context(), tenantOf(c), c.Param("id"), cursor, limit)
	h.respond(c, http.StatusOK, p, err)
}

type syncRequest struct {
	Mode string `json:"mode"`
}

func (h *handlers) requestSync(c *gin.Context) {
	req := syncRequest{Mode: "incremental"}
	if c.Request.ContentLength != 0 {
		if err := bindStrict(c, &req); err != nil {
			writeError(c, h.Log, err)
			return
		}
	}
	queued, err := h.Integrations.RequestSync(c.Request.Context(), tenantOf(c), c.Param("id"), req.Mode)
	h.respond(c, http.StatusAccepted, gin.H{"queued": queued, "mode": req.Mode}, err)
}
