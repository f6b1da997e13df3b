// Package oidctest runs a minimal OpenID provider on 127.0.0.1 for tests.
//
// Unlike a real provider it lets the test decide every ID token claim and
// how the token is signed (wrong key, HS256, alg "none"), so relying-party
// tests can feed stepgate the crafted bad tokens a real provider never
// issues. LogoutToken builds back-channel logout tokens the same way. It serves discovery, a JWKS, an authorization endpoint that
// redirects straight back with a code (no user interaction), and a token
// endpoint that checks client credentials, redirect_uri and PKCE S256.
//
// AccessToken issues RFC 9068 JWT access tokens for Audience, and with
// Options.Introspection an introspection endpoint (RFC 7662) answers for
// them and for OpaqueToken's tokens; SetIntrospection takes over its
// answers, and Introspections reports what it was asked.
//
// With Options.PAR it also serves a pushed authorization request endpoint
// (RFC 9126) whose request_uri the authorization endpoint resolves, once,
// in place of the parameters in the URL; Pushed and Authorized report what
// was pushed and what each authorization actually used. authorization_details
// (RFC 9396) are remembered with the code and echoed in the token response
// unless Token.AuthorizationDetails says otherwise.
package oidctest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server. The zero value is a working provider.
type Options struct {
	ClientID, ClientSecret string   // defaults "stepgate" and "stepgate-secret"
	Subject                string   // sub of issued tokens; default "alice"
	SID                    string   // sid of ID and logout tokens; "" means none
	Algs                   []string // id_token_signing_alg_values_supported; nil means ["RS256"]
	AuthMethods            []string // token_endpoint_auth_methods_supported; nil means basic and post
	EndSession             bool     // advertise end_session_endpoint
	FailDiscovery          int      // answer 503 to the first FailDiscovery discovery requests
	Now                    func() time.Time

	// PAR serves a pushed authorization request endpoint (RFC 9126) at
	// /par and advertises it as pushed_authorization_request_endpoint.
	PAR bool
	// HidePAR, with PAR, serves /par but leaves it out of discovery.
	HidePAR bool
	// RequirePAR advertises require_pushed_authorization_requests and makes
	// /authorize refuse requests without a pushed request_uri. Without PAR
	// it is a provider that requires what it does not offer.
	RequirePAR bool
	// PARLifetime is the expires_in of pushed requests; default 60s.
	PARLifetime time.Duration

	// Introspection serves a token introspection endpoint (RFC 7662) at
	// /introspect and advertises it as introspection_endpoint.
	Introspection bool
	// HideIntrospection, with Introspection, serves /introspect but leaves
	// it out of discovery.
	HideIntrospection bool
	// IntrospectionAuthMethods is advertised as
	// introspection_endpoint_auth_methods_supported, and the endpoint
	// accepts only these; nil advertises nothing and accepts
	// client_secret_basic and client_secret_post.
	IntrospectionAuthMethods []string
}

// Introspection is one request to the introspection endpoint that passed
// client authentication: its form (with client_secret when sent that way)
// and the method, "client_secret_basic" or "client_secret_post".
type Introspection struct {
	Form       url.Values
	AuthMethod string
}

// RequestURIPrefix starts every request_uri the PAR endpoint issues
// (RFC 9126 §2.2).
const RequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// Pushed is one pushed authorization request as the PAR endpoint received
// it: the form (with client_secret when sent that way) and how the client
// authenticated, "client_secret_basic" or "client_secret_post".
type Pushed struct {
	Form       url.Values
	AuthMethod string
	RequestURI string // what the endpoint answered
}

// Token controls how the token endpoint builds its answers.
type Token struct {
	// Claims edits the default claims before signing; delete a key to omit
	// the claim. The defaults are iss, sub, aud, exp (+5m), iat, auth_time
	// (both now), nonce and acr (the first acr_values) as the authorization
	// request asked, amr ["pwd"] and email.
	Claims func(c map[string]any)
	// Header edits the JOSE header ({"alg", "kid", "typ"}) before signing.
	Header func(h map[string]any)
	// Alg is "RS256" (default), "HS256" (keyed with the DER public key, the
	// classic algorithm-confusion attack) or "none" (empty signature).
	Alg string
	// Key signs RS256 tokens; nil means Server.Key, the key in the JWKS.
	Key *rsa.PrivateKey
	// OmitIDToken leaves id_token out of the token response.
	OmitIDToken bool
	// AuthorizationDetails, if not nil, decides the authorization_details
	// member of the token response (RFC 9396 §7): it gets the raw JSON the
	// authorization request carried ("" for none) and returns the raw JSON
	// to send, or "" to omit the member. nil echoes the request's.
	AuthorizationDetails func(requested string) string
}

