package proxy

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// How the gateway learns that the provider is down. Without PAR a login is
// only a redirect, which never touches the provider, so the gateway would
// happily send every browser into a provider that is down. A background
// probe of the discovery document, every defaultProbeInterval per replica,
// says whether it answers; the flows consult the last verdict and never
// probe per request. Calls that find the provider unreachable on their own
// (a PAR push, a code exchange, a key fetch) mark it down at once, and the
// next successful probe marks it up.
const (
	defaultProbeInterval = 10 * time.Second
	// maxProbeTimeout bounds one probe: a provider that takes longer to
	// serve a static document cannot be expected to complete a login.
	maxProbeTimeout = 3 * time.Second
)

// providerDown reports whether the provider was found unreachable and has
// not answered a probe since.
func (h *Handler) providerDown() bool { return h.idpDownSince.Load() != 0 }

// providerFailed records that a call to the provider could not reach it.
func (h *Handler) providerFailed(err error) {
	if h.idpDownSince.CompareAndSwap(0, time.Now().UnixNano()) {
		h.log.Warn("identity provider unreachable; logins and step-ups answer 503 until it answers again",
			"err", err, "probe_every", h.probeEvery.String())
	}
}

// providerAnswered records that the provider answered.
func (h *Handler) providerAnswered() {
	if since := h.idpDownSince.Swap(0); since != 0 {
		h.log.Info("identity provider reachable again",
			"down_for", time.Since(time.Unix(0, since)).Round(time.Millisecond).String())
	}
}

// watchProvider probes the provider every probeEvery until ctx ends. Until
// discovery has succeeded there is nothing to probe: Ready is false then,
// and the flows answer 503 on that account.
func (h *Handler) watchProvider(ctx context.Context) {
	t := time.NewTicker(h.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c := h.oidc.Load()
		if c == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, min(h.probeEvery, maxProbeTimeout))
		err := c.Probe(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return // stopping: no verdict
		case err != nil:
			h.providerFailed(err)
		default:
			h.providerAnswered()
		}
	}
}

// idpRetryAfter is the Retry-After of answers given because the provider is
// down: by then the next probe has run.
func (h *Handler) idpRetryAfter() string {
	return strconv.Itoa(max(1, int(math.Ceil(h.probeEvery.Seconds()))))
}

// idpUnavailable answers a login or step-up that cannot start because the
// provider is down (or not discovered yet): 503 with Retry-After, a page
// for browsers, JSON {"error":"idp_unavailable"} for everything else. A
// redirect would strand the user on the provider's error page, and a
// login_url would lead to this answer anyway.
func (h *Handler) idpUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", h.idpRetryAfter())
	fail(w, r, http.StatusServiceUnavailable, "idp_unavailable",
		"Sign-in is unavailable right now because the sign-in service cannot be reached. Try again in a minute.")
}

// registerProviderGauge exports the provider's health as stepgate_idp_up.
func (m *metrics) registerProviderGauge(up func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "stepgate_idp_up",
		Help: "1 while the identity provider is discovered and its last probe succeeded, else 0 (logins and step-ups answer 503).",
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}
