package proxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// acceptsHTML reports whether r comes from a browser that will render a page.
func acceptsHTML(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" || hasTokenCredential(r.Header) {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// hasTokenCredential reports whether h carries a Bearer or DPoP
// Authorization: an API client's, never a browser navigation's.
func hasTokenCredential(h http.Header) bool {
	scheme, _, _ := strings.Cut(h.Get("Authorization"), " ")
	return strings.EqualFold(scheme, schemeBearer) || strings.EqualFold(scheme, schemeDPoP)
}

// isNavigation reports whether r is a browser navigation that may be answered
// with a redirect to the IdP: GET or HEAD wanting HTML. method is r's own,
// or in forward-auth the method of the request the ingress describes.
func isNavigation(method string, r *http.Request) bool {
	return (method == http.MethodGet || method == http.MethodHead) && acceptsHTML(r)
}

// sameOrigin reports whether r was sent by a page of the public origin: its
// Origin header is exactly the public origin or, when it has none,
// Sec-Fetch-Site says same-origin. Another origin, "null", a repeated
// header or neither header is not; old browsers that send neither are
// refused rather than guessed at.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if o, ok := r.Header["Origin"]; ok {
		return len(o) == 1 && strings.EqualFold(o[0], h.origin())
	}
	s := r.Header["Sec-Fetch-Site"]
	return len(s) == 1 && s[0] == "same-origin"
}

// noStore marks a gateway response as never cacheable: it may carry a
// Set-Cookie or describe one user's session.
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// writeJSON writes v with status. v never holds internal error text.
func writeJSON(w http.ResponseWriter, status int, v any) {
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error      string `json:"error"`
	Message    string `json:"message,omitempty"`
	Level      string `json:"level,omitempty"`
	LoginURL   string `json:"login_url,omitempty"`
	ConfirmURL string `json:"confirm_url,omitempty"`
}

// fail answers with status and a short, fixed message: a page for browsers,
// JSON for everything else. code is a stable machine-readable word.
func fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if acceptsHTML(r) {
		writePage(w, status, page{Title: http.StatusText(status), Message: msg})
		return
	}
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}

// challenge answers a request that needs login or step-up but cannot be
// redirected (an API call, fetch, or a non-GET): 401 with the RFC 9470
// challenge and a login_url the client can open.
func challenge(w http.ResponseWriter, d policy.Decision, loginURL string) {
	challengeWith(w, d, loginURL, "", "")
}

// challengeWith is challenge with another error code in the body and, for
// a held transaction, the confirm_url to open after the step-up.
func challengeWith(w http.ResponseWriter, d policy.Decision, loginURL, code, confirmURL string) {
	body := errorBody{Error: "login_required", LoginURL: loginURL, ConfirmURL: confirmURL}
	auth := `Bearer realm="stepgate"`
	if d.Action == policy.StepUp && d.Level != nil {
		body.Error, body.Level = "step_up_required", d.Level.Name
		auth = `Bearer realm="stepgate", error="insufficient_user_authentication"`
		if len(d.Level.ACRValues) > 0 {
			auth += `, acr_values="` + strings.Join(d.Level.ACRValues, " ") + `"`
		}
		if d.Level.MaxAge > 0 {
			auth += ", max_age=" + strconv.FormatInt(int64(d.Level.MaxAge.Seconds()), 10)
		}
	} else if d.Level != nil {
		body.Level = d.Level.Name
	}
	if code != "" {
		body.Error = code
	}
	w.Header().Set("WWW-Authenticate", auth)
	writeJSON(w, http.StatusUnauthorized, body)
}

// page is the data of every HTML page the gateway serves.
type page struct {
	Title   string
	Message string
	Action  string // when set, a button that GETs this local URL
	Button  string
	Post    bool // the button POSTs to Action instead
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="same-origin"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
.button{display:inline-block;border:0;font:inherit;cursor:pointer;padding:.6rem 1.2rem;background:#0b5;color:#fff;border-radius:4px;text-decoration:none}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Post}}<form method="post" action="{{.Action}}"><button class="button" id="stepgate-continue" type="submit">{{.Button}}</button></form>
{{else if .Action}}<p><a class="button" id="stepgate-continue" href="{{.Action}}">{{.Button}}</a></p>{{end}}
</body></html>
`))

func writePage(w http.ResponseWriter, status int, p page) {
	noStore(w)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, p)
}