// Server is a running test provider. Its URL is the issuer.
type Server struct {
	URL                    string
	ClientID, ClientSecret string
	Key                    *rsa.PrivateKey // published in the JWKS as kid KeyID; shared by all Servers (see NewKey)
	KeyID                  string

	opts Options
	mux  http.Handler
	ts   *httptest.Server
	mu   sync.Mutex
	next Token
	// failStatus, when not 0, is what the endpoints in failPaths (every
	// endpoint when empty) answer; see FailWith.
	failStatus int
	failPaths  []string
	// discoveryHits counts discovery requests, for FailDiscovery.
	discoveryHits int
	jwksHits      int
	codes         map[string]authorization
	pushedReqs    map[string]pushedRequest // by request_uri, until used or expired
	pushed        []Pushed
	authorized    []url.Values
	issued        map[string]map[string]any // introspection answers, by token
	introspected  []Introspection
	introspect    http.HandlerFunc
}

// authorization is what the authorization endpoint remembers for a code.
type authorization struct {
	redirectURI, challenge, nonce string
	acrValues                     []string
	details                       string // authorization_details, raw JSON
}

// pushedRequest is a request_uri's parameters and when they expire.
type pushedRequest struct {
	params  url.Values
	expires time.Time
}

// NewServer starts a provider that stops when the test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "stepgate"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "stepgate-secret"
	}
	if opts.Subject == "" {
		opts.Subject = "alice"
	}
	if opts.Algs == nil {
		opts.Algs = []string{"RS256"}
	}
	if opts.AuthMethods == nil {
		opts.AuthMethods = []string{"client_secret_basic", "client_secret_post"}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PARLifetime == 0 {
		opts.PARLifetime = 60 * time.Second
	}
	s := &Server{
		ClientID:     opts.ClientID,
		ClientSecret: opts.ClientSecret,
		Key:          NewKey(t),
		KeyID:        "test-key-1",
		opts:         opts,
		codes:        map[string]authorization{},
		pushedReqs:   map[string]pushedRequest{},
		issued:       map[string]map[string]any{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /jwks", s.jwks)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	if opts.PAR {
		mux.HandleFunc("POST /par", s.par)
	}
	if opts.Introspection {
		mux.HandleFunc("POST /introspect", s.introspection)
	}
	mux.HandleFunc("GET /logout", func(w http.ResponseWriter, r *http.Request) {})
	s.mux = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		status := s.failStatus
		if len(s.failPaths) > 0 && !slices.Contains(s.failPaths, r.URL.Path) {
			status = 0
		}
		s.mu.Unlock()
		if status != 0 {
			http.Error(w, "provider failing on purpose", status)
			return
		}
		mux.ServeHTTP(w, r)
	})
	s.ts = httptest.NewServer(s.mux) // listens on 127.0.0.1
	t.Cleanup(func() { s.ts.Close() })
	s.URL = s.ts.URL
	return s
}

// Stop takes the provider down as a crashed or partitioned one is: its
// listener is closed, with every connection, so clients get connection
// refused. Start brings it back.
func (s *Server) Stop() { s.ts.Close() }

// Start serves again, on the address Stop closed, with every code, key and
// setting the provider had.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatalf("oidctest: listening again on %s: %v", s.URL, err)
	}
	ts := httptest.NewUnstartedServer(s.mux)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	s.ts = ts
}

// FailWith makes the endpoints at paths ("/jwks", "/token"...; every
// endpoint when none is named) answer status, as a provider that is up but
// failing, or behind a load balancer with no healthy backend, does. 0
// restores them all.
func (s *Server) FailWith(status int, paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failPaths = status, paths
}

var sharedKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// NewKey returns an RSA key. The first call generates it and later calls
// reuse it, because generation is slow under -race; use rsa.GenerateKey for
// a key that must differ from the published one.
func NewKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := sharedKey()
	if err != nil {
		t.Fatalf("oidctest: generating RSA key: %v", err)
	}
	return k
}

// SetToken sets how later token responses are built.
func (s *Server) SetToken(tok Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = tok
}

