package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stepgate/stepgate/policy"
	"github.com/stepgate/stepgate/session"
)

// Held transactions: a state-changing request to a route with confirm is
// not forwarded when it arrives. It is held in the shared store, the user
// steps up if the level needs it, sees exactly what the request does, and
// confirms it; only then is it forwarded, exactly once. Anything else that
// happens to a hold (reload, replay, another browser or user, expiry) sends
// nothing.

const (
	confirmPath = reservedPrefix + "confirm"
	holdCookie  = "-h-" // the hold's browser binding: session cookie name + "-h-" + hold ID

	// HeaderConfirmation tells the upstream which held transaction the
	// user approved.
	HeaderConfirmation = "X-Stepgate-Confirmation"
)

// hold is a held request, as kept in the store.
type hold struct {
	ID          string    `json:"id"`
	Method      string    `json:"method"`
	Host        string    `json:"host"`
	Path        string    `json:"path"` // canonical, as decided
	Query       string    `json:"query"`
	ContentType string    `json:"content_type"`
	Body        []byte    `json:"body"`
	Rule        string    `json:"rule"`
	Issuer      string    `json:"iss"`
	Subject     string    `json:"sub"`
	Binding     []byte    `json:"binding"` // SHA-256 of the browser's hold cookie
	Expires     time.Time `json:"expires"`
}

func holdKey(id string) string { return "hold:" + id }

