package devidp

import (
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// plan decides, when the page is first shown for ar, which factors the
// login needs. A valid SSO session spares the password; multi-factor
// acr_values, prompt=login, a session older than max_age or a transaction
// to approve (authorization_details) ask for the one-time code as well.
func plan(ar *authRequest, sess *ssoSession, now time.Time) loginStep {
	promptLogin := slices.Contains(ar.sent.Prompt, "login")
	tooOld := sess != nil && ar.sent.MaxAge != nil && now.Sub(sess.lastAuth()) > *ar.sent.MaxAge
	st := loginStep{
		created: now,
		needPwd: sess == nil || promptLogin || tooOld,
		wantOTP: slices.Contains(ar.sent.ACRValues, ACRMultiFactor) || promptLogin || tooOld || ar.sent.AuthorizationDetails != "",
	}
	if !st.needPwd {
		st.username = sess.username
	}
	return st
}

// otpFresh reports whether sess proved a one-time code within maxAge (any
// time, when maxAge is nil).
func otpFresh(sess *ssoSession, maxAge *time.Duration, now time.Time) bool {
	if sess == nil || sess.otpAt.IsZero() {
		return false
	}
	return maxAge == nil || now.Sub(sess.otpAt) <= *maxAge
}

// serveForm is the human login: a password page unless the SSO session
// spares it, then a one-time code page when the request needs a second
// factor. Each POST names its step; a POST for a step the login is not at
// only shows the current step again.
func (p *Provider) serveForm(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	now := time.Now()
	sess := p.sso.session(r, now)
	st := p.sso.step(ar.id, func() loginStep { return plan(ar, sess, now) })
	if !st.needPwd && (sess == nil || sess.username != st.username) {
		// The SSO session that spared the password is gone or changed.
		st = p.sso.update(ar.id, func(s *loginStep) { s.needPwd, s.username = true, "" })
	}
	user, known := p.users[st.username]
	// A transaction is approved with a code of its own (dynamic linking):
	// an earlier code in the session does not spare it.
	transaction := ar.sent.AuthorizationDetails != ""
	silent := !st.needPwd && known && (!st.wantOTP || user.TOTPSecret == "" || (otpFresh(sess, ar.sent.MaxAge, now) && !transaction))
	if silent {
		p.sso.dropStep(ar.id)
		l := Login{Subject: user.Subject, Email: user.Email, AMR: []string{"pwd"}, AuthTime: sess.lastAuth()}
		if !sess.otpAt.IsZero() {
			l.ACR, l.AMR = ACRMultiFactor, []string{"pwd", "otp", "mfa"}
		}
		p.finish(w, r, ar, l, sess.id)
		return
	}
	// The page is the only way to log in from here, so prompt=none cannot
	// succeed (OIDC Core §3.1.2.6).
	if slices.Contains(ar.sent.Prompt, "none") {
		p.sso.dropStep(ar.id)
		_ = p.store.DeleteAuthRequest(r.Context(), ar.id)
		p.redirectError(w, r, ar, string(oidc.LoginRequired))
		return
	}
	post := r.Method == http.MethodPost
	step := r.PostFormValue("step")

	if st.needPwd && st.username == "" {
		page := loginPage{ID: ar.id, Step: "password", Username: ar.sent.LoginHint, Details: describeDetails(ar.sent.AuthorizationDetails)}
		if !post || (step != "" && step != "password") {
			renderLogin(w, http.StatusOK, page)
			return
		}
		u, ok := p.checkPassword(r.PostFormValue("username"), r.PostFormValue("password"))
		if !ok {
			page.Username = r.PostFormValue("username")
			page.Error = "Wrong username or password."
			renderLogin(w, http.StatusUnauthorized, page)
			return
		}
		sid, ended := p.sso.passwordProven(w, r, u.Username, u.Subject, p.secure, now)
		p.loggedOut(ended) // another user's session in this browser
		if !st.wantOTP || u.TOTPSecret == "" {
			p.sso.dropStep(ar.id)
			p.finish(w, r, ar, Login{Subject: u.Subject, Email: u.Email, AMR: []string{"pwd"}, AuthTime: now}, sid)
			return
		}
		p.sso.update(ar.id, func(s *loginStep) { s.username = u.Username })
		// Post/redirect/get: a reload of the code page must not resend the password.
		http.Redirect(w, r, loginPath+"?authRequestID="+url.QueryEscape(ar.id), http.StatusSeeOther)
		return
	}

	// Password proven in this login, or spared by the SSO session: the code.
	page := loginPage{ID: ar.id, Step: "code", Username: user.Username, Details: describeDetails(ar.sent.AuthorizationDetails)}
	if p.showCodes {
		page.DemoCode, _ = totp.GenerateCode(user.TOTPSecret, now) // the secret was checked in New
	}
	if !post || (step != "" && step != "code") {
		renderLogin(w, http.StatusOK, page)
		return
	}
	if !totp.Validate(r.PostFormValue("code"), user.TOTPSecret) {
		st = p.sso.update(ar.id, func(s *loginStep) { s.wrong++ })
		if st.wrong >= maxCodeTry {
			p.sso.dropStep(ar.id)
			_ = p.store.DeleteAuthRequest(r.Context(), ar.id)
			p.redirectError(w, r, ar, string(oidc.AccessDenied))
			return
		}
		page.Error = "Wrong code. Enter the code your authenticator shows now."
		renderLogin(w, http.StatusUnauthorized, page)
		return
	}
	sid := p.sso.otpProven(r, user.Username, now)
	p.sso.dropStep(ar.id)
	p.finish(w, r, ar, Login{
		Subject: user.Subject, Email: user.Email,
		ACR: ACRMultiFactor, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: now,
	}, sid)
}

type loginPage struct {
	ID       string // auth request ID: random, and the page's only key
	Step     string // "password" or "code"
	Username string
	Error    string
	DemoCode string       // the current one-time code, shown only with Config.ShowCodes
	Details  []detailView // the transaction being approved, if any
}

const pageStyle = `<style>
body{font-family:system-ui,sans-serif;background:#eef1f5;color:#222;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
.dev{background:#fff3cd;border:1px solid #e0c060;padding:.4rem .6rem;border-radius:4px;font-size:.85rem}
.err{color:#b00020;font-weight:600}
label{display:block;margin:.6rem 0 .2rem}
input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}
button{margin-top:1rem;font-size:1rem;padding:.5rem 1.2rem;background:#1565c0;color:#fff;border:0;border-radius:4px}
code{font-size:1.3rem;letter-spacing:.15rem}
.tx{border:2px solid #1565c0;border-radius:6px;padding:.4rem .8rem;margin:1rem 0}
.tx h2{font-size:1rem;margin:.3rem 0}
.tx pre{white-space:pre-wrap;word-break:break-all;font-size:.85rem}
</style>`

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devidp sign in</title>` + pageStyle + `</head>
<body><main>
<p class="dev">devidp: development OpenID provider, not for production use.</p>
{{if eq .Step "code"}}
<h1>Verify it's you</h1>
<p>Signed in as <strong id="who">{{.Username}}</strong>. This needs a second factor: enter the 6-digit code from your authenticator app.</p>
{{template "transaction" .}}
{{if .Error}}<p class="err" role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="` + loginPath + `">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="step" value="code">
<label for="code">One-time code</label>
<input id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" autofocus required>
<button type="submit" id="verify">Verify</button>
</form>
{{if .DemoCode}}<p class="dev">Demo only, so no phone is needed: the current code is <code id="demo-code">{{.DemoCode}}</code></p>{{end}}
{{else}}
<h1>Sign in</h1>
{{template "transaction" .}}
{{if .Error}}<p class="err" role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="` + loginPath + `">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="step" value="password">
<label for="username">Username</label>
<input id="username" name="username" value="{{.Username}}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
{{end}}
</main></body></html>
{{define "transaction"}}{{if .Details}}<section class="tx" id="transaction">
<h2>You are approving</h2>
<ul>{{range .Details}}<li>{{if .Payment}}<strong class="payment">{{.Payment}}</strong>{{else}}<pre>{{.JSON}}</pre>{{end}}</li>{{end}}</ul>
<p>The code you enter approves exactly this and nothing else.</p>
</section>{{end}}{{end}}
`))

type pageData struct{ Title, Message string }

var plainTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>` + pageStyle + `</head>
<body><main><p class="dev">devidp: development OpenID provider, not for production use.</p>
<h1>{{.Title}}</h1><p>{{.Message}}</p></main></body></html>
`))

func setPageHeaders(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
}

func renderLogin(w http.ResponseWriter, status int, page loginPage) {
	setPageHeaders(w, status)
	if err := loginTmpl.Execute(w, page); err != nil {
		slog.Error("devidp: render login page", "err", err)
	}
}

func renderPage(w http.ResponseWriter, status int, d pageData) {
	setPageHeaders(w, status)
	if err := plainTmpl.Execute(w, d); err != nil {
		slog.Error("devidp: render page", "err", err)
	}
}