// Pushed returns every pushed authorization request accepted, in order.
func (s *Server) Pushed() []Pushed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pushed)
}

// Authorized returns, in order, the parameters each successful
// authorization used: the URL's, or for a request_uri the pushed ones.
func (s *Server) Authorized() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authorized)
}

// Login plays the browser: it follows authURL to the authorization endpoint
// and returns the code from the redirect back to the relying party, after
// checking that the state came back unchanged when the URL carries one
// (with PAR the state was pushed; use Redirect to see it).
func (s *Server) Login(t testing.TB, authURL string) (code string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("oidctest: auth URL: %v", err)
	}
	q := s.Redirect(t, authURL).Query()
	if want := u.Query().Get("state"); want != "" && q.Get("state") != want {
		t.Fatalf("oidctest: state came back as %q; want %q", q.Get("state"), want)
	}
	return q.Get("code")
}

// Redirect follows authURL to the authorization endpoint and returns where
// it redirects the browser back to. Anything but a 302 fails the test.
func (s *Server) Redirect(t testing.TB, authURL string) *url.URL {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatalf("oidctest: authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("oidctest: authorize: got status %d; want 302", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("oidctest: authorize redirect: %v", err)
	}
	return back
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.discoveryHits++
	fail := s.discoveryHits <= s.opts.FailDiscovery
	s.mu.Unlock()
	if fail {
		http.Error(w, "starting up", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                s.URL,
		"authorization_endpoint":                s.URL + "/authorize",
		"token_endpoint":                        s.URL + "/token",
		"jwks_uri":                              s.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": s.opts.Algs,
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": s.opts.AuthMethods,
	}
	if s.opts.EndSession {
		doc["end_session_endpoint"] = s.URL + "/logout"
	}
	if s.opts.PAR && !s.opts.HidePAR {
		doc["pushed_authorization_request_endpoint"] = s.URL + "/par"
	}
	if s.opts.RequirePAR {
		doc["require_pushed_authorization_requests"] = true
	}
	if s.opts.Introspection && !s.opts.HideIntrospection {
		doc["introspection_endpoint"] = s.URL + "/introspect"
	}
	if s.opts.IntrospectionAuthMethods != nil {
		doc["introspection_endpoint_auth_methods_supported"] = s.opts.IntrospectionAuthMethods
	}
	writeJSON(w, http.StatusOK, doc)
}

// JWKSHits reports how many times the key set was fetched.
func (s *Server) JWKSHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jwksHits
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.jwksHits++
	s.mu.Unlock()
	pub := s.Key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": s.KeyID,
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if uri := q.Get("request_uri"); uri != "" {
		// RFC 9126 §4: the pushed parameters replace the URL's, and a
		// request_uri works once, before it expires, for its own client.
		s.mu.Lock()
		p, found := s.pushedReqs[uri]
		delete(s.pushedReqs, uri)
		s.mu.Unlock()
		switch {
		case !found || !s.opts.PAR:
			http.Error(w, "invalid_request_uri: unknown or used request_uri", http.StatusBadRequest)
			return
		case s.opts.Now().After(p.expires):
			http.Error(w, "invalid_request_uri: request_uri expired", http.StatusBadRequest)
			return
		case q.Get("client_id") != p.params.Get("client_id"):
			http.Error(w, "invalid_request: client_id differs from the pushed request's", http.StatusBadRequest)
			return
		}
		q = p.params
	} else if s.opts.RequirePAR {
		http.Error(w, "invalid_request: pushed authorization requests are required", http.StatusBadRequest)
		return
	}
	switch {
	case q.Get("client_id") != s.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !back.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	s.mu.Lock()
	s.codes[code] = authorization{
		redirectURI: q.Get("redirect_uri"),
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		acrValues:   strings.Fields(q.Get("acr_values")),
		details:     q.Get("authorization_details"),
	}
	s.authorized = append(s.authorized, q)
	s.mu.Unlock()
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	bq.Set("iss", s.URL) // RFC 9207
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// par is the pushed authorization request endpoint (RFC 9126 §2): the
// client authenticates as at the token endpoint and gets a request_uri for
// the parameters it posted.
func (s *Server) par(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "bad form")
		return
	}
	method, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	switch f := r.PostForm; {
	case f.Has("request_uri"):
		oauthError(w, "invalid_request", "request_uri must not be pushed") // RFC 9126 §2.1
		return
	case f.Get("client_id") != s.ClientID:
		oauthError(w, "invalid_request", "client_id must name the authenticated client")
		return
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		if k != "client_secret" {
			params[k] = slices.Clone(v)
		}
	}
	uri := RequestURIPrefix + rand.Text()
	s.mu.Lock()
	s.pushedReqs[uri] = pushedRequest{params: params, expires: s.opts.Now().Add(s.opts.PARLifetime)}
	s.pushed = append(s.pushed, Pushed{Form: r.PostForm, AuthMethod: method, RequestURI: uri})
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": int(s.opts.PARLifetime / time.Second)})
}