// holds reports whether rule holds a request with method: confirm routes
// hold every request that is not safe (GET, HEAD, OPTIONS).
func holds(rule *policy.Rule, method string) bool {
	if rule.Confirm == nil {
		return false
	}
	// Every method but the safe ones: an app may act on MERGE or
	// PROPPATCH as readily as on POST.
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// holdRequest holds r for confirmation instead of forwarding it. Only a
// same-origin request of a signed-in user is held; the answer sends a
// browser to the confirm page (through the step-up when the level is not
// met now) and tells an API client where that page is.
func (h *Handler) holdRequest(w http.ResponseWriter, r *http.Request, t target, rule *policy.Rule, d policy.Decision, st *session.State, ev *event) {
	c := rule.Confirm
	if !h.sameOrigin(r) {
		// A cross-site page must never be able to make a user approve
		// its request (threat model case 90's logic, applied to payments).
		ev.action, ev.reason = "deny", "confirm route: cross-site request not held"
		fail(w, r, http.StatusForbidden, "forbidden", "This request must come from this site.")
		return
	}
	if st == nil {
		// Nothing to bind the hold to yet: sign in first, then submit again.
		h.needAuth(w, r, t, d, nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ev.action, ev.reason = "reject", "confirm route: body over max_body"
			w.Header().Set("Connection", "close")
			fail(w, r, http.StatusRequestEntityTooLarge, "too_large", "The request is too large to be confirmed.")
			return
		}
		ev.action, ev.reason = "reject", "confirm route: body not readable"
		fail(w, r, http.StatusBadRequest, "bad_request", "The request could not be read.")
		return
	}
	if !showable(r.Header.Get("Content-Type")) {
		// The page could show none of its fields, while the app may
		// still read them (multipart, text, XML): refuse what cannot be shown.
		ev.action, ev.reason = "reject", "confirm route: body type that cannot be shown"
		fail(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "This request cannot be shown for confirmation.")
		return
	}
	if q, err := url.ParseQuery(t.Query); err != nil || queryNamesField(q, c.Fields) {
		// Many frameworks merge query parameters into the form: a field in
		// the query could be what the app reads, not what the page shows.
		ev.action, ev.reason = "reject", "confirm route: a shown field in the query"
		fail(w, r, http.StatusBadRequest, "bad_request", "The request has a field in its address.")
		return
	}
	if bodyClaimsMethod(r.Header.Get("Content-Type"), body) {
		ev.action, ev.reason = "deny", "confirm route: _method in the body"
		fail(w, r, http.StatusForbidden, "forbidden", "This request cannot be confirmed.")
		return
	}
	if ambiguousBody(r.Header.Get("Content-Type"), body) {
		// A body that can be read two ways (a field twice, a JSON key
		// twice) could show the user one amount and send the app another.
		ev.action, ev.reason = "reject", "confirm route: ambiguous body"
		fail(w, r, http.StatusBadRequest, "bad_request", "The request has a field more than once.")
		return
	}
	if t := c.AuthorizationDetails; t != "" {
		if _, err := fillDetails(t, fieldValues(r.Header.Get("Content-Type"), body)); err != nil {
			ev.action, ev.reason = "reject", "confirm route: "+err.Error()
			fail(w, r, http.StatusBadRequest, "bad_request", "The request lacks a field the transaction needs.")
			return
		}
	}
	if n, ok := h.holdSlot(r, st, c.TTL); !ok {
		ev.action, ev.reason = "reject", "confirm route: too many open holds for this session ("+strconv.Itoa(n)+")"
		w.Header().Set("Retry-After", strconv.Itoa(int(c.TTL/time.Second)))
		fail(w, r, http.StatusTooManyRequests, "too_many_requests", "Confirm or cancel your other transactions first.")
		return
	}
	id, secret := randomID(), randomID()
	sum := sha256.Sum256([]byte(secret))
	now := h.now()
	hd := hold{
		ID: id, Method: t.Method, Host: t.Host, Path: t.Path, Query: t.Query,
		ContentType: r.Header.Get("Content-Type"), Body: body, Rule: rule.Name,
		Issuer: st.Facts.Issuer, Subject: st.Facts.Subject, Binding: sum[:], Expires: now.Add(c.TTL),
	}
	b, err := json.Marshal(hd)
	if err != nil {
		h.internalError(w, r, "cannot encode held request", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if err := h.shared.Put(ctx, holdKey(id), b, c.TTL); err != nil {
		h.log.Error("cannot hold request", "err", err)
		unavailable(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.sessions.CookieName() + holdCookie + id, Value: secret, Path: "/",
		MaxAge: int(c.TTL / time.Second), HttpOnly: true, Secure: h.publicURL.Scheme == "https",
		SameSite: http.SameSiteLaxMode, // the IdP's redirect back is a top-level GET
	})
	ev.action, ev.reason = "hold", "held for confirmation: "+d.Reason
	h.audit("transaction_held", "hold", id, "route", rule.Name, "sub", hd.Subject)
	h.metrics.held("held")
	confirmURL := confirmPath + "?id=" + id
	if d.Action == policy.Allow {
		if acceptsHTML(r) {
			noStore(w)
			http.Redirect(w, r, confirmURL, http.StatusSeeOther)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "confirmation_required", "confirm_url": confirmURL})
		return
	}
	if acceptsHTML(r) {
		noStore(w)
		http.Redirect(w, r, loginPath(d.Level, confirmURL), http.StatusSeeOther)
		return
	}
	challengeWith(w, d, loginPath(d.Level, confirmURL), "confirmation_required", confirmURL)
}

// safeReturn is localRedirect, except that it also lets a login come back
// to a held transaction's confirm page: exactly confirmPath?id=<id>.
func safeReturn(rd string) string {
	if id, ok := strings.CutPrefix(rd, confirmPath+"?id="); ok && len(id) == 22 &&
		strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == "" {
		return rd
	}
	return localRedirect(rd)
}

// randomID is 128 random bits, unpadded base64url.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadHold returns the hold named by id for the browser of st, or an
// answer: 410 when there is none (used, cancelled, expired), 403 when it
// belongs to another user or another browser.
func (h *Handler) loadHold(r *http.Request, id string, st *session.State) (*hold, int) {
	if id == "" || len(id) > 64 {
		return nil, http.StatusGone
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	b, ok, err := h.shared.Get(ctx, holdKey(id))
	switch {
	case err != nil:
		return nil, http.StatusServiceUnavailable
	case !ok:
		return nil, http.StatusGone
	}
	var hd hold
	if err := json.Unmarshal(b, &hd); err != nil || hd.ID != id {
		return nil, http.StatusGone
	}
	if !h.owns(r, &hd, st) {
		return nil, http.StatusForbidden
	}
	return &hd, 0
}

// owns reports whether the request's user and browser are the hold's.
func (h *Handler) owns(r *http.Request, hd *hold, st *session.State) bool {
	if st == nil || st.Facts.Issuer != hd.Issuer || st.Facts.Subject != hd.Subject {
		return false
	}
	cs := r.CookiesNamed(h.sessions.CookieName() + holdCookie + hd.ID)
	if len(cs) != 1 {
		return false
	}
	sum := sha256.Sum256([]byte(cs[0].Value))
	return subtle.ConstantTimeCompare(sum[:], hd.Binding) == 1
}

// confirm serves /.stepgate/confirm: GET shows a held transaction, POST
// confirms or cancels it.
func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, ev *event) {
	noStore(w)
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		// The page and its Confirm are for the user's own eyes: a script
		// on the site (XSS, a bad dependency) must not read the token and
		// confirm a transfer the user never saw. Browsers that send
		// Sec-Fetch-Mode say "navigate" for a page and a form.
		ev.reason = "confirm: not a navigation (Sec-Fetch-Mode " + loggableLevel(m) + ")"
		fail(w, r, http.StatusForbidden, "forbidden", "Open the confirmation in the browser.")
		return
	}
	now := h.now()
	st := h.loadSession(r, now, ev)
	if r.Method == http.MethodPost && !h.sameOrigin(r) {
		ev.reason = "confirm: cross-site POST"
		fail(w, r, http.StatusForbidden, "forbidden", "This request must come from this site.")
		return
	}
	var id string
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil {
			fail(w, r, http.StatusBadRequest, "bad_request", "The confirmation could not be read.")
			return
		}
		id = r.PostForm.Get("id")
	} else if r.Method == http.MethodGet || r.Method == http.MethodHead {
		id = r.URL.Query().Get("id")
	} else {
		fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "Not allowed.")
		return
	}
	if st == nil {
		// Signed out, or revoked, since the request was held.
		if r.Method == http.MethodPost {
			fail(w, r, http.StatusForbidden, "forbidden", "Sign in again to confirm.")
			return
		}
		h.startFlow(w, r, nil, confirmPath+"?id="+url.QueryEscape(id), nil)
		return
	}
	hd, status := h.loadHold(r, id, st)
	if hd == nil {
		h.holdFailed(w, r, ev, status, id)
		return
	}
	rule := h.routesOf(r).table.Rule(hd.Rule)
	if rule == nil || rule.Confirm == nil || rule.Level == nil {
		// The configuration changed under the hold: never send it.
		h.holdFailed(w, r, ev, http.StatusGone, id)
		return
	}
	// The level is checked again now: the step-up may have run out while
	// the page was open.
	if ok, _ := rule.Level.Satisfied(&st.Facts, now); !ok {
		if r.Method == http.MethodPost {
			fail(w, r, http.StatusForbidden, "step_up_required", "Your verification has expired. Open the confirmation again.")
			return
		}
		h.startFlow(w, r, rule.Level, confirmPath+"?id="+url.QueryEscape(id), &st.Facts)
		return
	}
	if r.Method != http.MethodPost {
		h.showHold(w, hd, rule.Confirm, h.sessions.Token("confirm", st.ID, hd.ID))
		return
	}
	if !h.sessions.CheckToken(r.PostForm.Get("csrf"), "confirm", st.ID, hd.ID) {
		ev.reason = "confirm: CSRF token missing or wrong"
		fail(w, r, http.StatusForbidden, "forbidden", "This confirmation is not valid. Open it again.")
		return
	}
	switch r.PostForm.Get("action") {
	case "cancel":
		h.shared.Delete(r.Context(), holdKey(hd.ID))
		h.clearHoldCookie(w, hd.ID)
		ev.action, ev.reason = "cancel", "held transaction cancelled"
		h.audit("transaction_cancelled", "hold", hd.ID, "sub", hd.Subject)
		h.metrics.held("cancelled")
		writePage(w, http.StatusOK, page{Title: "Cancelled", Message: "Nothing was sent.", Action: "/", Button: "Continue"})
	case "confirm":
		h.release(w, r, hd, st, ev)
	default:
		fail(w, r, http.StatusBadRequest, "bad_request", "Confirm or cancel.")
	}
}

