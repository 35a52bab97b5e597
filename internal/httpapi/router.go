// Package httpapi is the HTTP edge of the service: the Gin router, its
// middleware (request ids, metrics, access logs, security headers, body
// limits, Atlassian JWT and, later, API keys) and short handlers that bind
// a request, call a domain package and write its answer. Domain packages
// never see Gin.
package httpapi

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/descriptor"
	"github.com/sei-io/jira-connect/internal/hygiene"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/keys"
	"github.com/sei-io/jira-connect/internal/lifecycle"
	"github.com/sei-io/jira-connect/internal/ratelimit"
)

// Deps are the collaborators the router wires into handlers.
type Deps struct {
	Config     *config.Config
	Descriptor *descriptor.Descriptor
	Lifecycle  *lifecycle.Service
	Directory  *lifecycle.Directory
	JWT        *atlassianjwt.Verifier        // HS256 calls from Jira
	Install    *atlassianjwt.InstallVerifier // RS256 signed install/uninstall
	Pages      *template.Template
	// The SEI side: tenants, integrations and Connect keys.
	Integrations *integrations.Service
	Keys         *keys.Service
	RedeemLimit  *ratelimit.Limiter
	OpenAPI      []byte // the OpenAPI document, as JSON
	Webhooks     *ingest.Webhooks
	Hygiene      *hygiene.Service // issue hygiene report and settings, Salesforce mapping
	Ready        func(ctx context.Context) error
	Metrics      *Metrics
	Log          *slog.Logger
}

// Body limits: lifecycle payloads are a few hundred bytes; webhook bodies
// carry a whole issue and can be large on sites with many custom fields.
const (
	lifecycleBodyLimit = 64 << 10
	webhookBodyLimit   = 8 << 20
)

type handlers struct{ Deps }

// New returns the service's HTTP handler. Every route is mounted under
// BASE_URL's path, and the Connect routes are the ones the descriptor
// declares, so the two cannot disagree.
func New(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	// Only the configured load balancers may speak for a client's address.
	if err := r.SetTrustedProxies(d.Config.TrustedProxies); err != nil {
		panic(err) // validated by config.Load
	}
	h := &handlers{d}
	r.Use(observe(d.Metrics, d.Log), recovery(d.Log), securityHeaders(d.Config.BaseURL.Scheme == "https"))
	r.NoRoute(func(c *gin.Context) { writeError(c, d.Log, notFound) })
	r.NoMethod(func(c *gin.Context) { writeError(c, d.Log, methodNotAllowed) })

	g := r.Group(d.Config.BasePath)
	g.GET("/healthz", h.healthz)
	g.GET("/readyz", h.readyz)
	g.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{})))
	g.GET("/atlassian-connect.json", h.descriptor)

	lc := g.Group("", noStore, limitBody(lifecycleBodyLimit))
	lc.POST(d.Descriptor.Lifecycle["installed"], h.installed)
	lc.POST(d.Descriptor.Lifecycle["uninstalled"], h.uninstalled)
	lc.POST(d.Descriptor.Lifecycle["enabled"], h.enabled)
	lc.POST(d.Descriptor.Lifecycle["disabled"], h.disabled)

	wh := g.Group("", noStore, limitBody(webhookBodyLimit), h.requireJWT(false))
	for _, path := range uniq(d.Descriptor.Webhooks) {
		wh.POST(path, h.webhook)
	}
	pg := g.Group("", h.requirePageJWT)
	for _, path := range uniq(d.Descriptor.Pages) {
		pg.GET(path, h.configurePage)
	}
	// AJAX from the page, with a context token from AP.context.getToken().
	g.POST("/connect-keys", noStore, limitBody(lifecycleBodyLimit), h.requireJWT(true), h.createConnectKey)

	g.GET("/api/v1/openapi.json", h.openAPI)
	api := g.Group("/api/v1", noStore, limitBody(apiBodyLimit), h.requireAPIKey)
	api.GET("/integrations", h.listIntegrations)
	api.POST("/integrations", h.createIntegration)
	api.GET("/integrations/:id", h.getIntegration)
	api.PATCH("/integrations/:id", h.updateIntegration)
	api.DELETE("/integrations/:id", h.deleteIntegration)
	api.POST("/integrations/:id/connect-key", h.redeemConnectKey)
	api.DELETE("/integrations/:id/connect-key", h.unlinkConnectKey)
	api.POST("/integrations/:id/validate", h.validateIntegration)
	api.GET("/integrations/:id/monitoring", h.monitoring)
	api.POST("/integrations/:id/sync", h.requestSync)
	api.GET("/integrations/:id/issues", h.listIssues)
	api.GET("/integrations/:id/issues/:key", h.getIssue)
	api.GET("/integrations/:id/users", h.listUsers)
	api.GET("/integrations/:id/hygiene", h.hygieneReport)
	api.GET("/integrations/:id/hygiene/issues", h.hygieneIssues)
	api.GET("/integrations/:id/hygiene/settings", h.getHygieneSettings)
	api.PUT("/integrations/:id/hygiene/settings", h.putHygieneSettings)
	api.GET("/integrations/:id/salesforce/settings", h.getSalesforceSettings)
	api.PUT("/integrations/:id/salesforce/settings", h.putSalesforceSettings)
	api.GET("/integrations/:id/salesforce-links", h.listSalesforceLinks)
	api.PUT("/integrations/:id/authentication", h.reauthenticate)
	api.GET("/integrations/:id/satellite.yml", h.satelliteYAML)
	// The Ingestion Satellite's pushes: the same API keys, larger bodies.
	sat := g.Group("/api/v1/integrations/:id/satellite", noStore, limitBody(satelliteBodyLimit), h.requireAPIKey)
	sat.POST("/batches", h.satelliteBatch)
	sat.POST("/heartbeat", h.satelliteHeartbeat)
	return r
}

func uniq(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range m {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
