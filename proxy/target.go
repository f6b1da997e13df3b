package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// target is the canonical form of one request: what it is matched and decided
// on, and exactly what is forwarded.
type target struct {
	policy.Request
	Query string // raw query, forwarded unchanged; never used for matching
}

// returnPath is where a browser goes back to after the login or step-up t
// needs: t's path and query when that is a safe local path, else "/".
func (t target) returnPath() string {
	rd := t.Path
	if t.Query != "" {
		rd += "?" + t.Query
	}
	if rd = localRedirect(rd); rd == "" {
		return "/"
	}
	return rd
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
	req, err := policy.Canonical(r.Method, r.Host, raw, h.routesOf(r).pathOpt)
	if err != nil {
		return target{}, err
	}
	return target{Request: req, Query: r.URL.RawQuery}, nil
}

// claimedMethods lists the methods a request claims besides its own
// (threat model cases 37, 38, 82, 83): override headers, in any spelling a
// backend folds into the same name, and a _method query parameter, which
// Rails, Laravel, Symfony and Spring honour. The request is decided as the
// strictest of all of them, so every copy counts. The proxy also strips the
// headers before forwarding; in forward-auth mode the app receives them, so
// deciding on the strictest is the only defence there. A _method field
// inside a form body is not seen, which is why sensitive rules should not
// list methods.
//
// A claim that cannot be read is listed as "?", which is no method: the
// request is then denied rather than guessed about.
func claimedMethods(hdr http.Header, rawQuery string) []string {
	var ms []string
	for name, vals := range hdr {
		if isMethodOverride(name) {
			ms = append(ms, vals...)
		}
	}
	if len(ms) > 1 {
		// Map order is random; which of two equally strict claims is
		// decided on, and logged, must not be.
		slices.Sort(ms)
	}
	// A key that reads as _method needs a "_", or a "." (PHP reads it as
	// "_"), or an escape of either; most queries have none of these and
	// cost nothing more.
	if strings.ContainsAny(rawQuery, "_.%") {
		ms = queryMethods(ms, rawQuery)
	}
	return ms
}

var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// isMethodOverride reports whether a header name folds to one of the
// method-override headers, without allocating: it runs on every header of
// every request.
func isMethodOverride(name string) bool {
	for _, h := range methodOverrideHeaders {
		if foldsTo(name, h) {
			return true
		}
	}
	return false
}

// queryMethods appends the value of every query parameter whose key a
// framework could read as _method. Pairs are split at "&" and, because
// older Rack and Python split there too, also at ";"; a pair read both ways
// counts both ways.
func queryMethods(ms []string, rawQuery string) []string {
	for seg := range strings.SplitSeq(rawQuery, "&") {
		ms = pairMethod(ms, seg)
		if strings.IndexByte(seg, ';') >= 0 {
			for part := range strings.SplitSeq(seg, ";") {
				ms = pairMethod(ms, part)
			}
		}
	}
	return ms
}

// pairMethod appends the decoded value of one key=value pair if its key
// reads as _method. A malformed escape in the key, or in the value of such
// a key, appends "?": decoders disagree on what it means (ASP.NET reads
// %u005F as "_"), so it may hide an override.
func pairMethod(ms []string, pair string) []string {
	key, val, _ := strings.Cut(pair, "=")
	if strings.ContainsAny(key, "%+") {
		k, err := url.QueryUnescape(key)
		if err != nil {
			return append(ms, "?")
		}
		if strings.IndexByte(k, '%') >= 0 {
			// Some stacks decode twice, and read %255F as "_" too.
			if k2, err := url.QueryUnescape(k); err == nil && isMethodKey(k2) {
				k = k2
			}
		}
		key = k
	}
	if !isMethodKey(key) {
		return ms
	}
	v, err := url.QueryUnescape(val)
	if err != nil {
		return append(ms, "?")
	}
	return append(ms, v)
}

// isMethodKey reports whether a decoded query key is _method to some
// framework: in any case, and after PHP's mangling of parameter names, which
// drops leading spaces, ends the name at a NUL or at "[" (_method[] is an
// array named _method) and reads "." and " " as "_".
func isMethodKey(key string) bool {
	const want = "_method"
	key = strings.TrimLeft(key, " ")
	if i := strings.IndexAny(key, "\x00["); i >= 0 {
		key = key[:i]
	}
	if len(key) != len(want) {
		return false
	}
	if c := key[0]; c != '_' && c != '.' {
		return false
	}
	return strings.EqualFold(key[1:], want[1:])
}
