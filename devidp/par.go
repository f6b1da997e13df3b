package devidp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// zitadel/oidc's op has no Pushed Authorization Requests (RFC 9126), so
// devidp serves them in front of it: the PAR endpoint keeps the pushed
// parameters under a request_uri, and /authorize with that request_uri is
// handed to op as if the browser had sent those parameters, and only those.
// op's token response has no room for authorization_details either, so
// the token endpoint's JSON is extended on the way out, as is discovery's.

const (
	parPath = "/par"
	// requestURIPrefix starts every request_uri (RFC 9126 §2.2).
	requestURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// parLifetime is short: the browser is sent to /authorize at once.
	parLifetime = 60 * time.Second
	maxPushBody = 64 << 10
)

// pushedRequest is what a request_uri stands for.
type pushedRequest struct {
	clientID string
	params   url.Values
	expires  time.Time
}

// pushedStore keeps pushed requests by request_uri until used or expired.
type pushedStore struct {
	mu   sync.Mutex
	reqs map[string]pushedRequest
}

func newPushedStore() *pushedStore { return &pushedStore{reqs: map[string]pushedRequest{}} }

// put stores params for clientID and returns their request_uri; ok is
// false when the store is full.
func (s *pushedStore) put(clientID string, params url.Values, now time.Time) (uri string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) >= maxPending {
		for k, p := range s.reqs {
			if now.After(p.expires) {
				delete(s.reqs, k)
			}
		}
	}
	if len(s.reqs) >= maxPending {
		return "", false // bounds memory if something loops on /par
	}
	uri = requestURIPrefix + randomID()
	s.reqs[uri] = pushedRequest{clientID: clientID, params: params, expires: now.Add(parLifetime)}
	return uri, true
}

// take removes and returns the live request behind uri: a request_uri
// works once (RFC 9126 §4), whatever the outcome of that use.
func (s *pushedStore) take(uri string, now time.Time) (pushedRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.reqs[uri]
	delete(s.reqs, uri)
	if !ok || now.After(p.expires) {
		return pushedRequest{}, false
	}
	return p, true
}

// servePAR is the pushed authorization request endpoint (RFC 9126 §2).
// The client authenticates as at the token endpoint; the request is checked
// as far as it can be before the browser arrives, so a bad redirect_uri or
// authorization_details is the client's error here, not the user's later.
func (p *Provider) servePAR(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "devidp: POST the authorization request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPushBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "devidp: want a form of at most 64 KiB")
		return
	}
	form := r.PostForm // RFC 9126 §2.1: parameters in the body only
	id, ok := p.authenticateClient(w, r)
	if !ok {
		return
	}
	if err := p.checkPushed(id, form); err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			oauthError(w, http.StatusBadRequest, string(oe.ErrorType), oe.Description)
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	params := url.Values{}
	for k, v := range form {
		if k != "client_secret" { // never kept, never replayed into op
			params[k] = slices.Clone(v)
		}
	}
	params.Set("client_id", id)
	uri, ok := p.pushed.put(id, params, time.Now())
	if !ok {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "devidp: too many pending requests")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(parLifetime / time.Second)})
}

// checkPushed checks what can be checked of a pushed request before the
// browser arrives; op checks the rest at /authorize.
func (p *Provider) checkPushed(clientID string, form url.Values) error {
	c, known := p.store.clients[clientID]
	switch {
	case !known:
		return errors.New("devidp: unknown client")
	case form.Has("request_uri"):
		return errors.New("devidp: request_uri must not be pushed")
	case form.Has("client_id") && form.Get("client_id") != clientID:
		return errors.New("devidp: client_id differs from the authenticated client")
	case !slices.Contains(c.Client.RedirectURIs, form.Get("redirect_uri")):
		return errors.New("devidp: redirect_uri is not registered for this client")
	case form.Has("authorization_details"):
		return checkDetails(form.Get("authorization_details"))
	}
	return nil
}

// clientCredentials reads client_secret_basic or client_secret_post
// credentials; a request must use exactly one (RFC 6749 §2.3). The status
// says how a failure is answered.
func clientCredentials(r *http.Request) (id, secret string, status int, err error) {
	id, secret, basic := r.BasicAuth()
	posted := r.PostForm.Has("client_secret")
	switch {
	case basic && posted:
		return "", "", http.StatusBadRequest, errors.New("devidp: use one client authentication method, not two")
	case basic:
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		var e1, e2 error
		id, e1 = url.QueryUnescape(id)
		secret, e2 = url.QueryUnescape(secret)
		if e1 != nil || e2 != nil {
			return "", "", http.StatusUnauthorized, errors.New("devidp: bad Basic credentials")
		}
		return id, secret, 0, nil
	case posted:
		return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), 0, nil
	}
	return "", "", http.StatusUnauthorized, errors.New("devidp: no client credentials")
}

// errRequestURI is why an authorization request naming a request_uri was
// refused; it is shown to the user, so it says nothing more specific.
var errRequestURI = errors.New("devidp: unknown, expired or already used request_uri")

// resolvePushed returns the authorization request to hand to op: r itself
// when it names no request_uri, else a GET carrying exactly the pushed
// parameters, whatever else r carried. pushed reports which.
func (p *Provider) resolvePushed(r *http.Request) (_ *http.Request, pushed bool, err error) {
	_ = r.ParseForm() // on error op answers the same error itself
	uri := r.Form.Get("request_uri")
	if uri == "" {
		if p.requirePAR {
			return nil, false, errors.New("devidp: this provider requires pushed authorization requests")
		}
		return r, false, nil
	}
	if !p.par {
		return nil, false, errors.New("devidp: request_uri is not supported")
	}
	req, ok := p.pushed.take(uri, time.Now())
	if !ok {
		return nil, false, errRequestURI
	}
	if r.Form.Get("client_id") != req.clientID {
		return nil, false, errors.New("devidp: client_id does not match the pushed request")
	}
	rr := r.Clone(r.Context())
	rr.Method = http.MethodGet
	rr.URL.RawQuery = req.params.Encode()
	rr.Body, rr.ContentLength = http.NoBody, 0
	rr.Header.Del("Content-Type")
	rr.Form, rr.PostForm = nil, nil
	return rr, true, nil
}

// serveDiscovery is op's discovery document plus what devidp serves in
// front of op: the introspection endpoint's client authentication methods
// (RFC 8414 §2), DPoP's algorithms and, with Config.PAR, the PAR metadata (RFC 9126 §5).
func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p.extendJSON(w, r, func(doc map[string]json.RawMessage) {
		doc["introspection_endpoint_auth_methods_supported"] = json.RawMessage(`["client_secret_basic","client_secret_post"]`)
		if algs, err := json.Marshal(proofAlgNames()); err == nil {
			doc["dpop_signing_alg_values_supported"] = algs // RFC 9449 §5.1
		}
		if !p.par {
			return
		}
		doc["pushed_authorization_request_endpoint"] = jsonString(p.issuer + parPath)
		if p.requirePAR {
			doc["require_pushed_authorization_requests"] = json.RawMessage("true")
		}
	})
}

// grantKey carries a *grant through op's token endpoint to storage.
type grantKey struct{}

// grant is what the token endpoint knows about one token request that op
// does not: what AuthRequestByCode learns about the code being redeemed that
// the token response must carry, and the DPoP key the request proved.
type grant struct {
	details string
	jkt     string // RFC 7638 thumbprint of the DPoP proof's key; "" = no proof
}

// serveToken is op's token endpoint, with a DPoP proof checked first (RFC
// 9449 §5: a refused proof spends nothing, not even the code), and the
// response extended: token_type DPoP for a bound token, and the
// authorization_details of the code's request (RFC 9396 §7).
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	jkt, err := p.checkProof(r, time.Now())
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		dpopError(w, err)
		return
	}
	g := &grant{jkt: jkt}
	r = r.WithContext(context.WithValue(r.Context(), grantKey{}, g))
	p.extendJSON(w, r, func(resp map[string]json.RawMessage) {
		if g.details != "" {
			resp["authorization_details"] = json.RawMessage(g.details)
		}
		if g.jkt != "" {
			resp["token_type"] = jsonString("DPoP")
		}
	})
}

// extendJSON runs op on r, and when op answers 200 with a JSON object lets
// edit add members before the answer is sent; anything else goes out as
// op wrote it.
func (p *Provider) extendJSON(w http.ResponseWriter, r *http.Request, edit func(map[string]json.RawMessage)) {
	buf := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	p.op.ServeHTTP(buf, r)
	body := buf.body.Bytes()
	if buf.status == http.StatusOK {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err == nil && obj != nil {
			edit(obj)
			if b, err := json.Marshal(obj); err == nil {
				body = b
			} else {
				slog.Error("devidp: extend JSON response", "err", err)
			}
		}
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(buf.status)
	w.Write(body)
}

// bufferedResponse holds op's answer so that it can be extended.
type bufferedResponse struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = status, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Error("devidp: write JSON", "err", err)
	}
}

// oauthError answers an OAuth error response (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// authenticateClient checks the client's credentials (client_secret_basic
// or client_secret_post), as the token endpoint does, and answers the
// request itself when they are missing or wrong.
func (p *Provider) authenticateClient(w http.ResponseWriter, r *http.Request) (id string, ok bool) {
	id, secret, status, err := clientCredentials(r)
	if err == nil {
		err = p.store.AuthorizeClientIDSecret(r.Context(), id, secret)
		status = http.StatusUnauthorized
	}
	if err == nil {
		return id, true
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		oauthError(w, status, "invalid_client", "devidp: client authentication failed")
		return "", false
	}
	oauthError(w, status, "invalid_request", err.Error())
	return "", false
}
