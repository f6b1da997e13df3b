package devidp

import (
	"net/http"
	"net/url"
	"slices"
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
	// id is the session's sid in ID and logout tokens. It is not the cookie
	// value: relying parties see it, and it must not open the session.
	id       string
	username string // "" for a scripted session
	subject  string
	scripted bool // made by a SetScript login; the login page ignores it
	pwdAt    time.Time
	otpAt    time.Time // zero until a one-time code was entered
	created  time.Time
	clients  []string // client IDs that got an ID token naming id, to tell at logout
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

// session returns a copy of the browser's SSO session from the login page,
// or nil. A scripted session is none: it has no user of the page.
func (s *ssoStore) session(r *http.Request, now time.Time) *ssoSession {
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[c.Value]
	if !ok || now.Sub(ss.created) > ssoLifetime || ss.scripted {
		return nil
	}
	return ss.copy()
}

func (ss *ssoSession) copy() *ssoSession {
	cp := *ss
	cp.clients = slices.Clone(ss.clients)
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

// passwordProven starts an SSO session for username with a fresh cookie
// value on every password login, so a planted cookie never gains an
// identity. A re-authentication of the browser's own user keeps the
// session's sid and clients, as a provider's session survives prompt=login;
// any other session of the browser ends and is returned, for its clients
// to be told. It returns the sid ("" when the store is full).
func (s *ssoStore) passwordProven(w http.ResponseWriter, r *http.Request, username, subject string, secure bool, now time.Time) (sid string, ended *ssoSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := &ssoSession{id: randomID(), username: username, subject: subject}
	if c, err := r.Cookie(ssoCookie); err == nil {
		if old, ok := s.sessions[c.Value]; ok {
			delete(s.sessions, c.Value)
			switch {
			case now.Sub(old.created) > ssoLifetime:
				// Expired already: nothing to keep, and nobody to tell.
			case !old.scripted && old.username == username:
				ss.id, ss.clients = old.id, old.clients
			default:
				ended = old
			}
		}
	}
	ss.pwdAt, ss.created = now, now
	return s.start(w, ss, secure, now), ended
}

// scriptedLogin gives a SetScript login an SSO session, so that its ID
// token has a sid and end_session has something to end. The browser's
// session is reused for the same subject; any other ends and is returned.
func (s *ssoStore) scriptedLogin(w http.ResponseWriter, r *http.Request, subject string, secure bool, now time.Time) (sid string, ended *ssoSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := r.Cookie(ssoCookie); err == nil {
		if old, ok := s.sessions[c.Value]; ok {
			live := now.Sub(old.created) <= ssoLifetime
			if live && old.scripted && old.subject == subject {
				return old.id, nil
			}
			delete(s.sessions, c.Value)
			if live {
				ended = old
			}
		}
	}
	ss := &ssoSession{id: randomID(), subject: subject, scripted: true, pwdAt: now, created: now}
	return s.start(w, ss, secure, now), ended
}

// start stores ss under a fresh cookie value and sets the cookie. The
// caller holds s.mu.
func (s *ssoStore) start(w http.ResponseWriter, ss *ssoSession, secure bool, now time.Time) (sid string) {
	s.sweep(now)
	if len(s.sessions) >= maxSSO {
		return "" // no SSO; every login asks again, which is safe
	}
	value := randomID() + randomID()
	s.sessions[value] = ss
	http.SetCookie(w, &http.Cookie{
		Name: ssoCookie, Value: value, Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(ssoLifetime.Seconds()),
	})
	return ss.id
}

// otpProven records a second factor on the browser's session, if it still
// belongs to username, and returns its sid ("" when it does not).
func (s *ssoStore) otpProven(r *http.Request, username string, now time.Time) (sid string) {
	c, err := r.Cookie(ssoCookie)
	if err != nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.sessions[c.Value]; ok && !ss.scripted && ss.username == username {
		ss.otpAt = now
		return ss.id
	}
	return ""
}

// joined records that client got an ID token naming session sid.
func (s *ssoStore) joined(sid, client string) {
	if sid == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.id == sid {
			if !slices.Contains(ss.clients, client) {
				ss.clients = append(ss.clients, client)
			}
			return
		}
	}
}

// end forgets the browser's SSO session, expires its cookie, and returns
// the session (nil when there was none).
func (s *ssoStore) end(w http.ResponseWriter, r *http.Request, secure bool) (ended *ssoSession) {
	if c, err := r.Cookie(ssoCookie); err == nil {
		s.mu.Lock()
		if ss, ok := s.sessions[c.Value]; ok {
			delete(s.sessions, c.Value)
			ended = ss
		}
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return ended
}

// endSubject forgets every SSO session of subject and returns them.
func (s *ssoStore) endSubject(subject string) (ended []*ssoSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ss := range s.sessions {
		if ss.subject == subject {
			delete(s.sessions, k)
			ended = append(ended, ss)
		}
	}
	return ended
}

// serveEndSession is RP-initiated logout: it ends the SSO session and tells
// the session's clients over the back channel (without waiting for them),
// then sends the browser to post_logout_redirect_uri when that URL has the
// origin of one of the client's redirect URIs, else shows a page.
func (p *Provider) serveEndSession(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p.loggedOut(p.sso.end(w, r, p.secure))
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
