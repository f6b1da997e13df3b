package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stepgate/stepgate/policy"
)

// recorder remembers the status a handler wrote, for the access log.
// Unwrap lets http.ResponseController (used by ReverseProxy for flushing and
// websocket hijacking, and for body read deadlines) reach the underlying
// writer. settle, when set, runs once before the answer's first byte.
type recorder struct {
	http.ResponseWriter
	status int
	settle func()
	body   *idleBody // the forwarded request body, if any
}

func (r *recorder) settleFirst() {
	if f := r.settle; f != nil {
		r.settle = nil
		f()
	}
}

func (r *recorder) WriteHeader(code int) {
	r.settleFirst()
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.settleFirst()
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// event is what one request's access-log line says.
type event struct {
	route, action, reason, path, subject string
	session                              string // "invalid" when a session cookie was sent but did not open
}

// logRequest writes one line per request. The path is the canonical path
// without its query: queries can carry codes and tokens.
func (h *Handler) logRequest(r *http.Request, rec *recorder, ev *event, start time.Time) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	h.metrics.requests.WithLabelValues(statusClass(status)).Inc()
	lh := h.log.Handler()
	if !lh.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	// A record built here, rather than through Logger.LogAttrs, carries no
	// caller PC: the source line is always this one, and capturing it costs a
	// stack walk on every request.
	line := slog.NewRecord(h.now(), slog.LevelInfo, "request", 0)
	line.AddAttrs(
		slog.String("method", r.Method),
		slog.String("path", ev.path),
		slog.String("route", ev.route),
		slog.String("decision", ev.action),
		slog.String("reason", ev.reason),
		slog.String("sub", ev.subject),
		slog.Int("status", status),
		slog.Duration("duration", h.now().Sub(start)),
	)
	if ev.session != "" {
		line.AddAttrs(slog.String("session", ev.session)) // "invalid": a cookie that did not open
	}
	_ = lh.Handle(r.Context(), line)
}

func statusClass(s int) string {
	switch {
	case s < 200:
		return "1xx"
	case s < 300:
		return "2xx"
	case s < 400:
		return "3xx"
	case s < 500:
		return "4xx"
	}
	return "5xx"
}

// metrics are the gateway's Prometheus collectors. Labels are rule names and
// fixed words, never raw paths, so cardinality stays bounded.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	decisions *prometheus.CounterVec
	flows     *prometheus.CounterVec
	revokes   *prometheus.CounterVec
	holds     *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	reloaded  prometheus.Gauge
}

// newMetrics registers the collectors on a fresh registry.
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_requests_total", Help: "Requests served on the public listener, by status class.",
		}, []string{"status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_decisions_total", Help: "Policy decisions, by route and action.",
		}, []string{"route", "action"}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_auth_flows_total", Help: "Login and step-up round trips, by kind and outcome.",
		}, []string{"kind", "outcome"}),
	}
	m.revokes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_revocations_total", Help: "Session revocations, by source (logout, backchannel, admin) and result.",
	}, []string{"source", "result"})
	m.holds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_held_transactions_total", Help: "Held transactions, by outcome (held, confirmed, cancelled).",
	}, []string{"outcome"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_config_reload_total", Help: "Reloads of routes.yaml, by result (ok, error: the previous configuration kept serving).",
	}, []string{"result"})
	m.reloaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "stepgate_config_last_reload_success_timestamp_seconds", Help: "When the configuration in force was loaded (at start or by the last successful reload), as a Unix time.",
	})
	// Both results exist from the start, so an alert on errors sees the
	// first one as an increase rather than a new series.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.reg.MustRegister(m.requests, m.decisions, m.flows, m.revokes, m.holds, m.reloads, m.reloaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) decision(route string, a policy.Action) {
	m.decisions.WithLabelValues(route, a.String()).Inc()
}

func (m *metrics) flow(kind, outcome string) { m.flows.WithLabelValues(kind, outcome).Inc() }

func (m *metrics) revocation(source, result string) { m.revokes.WithLabelValues(source, result).Inc() }

func (m *metrics) held(outcome string) { m.holds.WithLabelValues(outcome).Inc() }

// CountReload counts one reload of the configuration, successful or not,
// for stepgate_config_reload_total and, on success, the time of the last
// one. The gateway calls it; SetRoutes does not, since a reload can fail
// before there are routes to set.
func (h *Handler) CountReload(ok bool) {
	if !ok {
		h.metrics.reloads.WithLabelValues("error").Inc()
		return
	}
	h.metrics.reloads.WithLabelValues("ok").Inc()
	h.metrics.reloaded.Set(float64(h.now().Unix()))
}

// watchStore exports the shared store's health: whether the revocation list
// is in touch, and how stale it is.
func (m *metrics) watchStore(stale func() time.Duration, grace time.Duration) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stepgate_store_up", Help: "1 while the revocation list is within session.store_grace of the shared store, else 0.",
		}, func() float64 {
			if stale() > grace {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "stepgate_store_stale_seconds", Help: "How long the revocation list has been out of touch with the shared store (0 when in touch).",
		}, func() float64 { return stale().Seconds() }),
	)
}