// authenticateClient checks the client's credentials, accepting only the
// methods advertised, and returns the method used. On failure it has
// answered 401 invalid_client.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (method string, ok bool) {
	return s.authenticate(w, r, s.opts.AuthMethods)
}

// authenticate is authenticateClient accepting methods.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, methods []string) (method string, ok bool) {
	id, secret, basic := r.BasicAuth()
	method = "client_secret_basic"
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		method = "client_secret_post"
	}
	if id != s.ClientID || secret != s.ClientSecret || !slices.Contains(methods, method) {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return "", false
	}
	return method, true
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "bad form")
		return
	}
	if _, ok := s.authenticateClient(w, r); !ok {
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError(w, "unsupported_grant_type", "")
		return
	}
	s.mu.Lock()
	a, found := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code")) // codes are single use
	tok := s.next
	s.mu.Unlock()
	switch {
	case !found:
		oauthError(w, "invalid_grant", "unknown or used code")
		return
	case r.PostForm.Get("redirect_uri") != a.redirectURI:
		oauthError(w, "invalid_grant", "redirect_uri differs from the authorization request")
		return
	case s256(r.PostForm.Get("code_verifier")) != a.challenge:
		oauthError(w, "invalid_grant", "PKCE verification failed")
		return
	}
	resp := map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 300}
	if !tok.OmitIDToken {
		idt, err := s.idToken(a, tok)
		if err != nil {
			oauthError(w, "server_error", err.Error())
			return
		}
		resp["id_token"] = idt
	}
	details := a.details
	if tok.AuthorizationDetails != nil {
		details = tok.AuthorizationDetails(a.details)
	}
	if details != "" {
		if !json.Valid([]byte(details)) {
			oauthError(w, "server_error", "oidctest: Token.AuthorizationDetails returned invalid JSON")
			return
		}
		resp["authorization_details"] = json.RawMessage(details)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) idToken(a authorization, tok Token) (string, error) {
	now := s.opts.Now().Unix()
	claims := map[string]any{
		"iss":       s.URL,
		"sub":       s.opts.Subject,
		"aud":       s.ClientID,
		"exp":       now + 300,
		"iat":       now,
		"auth_time": now,
		"amr":       []string{"pwd"},
		"email":     s.opts.Subject + "@example.test",
	}
	if a.nonce != "" {
		claims["nonce"] = a.nonce
	}
	if s.opts.SID != "" {
		claims["sid"] = s.opts.SID
	}
	if len(a.acrValues) > 0 {
		claims["acr"] = a.acrValues[0] // an obliging provider
	}
	if tok.Claims != nil {
		tok.Claims(claims)
	}
	return s.sign(tok, "JWT", claims)
}

// BackchannelLogoutEvent is the events member that makes a JWT a logout
// token (OIDC Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Audience is the aud of the access tokens AccessToken issues by default:
// the API a gateway protects.
const Audience = "https://api.example.test"

// AccessToken returns a JWT access token (RFC 9068) built and signed as tok
// says; tok.OmitIDToken and tok.AuthorizationDetails are ignored. The
// default claims are iss, sub (Options.Subject), aud (Audience), client_id
// (ClientID), iat and auth_time (now), exp (+5m), a random jti, scope
// "openid email", amr ["pwd"] and, when Options.SID is set, sid; the
// header's typ is "at+jwt".
func (s *Server) AccessToken(tok Token) (string, error) {
	claims := s.accessClaims(tok)
	raw, err := s.sign(tok, "at+jwt", claims)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.issued[raw] = claims
	s.mu.Unlock()
	return raw, nil
}

// OpaqueToken returns a random access token that only the introspection
// endpoint can read: it answers with AccessToken's default claims, edited
// by claims (if not nil), and "active": true.
func (s *Server) OpaqueToken(claims func(map[string]any)) string {
	c := s.accessClaims(Token{Claims: claims})
	raw := rand.Text()
	s.mu.Lock()
	s.issued[raw] = c
	s.mu.Unlock()
	return raw
}

// SetIntrospection makes h answer introspection requests once the client
// has authenticated (Introspections still records them); nil restores the
// default answers.
func (s *Server) SetIntrospection(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.introspect = h
}

// Introspections returns every authenticated introspection request, in
// order.
func (s *Server) Introspections() []Introspection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.introspected)
}

// introspection is the token introspection endpoint (RFC 7662 §2): for a
// token AccessToken or OpaqueToken issued, its claims and "active": true;
// for any other, {"active": false}.
func (s *Server) introspection(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "bad form")
		return
	}
	methods := s.opts.IntrospectionAuthMethods
	if methods == nil {
		methods = []string{"client_secret_basic", "client_secret_post"}
	}
	method, ok := s.authenticate(w, r, methods)
	if !ok {
		return
	}
	s.mu.Lock()
	s.introspected = append(s.introspected, Introspection{Form: r.PostForm, AuthMethod: method})
	h := s.introspect
	claims := s.issued[r.PostForm.Get("token")]
	s.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	resp := map[string]any{"active": false}
	if claims != nil {
		resp = maps.Clone(claims)
		resp["active"] = true
	}
	writeJSON(w, http.StatusOK, resp)
}

// accessClaims are the claims of an access token built as tok says.
func (s *Server) accessClaims(tok Token) map[string]any {
	now := s.opts.Now().Unix()
	claims := map[string]any{
		"iss":       s.URL,
		"sub":       s.opts.Subject,
		"aud":       Audience,
		"client_id": s.ClientID,
		"iat":       now,
		"exp":       now + 300,
		"auth_time": now,
		"jti":       rand.Text(),
		"scope":     "openid email",
		"amr":       []string{"pwd"},
	}
	if s.opts.SID != "" {
		claims["sid"] = s.opts.SID
	}
	if tok.Claims != nil {
		tok.Claims(claims)
	}
	return claims
}

// LogoutToken returns a back-channel logout token (OIDC Back-Channel Logout
// 1.0 §2.4) built and signed as tok says; tok.OmitIDToken is ignored. The
// default claims are iss, aud (ClientID), iat (now), exp (+2m), a random
// jti, events with BackchannelLogoutEvent, sub (Options.Subject) and, when
// Options.SID is set, sid; the header's typ is "logout+jwt".
func (s *Server) LogoutToken(tok Token) (string, error) {
	now := s.opts.Now().Unix()
	claims := map[string]any{
		"iss":    s.URL,
		"aud":    s.ClientID,
		"iat":    now,
		"exp":    now + 120,
		"jti":    rand.Text(),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
		"sub":    s.opts.Subject,
	}
	if s.opts.SID != "" {
		claims["sid"] = s.opts.SID
	}
	if tok.Claims != nil {
		tok.Claims(claims)
	}
	return s.sign(tok, "logout+jwt", claims)
}

// sign signs claims as tok says, under a header of tok.Alg (default
// RS256), the published kid and typ, edited by tok.Header.
func (s *Server) sign(tok Token, typ string, claims map[string]any) (string, error) {
	alg := tok.Alg
	if alg == "" {
		alg = "RS256"
	}
	header := map[string]any{"alg": alg, "kid": s.KeyID, "typ": typ}
	if tok.Header != nil {
		tok.Header(header)
	}
	key := tok.Key
	if key == nil {
		key = s.Key
	}
	return Sign(header, claims, key)
}

// Sign returns the compact JWS of claims under header, signed as
// header["alg"] says: RS256 with key, HS256 keyed with key's DER-encoded
// public key, or "none" with an empty signature.
func Sign(header, claims map[string]any, key *rsa.PrivateKey) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64(h) + "." + b64(p)
	var sig []byte
	switch alg := header["alg"]; alg {
	case "RS256":
		sum := sha256.Sum256([]byte(input))
		if sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:]); err != nil {
			return "", err
		}
	case "HS256":
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return "", err
		}
		m := hmac.New(sha256.New, der)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "none":
	default:
		return "", fmt.Errorf("oidctest: cannot sign with alg %v", alg)
	}
	return input + "." + b64(sig), nil
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
