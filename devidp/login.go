package devidp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginPath is where op sends the browser after /authorize (opClient.LoginURL).
const loginPath = "/login"

// Request is an authorization request as the client sent it, before op's
// defaults (op turns prompt=login into max_age=0; Request does not).
type Request struct {
	ClientID    string
	ACRValues   []string       // acr_values, split on spaces
	MaxAge      *time.Duration // max_age; nil when absent or not a number
	Prompt      []string       // prompt, split on spaces
	Claims      string         // the claims parameter, raw JSON
	LoginHint   string
	IDTokenHint string
	// AuthorizationDetails is the authorization_details parameter (RFC
	// 9396), raw JSON; "" when absent.
	AuthorizationDetails string
	// Pushed reports that the parameters came from a pushed authorization
	// request (RFC 9126), named by the request_uri the browser brought.
	Pushed bool
}

// Login is how a scripted login ends.
type Login struct {
	Subject, Email string
	// ACR is issued as-is ("" = no acr claim) unless HonourACRValues applies.
	ACR string
	AMR []string
	// AuthTime is the auth_time claim; zero means now.
	AuthTime time.Time
	// HonourACRValues, when the request has acr_values, issues acr = the
	// first requested value and amr ["pwd","otp","mfa"], like a provider that
	// performed the step-up it was asked for.
	HonourACRValues bool
	// Error, if set, ends the login with a redirect to the client carrying
	// error=<Error> and the state, e.g. "unmet_authentication_requirements"
	// or "access_denied".
	Error string
	// AuthorizationDetails, if set, is returned in the token response
	// instead of the request's authorization_details: a provider that
	// authorized another transaction than the one asked for, for tests. It
	// must be JSON. "" returns what was asked for.
	AuthorizationDetails string
	// OmitAuthorizationDetails leaves authorization_details out of the
	// token response, though the request had them.
	OmitAuthorizationDetails bool
}

type requestKey struct{}

// serveAuthorize is /authorize: a request naming a request_uri becomes
// the pushed request, then op takes over.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	r, pushed, err := p.resolvePushed(r)
	if err != nil {
		// The request's redirect_uri is not to be trusted, so the error is
		// the user's to see, not the client's (RFC 6749 §4.1.2.1).
		w.Header().Set("Cache-Control", "no-store")
		renderPage(w, http.StatusBadRequest, pageData{
			Title:   "Sign-in request not valid",
			Message: strings.TrimPrefix(err.Error(), "devidp: ") + ". Go back to the application and try again.",
		})
		return
	}
	p.op.ServeHTTP(w, p.recordAuthorize(r, pushed))
}

// recordAuthorize notes the request as sent and hands it to
// storage.CreateAuthRequest through the context: op's parser drops the
// claims and authorization_details parameters and rewrites max_age.
func (p *Provider) recordAuthorize(r *http.Request, pushed bool) *http.Request {
	_ = r.ParseForm() // on error op answers the same error itself
	req := requestFromForm(r.Form)
	req.Pushed = pushed
	p.mu.Lock()
	p.requests = append(p.requests, req)
	p.mu.Unlock()
	return r.WithContext(context.WithValue(r.Context(), requestKey{}, req))
}

func requestFromForm(f url.Values) Request {
	req := Request{
		ClientID:             f.Get("client_id"),
		ACRValues:            fields(f.Get("acr_values")),
		Prompt:               fields(f.Get("prompt")),
		Claims:               f.Get("claims"),
		LoginHint:            f.Get("login_hint"),
		IDTokenHint:          f.Get("id_token_hint"),
		AuthorizationDetails: f.Get("authorization_details"),
	}
	if v := f.Get("max_age"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			d := time.Duration(n) * time.Second
			req.MaxAge = &d
		}
	}
	return req
}

func requestFromOIDC(r *oidc.AuthRequest) Request {
	req := Request{
		ClientID:    r.ClientID,
		ACRValues:   slices.Clone(r.ACRValues),
		Prompt:      slices.Clone(r.Prompt),
		LoginHint:   r.LoginHint,
		IDTokenHint: r.IDTokenHint,
	}
	if r.MaxAge != nil {
		d := time.Duration(*r.MaxAge) * time.Second
		req.MaxAge = &d
	}
	return req
}