// release takes the hold out of the store, atomically, and forwards it:
// of two Confirms of one hold, on any replicas, exactly one sends it.
func (h *Handler) release(w http.ResponseWriter, r *http.Request, hd *hold, st *session.State, ev *event) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	b, ok, err := h.shared.Take(ctx, holdKey(hd.ID))
	switch {
	case err != nil:
		unavailable(w, r)
		return
	case !ok:
		h.holdFailed(w, r, ev, http.StatusGone, hd.ID)
		return
	}
	var taken hold
	if json.Unmarshal(b, &taken) != nil || !h.owns(r, &taken, st) {
		h.holdFailed(w, r, ev, http.StatusForbidden, hd.ID)
		return
	}
	if rule := h.routesOf(r).table.Rule(taken.Rule); rule != nil && rule.Level != nil && rule.Level.Once {
		d, ok := h.consumeOnce(r, rule.Level, st, policy.Decision{Action: policy.Allow})
		if !ok {
			unavailable(w, r)
			return
		}
		if d.Action != policy.Allow {
			fail(w, r, http.StatusForbidden, "step_up_required", "This verification was used already. Submit the transaction again.")
			return
		}
	}
	h.clearHoldCookie(w, taken.ID)
	ev.action, ev.reason, ev.route = "confirm", "held transaction confirmed", taken.Rule
	h.audit("transaction_confirmed", "hold", taken.ID, "sub", taken.Subject, "route", taken.Rule)
	h.metrics.held("confirmed")

	out := r.Clone(r.Context())
	out.Method = taken.Method
	out.Host = taken.Host
	out.URL = &url.URL{Path: taken.Path, RawQuery: taken.Query}
	out.Body = io.NopCloser(bytes.NewReader(taken.Body))
	out.ContentLength = int64(len(taken.Body))
	out.Header = r.Header.Clone()
	for _, k := range []string{"Content-Type", "Content-Length", "Origin", "Sec-Fetch-Site", "Referer"} {
		out.Header.Del(k)
	}
	if taken.ContentType != "" {
		out.Header.Set("Content-Type", taken.ContentType)
	}
	out.Header.Set(HeaderConfirmation, taken.ID)
	out.RequestURI = ""
	rec, ok := w.(*recorder)
	if !ok {
		rec = &recorder{ResponseWriter: w}
	}
	h.forward(rec, out, target{Request: policy.Request{Method: taken.Method, Host: taken.Host, Path: taken.Path}, Query: taken.Query}, &st.Facts)
}

