package devidp

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	authRequestTTL = 10 * time.Minute // from /authorize to the code exchange
	codeTTL        = 2 * time.Minute  // from the code's issue to its exchange
	tokenTTL       = time.Hour        // ID tokens, and access tokens by default
	refreshTTL     = 24 * time.Hour   // a refresh token, each one of a rotation
	maxPending     = 10000            // bounds memory if something loops on /authorize
)

// storage is devidp's in-memory op.Storage. Everything is keyed by random
// IDs and guarded by one mutex; values handed to op are copies, so op never
// sees a login half-written.
type storage struct {
	issuer      string
	apiAudience string        // aud of access tokens; "" = the client's ID
	tokenTTL    time.Duration // of access tokens
	clients     map[string]*opClient
	key         *signingKey
	atSigner    jose.Signer // signs access tokens with typ at+jwt

	mu       sync.Mutex
	requests map[string]*authRequest  // by ID
	codes    map[string]codeEntry     // by code, until exchanged
	spent    map[string]codeEntry     // by code, after exchange, to detect replay
	tokens   map[string]*accessToken  // by token ID
	byValue  map[string]string        // token ID by the token as issued
	refresh  map[string]*refreshToken // by the token as issued
}

// refreshToken is a refresh token: the login it continues, frozen, so that
// what it gets never says more than that login did.
type refreshToken struct {
	login   *authRequest // a copy of the completed auth request
	expires time.Time
}

type codeEntry struct {
	requestID string
	expires   time.Time
}

// accessToken is one issued access token and what it says: the login it
// came from (copied, so it outlives the auth request) and, once minted, the
// token itself.
type accessToken struct {
	id                       string // jti, and op's token ID
	subject, email, clientID string
	requestID                string // the auth request it was issued for
	scopes                   []string
	audience                 []string
	acr                      string
	amr                      []string
	authTime                 time.Time
	sid                      string
	jkt                      string // RFC 7638 thumbprint of the DPoP key it is bound to; "" = a bearer token
	opaque                   bool
	issued, expires          time.Time
	value                    string // the token as the client got it; "" until minted
}

func newStorage(issuer, apiAudience string, tokenTTL time.Duration, clients []Client, key *signingKey) (*storage, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.key, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType(accessTokenType))
	if err != nil {
		return nil, fmt.Errorf("devidp: access token signer: %w", err)
	}
	s := &storage{
		issuer:      issuer,
		apiAudience: apiAudience,
		tokenTTL:    tokenTTL,
		clients:     make(map[string]*opClient, len(clients)),
		key:         key,
		atSigner:    signer,
		requests:    map[string]*authRequest{},
		codes:       map[string]codeEntry{},
		spent:       map[string]codeEntry{},
		tokens:      map[string]*accessToken{},
		byValue:     map[string]string{},
		refresh:     map[string]*refreshToken{},
	}
	for _, c := range clients {
		if c.CLI {
			c.RedirectURIs = append(slices.Clip(c.RedirectURIs), issuer+CLICodePath)
		}
		s.clients[c.ID] = &opClient{Client: c, issuer: issuer}
	}
	return s, nil
}

var errUnsupported = errors.New("devidp: only the authorization code flow is supported")

// sweep drops expired entries. The caller holds s.mu.
func (s *storage) sweep(now time.Time) {
	for id, ar := range s.requests {
		if now.After(ar.created.Add(authRequestTTL)) {
			delete(s.requests, id)
		}
	}
	for c, e := range s.codes {
		if now.After(e.expires) {
			delete(s.codes, c)
		}
	}
	for c, e := range s.spent {
		// Remember spent codes as long as their auth request could live,
		// so a replay is recognised and its tokens revoked.
		if now.After(e.expires.Add(authRequestTTL)) {
			delete(s.spent, c)
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			s.dropToken(id)
		}
	}
	for v, rt := range s.refresh {
		if now.After(rt.expires) {
			delete(s.refresh, v)
		}
	}
}

