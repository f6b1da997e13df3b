package devidp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// OIDC Back-Channel Logout 1.0: when an SSO session ends, every client
// that got an ID token naming the session's sid, and has a
// BackchannelLogoutURI, is POSTed a logout token. Delivery runs in the
// background so that the logout page never waits for a relying party.
const (
	logoutEvent     = "http://schemas.openid.net/event/backchannel-logout"
	logoutTokenTTL  = 2 * time.Minute
	deliveryTimeout = 5 * time.Second // a whole delivery: connect, send, answer
	maxDeliveries   = 1000            // records kept for LogoutDeliveries
)

// LogoutDelivery is one back-channel logout POST that devidp made.
type LogoutDelivery struct {
	ClientID, URI string
	SID, Subject  string // the SSO session that ended, and its user
	Token         string // the logout_token sent
	Status        int    // the relying party's HTTP status; 0 when it never answered
	// Err is nil when the relying party answered 200 (or 204, which some
	// frameworks send instead, OIDC Back-Channel Logout 1.0 §2.8).
	Err error
}

// backchannel sends logout tokens and keeps a record of what it sent.
type backchannel struct {
	client *http.Client

	mu      sync.Mutex
	pending map[chan struct{}]struct{} // one per delivery in flight, closed when it is recorded
	done    []LogoutDelivery           // the latest maxDeliveries, oldest first
}

func newBackchannel() *backchannel {
	dialer := &net.Dialer{Timeout: deliveryTimeout, Control: onlyLoopback}
	return &backchannel{
		client: &http.Client{
			Timeout: deliveryTimeout,
			Transport: &http.Transport{
				Proxy:           nil, // never through a proxy from the environment
				DialContext:     dialer.DialContext,
				IdleConnTimeout: 30 * time.Second,
			},
			// A redirect is an answer (a wrong one), not somewhere else to post the token.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		pending: map[chan struct{}]struct{}{},
	}
}

// onlyLoopback refuses to connect anywhere but a loopback address, whatever
// a name resolved to: New checks the URI's host, this checks the address.
func onlyLoopback(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("devidp: back-channel logout goes to loopback addresses only, not %s", address)
	}
	return nil
}

// checkBackchannelURI accepts an absolute http(s) URL without user info or
// fragment (Back-Channel Logout §2.2) on a loopback host: devidp is a
// development provider and POSTs nowhere else.
func checkBackchannelURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return fmt.Errorf("want an absolute http(s) URL without user info or fragment")
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("host %q is not loopback; want 127.0.0.1, ::1 or localhost (devidp is for development only)", h)
		}
	}
	return nil
}

// LogoutDeliveries waits for the back-channel logout deliveries already
// started (each is bounded by a 5 s timeout) and returns the latest 1000
// deliveries, in the order they finished.
func (p *Provider) LogoutDeliveries() []LogoutDelivery {
	b := p.backchannel
	b.mu.Lock()
	waits := make([]chan struct{}, 0, len(b.pending))
	for ch := range b.pending {
		waits = append(waits, ch)
	}
	b.mu.Unlock()
	for _, ch := range waits {
		<-ch
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.done)
}

// SignOut ends every SSO session of subject, as an administrator's "sign
// out everywhere" at a real provider would, and tells their clients over
// the back channel. It returns how many sessions ended.
func (p *Provider) SignOut(subject string) int {
	ended := p.sso.endSubject(subject)
	p.loggedOut(ended...)
	return len(ended)
}

// loggedOut revokes the access tokens of each ended session and starts a
// delivery to every client of it that has a back-channel logout URI. It
// does not wait for the deliveries.
func (p *Provider) loggedOut(ended ...*ssoSession) {
	for _, ss := range ended {
		if ss == nil || ss.id == "" {
			continue
		}
		p.store.endSession(ss.id)
		for _, id := range ss.clients {
			if c, ok := p.store.clients[id]; ok && c.BackchannelLogoutURI != "" {
				p.backchannel.send(p.store, LogoutDelivery{ClientID: id, URI: c.BackchannelLogoutURI, SID: ss.id, Subject: ss.subject})
			}
		}
	}
}

// send builds d's logout token and POSTs it in the background.
func (b *backchannel) send(s *storage, d LogoutDelivery) {
	done := make(chan struct{})
	b.mu.Lock()
	b.pending[done] = struct{}{}
	b.mu.Unlock()
	go func() {
		defer close(done)
		if d.Token, d.Err = s.logoutToken(d.ClientID, d.SID, d.Subject, time.Now()); d.Err == nil {
			d.Status, d.Err = b.post(d.URI, d.Token)
		}
		if d.Err != nil {
			slog.Warn("devidp: back-channel logout failed", "client", d.ClientID, "uri", d.URI, "err", d.Err)
		} else {
			slog.Info("devidp: back-channel logout delivered", "client", d.ClientID, "uri", d.URI, "status", d.Status)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.pending, done)
		if len(b.done) >= maxDeliveries {
			b.done = slices.Delete(b.done, 0, len(b.done)-maxDeliveries+1)
		}
		b.done = append(b.done, d)
	}()
}

// post sends the back-channel logout request (§2.5): logout_token in an
// application/x-www-form-urlencoded body.
func (b *backchannel) post(uri, token string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	body := strings.NewReader(url.Values{"logout_token": {token}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, body)
	if err != nil {
		return 0, fmt.Errorf("devidp: back-channel logout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("devidp: back-channel logout: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return resp.StatusCode, fmt.Errorf("devidp: back-channel logout to %s: want status 200, got %d", uri, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// logoutToken is a logout token (§2.4) for client: iss, aud, iat, exp
// (+2m), a random jti, the back-channel logout event, sid and sub, typed
// logout+jwt and signed with the key that signs ID tokens.
func (s *storage) logoutToken(clientID, sid, subject string, now time.Time) (string, error) {
	claims := &oidc.LogoutTokenClaims{
		Issuer:     s.issuer,
		Subject:    subject,
		Audience:   oidc.Audience{clientID},
		IssuedAt:   oidc.FromTime(now),
		Expiration: oidc.FromTime(now.Add(logoutTokenTTL)),
		JWTID:      randomID(),
		Events:     map[string]any{logoutEvent: struct{}{}},
		SessionID:  sid,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: logout token claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: s.key.key, KeyID: s.key.id}},
		(&jose.SignerOptions{}).WithType("logout+jwt"),
	)
	if err != nil {
		return "", fmt.Errorf("devidp: logout token signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: sign logout token: %w", err)
	}
	return jws.CompactSerialize()
}
