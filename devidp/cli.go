package devidp

import (
	"html/template"
	"log/slog"
	"net/http"
)

// The CLI page is the redirect URI of clients with Client.CLI: a person
// following a curl walk-through opens the authorization URL in a browser,
// signs in, and lands here, on a page that shows the code to paste into
// the token request. Nothing here redeems the code: only the client
// secret does.

var cliTmpl = template.Must(template.New("cli").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devidp sign-in code</title>` + pageStyle + `</head>
<body><main><p class="dev">devidp: development OpenID provider, not for production use.</p>
{{if .Error}}<h1>Sign-in refused</h1>
<p class="err" role="alert">error=<span id="error">{{.Error}}</span></p>
{{else}}<h1>Your code</h1>
<p>Copy it into the token request within two minutes; it works once.</p>
<p><code id="code">{{.Code}}</code></p>
<pre id="curl">curl -u CLIENT_ID:CLIENT_SECRET -d grant_type=authorization_code \
  --data-urlencode code={{.Code}} \
  --data-urlencode redirect_uri={{.RedirectURI}} \
  {{.TokenURL}}</pre>
{{end}}{{if .State}}<p>state: <span id="state">{{.State}}</span></p>{{end}}
</main></body></html>
`))

type cliPage struct{ Code, Error, State, RedirectURI, TokenURL string }

func (p *Provider) serveCLICode(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "devidp: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	page := cliPage{
		Code: q.Get("code"), Error: q.Get("error"), State: q.Get("state"),
		RedirectURI: p.issuer + CLICodePath, TokenURL: p.issuer + p.op.TokenEndpoint().Relative(),
	}
	status := http.StatusOK
	if page.Code == "" && page.Error == "" {
		page.Error, status = "invalid_request (this page shows the code of a sign-in; there is none)", http.StatusBadRequest
	}
	setPageHeaders(w, status)
	if err := cliTmpl.Execute(w, page); err != nil {
		slog.Error("devidp: render CLI code page", "err", err)
	}
}
