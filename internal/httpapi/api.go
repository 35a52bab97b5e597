package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/integrations"
)

const (
	ctxTenantID  = "tenant_id"
	apiBodyLimit = 1 << 20
)

// requireAPIKey authenticates /api/v1 calls with "Authorization: Bearer
// <api key>" and puts the tenant id in the context.
func (h *handlers) requireAPIKey(c *gin.Context) {
	auth := c.GetHeader("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" {
		c.Header("WWW-Authenticate", `Bearer realm="sei"`)
		writeError(c, h.Log, apperr.Unauth("api_key_missing"))
		return
	}
	tenant, err := h.Integrations.Authenticate(c.Request.Context(), strings.TrimSpace(key))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="sei"`)
		writeError(c, h.Log, err)
		return
	}
	c.Set(ctxTenantID, tenant)
	c.Next()
}

func tenantOf(c *gin.Context) string { return c.GetString(ctxTenantID) }

// bindStrict decodes a JSON body of the SEI API, refusing unknown fields,
// trailing data and bodies over the limit, with one message per offending
// field.
func bindStrict(c *gin.Context, v any) error { return decodeBody(c, v, true) }

// decodeBody reads one JSON value from the size-limited body; strict
// refuses unknown fields and names them.
func decodeBody(c *gin.Context, v any, strict bool) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return apperr.Wrap(err, apperr.Invalid, "cannot read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return &apperr.Error{Code: apperr.Invalid, Message: "validation failed", Fields: map[string]string{te.Field: "must be " + jsonKind(te.Type.Kind().String())}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &apperr.Error{Code: apperr.Invalid, Message: "unknown field", Fields: map[string]string{name: "is not a known field"}}
		}
		return apperr.New(apperr.Invalid, "malformed JSON body")
	}
	if dec.More() {
		return apperr.New(apperr.Invalid, "malformed JSON body: trailing data")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "ptr", "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// pageParams reads ?cursor= and ?limit=.
func pageParams(c *gin.Context) (string, int, error) {
	limit := integrations.DefaultLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > integrations.MaxLimit {
			return "", 0, &apperr.Error{Code: apperr.Invalid, Message: "validation failed", Fields: map[string]string{"limit": "must be an integer from 1 to 200"}}
		}
		limit = n
	}
	return c.Query("cursor"), limit, nil
}

// respond writes v as JSON, or the error.
func (h *handlers) respond(c *gin.Context, status int, v any, err error) {
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	if v == nil {
		c.Status(status)
		return
	}
	c.JSON(status, v)
}

func (h *handlers) listIntegrations(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	p, err := h.Integrations.List(c.Request.Context(), tenantOf(c), cursor, limit)
	h.respond(c, http.StatusOK, p, err)
}

func (h *handlers) createIntegration(c *gin.Context) {
	var in integrations.Input
	if err := bindStrict(c, &in); err != nil {
		writeError(c, h.Log, err)
		return
	}
	it, err := h.Integrations.Create(c.Request.Context(), tenantOf(c), in)
	if err == nil {
		c.Header("Location", h.Config.BasePath+"/api/v1/integrations/"+it.ID)
	}
	h.respond(c, http.StatusCreated, it, err)
}

func (h *handlers) getIntegration(c *gin.Context) {
	it, err := h.Integrations.Get(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, it, err)
}

func (h *handlers) updateIntegration(c *gin.Context) {
	var in integrations.Input
	if err := bindStrict(c, &in); err != nil {
		writeError(c, h.Log, err)
		return
	}
	it, err := h.Integrations.Update(c.Request.Context(), tenantOf(c), c.Param("id"), in)
	h.respond(c, http.StatusOK, it, err)
}

func (h *handlers) deleteIntegration(c *gin.Context) {
	err := h.Integrations.Delete(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusNoContent, nil, err)
}

type redeemRequest struct {
	Key string `json:"key"`
}

// redeemConnectKey links the installation a Connect key was issued for.
// Attempts are limited per tenant and per client address before anything
// is looked up, so guessing keys costs the guesser, not the database.
func (h *handlers) redeemConnectKey(c *gin.Context) {
	for _, k := range []string{"tenant:" + tenantOf(c), "addr:" + c.ClientIP()} {
		if ok, wait := h.RedeemLimit.Allow(k); !ok {
			writeError(c, h.Log, &apperr.Error{Code: apperr.RateLimited, Message: "too many Connect key attempts; wait and try again", RetryAfter: wait, Reason: "redeem_rate_limited"})
			return
		}
	}
	var req redeemRequest
	if err := bindStrict(c, &req); err != nil {
		writeError(c, h.Log, err)
		return
	}
	if _, err := h.Keys.Redeem(c.Request.Context(), tenantOf(c), c.Param("id"), req.Key); err != nil {
		writeError(c, h.Log, err)
		return
	}
	it, err := h.Integrations.Get(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, it, err)
}

func (h *handlers) unlinkConnectKey(c *gin.Context) {
	if _, err := h.Keys.Unlink(c.Request.Context(), tenantOf(c), c.Param("id")); err != nil {
		writeError(c, h.Log, err)
		return
	}
	it, err := h.Integrations.Get(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, it, err)
}

type validateResponse struct {
	Integration *integrations.Integration `json:"integration"`
	Validation  *integrations.Validation  `json:"validation"`
}

func (h *handlers) validateIntegration(c *gin.Context) {
	it, v, err := h.Integrations.Validate(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, validateResponse{it, v}, err)
}

func (h *handlers) monitoring(c *gin.Context) {
	m, err := h.Integrations.Monitoring(c.Request.Context(), tenantOf(c), c.Param("id"))
	h.respond(c, http.StatusOK, m, err)
}

func (h *handlers) openAPI(c *gin.Context) {
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json; charset=utf-8", h.OpenAPI)
}

// createConnectKey issues a Connect key for the installation whose context
// token (from AP.context.getToken() on the app's page) signed the call.
// Only context tokens are accepted: Jira never signs a real-qsh request to
// this route, so anything else is not the page.
func (h *handlers) createConnectKey(c *gin.Context) {
	if claimsOf(c).QSH != atlassianjwt.ContextQSH {
		h.reject(c, apperr.Unauth("context_token_required"))
		return
	}
	k, err := h.Keys.Generate(c.Request.Context(), claimsOf(c).Issuer)
	h.respond(c, http.StatusCreated, k, err)
}
