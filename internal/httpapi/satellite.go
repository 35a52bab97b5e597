package httpapi

import (
	"compress/gzip"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
)

// satelliteBodyLimit bounds a satellite's push, compressed or not: a batch
// of a thousand issues with their histories is far above the product
// API's 1 MiB.
const satelliteBodyLimit = wire.MaxBodyBytes

// satelliteYAML serves satellite.yml for a satellite integration, filled
// in except for the secrets.
func (h *handlers) satelliteYAML(c *gin.Context) {
	b, err := h.Integrations.SatelliteYAML(c.Request.Context(), tenantOf(c), c.Param("id"))
	if err != nil {
		writeError(c, h.Log, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="satellite.yml"`)
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", b)
}

// satelliteBatch receives a batch of ingested records (idempotent by its
// batch_id: a repeat answers 200 with duplicate true).
func (h *handlers) satelliteBatch(c *gin.Context) {
	var b wire.Batch
	if err := decodeSatelliteBody(c, &b); err != nil {
		writeError(c, h.Log, err)
		return
	}
	res, err := h.Integrations.ReceiveBatch(c.Request.Context(), tenantOf(c), c.Param("id"), &b)
	status := http.StatusCreated
	if res != nil && res.Duplicate {
		status = http.StatusOK
	}
	h.respond(c, status, res, err)
}

// satelliteHeartbeat records the satellite's contact and its checks.
func (h *handlers) satelliteHeartbeat(c *gin.Context) {
	var hb wire.Heartbeat
	if err := decodeSatelliteBody(c, &hb); err != nil {
		writeError(c, h.Log, err)
		return
	}
	res, err := h.Integrations.SatelliteHeartbeat(c.Request.Context(), tenantOf(c), c.Param("id"), &hb)
	h.respond(c, http.StatusOK, res, err)
}

// decodeSatelliteBody reads a JSON body, gzip-compressed or not, with the
// limit applying after decompression too. Unknown fields are ignored: a
// newer satellite may send more than this service knows.
func decodeSatelliteBody(c *gin.Context, v any) error {
	switch enc := strings.ToLower(strings.TrimSpace(c.GetHeader("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(c.Request.Body)
		if err != nil {
			return apperr.New(apperr.Invalid, "the body is not gzip")
		}
		defer gz.Close()
		c.Request.Body = http.MaxBytesReader(c.Writer, gz, satelliteBodyLimit)
	default:
		return apperr.New(apperr.Invalid, "unsupported Content-Encoding %q: send gzip or none", enc)
	}
	return decodeBody(c, v, false)
}
