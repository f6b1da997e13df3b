// Package demoapp is the tiny "bank" that `stepgate demo` puts behind the
// gateway: an account page, a transfers page whose form POSTs to
// /api/transfers, and an admin page. Every page shows the X-Stepgate-*
// identity headers it received, so a person can watch step-up happen.
//
// It trusts those headers because it only ever listens on loopback behind
// the gateway, which strips client-sent copies. It is a demo, not a bank.
package demoapp

import (
	"cmp"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transfer is a transfer the app accepted, with the identity it came with.
type Transfer struct {
	ID       int
	Subject  string
	To       string
	IBAN     string // the payee's account, as entered (letters and digits)
	Currency string
	Amount   string // as validated: digits with at most two decimals
	ACR, AMR string
	// Confirmation is the gateway's X-Stepgate-Confirmation: the held
	// transaction the user approved on the gateway's confirm page.
	Confirmation string
	At           time.Time
}

// App is the demo bank. Its methods are safe for concurrent use.
type App struct {
	mu        sync.Mutex
	transfers []Transfer
}

// New returns an App with no transfers.
func New() *App { return &App{} }

// Transfers returns every accepted transfer, oldest first; tests use it to
// prove what reached the app.
func (a *App) Transfers() []Transfer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.transfers)
}

const maxTransfers = 1000 // the demo keeps the latest ones only

// identityHeaders are shown on every page, in this order.
var identityHeaders = []string{
	"X-Stepgate-Subject", "X-Stepgate-Email", "X-Stepgate-Acr", "X-Stepgate-Amr", "X-Stepgate-Auth-Time",
}

// Handler serves the app's pages.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/account", http.StatusFound) })
	mux.HandleFunc("GET /account", a.account)
	mux.HandleFunc("GET /transfers", a.transfersPage)
	mux.HandleFunc("POST /api/transfers", a.createTransfer)
	mux.HandleFunc("GET /api/transfers", a.listTransfers)
	mux.HandleFunc("GET /admin", a.admin)
	return mux
}

