package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/hygiene"
)

// Issue hygiene report, its settings and the Salesforce mapping (issue 6).
// Query parameters are passed to internal/hygiene as given; it validates
// them.

func (h *handlers) hygieneReport(c *gin.Context) {
	limit, err := intParam(c, "limit")
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	q := hygiene.Query{From: c.Query("from"), To: c.Query("to"), Projects: c.Query("projects"), Weights: c.Query("weights"), Limit: limit}
	r, err := h.Hygiene.Report(c.Request.Context(), tenantOf(c), c.Param("id"), q)
	h.respond(c, http.StatusOK, r, err)
}

func (h *handlers) hygieneIssues(c *gin.Context) {
	limit, err := intParam(c, "limit")
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	q := hygiene.IssuesQuery{Query: hygiene.Query{From: c.Query("from"), To: c.Query("to"), Projects: c.Query("projects"), Limit: limit},
		Category: c.Query("category"), Cursor: c.Query("cursor")}
	p, err := h.Hygiene.Issues(c.Request.Context(), tenantOf(c), c.Param("id"), q)
	h.respond(c, http.StatusOK, p, err)
}

func (h *handlers) getHygieneSettings(c *gin.Context) {
	s, err := h.Hygiene.Settings(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, s, err)
}

func (h *handlers) putHygieneSettings(c *gin.Context) {
	var in hygiene.Input
	if err := bindStrict(c, &in); err != nil {
		writeError(c, h.Log, err)
		return
	}
	s, err := h.Hygiene.SaveSettings(c.Request.Context(), tenantOf(c), c.Param("id"), in)
	h.respond(c, http.StatusOK, s, err)
}

func (h *handlers) getSalesforceSettings(c *gin.Context) {
	s, err := h.Hygiene.Salesforce(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, s, err)
}

func (h *handlers) putSalesforceSettings(c *gin.Context) {
	var in hygiene.SalesforceSettings
	if err := bindStrict(c, &in); err != nil {
		writeError(c, h.Log, err)
		return
	}
	s, err := h.Hygiene.SaveSalesforce(c.Request.Context(), tenantOf(c), c.Param("id"), in)
	h.respond(c, http.StatusOK, s, err)
}

func (h *handlers) listSalesforceLinks(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	p, err := h.Hygiene.SalesforceLinks(c.Request.Context(), tenantOf(c), c.Param("id"), c.Query("case"), cursor, limit)
	h.respond(c, http.StatusOK, p, err)
}

// intParam reads an optional integer query parameter (0 when absent).
func intParam(c *gin.Context, name string) (int, error) {
	s := c.Query(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, apperr.Validation(map[string]string{name: "must be a positive integer"})
	}
	return n, nil
}
