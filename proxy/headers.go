package proxy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// The identity headers the upstream receives.
const (
	HeaderSubject  = "X-Stepgate-Subject"
	HeaderEmail    = "X-Stepgate-Email"
	HeaderACR      = "X-Stepgate-Acr"
	HeaderAMR      = "X-Stepgate-Amr"
	HeaderAuthTime = "X-Stepgate-Auth-Time"
)

// identityHeaders is every identity header stepgate sets, in a stable order.
var identityHeaders = []string{HeaderSubject, HeaderEmail, HeaderACR, HeaderAMR, HeaderAuthTime}

// GatewayHeaders returns the name of every X-Stepgate-* header the gateway
// sets or reads: the identity headers, and forward-auth's. An ingress in
// front of stepgate must never pass a client's copy of any of them.
func GatewayHeaders() []string {
	return append(slices.Clone(identityHeaders), HeaderAuthLevel, HeaderAuthMode, HeaderSignin, HeaderReason, HeaderReport)
}

// headerFilter recognizes header names that only the gateway may send
// upstream, in any spelling a backend might fold into the same name: case,
// and "_" or "." for "-" (CGI, PHP and nginx treat X_Foo as X-Foo;
// threat model cases 33-35).
type headerFilter struct {
	names map[string]bool // folded names
	first [256]bool       // first bytes of folded names, to skip most headers without folding
}

func newHeaderFilter(extra []string) *headerFilter {
	f := &headerFilter{names: map[string]bool{}}
	add := func(n string) {
		n = foldHeader(n)
		f.names[n] = true
		f.first[n[0]] = true
		if c := n[0]; c >= 'a' && c <= 'z' {
			f.first[c-('a'-'A')] = true
		}
	}
	for _, n := range identityHeaders {
		add(n)
	}
	for _, n := range extra {
		add(n)
	}
	for _, n := range methodOverrideHeaders {
		add(n)
	}
	for _, n := range routingHeaders {
		add(n)
	}
	// Never forwarded: it only serves an h2c upgrade (threat model case 76).
	add("Http2-Settings")
	// Set only by a report-only rule; never a client's.
	add(HeaderReport)
	return f
}

// routingHeaders are request headers that frameworks and proxies route,
// rewrite or trust addresses on: Symfony and IIS serve X-Original-URL
// instead of the path (CVE-2018-14773), apps build URLs from
// X-Forwarded-Prefix and exempt "internal" X-Real-IPs. A client's copy
// could make the app run another request than the one decided here (threat
// model case 84), so none is forwarded, in any spelling. X-Forwarded-For,
// -Host and -Proto are listed so that odd spellings go too; rewrite sets
// the real ones afterwards.
var routingHeaders = []string{
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Original-Method",
	"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Method",
	"X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl",
	"X-Forwarded-Scheme", "X-Url-Scheme", "Front-End-Https",
	"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
}

// foldHeader maps a header name to the form backends may reduce it to.
func foldHeader(name string) string {
	b := []byte(name)
	for i, c := range b {
		b[i] = foldByte(c)
	}
	return string(b)
}

// foldsTo reports whether name folds to the same form as want, without
// allocating.
func foldsTo(name, want string) bool {
	if len(name) != len(want) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if foldByte(name[i]) != foldByte(want[i]) {
			return false
		}
	}
	return true
}

func foldByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// matches reports whether name folds to a protected header.
func (f *headerFilter) matches(name string) bool {
	return name != "" && f.first[name[0]] && f.names[foldHeader(name)]
}

// strip deletes every protected header, every copy.
func (f *headerFilter) strip(h http.Header) {
	for name := range h {
		if f.matches(name) {
			delete(h, name)
		}
	}
}

// setIdentity sets the identity headers from facts, one value each. Every
// header is always present, empty when unknown, so that an ingress copying
// them never falls back to a client's copy (threat model case 31).
func setIdentity(h http.Header, f *policy.Facts) {
	var sub, email, acr, amr, at string
	if f.Authenticated() {
		sub, email, acr = f.Subject, f.Email, f.ACR
		amr = strings.Join(f.AMR, ",")
		if !f.AuthTime.IsZero() {
			at = strconv.FormatInt(f.AuthTime.Unix(), 10)
		}
	}
	h[HeaderSubject] = []string{sub}
	h[HeaderEmail] = []string{email}
	h[HeaderACR] = []string{acr}
	h[HeaderAMR] = []string{amr}
	h[HeaderAuthTime] = []string{at}
}

// stripOwnCookies removes the gateway's own cookies — the session, the
// pending flows named name+"-p-…" and the held transactions' browser
// bindings name+"-h-…" — from what the upstream receives. The
// app never needs them, and an app that logs or leaks its request headers
// must not hand out a credential to the gateway.
func stripOwnCookies(h http.Header, name string) {
	vals := h["Cookie"]
	found := false
	for _, v := range vals {
		if strings.Contains(v, name) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ";") {
			part = strings.TrimSpace(part)
			n, _, _ := strings.Cut(part, "=")
			// Trimmed as the session store reads it (and net/http): a pair
			// spelled "stepgate =v" is the session to the gateway, so it must
			// be the session here too, never forwarded.
			n = strings.TrimSpace(n)
			if part == "" || n == name || strings.HasPrefix(n, name+"-p-") || strings.HasPrefix(n, name+holdCookie) {
				continue
			}
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{strings.Join(kept, "; ")}
}
