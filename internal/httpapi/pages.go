package httpapi

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// PageData is what templates/configure.html renders.
type PageData struct {
	AppName         string
	SiteURL         string
	State           string // installed, enabled, disabled
	CanGenerate     bool
	Linked          bool
	IntegrationName string
	TenantName      string
	LinkedAt        string // human, UTC
	LinkedAtISO     string
	ConnectKeysURL  string
	Nonce           string // for the page's inline script under the CSP
}

// ErrorPage is what templates/error.html renders.
type ErrorPage struct {
	AppName string
	Title   string
	Message string
	Nonce   string
}

// requirePageJWT is requireJWT for pages: a person is looking, so a bad
// token gets an HTML page that says what to do, still with status 401.
func (h *handlers) requirePageJWT(c *gin.Context) {
	claims, err := h.verifyHS256(c, false)
	if err != nil {
		reason := apperr.ReasonOf(err)
		if reason == "" {
			reason = "other"
		}
		h.Metrics.JWTRejections.WithLabelValues(reason).Inc()
		h.renderError(c, http.StatusUnauthorized, "This page must be opened inside Jira",
			"The link has no valid Jira signature (it may have expired). Open the app from Jira: Settings → Apps → Manage apps → "+h.Config.AppName+" → Configure.")
		c.Abort()
		return
	}
	c.Set(ctxClientKey, claims.Issuer)
	c.Set(ctxClaims, claims)
	c.Next()
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// pageHeaders: framing only by the allowed Jira hosts, scripts only from
// us, Atlassian's CDN and the nonce'd inline script.
func (h *handlers) pageHeaders(c *gin.Context, n string) {
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self' https://connect-cdn.atl-paas.net 'nonce-"+n+"'; "+
		"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors "+frameAncestors(h.Config.JiraHosts))
}

func (h *handlers) renderError(c *gin.Context, status int, title, msg string) {
	n := nonce()
	h.pageHeaders(c, n)
	c.Status(status)
	if err := h.Pages.ExecuteTemplate(c.Writer, "error.html", ErrorPage{AppName: h.Config.AppName, Title: title, Message: msg, Nonce: n}); err != nil {
		h.Log.ErrorContext(c.Request.Context(), "render error page", "error", err.Error())
	}
}

// configurePage renders the page Jira shows in an iframe after install and
// under "Configure": the installation's link state and Generate key.
func (h *handlers) configurePage(c *gin.Context) {
	ctx := c.Request.Context()
	clientKey := claimsOf(c).Issuer
	in, err := h.Directory.Get(ctx, clientKey)
	if err != nil {
		h.Log.ErrorContext(ctx, "page: installation", "error", err.Error())
		h.renderError(c, http.StatusInternalServerError, "Something went wrong", "The app could not read this site's installation. Try again in a minute.")
		return
	}
	link, err := h.Integrations.LinkOf(ctx, clientKey)
	if err != nil {
		h.Log.ErrorContext(ctx, "page: link", "error", err.Error())
		h.renderError(c, http.StatusInternalServerError, "Something went wrong", "The app could not read this site's link to SEI. Try again in a minute.")
		return
	}
	n := nonce()
	d := PageData{AppName: h.Config.AppName, SiteURL: in.BaseURL, State: in.State, CanGenerate: in.State != "disabled",
		ConnectKeysURL: strings.TrimRight(h.Config.BaseURL.String(), "/") + "/connect-keys", Nonce: n}
	if link != nil {
		d.Linked, d.IntegrationName, d.TenantName = true, link.IntegrationName, link.TenantName
		d.LinkedAt, d.LinkedAtISO = link.LinkedAt.UTC().Format("2 Jan 2006 15:04 UTC"), link.LinkedAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	h.pageHeaders(c, n)
	c.Status(http.StatusOK)
	if err := h.Pages.ExecuteTemplate(c.Writer, "configure.html", d); err != nil {
		h.Log.ErrorContext(ctx, "render page", "error", err.Error())
	}
}