// dropToken forgets a token, revoking it. The caller holds s.mu.
func (s *storage) dropToken(id string) {
	if t, ok := s.tokens[id]; ok {
		delete(s.byValue, t.value)
		delete(s.tokens, id)
	}
}

// CreateAuthRequest stores a request that op has checked against its client
// (redirect_uri, response_type, scopes; opClient allows only code). devidp
// adds what op leaves optional: the openid scope and PKCE with S256 (which
// a CLI client may leave out, but not weaken).
func (s *storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if !slices.Contains(r.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("devidp: scope must include openid")
	}
	var challenge *oidc.CodeChallenge
	switch c, known := s.clients[r.ClientID]; {
	case r.CodeChallenge == "" && r.CodeChallengeMethod == "" && known && c.Client.CLI:
		// No PKCE: the person at the terminal redeems the code with the secret.
	case r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("devidp: PKCE with code_challenge_method=S256 is required")
	default:
		challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	sent, ok := ctx.Value(requestKey{}).(Request)
	if !ok {
		// Reached only if op's authorize handler is mounted without
		// recordAuthorize; fall back to what op parsed.
		sent = requestFromOIDC(r)
	}
	if sent.AuthorizationDetails != "" {
		if err := checkDetails(sent.AuthorizationDetails); err != nil {
			return nil, err
		}
	}

	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	if len(s.requests) >= maxPending {
		return nil, oidc.ErrServerError().WithDescription("devidp: too many pending logins")
	}
	ar := &authRequest{
		id:           randomID(),
		created:      now,
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		state:        r.State,
		nonce:        r.Nonce,
		scopes:       slices.Clone(r.Scopes),
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
		challenge:    challenge,
		sent:         sent,
	}
	s.requests[ar.id] = ar
	return ar.copy(), nil
}

// AuthRequestByID returns a live auth request, whether or not its login is done.
func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	ar, err := s.pending(id)
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// pending returns a copy of a live auth request.
func (s *storage) pending(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.requests[id]
	if !ok || time.Now().After(ar.created.Add(authRequestTTL)) {
		return nil, errors.New("devidp: unknown or expired auth request")
	}
	return ar.copy(), nil
}

// complete records the login's outcome and the SSO session it belongs to
// (sid "" for none). It refuses a request already completed, so a replayed
// login cannot swap the identity behind a code.
func (s *storage) complete(id string, l Login, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.requests[id]
	switch {
	case !ok || time.Now().After(ar.created.Add(authRequestTTL)):
		return errors.New("devidp: unknown or expired auth request")
	case ar.done:
		return errors.New("devidp: auth request already completed")
	}
	ar.done = true
	ar.subject, ar.email, ar.acr = l.Subject, l.Email, l.ACR
	ar.amr = slices.Clone(l.AMR)
	ar.authTime = l.AuthTime
	ar.sid = sid
	ar.details = ar.sent.AuthorizationDetails
	if l.AuthorizationDetails != "" {
		ar.details = l.AuthorizationDetails
	}
	if l.OmitAuthorizationDetails {
		ar.details = ""
	}
	return nil
}

// SaveAuthCode binds a code to a completed request. Only one code per
// request: a second visit to /authorize/callback gets an error, not a code.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.requests[id]
	switch {
	case !ok:
		return errors.New("devidp: unknown or expired auth request")
	case !ar.done:
		return errors.New("devidp: login not completed")
	case ar.codeIssued:
		return errors.New("devidp: code already issued for this auth request")
	}
	ar.codeIssued = true
	s.codes[code] = codeEntry{requestID: id, expires: time.Now().Add(codeTTL)}
	return nil
}