// fields splits a space-delimited parameter; nil when there is nothing.
func fields(s string) []string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	return f
}

// serveLogin is the login step of /authorize. A script, when set, decides
// at once; otherwise the user signs in with the form. Both end in finish.
func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "devidp: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ar, err := p.store.pending(r.FormValue("authRequestID"))
	if err != nil {
		http.Error(w, "devidp: unknown or expired login request", http.StatusBadRequest)
		return
	}
	if ar.done {
		http.Error(w, "devidp: login request already completed", http.StatusBadRequest)
		return
	}
	if script := p.currentScript(); script != nil {
		l := script(ar.sent)
		var sid string
		if l.Error == "" && l.Subject != "" {
			var ended *ssoSession
			sid, ended = p.sso.scriptedLogin(w, r, l.Subject, p.secure, time.Now())
			p.loggedOut(ended)
		}
		p.finish(w, r, ar, l, sid)
		return
	}
	p.serveForm(w, r, ar)
}

// finish ends a login: an error goes straight back to the client; an
// identity is recorded, with the SSO session sid it belongs to, and the
// browser sent to op's callback, which issues the code.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, ar *authRequest, l Login, sid string) {
	if l.Error != "" {
		if !validErrorCode(l.Error) {
			http.Error(w, "devidp: login Error is not a valid OAuth error code", http.StatusInternalServerError)
			return
		}
		_ = p.store.DeleteAuthRequest(r.Context(), ar.id) // never errs
		p.redirectError(w, r, ar, l.Error)
		return
	}
	if l.Subject == "" {
		// Fail closed: a script bug must not turn into a token for nobody.
		http.Error(w, "devidp: login has neither Subject nor Error", http.StatusInternalServerError)
		return
	}
	if l.AuthorizationDetails != "" && !json.Valid([]byte(l.AuthorizationDetails)) {
		http.Error(w, "devidp: login AuthorizationDetails is not JSON", http.StatusInternalServerError)
		return
	}
	if l.HonourACRValues && len(ar.sent.ACRValues) > 0 {
		l.ACR = ar.sent.ACRValues[0]
		l.AMR = []string{"pwd", "otp", "mfa"}
	}
	if l.AuthTime.IsZero() {
		l.AuthTime = time.Now()
	}
	if err := p.store.complete(ar.id, l, sid); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.sso.joined(sid, ar.clientID) // told when the session ends
	callback := op.AuthCallbackURL(p.op)(op.ContextWithIssuer(r.Context(), p.issuer), ar.id)
	http.Redirect(w, r, callback, http.StatusSeeOther)
}

// errorResponse is an authorization error response (RFC 6749 §4.1.2.1).
type errorResponse struct {
	Error string `schema:"error"`
	State string `schema:"state,omitempty"`
}

// redirectError sends the browser back to the client with error and state.
// It builds the response itself rather than through op.AuthRequestError,
// which would log the state.
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, ar *authRequest, code string) {
	resp := &errorResponse{Error: code, State: ar.state}
	if ar.responseMode == oidc.ResponseModeFormPost {
		if err := op.AuthResponseFormPost(w, ar.redirectURI, resp, p.op.Encoder()); err != nil {
			slog.Error("devidp: form_post error response", "err", err)
		}
		return
	}
	u, err := op.AuthResponseURL(ar.redirectURI, ar.responseType, ar.responseMode, resp, p.op.Encoder())
	if err != nil {
		http.Error(w, "devidp: cannot build error response", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// validErrorCode reports whether s may be an OAuth error code: one or more
// of %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §4.1.2.1).
func validErrorCode(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// checkPassword compares digests in constant time, and compares even for an
// unknown user, so timing tells nothing about which part was wrong.
func (p *Provider) checkPassword(username, password string) (User, bool) {
	u, known := p.users[username]
	want := sha256.Sum256([]byte(u.Password))
	got := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(want[:], got[:]) == 1
	return u, known && match
}
