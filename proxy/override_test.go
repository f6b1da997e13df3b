package proxy

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// overrideCases are claims of another method that a framework behind the
// gateway would act on, on a route whose GET needs only a login while every
// other method needs mfa: each must be decided as that other method. want
// is the status for a password-only session asking for JSON: 200 when
// nothing else is claimed, 401 (step-up) for a claimed DELETE, 403 for a
// claim that is no usable method.
var overrideCases = []struct {
	name  string
	query string      // raw query of the original request, without "?"
	hdr   http.Header // extra headers, keys exactly as sent
	want  int
}{
	{"no claim", "tab=1", nil, 200},
	{"_method", "_method=DELETE", nil, 401},

	// Threat model case 82: the key as a framework decodes it.
	{"%5F", "%5Fmethod=DELETE", nil, 401},
	{"%5f", "%5fmethod=DELETE", nil, 401},
	{"%6D", "_%6Dethod=DELETE", nil, 401},
	{"all escaped", "x=1&%5F%6D%65%74%68%6F%64=DELETE", nil, 401},
	{"upper case", "_METHOD=DELETE", nil, 401},
	{"mixed case, escaped", "%5FMeThOd=DELETE", nil, 401},
	{"PHP array", "_method[]=DELETE", nil, 401},
	{"PHP array, escaped", "_method%5B0%5D=DELETE", nil, 401},
	{"PHP dot", ".method=DELETE", nil, 401},
	{"PHP leading space", "+_method=DELETE", nil, 401},
	{"PHP NUL", "_method%00x=DELETE", nil, 401},
	{"after ;", "a=1;_method=DELETE", nil, 401},
	{"repeated, first harmless", "_method=GET&_method=DELETE", nil, 401},
	{"repeated, other spellings", "_method=GET&%5Fmethod=DELETE", nil, 401},
	{"value with junk", "_method=DELETE;x", nil, 403},
	{"malformed key", "%u005Fmethod=DELETE", nil, 403},
	{"malformed value", "_method=DEL%zzETE", nil, 403},
	{"double-escaped", "%255Fmethod=DELETE", nil, 401},

	// Not the override key: decided on the request's own method.
	{"method", "method=DELETE", nil, 200},
	{"_methods", "_methods=DELETE", nil, 200},
	{"x_method", "x_method=DELETE", nil, 200},
	{"value only", "q=_method&r=%5Fmethod", nil, 200},
	{"escaped value", "q=100%25&r=a_b", nil, 200},
	{"malformed value of another key", "q=100%&r=%zz", nil, 200},

	// Threat model case 83: override headers in the spellings CGI, PHP and
	// nginx fold into the same name.
	{"X_HTTP_METHOD_OVERRIDE", "", http.Header{"X_HTTP_METHOD_OVERRIDE": {"DELETE"}}, 401},
	{"X.HTTP.Method.Override", "", http.Header{"X.HTTP.Method.Override": {"DELETE"}}, 401},
	{"X-HTTP_Method-Override", "", http.Header{"X-HTTP_Method-Override": {"DELETE"}}, 401},
	{"x_http_method", "", http.Header{"x_http_method": {"DELETE"}}, 401},
	{"X.Method.Override", "", http.Header{"X.Method.Override": {"DELETE"}}, 401},
	{"odd spelling, junk", "", http.Header{"X_Http_Method_Override": {"delete"}}, 403},
	{"odd spelling besides the canonical one", "", http.Header{"X-Http-Method-Override": {"GET"}, "X_Http_Method_Override": {"DELETE"}}, 401},
	{"a longer name", "", http.Header{"X-Http-Method-Override-Ignored": {"DELETE"}}, 200},
}

// TestOverrideSpellingsSidecar sends each case to the sidecar as raw bytes,
// so header names arrive exactly as written.
func TestOverrideSpellingsSidecar(t *testing.T) {
	f := newFixture(t)
	ck := f.cookie(alice)
	for _, tc := range overrideCases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/admin/transfer/1"
			if tc.query != "" {
				target += "?" + tc.query
			}
			var b strings.Builder
			b.WriteString("GET " + target + " HTTP/1.1\r\nHost: g\r\nAccept: application/json\r\nCookie: " + ck + "\r\n")
			for k, vs := range tc.hdr {
				for _, v := range vs {
					b.WriteString(k + ": " + v + "\r\n")
				}
			}
			b.WriteString("\r\n")
			before := f.upstreamCount()
			code, body := f.raw(b.String())
			if code != tc.want {
				t.Errorf("GET %s with %v: status %d (%q); want %d", target, tc.hdr, code, body, tc.want)
			}
			if reached := f.upstreamCount() > before; reached != (tc.want == 200) {
				t.Errorf("upstream reached = %v; want %v", reached, tc.want == 200)
			}
		})
	}
}

// TestOverrideSpellingsForwardAuth describes each case to /.stepgate/auth:
// there the app receives whatever the client sent, so the decision is the
// only defence.
func TestOverrideSpellingsForwardAuth(t *testing.T) {
	f := newAuthFixture(t)
	pwd := f.cookie(pwdFacts)
	for _, tc := range overrideCases {
		t.Run(tc.name, func(t *testing.T) {
			uri := "/admin/transfer/1"
			if tc.query != "" {
				uri += "?" + tc.query
			}
			hdr := with(orig("GET", uri), "Cookie", pwd, "Accept", "application/json")
			for k, vs := range tc.hdr {
				hdr[k] = strings.Join(vs, "\n")
			}
			if got := f.ask(ingressAddr, http.MethodGet, authPath, hdr).StatusCode; got != tc.want {
				t.Errorf("X-Forwarded-Uri %s with %v: status %d; want %d", uri, tc.hdr, got, tc.want)
			}
		})
	}
}

func TestClaimedMethods(t *testing.T) {
	for _, tc := range []struct {
		query string
		hdr   http.Header
		want  []string
	}{
		{"", nil, nil},
		{"a=1&b=2", nil, nil},
		{"_method=PUT&%5Fmethod=DELETE&_METHOD=PATCH", nil, []string{"DELETE", "PATCH", "PUT"}},
		{"_method=a+b", nil, []string{"a b"}},
		{"_method", nil, []string{""}},
		{"%zz=1", nil, []string{"?"}},
		{"", http.Header{"X-Http-Method-Override": {"PUT", "PATCH"}, "X_http_method": {"DELETE"}}, []string{"DELETE", "PATCH", "PUT"}},
	} {
		got := claimedMethods(tc.hdr, tc.query)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("claimedMethods(%v, %q) = %q; want %q", tc.hdr, tc.query, got, tc.want)
		}
	}
}

// claimedMethods runs on every request: one that claims nothing must cost no
// allocation, whatever else its headers and query hold.
func TestClaimedMethodsAllocations(t *testing.T) {
	hdr := http.Header{
		"Accept": {"text/html"}, "Cookie": {"a=b"}, "X-Request-Id": {"abc"},
		"X-Forwarded-For": {"10.0.0.1"}, "X-Http-Method-Overrides": {"DELETE"}, "User-Agent": {"x"},
	}
	for _, q := range []string{"", "page=2&sort=name", "file=a.txt&v=1.2", "q=a_b&x_y=1", "a=1;b=2", "name=%C3%A9&x=%5Fmethod"} {
		if n := testing.AllocsPerRun(100, func() { claimedMethods(hdr, q) }); n != 0 {
			t.Errorf("claimedMethods(%q) allocates %v times; want 0", q, n)
		}
	}
}