// AuthRequestByCode spends the code on first presentation, even if the token
// request then fails (bad verifier or secret), so a code cannot be guessed
// at. A second presentation revokes what the first one got (RFC 6749 §4.1.2).
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.spent[code]; ok {
		for id, t := range s.tokens {
			if t.requestID == e.requestID {
				s.dropToken(id)
			}
		}
		for v, rt := range s.refresh {
			if rt.login.id == e.requestID {
				delete(s.refresh, v)
			}
		}
		delete(s.requests, e.requestID)
		return nil, errors.New("devidp: code already used; its tokens are revoked")
	}
	e, ok := s.codes[code]
	if !ok {
		return nil, errors.New("devidp: unknown code")
	}
	delete(s.codes, code)
	s.spent[code] = e
	if now.After(e.expires) {
		return nil, errors.New("devidp: code expired")
	}
	ar, ok := s.requests[e.requestID]
	if !ok {
		return nil, errors.New("devidp: auth request of code expired")
	}
	if g, ok := ctx.Value(grantKey{}).(*grant); ok {
		g.details = ar.details // for the token response; see serveToken
	}
	return ar.copy(), nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	return nil
}

// CreateAccessToken records the token op is about to issue, with what
// the login said; tokenCrypto then mints it (see accesstoken.go).
func (s *storage) CreateAccessToken(ctx context.Context, tr op.TokenRequest) (string, time.Time, error) {
	ar, ok := tr.(*authRequest)
	if !ok {
		return "", time.Time{}, errUnsupported
	}
	t, err := s.newAccessToken(ctx, ar)
	if err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

func (s *storage) newAccessToken(ctx context.Context, ar *authRequest) (*accessToken, error) {
	c, ok := s.clients[ar.clientID]
	if !ok {
		return nil, fmt.Errorf("devidp: unknown client %q", ar.clientID)
	}
	aud := []string{ar.clientID}
	if s.apiAudience != "" {
		aud = []string{s.apiAudience}
	}
	var jkt string
	if g, ok := ctx.Value(grantKey{}).(*grant); ok {
		jkt = g.jkt
	}
	now := time.Now()
	return &accessToken{
		id: randomID(), subject: ar.subject, email: ar.email, clientID: ar.clientID, requestID: ar.id,
		scopes: ar.scopes, audience: aud, acr: ar.acr, amr: ar.amr, authTime: ar.authTime, sid: ar.sid,
		jkt: jkt, opaque: c.Client.AccessToken == AccessTokenOpaque,
		issued: now, expires: now.Add(s.tokenTTL),
	}, nil
}

// CreateAccessAndRefreshTokens is CreateAccessToken plus a refresh token,
// for a code request with offline_access (current "") or a refresh grant,
// which spends current: refresh tokens rotate (RFC 9700 §4.14.2).
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, tr op.TokenRequest, current string) (string, string, time.Time, error) {
	ar, ok := tr.(*authRequest)
	if !ok {
		return "", "", time.Time{}, errUnsupported
	}
	t, err := s.newAccessToken(ctx, ar)
	if err != nil {
		return "", "", time.Time{}, err
	}
	value := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		if _, ok := s.refresh[current]; !ok {
			// Spent by a concurrent request between op's lookup and now.
			return "", "", time.Time{}, op.ErrInvalidRefreshToken
		}
		delete(s.refresh, current)
	}
	s.tokens[t.id] = t
	s.refresh[value] = &refreshToken{login: ar.copy(), expires: time.Now().Add(refreshTTL)}
	return t.id, value, t.expires, nil
}

// TokenRequestByRefreshToken returns the login a live refresh token
// continues, as the auth request it came from: op then issues tokens with
// that login's acr, amr, auth_time and sid, and no nonce (OIDC Core §12.2).
func (s *storage) TokenRequestByRefreshToken(_ context.Context, value string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[value]
	if !ok || !time.Now().Before(rt.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	ar := rt.login.copy()
	ar.nonce = ""
	return ar, nil
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken revokes an access token (op passes its ID) or a refresh
// token of clientID. Unknown tokens are not an error (RFC 7009 §2.2).
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenOrID]; ok && t.clientID == clientID {
		s.dropToken(tokenOrID)
	}
	if rt, ok := s.refresh[tokenOrID]; ok && rt.login.clientID == clientID {
		delete(s.refresh, tokenOrID)
	}
	return nil
}

