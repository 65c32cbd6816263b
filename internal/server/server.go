// Package server assembles Patchward's HTTP surface: health, metrics, the
// JSON API and the web UI behind one middleware chain (panic recovery,
// request logging, metrics, security headers, cross-origin protection,
// authentication). main builds the parts; this package only joins them.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchward/patchward/internal/api"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
)

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is everything the HTTP surface needs.
type Config struct {
	Log      *slog.Logger
	DB       Pinger
	Resolver authn.Resolver
	// API serves /api/v1/; Web serves everything else.
	API http.Handler
	Web http.Handler
	// Agent serves the endpoint agents' protocol under /agent/. It has its
	// own authentication (signed requests) and is not a browser surface, so
	// it bypasses the user session and cross-origin layers.
	Agent http.Handler
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	Version  string
}

// New returns the root handler.
func New(cfg Config) http.Handler {
	m := newMetrics(cfg.Registry, cfg.Version)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Public on purpose: load balancers probe it without credentials.
		// It reveals only up/down.
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := cfg.DB.Ping(ctx); err != nil {
			cfg.Log.WarnContext(ctx, "health check: database unreachable", "err", err)
			api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	metricsHandler := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := authn.Require(r, auth.PermMetricsRead); err != nil {
			api.WriteError(w, r, cfg.Log, err)
			return
		}
		metricsHandler.ServeHTTP(w, r)
	}))
	mux.Handle(api.Prefix+"/", cfg.API)
	mux.Handle("/", cfg.Web)

	onAuthErr := func(w http.ResponseWriter, r *http.Request, err error) {
		api.WriteError(w, r, cfg.Log, err)
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, r, cfg.Log, errs.E(errs.Forbidden, "cross-origin request refused"))
	}))
	var user http.Handler = mux
	user = authn.Middleware(cfg.Resolver, onAuthErr)(user)
	user = cop.Handler(user)
	h := user
	if cfg.Agent != nil {
		outer := http.NewServeMux()
		outer.Handle("/agent/", cfg.Agent)
		outer.Handle("/", user)
		h = outer
	}
	h = securityHeaders(h)
	h = m.instrument(h)
	h = logRequests(cfg.Log)(h)
	h = recoverPanics(cfg.Log)(h)
	return h
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

func recoverPanics(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					api.WriteError(w, r, log, fmt.Errorf("panic serving %s %s: %v", r.Method, r.URL.Path, p))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func logRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			// Query strings are not logged: filters may carry names.
			log.LogAttrs(r.Context(), slog.LevelDebug, "http request", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Duration("took", time.Since(start)), slog.String("addr", authn.ClientAddr(r)))
		})
	}
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, version string) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchward_http_requests_total",
			Help: "HTTP requests by method, route and status code."}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "patchward_http_request_duration_seconds",
			Help: "HTTP request latency by method and route.", Buckets: prometheus.DefBuckets}, []string{"method", "route"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "patchward_build_info", Help: "Build version.",
		ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	reg.MustRegister(m.requests, m.duration, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// idSegment matches path segments that are identifiers, so metrics have one
// series per route rather than per record.
var idSegment = regexp.MustCompile(`^[0-9a-fA-F-]{16,}$|^[0-9]+$`)

func routeLabel(path string) string {
	segs := strings.Split(path, "/")
	if len(segs) > 6 {
		segs = segs[:6]
	}
	for i, s := range segs {
		if idSegment.MatchString(s) {
			segs[i] = "{id}"
		}
	}
	switch {
	case strings.HasPrefix(path, "/static/"):
		return "/static/"
	}
	return strings.Join(segs, "/")
}

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := routeLabel(r.URL.Path)
		if sw.status == http.StatusNotFound {
			route = "unmatched" // unbounded label values otherwise
		}
		m.requests.WithLabelValues(r.Method, route, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
	})
}
