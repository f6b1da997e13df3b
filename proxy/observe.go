package proxy

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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

	// Set by forward: the upstream's time runs from forwarded until the
	// first byte of its answer (or of the error answer given for it).
	clock     func() time.Time
	forwarded time.Time
	upstream  time.Duration
	proxied   bool // upstream holds a time
}

func (r *recorder) settleFirst() {
	if f := r.settle; f != nil {
		r.settle = nil
		f()
	}
	if r.clock != nil {
		r.upstream, r.proxied = r.clock().Sub(r.forwarded), true
		r.clock = nil
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
	took := h.now().Sub(start)
	h.metrics.request(ev.route, ev.action, statusClass(status), took, rec)
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
		slog.Duration("duration", took),
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

// metrics are the gateway's Prometheus collectors. Labels are rule and
// level names from the configuration and fixed words from the code, never
// anything taken from the request, so cardinality stays bounded.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	upstream   *prometheus.HistogramVec
	upErrors   map[string]prometheus.Counter // by kind, every kind exported from the start
	decisions  *prometheus.CounterVec
	flows      *prometheus.CounterVec
	stepUps    *prometheus.CounterVec
	revokes    *prometheus.CounterVec
	holds      *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge

	// series caches each request series' children, so the request path
	// hashes one small key instead of resolving three vectors' labels.
	mu     sync.Mutex // serializes additions to series
	series atomic.Pointer[map[seriesKey]*requestSeries]
}

// seriesKey is one request series: route, decision, status class.
type seriesKey struct{ route, decision, class string }

// requestSeries are the children one kind of request updates.
type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
	upstream prometheus.Observer
}

// durationBuckets suit a gateway: its own answers (a challenge, a redirect
// to the provider) take well under a millisecond, forwarded ones whatever
// the application takes, up to the transport's header timeout.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// upstreamErrorKinds are the values of stepgate_upstream_errors_total's kind.
// body_stalled and client_closed are the client's doing, the rest the
// upstream's (or the configuration's, for no_upstream).
var upstreamErrorKinds = []string{"unreachable", "timeout", "bad_response", "no_upstream", "body_stalled", "client_closed"}