// GetRefreshTokenInfo is how op's revocation endpoint recognises a
// refresh token; the token itself is its ID.
func (s *storage) GetRefreshTokenInfo(_ context.Context, clientID, value string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[value]
	if !ok || rt.login.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.login.subject, value, nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{id: s.key.id, key: &s.key.key.PublicKey}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("devidp: unknown client %q", id)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok {
		return fmt.Errorf("devidp: unknown client %q", id)
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return errors.New("devidp: wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(_ context.Context, ui *oidc.UserInfo, userID, _ string, _ []string) error {
	ui.Subject = userID
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims from the login.
// email is set whenever the login has one, whatever the scope; sid names
// the SSO session (op calls this for ID tokens only, never for userinfo).
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, r op.IDTokenRequest, _ []string) error {
	ar, ok := r.(*authRequest)
	if !ok {
		return errUnsupported
	}
	ui.Subject = ar.subject
	if ar.email != "" {
		ui.Email, ui.EmailVerified = ar.email, true
	}
	if ar.sid != "" {
		ui.AppendClaims("sid", ar.sid)
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || time.Now().After(t.expires) || t.subject != subject {
		return errors.New("devidp: access token unknown, expired or revoked")
	}
	ui.Subject = t.subject
	if t.email != "" {
		ui.Email, ui.EmailVerified = t.email, true
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("devidp: introspection is not supported")
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("devidp: JWT client authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("devidp: JWT profile grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// authRequest is op's view of one authorization request and, once the login
// is done, of its outcome.
type authRequest struct {
	id           string
	created      time.Time
	clientID     string
	redirectURI  string
	state, nonce string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	sent         Request // acr_values, max_age, prompt, claims, hints as sent

	done       bool
	codeIssued bool
	subject    string
	email      string
	acr        string
	amr        []string
	authTime   time.Time
	sid        string // the SSO session's ID; "" when the store was full
	details    string // authorization_details for the token response, raw JSON
}

// copy returns a snapshot; slices are never modified in place, so sharing
// them is safe.
func (a *authRequest) copy() *authRequest {
	c := *a
	return &c
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return a.acr }
func (a *authRequest) GetAMR() []string                      { return a.amr }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// SetCurrentScopes narrows a refresh grant to the scopes it asked for
// (op.RefreshTokenRequest); a is a copy made for that grant.
func (a *authRequest) SetCurrentScopes(scopes []string) { a.scopes = scopes }

// opClient adapts Client to op.Client: a confidential web client, code flow
// only, no clock skew.
type opClient struct {
	Client
	issuer string
}

func (c *opClient) GetID() string                       { return c.ID }
func (c *opClient) RedirectURIs() []string              { return c.Client.RedirectURIs }
func (c *opClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }

// AuthMethod is basic, but op checks the secret the same way whether it came
// in the Authorization header or the form, so client_secret_post works too.
func (c *opClient) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodBasic }
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *opClient) GrantTypes() []oidc.GrantType {
	if c.Client.RefreshTokens {
		return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	}
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c *opClient) LoginURL(id string) string {
	return c.issuer + loginPath + "?authRequestID=" + url.QueryEscape(id)
}

// AccessTokenType is bearer for every client, JWT ones too: op then asks
// its Crypto for the token, and devidp's (tokenCrypto) mints the kind the
// client wants. op's own JWTs have typ JWT, not RFC 9068's at+jwt.
func (c *opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }

func (c *opClient) IDTokenLifetime() time.Duration       { return tokenTTL }
func (c *opClient) DevMode() bool                        { return false }
func (c *opClient) IsScopeAllowed(s string) bool         { return slices.Contains(c.Client.Scopes, s) }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool { return true } // user claims go in the ID token too

// ClockSkew is zero: op subtracts it from auth_time and iat, which would
// make auth_time differ from the login's.
func (c *opClient) ClockSkew() time.Duration { return 0 }

func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is the JWKS entry of a signingKey.
type publicKey struct {
	id  string
	key *rsa.PublicKey
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }
