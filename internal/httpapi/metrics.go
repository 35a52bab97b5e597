package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the service's Prometheus series. They live on their own
// registry so tests can build as many routers as they like.
type Metrics struct {
	Registry      *prometheus.Registry
	Requests      *prometheus.CounterVec
	Latency       *prometheus.HistogramVec
	JWTRejections *prometheus.CounterVec
}

// NewMetrics registers the HTTP and JWT series plus Go runtime collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		JWTRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwt_rejections_total", Help: "Requests refused by JWT verification, by reason.",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(m.Requests, m.Latency, m.JWTRejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
