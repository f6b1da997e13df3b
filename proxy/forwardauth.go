package proxy

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// Forward-auth: an ingress asks /.stepgate/auth whether to let a request
// through and describes that request in headers. Two shapes are understood:
//
//   - headers (nginx auth_request, ingress-nginx, Traefik ForwardAuth,
//     Caddy forward_auth): the auth request is for /.stepgate/auth itself
//     and the original method, host and URI arrive in X-Forwarded-Method
//     (or X-Original-Method), X-Forwarded-Host and X-Forwarded-Uri (or
//     X-Original-URI, or X-Original-URL as an absolute URL);
//   - path prefix (Envoy ext_authz HTTP service with path_prefix
//     /.stepgate/auth): the original path and query follow the prefix, and
//     the method and Host are the original ones.
//
// Either way the description is believed only from a peer in
// trusted_proxies, and is never completed with defaults: what is missing,
// repeated, contradictory or unparseable is refused, never a decision about
// some other request such as "/".
//
// Answers: 200 with every identity header and X-Stepgate-Report (each
// empty when unknown or nothing to report) to allow;
// 401 with X-Stepgate-Signin (the absolute sign-in URL carrying the level)
// when a login or step-up is needed; 403 to deny. nginx auth_request
// understands only 2xx, 401 and 403 and turns anything else into a 500, so
// a description that cannot be decided is a 403 too, with X-Stepgate-Reason
// saying which of a few fixed words applies (an nginx error_page can turn
// malformed_request into a 400). With ?mode=redirect or the header
// X-Stepgate-Mode: redirect (Traefik, Caddy and Envoy pass the auth
// answer to the client) a browser navigation gets a 302 to the sign-in URL
// instead. ?level=NAME or X-Stepgate-Level: NAME adds a level that must be
// satisfied besides what the route table requires: it only ever makes the
// requirement stricter, so it is safe even when a client can send it. A
// name routes.yaml does not define is a 400.
const (
	authPath = reservedPrefix + "auth"

	// HeaderSignin carries the sign-in URL on a 401 from /.stepgate/auth.
	HeaderSignin = "X-Stepgate-Signin"
	// HeaderAuthMode selects the answer style: "redirect" or "status".
	HeaderAuthMode = "X-Stepgate-Mode"
	// HeaderAuthLevel names a level to require on top of the route's.
	HeaderAuthLevel = "X-Stepgate-Level"
	// HeaderReason says, in one of the Reason words, why an auth request
	// was refused.
	HeaderReason = "X-Stepgate-Reason"
)

// The words HeaderReason carries. They are fixed so that an ingress can
// branch on them and so that nothing a client sent is ever repeated back.
const (
	// ReasonAmbiguous: the description of the original request is missing,
	// repeated or contradictory.
	ReasonAmbiguous = "ambiguous_request"
	// ReasonMalformed: the described request-target, method or host cannot
	// be read one way only.
	ReasonMalformed = "malformed_request"
	// ReasonUnknownLevel: the auth request names a level the configuration
	// does not define.
	ReasonUnknownLevel = "unknown_level"
	// ReasonUnavailable: the request needs a session while the shared
	// revocation list is out of touch; try again shortly (Retry-After).
	ReasonUnavailable = "temporarily_unavailable"
)

// The request headers that describe the original request. A client must
// never be able to remove one on its way here (threat model case 28).
var forwardAuthInputs = []string{
	"X-Forwarded-Method", "X-Original-Method",
	"X-Forwarded-Host",
	"X-Forwarded-Uri", "X-Original-Uri", "X-Original-Url",
}

// forwardAuthSuffixed returns the endpoint name serveGateway switches on for
// a path-prefix (Envoy) auth request, so that /.stepgate/auth/admin/x is
// dispatched to forwardAuth like /.stepgate/auth.
func forwardAuthSuffixed(path string) string {
	if len(path) > len(authPath) && strings.HasPrefix(path, authPath+"/") {
		return path[len(reservedPrefix)-1:]
	}
	return "/auth"
}

