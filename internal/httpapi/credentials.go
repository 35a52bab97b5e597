package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/integrations"
)

// reauthenticate replaces an integration's credentials and validates them
// at once; the answer is the validation's. The body is never logged.
func (h *handlers) reauthenticate(c *gin.Context) {
	var in integrations.AuthInput
	if err := bindStrict(c, &in); err != nil {
		writeError(c, h.Log, err)
		return
	}
	it, v, err := h.Integrations.Reauthenticate(c.Request.Context(), tenantOf(c), c.Param("id"), in)
	h.respond(c, http.StatusOK, validateResponse{it, v}, err)
}
