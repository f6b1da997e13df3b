package devidp

import (
	"net/http"
	"net/url"
	"sync"
	"time"
)

const (
	// ssoCookie names the provider's browser session. It differs from every
	// stepgate cookie: on 127.0.0.1 cookies are shared across ports.
	ssoCookie   = "devidp_sso"
	ssoLifetime = 12 * time.Hour
	maxSSO      = 10000 // bounds memory if something loops on the login form
	maxCodeTry  = 5     // wrong one-time codes per login before access_denied
)

// ssoSession is one browser's sign-in at the provider: who, and when each
// factor was last proven. auth_time is the later of the two.
type ssoSession struct {
	username string
	pwdAt    time.Time
	otpAt    time.Time // zero until a one-time code was entered
	created  time.Time
}

func (s *ssoSession) lastAuth() time.Time {
	if s.otpAt.After(s.pwdAt) {
		return s.otpAt
	}
	return s.pwdAt
}

// loginStep is the progress of one authorization request through the page.
// What it needs is decided once, when the page is first shown, so a factor
// entered during the login cannot change what the login asks for.
type loginStep struct {
	created  time.Time
	needPwd  bool   // no usable SSO session, prompt=login, or too old for max_age
	wantOTP  bool   // multi-factor acr_values, prompt=login or max_age exceeded
	username string // who proved the password in this login, or the SSO user
	wrong    int    // wrong one-time codes so far
}

// ssoStore keeps sessions by a random cookie value and login steps by auth
// request ID, in memory.
type ssoStore struct {
	mu       sync.Mutex
	sessions map[string]*ssoSession
	steps    map[string]*loginStep
}

func newSSOStore() *ssoStore {
	return &ssoStore{sessions: map[string]*ssoSession{}, steps: map[string]*loginStep{}}
}

// sweep drops expired entries. The caller holds s.mu.
func (s *ssoStore) sweep(now time.Time) {
	for k, v := range s.sessions {
		if now.Sub(v.created) > ssoLifetime {
			delete(s.sessions, k)
		}
	}
	for k, v := range s.steps {
		if now.Sub(v.created) > authRequestTTL {
			delete(s.steps, k)
		}
	}
}

// session returns a copy of the browser's SSO session, or nil.
func (s *ssoStore) session(r *http.Request, now time.Time) *ssoSession {
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[c.Value]
	if !ok || now.Sub(ss.created) > ssoLifetime {
		return nil
	}
	cp := *ss
	return &cp
}

// step returns the login step of auth request id, creating it with mk on
// first use. The returned value is a copy; change it with update.
func (s *ssoStore) step(id string, mk func() loginStep) loginStep {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.steps[id]; ok {
		return *st
	}
	st := mk()
	if len(s.steps) >= maxPending {
		s.sweep(time.Now())
	}
	s.steps[id] = &st
	return st
}

func (s *ssoStore) update(id string, f func(*loginStep)) loginStep {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.steps[id]
	if !ok {
		return loginStep{}
	}
	f(st)
	return *st
}

func (s *ssoStore) dropStep(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.steps, id)
}

// passwordProven starts a new SSO session for username (a fresh cookie
// value on every password login, so a planted cookie never gains an
// identity) and drops the browser's old one.
func (s *ssoStore) passwordProven(w http.ResponseWriter, r *http.Request, username string, secure bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := r.Cookie(ssoCookie); err == nil {
		delete(s.sessions, c.Value)
	}
	s.sweep(now)
	if len(s.sessions) >= maxSSO {
		return // no SSO; every login asks again, which is safe
	}
	id := randomID() + randomID()
	s.sessions[id] = &ssoSession{username: username, pwdAt: now, created: now}
	http.SetCookie(w, &http.Cookie{
		Name: ssoCookie, Value: id, Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(ssoLifetime.Seconds()),
	})
}

// otpProven records a second factor on the browser's session, if it still
// belongs to username.
func (s *ssoStore) otpProven(r *http.Request, username string, now time.Time) {
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.sessions[c.Value]; ok && ss.username == username {
		ss.otpAt = now
	}
}

// end forgets the browser's SSO session and expires its cookie.
func (s *ssoStore) end(w http.ResponseWriter, r *http.Request, secure bool) {
	if c, err := r.Cookie(ssoCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// serveEndSession is RP-initiated logout: it ends the SSO session, then
// sends the browser to post_logout_redirect_uri when that URL has the
// origin of one of the client's redirect URIs, else shows a page.
func (p *Provider) serveEndSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p.sso.end(w, r, p.secure)
	_ = r.ParseForm()
	if target := r.Form.Get("post_logout_redirect_uri"); target != "" && p.store.allowedLogoutRedirect(r.Form.Get("client_id"), target) {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	renderPage(w, http.StatusOK, pageData{Title: "Signed out", Message: "You are signed out of the development provider."})
}

// allowedLogoutRedirect reports whether target has the scheme and host of
// one of client id's redirect URIs: an open redirect otherwise.
func (s *storage) allowedLogoutRedirect(id, target string) bool {
	c, ok := s.clients[id]
	if !ok {
		return false
	}
	t, err := url.Parse(target)
	if err != nil || t.User != nil || t.Host == "" {
		return false
	}
	for _, ru := range c.Client.RedirectURIs {
		u, err := url.Parse(ru)
		if err == nil && u.Scheme == t.Scheme && u.Host == t.Host {
			return true
		}
	}
	return false
}