// forwardAuth serves /.stepgate/auth and /.stepgate/auth/<original path>.
func (h *Handler) forwardAuth(w http.ResponseWriter, r *http.Request, t target, ev *event) {
	ev.action = "forward_auth"
	noStore(w)
	if !h.trustedPeer(r.RemoteAddr) {
		ev.reason = "untrusted peer"
		fail(w, r, http.StatusForbidden, "forbidden", "Only a trusted ingress may ask.")
		return
	}
	var (
		o    target // the request the ingress asks about
		opts url.Values
		err  error
	)
	if t.Path == authPath {
		o, err = originalFromHeaders(r.Header, h.routesOf(r).pathOpt)
		opts = r.URL.Query()
	} else {
		o, err = originalFromPrefix(r, h.routesOf(r).pathOpt)
	}
	if err != nil {
		rf := asRefusal(err)
		ev.reason = "forward-auth: " + rf.reason
		w.Header().Set(HeaderReason, rf.word)
		fail(w, r, http.StatusForbidden, rf.word, "The forwarded request could not be decided.")
		return
	}
	ev.path = o.Path

	var levels []*policy.Level
	for _, name := range append(opts["level"], r.Header.Values(HeaderAuthLevel)...) {
		l := h.routesOf(r).levels[name]
		if l == nil {
			// Either the ingress configuration names a level routes.yaml does
			// not define, or a client got its own X-Stepgate-Level through.
			// Neither is a reason to allow, and neither is the gateway's
			// fault: a 400 with a fixed message. The name is the client's
			// text, so it reaches only the access line, and only if it is
			// spelled like a level name.
			ev.reason = "forward-auth: unknown level " + loggableLevel(name)
			w.Header().Set(HeaderReason, ReasonUnknownLevel)
			fail(w, r, http.StatusBadRequest, ReasonUnknownLevel, "The auth request names a level the gateway does not define.")
			return
		}
		levels = append(levels, l)
	}

	now := h.now()
	st, bearer, p := h.authenticate(r, o, now, ev)
	if p != nil {
		ev.action, ev.reason = "forward_auth_reject", p.reason
		switch p.status {
		case http.StatusServiceUnavailable:
			// As below: nginx only passes 2xx, 401 and 403 on.
			w.Header().Set(HeaderReason, ReasonUnavailable)
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			fail(w, r, http.StatusForbidden, ReasonUnavailable, "The service is briefly unavailable. Try again in a few seconds.")
		default:
			// A malformed credential is a 401 here, not a 400, which
			// nginx would turn into a 500.
			p.status = http.StatusUnauthorized
			refuseBearer(w, p)
		}
		return
	}
	var facts *policy.Facts
	if st != nil {
		facts = &st.Facts
	}
	rule, d, ok := h.decide(r, o, levels, facts, now, ev)
	if !ok {
		// nginx turns anything but 2xx, 401 and 403 into a 500: a 403
		// with a reason the ingress samples map to a 503 page.
		ev.action = "forward_auth_unavailable"
		w.Header().Set(HeaderReason, ReasonUnavailable)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		fail(w, r, http.StatusForbidden, ReasonUnavailable, "The service is briefly unavailable. Try again in a few seconds.")
		return
	}

	if rule.Report {
		// Report-only: let it through, with the verdict for the app.
		ev.action = "forward_auth_" + wouldAction(d)
		report := ""
		if d.Action != policy.Allow {
			report = strings.ReplaceAll(wouldAction(d), "_", "-")
		}
		allowAnswer(w.Header(), facts, report)
		w.WriteHeader(http.StatusOK)
		return
	}
	switch d.Action {
	case policy.Allow:
		if rule.Confirm != nil && holds(rule, o.Method) {
			// The ingress forwards the body itself, so stepgate cannot
			// hold it: a confirm route is never let through this way.
			ev.action, ev.reason = "forward_auth_deny", "confirm route behind forward-auth: held transactions need the sidecar"
			fail(w, r, http.StatusForbidden, "forbidden", "This request must be confirmed through the gateway.")
			return
		}
		if rule.Level != nil && rule.Level.Once {
			if d, ok = h.consumeOnce(r, rule.Level, st, d); !ok {
				w.Header().Set(HeaderReason, ReasonUnavailable)
				fail(w, r, http.StatusForbidden, ReasonUnavailable, "The service is briefly unavailable. Try again in a few seconds.")
				return
			}
			if d.Action != policy.Allow {
				ev.action, ev.reason = "forward_auth_step-up", d.Reason
				if bearer != nil {
					bearerStepUp(w, bearer.scheme, d)
					return
				}
				signin := h.origin() + loginPath(d.Level, o.returnPath())
				w.Header().Set(HeaderSignin, signin)
				challenge(w, d, signin)
				return
			}
		}
		ev.action = "forward_auth_allow"
		allowAnswer(w.Header(), facts, "")
		w.WriteHeader(http.StatusOK)
	case policy.Login, policy.StepUp:
		ev.action = "forward_auth_" + d.Action.String()
		if bearer != nil {
			bearerStepUp(w, bearer.scheme, d)
			return
		}
		signin := h.origin() + loginPath(d.Level, o.returnPath())
		if isNavigation(o.Method, r) && redirectMode(opts, r.Header) {
			http.Redirect(w, r, signin, http.StatusFound)
			return
		}
		w.Header().Set(HeaderSignin, signin)
		challenge(w, d, signin)
	default:
		ev.action = "forward_auth_deny"
		fail(w, r, http.StatusForbidden, "forbidden", "You do not have access to this page.")
	}
}

// allowAnswer sets the headers of a 200: every identity header and
// X-Stepgate-Report, each present even when empty. An ingress copying a
// header the answer lacks may pass on something else than nothing: the
// client's own copy, or, with Caddy 2.6's copy_headers, the text of its
// unreplaced placeholder.
func allowAnswer(h http.Header, f *policy.Facts, report string) {
	setIdentity(h, f)
	h[HeaderReport] = []string{report}
}

// trustedPeer reports whether the direct peer is in trusted_proxies.
func (h *Handler) trustedPeer(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range h.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// redirectMode reports whether the ingress asked for 302 answers.
func redirectMode(q url.Values, hdr http.Header) bool {
	for _, v := range append(q["mode"], hdr.Values(HeaderAuthMode)...) {
		if strings.EqualFold(v, "redirect") {
			return true
		}
	}
	return false
}

// loggableLevel returns name quoted if it is spelled like a level name
// (what routes.yaml accepts: lower-case letters, digits and _, starting with
// a letter, here at most 32 bytes), so that an operator's typo can be
// found; anything else a client may have written is not repeated.
func loggableLevel(name string) string {
	ok := name != "" && len(name) <= 32 && 'a' <= name[0] && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
	}
	if !ok {
		return "(not a level name)"
	}
	return strconv.Quote(name)
}

// refusal is why a description of the original request cannot be decided:
// word, one of the Reason constants, for the ingress, and reason, fixed
// text for the access log. Neither holds anything the request said.
type refusal struct {
	word   string
	reason string
}

func (r *refusal) Error() string { return "forward-auth: " + r.word + ": " + r.reason }

func ambiguous(reason string) error { return &refusal{word: ReasonAmbiguous, reason: reason} }

func malformed(reason string) error { return &refusal{word: ReasonMalformed, reason: reason} }

// asRefusal returns the refusal in err. Every error the description
// readers return is one; anything else would be a bug here, and is refused
// as ambiguous rather than decided.
func asRefusal(err error) *refusal {
	var rf *refusal
	if errors.As(err, &rf) {
		return rf
	}
	return &refusal{word: ReasonAmbiguous, reason: "unclassified description error"}
}

var errAmbiguous = ambiguous("forwarded request headers missing, repeated or contradictory")

// single returns the one value of the first present header among names, and
// requires every other present one to carry the same value. ok is false
// when none is present; err when one is repeated or they disagree.
func single(hdr http.Header, names ...string) (v string, ok bool, err error) {
	for _, n := range names {
		vals := hdr.Values(n)
		switch {
		case len(vals) == 0:
			continue
		case len(vals) > 1:
			return "", false, errAmbiguous
		case ok && vals[0] != v:
			return "", false, errAmbiguous
		}
		v, ok = vals[0], true
	}
	return v, ok, nil
}

// originalFromHeaders reads the original request from an ingress's headers.
// Every alias that is present must agree: an ingress sets one of them, a
// client may have added another, and believing either would let the client
// choose what is decided (threat model case 26).
func originalFromHeaders(hdr http.Header, opt policy.PathOptions) (target, error) {
	if err := connectionNames(hdr); err != nil {
		return target{}, err
	}
	method, ok, err := single(hdr, "X-Forwarded-Method", "X-Original-Method")
	if err != nil || !ok {
		return target{}, errAmbiguous
	}
	uri, uriOK, err := single(hdr, "X-Forwarded-Uri", "X-Original-Uri")
	if err != nil {
		return target{}, err
	}
	host, hostOK, err := single(hdr, "X-Forwarded-Host")
	if err != nil {
		return target{}, err
	}
	if full, ok, err := single(hdr, "X-Original-Url"); err != nil {
		return target{}, err
	} else if ok {
		uHost, uURI, err := splitAbsoluteURL(full)
		if err != nil {
			return target{}, err
		}
		if (uriOK && uURI != uri) || (hostOK && !sameHost(uHost, host)) {
			return target{}, errAmbiguous
		}
		uri, uriOK, host, hostOK = uURI, true, uHost, true
	}
	if !uriOK || !hostOK {
		return target{}, errAmbiguous
	}
	return canonicalOriginal(method, host, uri, opt)
}

// originalFromPrefix reads the original request from a path-prefix auth
// request: /.stepgate/auth/admin/x?q is GET <Host>/admin/x?q.
func originalFromPrefix(r *http.Request, opt policy.PathOptions) (target, error) {
	// A request that also carries the header shape's description was meant
	// for /.stepgate/auth (say, an nginx location that proxies to
	// /.stepgate/auth/): deciding on its path would decide about "/".
	for _, n := range forwardAuthInputs {
		if _, ok := r.Header[n]; ok {
			return target{}, ambiguous("path-prefix auth request also carries " + n)
		}
	}
	uri := r.RequestURI
	// The prefix may be spelled with escapes or another case on the wire;
	// only the exact spelling is accepted, so that what follows it is
	// exactly the original request-target.
	if !strings.HasPrefix(uri, authPath+"/") {
		return target{}, ambiguous("path-prefix auth request not under " + authPath + "/")
	}
	return canonicalOriginal(r.Method, r.Host, uri[len(authPath):], opt)
}

// canonicalOriginal canonicalizes method, host and an origin-form URI with
// exactly the rules the proxy applies to the requests it serves, and
// accepts the path only if it already is canonical.
func canonicalOriginal(method, host, uri string, opt policy.PathOptions) (target, error) {
	if uri == "" || uri[0] != '/' {
		return target{}, malformed("forwarded URI is not a path")
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c < 0x21 || c >= 0x7f || c == '#' {
			return target{}, malformed("forwarded URI has a character a request-target cannot")
		}
	}
	path, query, _ := strings.Cut(uri, "?")
	req, err := policy.Canonical(method, host, path, opt)
	if err != nil {
		return target{}, malformed(rejectReason(err))
	}
	if req.Path != path {
		// The ingress forwards the path as the client wrote it, not our
		// canonical form, so a decision on the canonical form would be about
		// another request than the one the app receives: "/admin/x/../../public"
		// is "/public" here but may be routed under /admin by an app that does
		// not resolve dot segments (threat model case 29).
		return target{}, malformed("forwarded path is not in canonical form")
	}
	return target{Request: req, Query: query}, nil
}

// splitAbsoluteURL splits an http(s) URL into its authority and its
// origin-form rest, without decoding anything.
func splitAbsoluteURL(s string) (host, uri string, err error) {
	bad := malformed("X-Original-URL is not an absolute http(s) URL")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return "", "", bad
	}
	i := strings.IndexAny(rest, "/?#")
	if i <= 0 || rest[i] != '/' {
		return "", "", bad
	}
	return rest[:i], rest[i:], nil
}

// sameHost compares two host headers in canonical form.
func sameHost(a, b string) bool {
	ca, errA := policy.CanonicalHost(a)
	cb, errB := policy.CanonicalHost(b)
	return errA == nil && errB == nil && ca == cb
}

// connectionNames refuses an auth request whose Connection header names
// one of the describing headers. Such a token was put there to make a
// proxy on the way drop that header (threat model case 28); whatever
// survived may be a mix of the ingress's values and the client's.
func connectionNames(hdr http.Header) error {
	for _, v := range hdr.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			for _, n := range forwardAuthInputs {
				if strings.EqualFold(tok, n) {
					return ambiguous("Connection names " + n)
				}
			}
		}
	}
	return nil
}
