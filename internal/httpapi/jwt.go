package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/atlassianjwt"
)

const (
	ctxClientKey = "client_key"
	ctxClaims    = "jwt_claims"
)

// requireJWT authenticates a call from Jira with the installation's shared
// secret (HS256). allowContext admits the fixed "context-qsh" claim of
// context tokens that pages obtain with AP.context.getToken(); it is set only
// on routes meant for such AJAX calls, never for webhooks or lifecycle.
func (h *handlers) requireJWT(allowContext bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		claims, err := h.verifyHS256(c, allowContext)
		if err != nil {
			h.reject(c, err)
			return
		}
		c.Set(ctxClientKey, claims.Issuer)
		c.Set(ctxClaims, claims)
		c.Next()
	}
}

func (h *handlers) verifyHS256(c *gin.Context, allowContext bool) (*atlassianjwt.Claims, error) {
	tok, err := atlassianjwt.ExtractToken(c.Request)
	if err != nil {
		return nil, err
	}
	return h.JWT.Verify(c.Request.Context(), tok, c.Request.Method, c.Request.URL, allowContext)
}

// reject counts a JWT refusal by its hidden reason and answers with the
// uniform 401, so a caller cannot tell an unknown issuer from a bad signature.
func (h *handlers) reject(c *gin.Context, err error) {
	reason := apperr.ReasonOf(err)
	if reason == "" {
		reason = "other"
	}
	h.Metrics.JWTRejections.WithLabelValues(reason).Inc()
	h.Log.InfoContext(c.Request.Context(), "jwt rejected", "route", c.FullPath(), "reason", reason, "request_id", c.GetString(ctxRequestID))
	writeError(c, h.Log, err)
}

func claimsOf(c *gin.Context) *atlassianjwt.Claims {
	v, _ := c.Get(ctxClaims)
	cl, _ := v.(*atlassianjwt.Claims)
	return cl
}