func (h *Handler) clearHoldCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: h.sessions.CookieName() + holdCookie + id, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.publicURL.Scheme == "https", SameSite: http.SameSiteLaxMode})
}

// holdFailed answers a hold that cannot be shown or released.
func (h *Handler) holdFailed(w http.ResponseWriter, r *http.Request, ev *event, status int, id string) {
	ev.action = "confirm_refused"
	switch status {
	case http.StatusServiceUnavailable:
		unavailable(w, r)
	case http.StatusForbidden:
		ev.reason = "hold belongs to another session or user"
		h.audit("transaction_refused", "hold", shortID(id), "reason", "not the owner")
		fail(w, r, http.StatusForbidden, "forbidden", "This transaction belongs to someone else.")
	default:
		ev.reason = "hold used, cancelled or expired"
		fail(w, r, http.StatusGone, "gone", "This transaction was already sent, cancelled, or has expired. Nothing more was sent.")
	}
}

// showHold renders the confirmation page.
func (h *Handler) showHold(w http.ResponseWriter, hd *hold, c *policy.Confirm, csrf string) {
	values := fieldValues(hd.ContentType, hd.Body)
	type row struct{ Label, Value string }
	data := struct {
		Title, Method, Path, ID, CSRF string
		Rows                          []row
	}{Title: c.Title, Method: hd.Method, Path: hd.Path, ID: hd.ID, CSRF: csrf}
	if hd.Query != "" {
		data.Path += "?" + hd.Query
	}
	for _, f := range c.Fields {
		v, ok := values[f.Name]
		if !ok {
			v = "(missing)"
		}
		data.Rows = append(data.Rows, row{f.Label, visible(v)})
	}
	noStore(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	_ = confirmTmpl.Execute(w, data)
}

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="same-origin"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}
button{padding:.6rem 1.2rem;border:0;border-radius:4px;font:inherit;cursor:pointer;margin-right:.5rem}
#stepgate-confirm{background:#0b5;color:#fff}#stepgate-cancel{background:#ddd}</style>
</head><body><h1>{{.Title}}</h1>
<p>Check what will be sent, then confirm. Nothing is sent until you do.</p>
<table id="stepgate-held">{{range .Rows}}<tr><th>{{.Label}}</th><td>{{.Value}}</td></tr>{{end}}
<tr><th>Request</th><td><code>{{.Method}} {{.Path}}</code></td></tr></table>
<form method="post" action="/.stepgate/confirm"><input type="hidden" name="id" value="{{.ID}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><button type="submit" name="action" value="confirm" id="stepgate-confirm">Confirm</button>
<button type="submit" name="action" value="cancel" id="stepgate-cancel">Cancel</button></p></form>
</body></html>
`))

// showable reports whether the confirm page can read a body of this type:
// a form or JSON; an empty body has no type and no fields.
func showable(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/x-www-form-urlencoded" || mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// queryNamesField reports whether the query carries any shown field.
func queryNamesField(q url.Values, fields []policy.ConfirmField) bool {
	for _, f := range fields {
		if _, ok := q[f.Name]; ok {
			return true
		}
	}
	return false
}

// bodyClaimsMethod reports whether a form or JSON body carries a method
// override (_method, in any spelling Rails, Laravel or Symfony read): the
// page would say POST while the app runs DELETE.
func bodyClaimsMethod(contentType string, body []byte) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		q, _ := url.ParseQuery(string(body))
		for k := range q {
			if isMethodKey(k) {
				return true
			}
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) == nil {
			for k := range top {
				if isMethodKey(strings.ToLower(k)) {
					return true
				}
			}
		}
	}
	return false
}

// maxOpenHolds bounds the held transactions one session may have waiting:
// each may park up to max_body in the shared store for ttl.
const maxOpenHolds = 5

// holdSlot takes one of the session's maxOpenHolds slots for ttl, and
// reports how many it tried; ok is false when all are taken. Slots are
// single-use claims, so replicas share the count; they free themselves
// when their ttl ends (a confirmed or cancelled hold keeps its slot until
// then).
func (h *Handler) holdSlot(r *http.Request, st *session.State, ttl time.Duration) (int, bool) {
	for i := range maxOpenHolds {
		first, err := h.claim(r.Context(), "hold-slot:"+st.ID+":"+strconv.Itoa(i), ttl)
		if err != nil {
			return i, false
		}
		if first {
			return i, true
		}
	}
	return maxOpenHolds, false
}

// ambiguousBody reports whether a form or JSON body names a field twice.
func ambiguousBody(contentType string, body []byte) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return true
		}
		for _, vs := range q {
			if len(vs) > 1 {
				return true
			}
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		dec := json.NewDecoder(bytes.NewReader(body))
		if duplicateKeys(dec) != nil {
			return true
		}
		if _, err := dec.Token(); err != io.EOF {
			return true // a second value after the first
		}
		// {"payee.iban": "X", "payee": {"iban": "Y"}}: two members the page
		// would both show as payee.iban.
		var v any
		if json.Unmarshal(body, &v) != nil {
			return true
		}
		return flatten("", v, map[string]string{})
	}
	return false
}

var errDuplicate = errors.New("duplicate key")

// duplicateKeys walks one JSON value and fails on a repeated object key, or
// on anything that is not exactly one JSON value.
func duplicateKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			// Case-folded: encoding/json (and others) match members to
			// fields regardless of case, the last one winning.
			key, _ := k.(string)
			key = strings.ToLower(key)
			if seen[key] {
				return errDuplicate
			}
			seen[key] = true
			if err := duplicateKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := duplicateKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

// visible spells out every character that would change how a value reads
// on screen without being seen itself — bidirectional overrides and
// isolates, zero-width and other format characters, controls — as U+XXXX:
// "DE89…\u202e1234" must not display as a different account number.
func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) || r == utf8.RuneError {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fieldValues reads a held body's fields: a form, or a JSON object whose
// nested members are named "a.b". Values are shown as text, never markup.
func fieldValues(contentType string, body []byte) map[string]string {
	out := map[string]string{}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return out
		}
		for k, vs := range q {
			if len(vs) == 1 {
				out[k] = vs[0]
			} else {
				// Two values under one name: the app may read either, so
				// the page must not show one of them as the truth.
				out[k] = "(ambiguous: " + strconv.Itoa(len(vs)) + " values)"
			}
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return out
		}
		flatten("", v, out)
	}
	return out
}

// flatten adds v's members to out, nested names joined with ".", and
// reports whether two members came out under one name.
func flatten(prefix string, v any, out map[string]string) (collided bool) {
	set := func(val string) {
		if _, ok := out[prefix]; ok {
			collided = true
		}
		out[prefix] = val
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			collided = flatten(name, e, out) || collided
		}
	case string:
		set(x)
	case json.Number:
		set(x.String())
	case bool:
		set(strconv.FormatBool(x))
	case nil:
		set("null")
	default:
		b, _ := json.Marshal(x)
		set(string(b))
	}
	return collided
}

// consumeOnce spends the one request a step-up to a once level admits
// (DESIGN: levels with once: true). The record is in the shared store,
// keyed by the session's ID, which the step-up made new: a copy of the
// cookie, on any replica, finds it spent and steps up again. ok is false
// when the store cannot be reached.
func (h *Handler) consumeOnce(r *http.Request, l *policy.Level, st *session.State, d policy.Decision) (policy.Decision, bool) {
	key, ttl := onceKey(l, st), onceTTL(l, st, h.now())
	first, err := h.claim(r.Context(), key, ttl)
	switch {
	case err != nil:
		return d, false
	case !first:
		return onceUsedDecision(l), true
	}
	// A marker that holdRequest can read without spending anything (a
	// claim cannot be looked at without being made).
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	_ = h.shared.Put(ctx, key, []byte{1}, ttl)
	return d, true
}

func onceKey(l *policy.Level, st *session.State) string { return "once:" + l.Name + ":" + st.ID }

func onceUsedDecision(l *policy.Level) policy.Decision {
	return policy.Decision{Action: policy.StepUp, Level: l,
		Reason: "level " + strconv.Quote(l.Name) + " admits one request per step-up, and this one's was used"}
}

// onceUsed reports whether st's step-up to l was spent already, without
// spending it: a transaction held now would need a new step-up anyway.
func (h *Handler) onceUsed(r *http.Request, l *policy.Level, st *session.State) bool {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	_, used, err := h.shared.Get(ctx, onceKey(l, st))
	return used || err != nil
}

// detailsFor is the authorization_details (RFC 9396) a step-up returning
// to rd should carry: rd's held transaction's confirm template, filled from
// its fields, when rd is a confirm page this browser's user owns and the
// route has a template; else "". The provider can then show and sign the
// transaction itself (dynamic linking), and the callback insists that the
// token response carries exactly these details.
func (h *Handler) detailsFor(r *http.Request, rd string, f *policy.Facts) string {
	id, ok := strings.CutPrefix(rd, confirmPath+"?id=")
	if !ok || f == nil {
		return ""
	}
	st := &session.State{Facts: *f}
	hd, _ := h.loadHold(r, id, st)
	if hd == nil {
		return ""
	}
	rule := h.routesOf(r).table.Rule(hd.Rule)
	if rule == nil || rule.Confirm == nil || rule.Confirm.AuthorizationDetails == "" {
		return ""
	}
	details, err := fillDetails(rule.Confirm.AuthorizationDetails, fieldValues(hd.ContentType, hd.Body))
	if err != nil {
		return ""
	}
	return details
}

var placeholder = regexp.MustCompile(`\{\{([A-Za-z0-9_.-]+)\}\}`)

// fillDetails fills a template's {{name}} placeholders with the field
// values. It works on the parsed JSON and marshals it again, so a value is
// always a JSON string, escaped as JSON: a field cannot add members or
// change the structure. A placeholder naming a missing field is an error.
func fillDetails(template string, fields map[string]string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(template), &v); err != nil {
		return "", err
	}
	var missing error
	var fill func(any) any
	fill = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, e := range t {
				t[k] = fill(e)
			}
		case []any:
			for i, e := range t {
				t[i] = fill(e)
			}
		case string:
			return placeholder.ReplaceAllStringFunc(t, func(m string) string {
				name := m[2 : len(m)-2]
				val, ok := fields[name]
				if !ok {
					missing = errors.New("authorization_details: field " + strconv.Quote(name) + " missing from the request")
				}
				return val
			})
		}
		return x
	}
	v = fill(v)
	if missing != nil {
		return "", missing
	}
	b, err := json.Marshal(v)
	return string(b), err
}
