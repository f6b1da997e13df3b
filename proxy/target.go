package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// target is the canonical form of one request: what it is matched and decided
// on, and exactly what is forwarded.
type target struct {
	policy.Request
	Query string // raw query, forwarded unchanged; never used for matching
}

// rawPath returns the request path as it arrived on the wire. r.URL.Path is
// already decoded (so %2F and / look alike there); the request-target in
// RequestURI is what the client sent, for HTTP/1 and for HTTP/2's :path.
func rawPath(r *http.Request) (string, error) {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		// Absolute-form ("GET http://h/x") makes the URI authority and the
		// Host header two candidate hosts; asterisk-form ("OPTIONS *") has
		// no path. Browsers send neither to an origin, so refuse both.
		return "", &policy.Rejection{Reason: "request-target must be a path"}
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri, nil
}

// canonical builds the target of r, or explains why r is ambiguous.
func (h *Handler) canonical(r *http.Request) (target, error) {
	raw, err := rawPath(r)
	if err != nil {
		return target{}, err
	}
	req, err := policy.Canonical(r.Method, r.Host, raw, h.pathOpt)
	if err != nil {
		return target{}, err
	}
	return target{Request: req, Query: r.URL.RawQuery}, nil
}

// claimedMethods lists the methods a request claims besides its own
// (THREATS.md §E 37, 38): override headers and a _method query parameter,
// which Rails, Laravel and Spring honour. The request is decided as the
// strictest of all of them. The proxy also strips the headers before
// forwarding; in forward-auth mode the app receives them, so deciding on the
// strictest is the only defence there. A _method field inside a form body is
// not seen, which is why sensitive rules should not list methods.
func claimedMethods(hdr http.Header, rawQuery string) []string {
	var ms []string
	for _, name := range methodOverrideHeaders {
		ms = append(ms, hdr.Values(name)...)
	}
	if strings.Contains(rawQuery, "_method") {
		if q, err := url.ParseQuery(rawQuery); err == nil {
			ms = append(ms, q["_method"]...)
		} else {
			ms = append(ms, "?") // an unparseable query may hide one: fail closed
		}
	}
	return ms
}

var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}