var (
	amountRE = regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]{1,2})?$`)
	toRE     = regexp.MustCompile(`^[\p{L}\p{N} .'-]{1,64}$`)
	ibanRE   = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$`)
)

func (a *App) account(w http.ResponseWriter, r *http.Request) {
	render(w, r, http.StatusOK, view{Title: "Your account", Page: "account"})
}

func (a *App) transfersPage(w http.ResponseWriter, r *http.Request) {
	sub := r.Header.Get("X-Stepgate-Subject")
	var mine []Transfer
	for _, t := range a.Transfers() {
		if t.Subject == sub {
			mine = append(mine, t)
		}
	}
	render(w, r, http.StatusOK, view{Title: "Transfers", Page: "transfers", Transfers: mine})
}

// listTransfers is the JSON API of the transfers page: the caller's
// transfers, for an API client with an access token.
func (a *App) listTransfers(w http.ResponseWriter, r *http.Request) {
	sub := r.Header.Get("X-Stepgate-Subject")
	if sub == "" {
		http.Error(w, `{"error":"no identity from the gateway"}`, http.StatusUnauthorized)
		return
	}
	mine := []Transfer{}
	for _, t := range a.Transfers() {
		if t.Subject == sub {
			mine = append(mine, t)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"subject": sub, "acr": r.Header.Get("X-Stepgate-Acr"), "transfers": mine})
}

// createTransfer records a transfer. The gateway only lets it through with
// a recent second factor; the app checks the identity is there at all, so
// a misrouted request fails closed.
func (a *App) createTransfer(w http.ResponseWriter, r *http.Request) {
	sub := r.Header.Get("X-Stepgate-Subject")
	if sub == "" {
		render(w, r, http.StatusUnauthorized, view{Title: "Not signed in", Page: "error", Message: "This request carries no identity from the gateway."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	to, amount := strings.TrimSpace(r.PostFormValue("to")), strings.TrimSpace(r.PostFormValue("amount"))
	iban, currency := strings.TrimSpace(r.PostFormValue("payee_iban")), cmp.Or(strings.TrimSpace(r.PostFormValue("currency")), "EUR")
	if !toRE.MatchString(to) || !amountRE.MatchString(amount) || isZero(amount) || iban != "" && !ibanRE.MatchString(iban) || currency != "EUR" {
		render(w, r, http.StatusBadRequest, view{Title: "Transfer refused", Page: "error",
			Message: "Enter a recipient name (letters, digits, spaces), an IBAN and an amount such as 25 or 25.50."})
		return
	}
	a.mu.Lock()
	t := Transfer{
		ID: len(a.transfers) + 1, Subject: sub, To: to, IBAN: iban, Currency: currency, Amount: amount,
		ACR: r.Header.Get("X-Stepgate-Acr"), AMR: r.Header.Get("X-Stepgate-Amr"),
		Confirmation: r.Header.Get("X-Stepgate-Confirmation"), At: time.Now(),
	}
	a.transfers = append(a.transfers, t)
	if len(a.transfers) > maxTransfers {
		a.transfers = slices.Clone(a.transfers[len(a.transfers)-maxTransfers:])
	}
	a.mu.Unlock()
	render(w, r, http.StatusOK, view{Title: "Transfer sent", Page: "done", Done: &t})
}

func isZero(amount string) bool {
	f, err := strconv.ParseFloat(amount, 64)
	return err != nil || f <= 0
}

func (a *App) admin(w http.ResponseWriter, r *http.Request) {
	render(w, r, http.StatusOK, view{Title: "Back office", Page: "admin", Transfers: a.Transfers()})
}

type header struct{ Name, Value, Note string }

type view struct {
	Title     string
	Page      string
	Message   string
	Transfers []Transfer
	Done      *Transfer
	Identity  []header
}

func render(w http.ResponseWriter, r *http.Request, status int, v view) {
	for _, h := range identityHeaders {
		val := r.Header.Get(h)
		note := ""
		if h == "X-Stepgate-Auth-Time" && val != "" {
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				at := time.Unix(n, 0)
				note = at.UTC().Format("15:04:05 UTC") + ", " + time.Since(at).Round(time.Second).String() + " ago"
			}
		}
		v.Identity = append(v.Identity, header{Name: h, Value: val, Note: note})
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	// No form-action: Sign out POSTs to the gateway, which answers with a
	// redirect to the provider's end-session page, and browsers apply
	// form-action to that redirect too.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, v); err != nil {
		slog.Error("demoapp: render", "err", err)
	}
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} · Demo Bank</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#222}
header{background:#0d3b66;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#fff}
header strong{margin-right:auto}
.signout{margin:0}.signout button{background:none;color:#fff;text-decoration:underline;padding:0;font-size:inherit}
main{max-width:46rem;margin:1.5rem auto;background:#fff;padding:1.2rem 2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
td code{word-break:break-all}
.ok{background:#e6f4ea;border:1px solid #34a853;padding:.6rem;border-radius:4px}
.err{background:#fdecea;border:1px solid #d93025;padding:.6rem;border-radius:4px}
label{display:inline-block;margin:.3rem 1rem .3rem 0}
button{padding:.4rem 1rem;background:#1565c0;color:#fff;border:0;border-radius:4px;font-size:1rem}
.hint{color:#666;font-size:.85rem}
</style></head>
<body>
<header><strong>Demo Bank</strong>
<a href="/account" id="nav-account">Account</a>
<a href="/transfers" id="nav-transfers">Transfers</a>
<a href="/admin" id="nav-admin">Admin</a>
<form method="post" action="/.stepgate/logout" class="signout"><button type="submit" id="logout">Sign out</button></form></header>
<main>
<h1>{{.Title}}</h1>
{{if eq .Page "account"}}
<p id="balance">Balance: <strong>1,234.56 EUR</strong></p>
<p class="hint">Reading your account needs only a sign-in. Moving money needs a second factor.</p>
{{else if eq .Page "transfers"}}
<form method="post" action="/api/transfers" id="transfer-form">
<label>To <input name="to" id="to" value="Bob" required></label>
<label>IBAN <input name="payee_iban" id="payee_iban" value="DE89370400440532013000" required></label>
<label>Amount (EUR) <input name="amount" id="amount" value="25.00" required></label>
<input type="hidden" name="currency" value="EUR">
<button type="submit" id="send">Send transfer</button>
</form>
<p class="hint">Sending needs a one-time code entered within the last 15 minutes (level <code>mfa</code>).</p>
{{if .Transfers}}<h2>Your transfers</h2><table id="my-transfers"><tr><th>#</th><th>To</th><th>Amount</th></tr>
{{range .Transfers}}<tr><td>{{.ID}}</td><td>{{.To}}</td><td>{{.Amount}} EUR</td></tr>{{end}}</table>{{end}}
{{else if eq .Page "done"}}
<p class="ok" id="transfer-done">Sent <strong>{{.Done.Amount}} EUR</strong> to <strong>{{.Done.To}}</strong> (transfer #{{.Done.ID}}).</p>
<p><a href="/transfers">Make another transfer</a></p>
{{else if eq .Page "admin"}}
<p class="hint">The back office needs a fresh sign-in with a second factor, at most a few minutes old (level <code>mfa_recent</code>).</p>
<table id="all-transfers"><tr><th>#</th><th>From</th><th>To</th><th>Amount</th><th>amr</th></tr>
{{range .Transfers}}<tr><td>{{.ID}}</td><td>{{.Subject}}</td><td>{{.To}}</td><td>{{.Amount}} EUR</td><td>{{.AMR}}</td></tr>{{else}}<tr><td colspan="5">No transfers yet.</td></tr>{{end}}</table>
{{else}}
<p class="err" id="app-error">{{.Message}}</p>
{{end}}
<h2>What the gateway told this app</h2>
<table id="identity">{{range .Identity}}<tr><th>{{.Name}}</th><td><code>{{if .Value}}{{.Value}}{{else}}(none){{end}}</code>{{if .Note}} <span class="hint">({{.Note}})</span>{{end}}</td></tr>{{end}}</table>
</main></body></html>
`))