// newMetrics registers the collectors on a fresh registry. now is when the
// configuration the Handler serves was loaded.
func newMetrics(now time.Time) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_requests_total",
			Help: `Requests served on the public listener, by route, decision and status class (route "stepgate": the gateway's own endpoints and requests refused before matching).`,
		}, []string{"route", "decision", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stepgate_request_duration_seconds", Help: "Time from a request's arrival to the end of its answer, by route and decision.",
			Buckets: durationBuckets,
		}, []string{"route", "decision"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stepgate_upstream_duration_seconds", Help: "Time from forwarding a request to the first byte of the upstream's answer, by route.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_decisions_total", Help: "Policy decisions, by route and action.",
		}, []string{"route", "action"}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_auth_flows_total", Help: "Login and step-up round trips, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		stepUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_step_ups_total", Help: "Step-up round trips, by level and outcome (start, success, or why it failed).",
		}, []string{"level", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepgate_config_reload_total", Help: "Reloads of routes.yaml, by result (ok, error: the previous configuration kept serving).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepgate_config_last_reload_success_timestamp_seconds", Help: "When the configuration in service was loaded, as a Unix time.",
		}),
		upErrors: map[string]prometheus.Counter{},
	}
	m.revokes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_revocations_total", Help: "Session revocations, by source (logout, backchannel, admin) and result.",
	}, []string{"source", "result"})
	m.holds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_held_transactions_total", Help: "Held transactions, by outcome (held, confirmed, cancelled).",
	}, []string{"outcome"})
	upErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stepgate_upstream_errors_total", Help: "Forwarded requests that got no answer from the upstream, by kind.",
	}, []string{"kind"})
	m.reg.MustRegister(m.requests, m.duration, m.upstream, upErrors, m.decisions, m.flows, m.stepUps,
		m.revokes, m.holds, m.reloads, m.lastReload,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series with fixed label values exist from the start at zero, so a
	// rate or an alert on them has data before the first event.
	for _, k := range upstreamErrorKinds {
		m.upErrors[k] = upErrors.WithLabelValues(k)
	}
	for _, src := range []string{"logout", "backchannel", "admin"} {
		for _, res := range []string{"ok", "failed"} {
			m.revokes.WithLabelValues(src, res)
		}
	}
	for _, o := range []string{"held", "confirmed", "cancelled"} {
		m.holds.WithLabelValues(o)
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.lastReload.Set(float64(now.UnixNano()) / 1e9)
	m.series.Store(&map[seriesKey]*requestSeries{})
	return m
}

// request counts and times one answered request. rec says whether it was
// forwarded and how long the upstream took.
func (m *metrics) request(route, decision, class string, took time.Duration, rec *recorder) {
	if route == "" {
		route = "stepgate" // refused before a route was matched: the gateway's own answer
	}
	s := m.seriesFor(seriesKey{route, decision, class})
	s.count.Inc()
	s.duration.Observe(took.Seconds())
	if rec.proxied {
		s.upstream.Observe(rec.upstream.Seconds())
	}
}

// seriesFor returns k's children, resolving them on first use. The map is
// copied on each addition: additions stop once every route, decision and
// class has been seen, and reads then take no lock.
func (m *metrics) seriesFor(k seriesKey) *requestSeries {
	if s := (*m.series.Load())[k]; s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s := old[k]; s != nil {
		return s
	}
	s := &requestSeries{
		count:    m.requests.WithLabelValues(k.route, k.decision, k.class),
		duration: m.duration.WithLabelValues(k.route, k.decision),
		upstream: m.upstream.WithLabelValues(k.route),
	}
	next := make(map[seriesKey]*requestSeries, len(old)+1)
	maps.Copy(next, old)
	next[k] = s
	m.series.Store(&next)
	return s
}

func (m *metrics) decision(route string, a policy.Action) {
	m.decisions.WithLabelValues(route, a.String()).Inc()
}

// flow counts a login or step-up round trip's start or end; a step-up is
// also counted under its level.
func (m *metrics) flow(kind, level, outcome string) {
	m.flows.WithLabelValues(kind, outcome).Inc()
	if kind == "step_up" {
		m.stepUps.WithLabelValues(level, outcome).Inc()
	}
}

func (m *metrics) upstreamError(kind string) {
	if c := m.upErrors[kind]; c != nil {
		c.Inc()
	}
}

// upstreamErrorKind sorts a ReverseProxy error that is the upstream's:
// it could not be reached (refused, no route, DNS), did not answer in
// time, or answered with something that is not HTTP (or hung up).
func upstreamErrorKind(err error) string {
	var ne net.Error
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &dns), errors.As(err, &op) && op.Op == "dial":
		return "unreachable"
	}
	return "bad_response"
}

func (m *metrics) revocation(source, result string) { m.revokes.WithLabelValues(source, result).Inc() }

func (m *metrics) held(outcome string) { m.holds.WithLabelValues(outcome).Inc() }

// reload counts a reload of the configuration; a successful one is now the
// configuration in service.
func (m *metrics) reload(ok bool, at time.Time) {
	if !ok {
		m.reloads.WithLabelValues("error").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.lastReload.Set(float64(at.UnixNano()) / 1e9)
}

// CountReload records the result of an attempt to reload the configuration
// (ok: the new configuration is in service) in stepgate_config_reload_total
// and, on success, in stepgate_config_last_reload_success_timestamp_seconds.
// The gateway calls it; SetRoutes does not, since a reload can fail before
// there are routes to set.
func (h *Handler) CountReload(ok bool) { h.metrics.reload(ok, h.now()) }

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
