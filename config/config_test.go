package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/policy"
)

// base is the smallest valid file; cases append top-level keys to it.
const base = `public_url: https://bank.example.com
oidc:
  issuer: https://idp.example.com/
  client_id: stepgate
session:
  secrets: ["${STEPGATE_SESSION_SECRET}"]
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("test.yaml", []byte(src), lookup)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", src, err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	c := mustParse(t, base)
	checks := []struct {
		name      string
		got, want any
	}{
		{"File", c.File, "test.yaml"},
		{"Listen", c.Listen, ":8080"},
		{"AdminListen", c.AdminListen, "127.0.0.1:9090"},
		{"Upstream", c.Upstream == nil, true},
		{"PublicURL", c.PublicURL.String(), "https://bank.example.com"},
		{"Issuer", c.OIDC.Issuer, "https://idp.example.com/"},
		{"ClientID", c.OIDC.ClientID, "stepgate"},
		{"ClientSecret", c.OIDC.ClientSecret, ""},
		{"Scopes", strings.Join(c.OIDC.Scopes, " "), "openid profile email"},
		{"Secrets", len(c.Session.Secrets), 1},
		{"Secret", string(c.Session.Secrets[0]), fakeEnv["STEPGATE_SESSION_SECRET"]},
		{"Lifetime", c.Session.Lifetime, 12 * time.Hour},
		{"Default", c.Default.Name + " " + c.Default.Access.String(), "default authenticated"},
		{"Default.Line", c.Default.Line, 0},
		{"Routes", len(c.Routes), 0},
		{"StripPathParams", c.StripPathParams, false},
		{"InsecureAllowHTTP", c.InsecureAllowHTTP, false},
		{"OIDC.PAR", c.OIDC.PAR, "auto"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v; want %v", ch.name, ch.got, ch.want)
		}
	}
	if w := Warnings(c); len(w) != 0 {
		t.Errorf("Warnings = %q; want none", w)
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, c *Config)
	}{{
		name: "switches and listeners",
		src: `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: http://app:3000/
strip_path_params: true
case_insensitive_paths: true
identity_headers: [x-remote-user, X-Remote-User, X-Forwarded-Email]
`,
		check: func(t *testing.T, c *Config) {
			if c.Listen != "127.0.0.1:0" || c.AdminListen != "127.0.0.1:0" {
				t.Errorf("Listen, AdminListen = %q, %q", c.Listen, c.AdminListen)
			}
			if got := c.Upstream.String(); got != "http://app:3000" {
				t.Errorf("Upstream = %q; want http://app:3000", got)
			}
			if !c.StripPathParams || !c.CaseInsensitivePaths {
				t.Errorf("StripPathParams, CaseInsensitivePaths = %v, %v; want true, true", c.StripPathParams, c.CaseInsensitivePaths)
			}
			if !c.PathOptions().StripPathParams || !c.TableOptions().CaseInsensitivePaths {
				t.Errorf("PathOptions, TableOptions = %+v, %+v", c.PathOptions(), c.TableOptions())
			}
			if want := []string{"X-Remote-User", "X-Forwarded-Email"}; !slices.Equal(c.IdentityHeaders, want) {
				t.Errorf("IdentityHeaders = %q; want %q", c.IdentityHeaders, want)
			}
		},
	}, {
		name: "levels",
		src: `levels:
  mfa:
    acr_values: [urn:mfa, urn:strong]
    max_age: 15m
    prompt: login consent login
    satisfied_by:
      - acr: [urn:mfa]
        amr: [otp]
      - amr: [mfa, hwk]
  entra:
    claims:
      id_token:
        acrs: {essential: true, value: c1}
        auth_time: {essential: true}
        email: null
      userinfo:
        given_name: ~
        tier: {values: [1, 2.5, "3"]}
    satisfied_by: [{acrs: [c1]}]
routes:
  - {name: a, path: /a, require: mfa}
default: entra
`,
		check: func(t *testing.T, c *Config) {
			if len(c.Levels) != 2 || c.Levels[0].Name != "mfa" || c.Levels[1].Name != "entra" {
				t.Fatalf("Levels = %+v; want mfa, entra in file order", c.Levels)
			}
			mfa := c.Level("mfa")
			if want := []string{"urn:mfa", "urn:strong"}; !slices.Equal(mfa.ACRValues, want) {
				t.Errorf("mfa.ACRValues = %q; want %q", mfa.ACRValues, want)
			}
			if mfa.MaxAge != 15*time.Minute || mfa.Prompt != "login consent" || mfa.Claims != "" {
				t.Errorf("mfa MaxAge, Prompt, Claims = %v, %q, %q; want 15m, \"login consent\", \"\"", mfa.MaxAge, mfa.Prompt, mfa.Claims)
			}
			if len(mfa.SatisfiedBy) != 2 ||
				!slices.Equal(mfa.SatisfiedBy[0].ACR, []string{"urn:mfa"}) || !slices.Equal(mfa.SatisfiedBy[0].AMR, []string{"otp"}) ||
				!slices.Equal(mfa.SatisfiedBy[1].AMR, []string{"mfa", "hwk"}) || mfa.SatisfiedBy[1].ACR != nil {
				t.Errorf("mfa.SatisfiedBy = %+v", mfa.SatisfiedBy)
			}
			entra := c.Level("entra")
			// File order is kept, scalars keep their YAML types.
			want := `{"id_token":{"acrs":{"essential":true,"value":"c1"},"auth_time":{"essential":true},"email":null},"userinfo":{"given_name":null,"tier":{"values":[1,2.5,"3"]}}}`
			if entra.Claims != want {
				t.Errorf("entra.Claims =\n%s\nwant\n%s", entra.Claims, want)
			}
			if entra.MaxAge != 0 || entra.ACRValues != nil || !slices.Equal(entra.SatisfiedBy[0].ACRS, []string{"c1"}) {
				t.Errorf("entra = %+v", entra)
			}
			if c.Default.Access != policy.Leveled || c.Default.Level != entra || c.Default.Name != "default" {
				t.Errorf("Default = %+v; want the entra level", c.Default)
			}
			if c.Level("nope") != nil {
				t.Errorf("Level(nope) != nil")
			}
		},
	}, {
		name: "rules",
		src: `levels:
  mfa:
    satisfied_by: [{amr: [mfa]}]
routes:
  - name: admin
    host: Admin.Bank.Example.COM.
    path: /**
    require: mfa
  - name: wild
    host: "*.bank.example.com"
    path: /x/*/y
    methods: [POST, DELETE, POST]
    require: deny
  - name: alt
    host: bank.example.com
    path_regex: /api/v[0-9]+/.*
    require: public
  - name: all
    path: /
    require: authenticated
`,
		check: func(t *testing.T, c *Config) {
			mfa := c.Level("mfa")
			n := strings.Count(base, "\n") // lines before src
			want := []policy.Rule{
				{Name: "admin", Line: n + 5, Host: "admin.bank.example.com", Path: "/**", Access: policy.Leveled, Level: mfa},
				{Name: "wild", Line: n + 9, Host: "*.bank.example.com", Path: "/x/*/y", Methods: []string{"POST", "DELETE"}, Access: policy.Denied},
				{Name: "alt", Line: n + 14, Host: "bank.example.com", PathRegex: "/api/v[0-9]+/.*", Access: policy.Public},
				{Name: "all", Line: n + 18, Path: "/", Access: policy.Authenticated},
			}
			if len(c.Routes) != len(want) {
				t.Fatalf("Routes = %+v; want %d rules", c.Routes, len(want))
			}
			for i, w := range want {
				g := c.Routes[i]
				if g.Name != w.Name || g.Line != w.Line || g.Host != w.Host || g.Path != w.Path || g.PathRegex != w.PathRegex ||
					!slices.Equal(g.Methods, w.Methods) || (g.Methods == nil) != (w.Methods == nil) || g.Access != w.Access || g.Level != w.Level {
					t.Errorf("Routes[%d] = %+v; want %+v", i, g, w)
				}
			}
			// Parse compiled them with policy, the code that matches them.
			if got := c.Table.Match(policy.Request{Method: "GET", Host: "admin.bank.example.com", Path: "/x"}); got.Name != "admin" {
				t.Errorf("Table.Match(admin host) = %q; want admin", got.Name)
			}
		},
	}, {
		name: "https upstream",
		src: `upstream: "https://10.0.0.5:8443"
`,
		check: func(t *testing.T, c *Config) {
			if c.Upstream.Scheme != "https" || c.Upstream.Host != "10.0.0.5:8443" {
				t.Errorf("Upstream = %v", c.Upstream)
			}
		},
	}, {
		name: "trusted proxies",
		src: `trusted_proxies: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32", "::1", "::ffff:10.1.2.3"]
`,
		check: func(t *testing.T, c *Config) {
			want := []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"),
				netip.MustParsePrefix("192.168.1.7/32"),
				netip.MustParsePrefix("2001:db8::/32"),
				netip.MustParsePrefix("::1/128"),
				netip.MustParsePrefix("10.1.2.3/32"),
			}
			if !slices.Equal(c.TrustedProxies, want) {
				t.Errorf("TrustedProxies = %v; want %v", c.TrustedProxies, want)
			}
		},
	}, {
		name: "empty optional sections",
		src: `levels:
routes:
trusted_proxies:
identity_headers:
`,
		check: func(t *testing.T, c *Config) {
			if c.Levels != nil || c.Routes != nil || c.TrustedProxies != nil || c.IdentityHeaders != nil {
				t.Errorf("got %+v; want empty sections", c)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, base+tt.src))
		})
	}
}

func TestParseSessionAndScopes(t *testing.T) {
	src := `public_url: https://Bank.Example.com/
oidc:
  issuer: https://idp.example.com/tenant/v2.0
  client_id: 1234
  client_secret: "${STEPGATE_CLIENT_SECRET}"
  scopes: [email, openid, profile, email]
session:
  secrets:
    - "${STEPGATE_SESSION_SECRET}"
    - "$${literal}-and-a-$-sign-padding-to-32-bytes"
  lifetime: 90m
`
	c := mustParse(t, src)
	if c.PublicURL.String() != "https://bank.example.com" {
		t.Errorf("PublicURL = %v; want https://bank.example.com", c.PublicURL)
	}
	if c.OIDC.Issuer != "https://idp.example.com/tenant/v2.0" || c.OIDC.ClientID != "1234" {
		t.Errorf("Issuer, ClientID = %q, %q", c.OIDC.Issuer, c.OIDC.ClientID)
	}
	if want := []string{"openid", "email", "profile"}; !slices.Equal(c.OIDC.Scopes, want) {
		t.Errorf("Scopes = %q; want %q", c.OIDC.Scopes, want)
	}
	if got, want := string(c.Session.Secrets[1]), "${literal}-and-a-$-sign-padding-to-32-bytes"; got != want {
		t.Errorf("Secrets[1] = %q; want %q", got, want)
	}
	if c.Session.Lifetime != 90*time.Minute {
		t.Errorf("Lifetime = %v; want 1h30m", c.Session.Lifetime)
	}
	// Expansion runs after YAML parsing: quotes, ": " and "#" in a
	// value cannot change the document.
	if c.OIDC.ClientSecret != fakeEnv["STEPGATE_CLIENT_SECRET"] {
		t.Errorf("ClientSecret = %q; want %q", c.OIDC.ClientSecret, fakeEnv["STEPGATE_CLIENT_SECRET"])
	}
}

func TestEnvExpansion(t *testing.T) {
	env := map[string]string{"A": "x", "EMPTY": "", "YAMLISH": "]: {#", "STRIP": "true"}
	tests := []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"${A}", "x"},
		{"pre-${A}-${A}-post", "pre-x-x-post"},
		{"${EMPTY}", ""},
		{"${YAMLISH}", "]: {#"},
		{"$${A}", "${A}"},
		{"$A $ $$ a$", "$A $ $$ a$"},
		{"${A}${A}", "xx"},
	}
	for _, tt := range tests {
		d := &decoder{file: "t", env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		got, ok := d.expand(nil, "f", tt.in)
		if !ok || got != tt.want || len(d.errs) != 0 {
			t.Errorf("expand(%q) = %q, %v, %v; want %q", tt.in, got, ok, d.errs, tt.want)
		}
	}
	for _, in := range []string{"${UNSET}", "${A", "${1A}", "${}", "${A-B}"} {
		d := &decoder{file: "t", env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		if got, ok := d.expand(nil, "f", in); ok || len(d.errs) == 0 {
			t.Errorf("expand(%q) = %q, %v; want an error", in, got, ok)
		}
	}

	// A nil env has no variables: an unset one is an error, never "".
	if _, err := Parse("t.yaml", []byte(base), nil); err == nil || !strings.Contains(err.Error(), "STEPGATE_SESSION_SECRET is not set") {
		t.Errorf("Parse with nil env: %v; want STEPGATE_SESSION_SECRET is not set", err)
	}

	// Booleans may come from the environment too.
	c := mustParse(t, base+"strip_path_params: ${STRIP_TRUE}\n")
	if !c.StripPathParams {
		t.Errorf("StripPathParams from ${STRIP_TRUE} = false; want true")
	}
}

// Secrets must never appear in messages, whatever is wrong with them.
func TestErrorsNeverPrintSecrets(t *testing.T) {
	const secret = "hunter2-hunter2"
	src := strings.Replace(base, `["${STEPGATE_SESSION_SECRET}"]`, `["`+secret+`"]`, 1)
	_, err := Parse("t.yaml", []byte(src), lookup)
	if err == nil {
		t.Fatal("Parse accepted a 15-byte secret")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error prints the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "15 bytes") || !strings.Contains(err.Error(), "openssl rand -base64 32") {
		t.Errorf("error = %v; want the length and how to generate one", err)
	}

	_, err = Parse("t.yaml", []byte(strings.Replace(base, `["${STEPGATE_SESSION_SECRET}"]`, `["${SHORT_SECRET}"]`, 1)), lookup)
	if err == nil || strings.Contains(err.Error(), fakeEnv["SHORT_SECRET"]) {
		t.Errorf("error = %v; want an error without the secret", err)
	}
}

func TestErrorList(t *testing.T) {
	_, err := Parse("t.yaml", []byte("routes:\n  - name: x\n    requires: mfa\nlisten: 80\n"), lookup)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error %T; want ErrorList", err)
	}
	for i := 1; i < len(list); i++ {
		if a, b := list[i-1], list[i]; a.Line > b.Line || a.Line == b.Line && a.Col > b.Col {
			t.Errorf("errors out of order: %v before %v", a, b)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(list) {
		t.Errorf("Error() has %d lines for %d errors", len(lines), len(list))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "t.yaml:") {
			t.Errorf("line %q does not start with the file name", l)
		}
	}
	e := &Error{File: "f", Line: 3, Col: 7, Field: "a.b", Msg: "bad", Hint: "fix it"}
	if got, want := e.Error(), "f:3:7: a.b: bad; fix it"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	src := strings.Replace(base, `"${STEPGATE_SESSION_SECRET}"`, `"0123456789abcdef0123456789abcdef"`, 1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.File != path {
		t.Errorf("File = %q; want %q", c.File, path)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("Load(missing) = %v; want a config: error", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v; want a size error", err)
	}
}

// TestShippedRoutes checks that the example at the repository root parses
// cleanly and says what its comments say.
func TestShippedRoutes(t *testing.T) {
	data, err := os.ReadFile("../routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("routes.yaml", data, lookup)
	if err != nil {
		t.Fatalf("routes.yaml:\n%v", err)
	}
	if w := Warnings(c); len(w) != 0 {
		t.Errorf("routes.yaml warnings:\n%s", strings.Join(w, "\n"))
	}
	if c.Table == nil {
		t.Errorf("Parse returned no compiled Table")
	}
	byName := make(map[string]int)
	for i, r := range c.Routes {
		byName[r.Name] = i
	}
	mfa, recent := c.Level("mfa"), c.Level("mfa_recent")
	if mfa == nil || recent == nil {
		t.Fatalf("levels = %v; want mfa and mfa_recent", c.Levels)
	}
	if recent.Prompt != "login" || recent.MaxAge <= 0 || recent.MaxAge >= mfa.MaxAge {
		t.Errorf("mfa_recent = %+v; want prompt login and a shorter max_age than mfa", recent)
	}
	w, r := byName["transfers-write"], byName["transfers-read"]
	if c.Routes[w].Level != mfa || c.Routes[r].Access != policy.Authenticated || w > r {
		t.Errorf("transfers-write (%d) must require mfa before transfers-read (%d) requires authenticated", w, r)
	}
	if c.OIDC.ClientID != fakeEnv["STEPGATE_CLIENT_ID"] || c.OIDC.ClientSecret != fakeEnv["STEPGATE_CLIENT_SECRET"] {
		t.Errorf("OIDC = %+v; want the client from the environment", c.OIDC)
	}

	// The commented-out Entra ID level must work once uncommented.
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "  # entra_c1:")
	if start < 0 {
		t.Fatal("routes.yaml has no commented-out entra_c1 level")
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "  # "); i++ {
		lines[i] = "  " + strings.TrimPrefix(lines[i], "  # ")
	}
	c, err = Parse("routes.yaml", []byte(strings.Join(lines, "\n")), lookup)
	if err != nil {
		t.Fatalf("routes.yaml with entra_c1 uncommented:\n%v", err)
	}
	entra := c.Level("entra_c1")
	if want := `{"id_token":{"acrs":{"essential":true,"value":"c1"}}}`; entra == nil || entra.Claims != want || entra.ACRValues != nil ||
		len(entra.SatisfiedBy) != 1 || !slices.Equal(entra.SatisfiedBy[0].ACRS, []string{"c1"}) {
		t.Errorf("entra_c1 = %+v; want claims %s and satisfied_by acrs [c1]", entra, want)
	}
}

// With AllowUnset, a file whose ${NAME}s are unset still validates, with the
// placeholders listed, and every other problem is still reported: CI can
// lint a config without production secrets.
func TestAllowUnset(t *testing.T) {
	src := `public_url: "${PUBLIC_URL}"
oidc:
  issuer: "${ISSUER}"
  client_id: "${CLIENT_ID}"
  client_secret: "${CLIENT_SECRET}"
session:
  secrets: ["${SESSION_SECRET}"]
  lifetime: "${LIFETIME}"
upstream: "http://${APP_HOST}:3000"
levels:
  mfa:
    acr_values: [urn:mfa]
    satisfied_by: [{acr: [urn:mfa]}]
routes:
  - {name: a, path: /a, require: mfa}
`
	env := func(string) (string, bool) { return "", false }
	if _, err := Parse("t.yaml", []byte(src), env); err == nil || !strings.Contains(err.Error(), "environment variable PUBLIC_URL is not set") {
		t.Fatalf("Parse without AllowUnset: %v; want unset-variable errors", err)
	}
	c, err := ParseWith("t.yaml", []byte(src), env, Options{AllowUnset: true})
	if err != nil {
		t.Fatalf("ParseWith AllowUnset: %v", err)
	}
	want := []Unset{{"PUBLIC_URL", 1, 13}, {"ISSUER", 3, 11}, {"CLIENT_ID", 4, 14}, {"CLIENT_SECRET", 5, 18},
		{"SESSION_SECRET", 7, 13}, {"LIFETIME", 8, 13}, {"APP_HOST", 9, 11}}
	if !reflect.DeepEqual(c.Unset, want) {
		t.Errorf("Unset = %+v; want %+v", c.Unset, want)
	}
	if len(c.Routes) != 1 || c.Routes[0].Level == nil || c.Routes[0].Level.Name != "mfa" {
		t.Errorf("Routes = %+v; want rule a requiring mfa", c.Routes)
	}

	// A real mistake next to the placeholders is still an error.
	bad := strings.Replace(src, "require: mfa}", "require: mfaa}", 1)
	if _, err := ParseWith("t.yaml", []byte(bad), env, Options{AllowUnset: true}); err == nil || !strings.Contains(err.Error(), `t.yaml:15:`) {
		t.Errorf("ParseWith AllowUnset of a file with an unknown level: %v; want the positioned error", err)
	}
	// A value that is known stays checked.
	known := strings.Replace(src, `"${LIFETIME}"`, `"12 hours"`, 1)
	if _, err := ParseWith("t.yaml", []byte(known), env, Options{AllowUnset: true}); err == nil || !strings.Contains(err.Error(), "session.lifetime") {
		t.Errorf("ParseWith AllowUnset with a bad literal lifetime: %v; want its error", err)
	}
}

func TestStoreAndAdmin(t *testing.T) {
	base := `public_url: https://bank.example.com
oidc: {issuer: "https://idp.example.com/", client_id: stepgate}
routes: [{name: a, path: /a, require: public}]
`
	for _, tc := range []struct {
		name, yaml string
		store      string
		grace      time.Duration
		token      string
	}{
		{"defaults", `session: {secrets: ["0123456789abcdef0123456789abcdef"]}`, "", 30 * time.Second, ""},
		{"memory", `session: {secrets: ["0123456789abcdef0123456789abcdef"], store: memory, store_grace: 5s}`, "", 5 * time.Second, ""},
		{"redis", `session: {secrets: ["0123456789abcdef0123456789abcdef"], store: "redis://:pw@127.0.0.1:6379/2"}
admin: {token: "tok-0123456789abcdef0123456789abcdef"}`, "redis://:pw@127.0.0.1:6379/2", 30 * time.Second, "tok-0123456789abcdef0123456789abcdef"},
		{"rediss", `session: {secrets: ["0123456789abcdef0123456789abcdef"], store: "rediss://redis.internal:6380"}`, "rediss://redis.internal:6380", 30 * time.Second, ""},
	} {
		c, err := Parse("t.yaml", []byte(base+tc.yaml), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.Session.Store != tc.store || c.Session.StoreGrace != tc.grace || c.Admin.Token != tc.token {
			t.Errorf("%s: store %q grace %v token %q; want %q %v %q", tc.name, c.Session.Store, c.Session.StoreGrace, c.Admin.Token, tc.store, tc.grace, tc.token)
		}
	}
	// A store URL's password and an admin token never appear in an error.
	_, err := Parse("t.yaml", []byte(base+`session: {secrets: ["0123456789abcdef0123456789abcdef"], store: "redis://:hunter2@db/x"}
admin: {token: "hunter3"}`), nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hunter3") {
		t.Errorf("errors %v; want errors that repeat no password or token", err)
	}
}

// heldBase is base with a once level, for the held-transaction tests.
const heldBase = base + `levels:
  mfa_once:
    acr_values: [urn:mfa]
    max_age: 5m
    once: true
    satisfied_by: [{amr: [mfa]}]
  mfa:
    once: false
    satisfied_by: [{amr: [mfa]}]
`

func TestParseHeldTransactions(t *testing.T) {
	src := heldBase + `routes:
  - name: transfers
    path: /api/transfers/**
    methods: [POST]
    require: mfa_once
    confirm:
      title: "Send money"
      fields:
        - {name: amount, label: "Amount"}
        - {name: currency, label: "Currency"}
        - {name: payee.iban, label: "To"}
        - {name: ref-2_x, label: "Reference"}
      max_body: 16KiB
      ttl: 90s
      authorization_details:
        - type: payment_initiation
          instructedAmount: {amount: "{{amount}}", currency: "{{currency}}"}
          creditorAccount: {iban: "{{payee.iban}}"}
          remittance: "{{amount}} {{currency}} to {{payee.iban}}, ref {{ref-2_x}}"
          urgent: false
          locations: [https://bank.example.com/payments]
          limit: 1.5
  - name: payees
    path: /api/payees
    methods: [PUT, DELETE]
    require: mfa
    confirm:
      title: Change payees
      fields: [{name: payee_iban, label: Payee}]
`
	c := mustParse(t, src)
	once, mfa := c.Level("mfa_once"), c.Level("mfa")
	if once == nil || !once.Once || once.MaxAge != 5*time.Minute {
		t.Errorf("mfa_once = %+v; want Once and MaxAge 5m", once)
	}
	if mfa == nil || mfa.Once {
		t.Errorf("mfa = %+v; want Once false", mfa)
	}
	want := []*policy.Confirm{{
		Title: "Send money",
		Fields: []policy.ConfirmField{
			{Name: "amount", Label: "Amount"}, {Name: "currency", Label: "Currency"},
			{Name: "payee.iban", Label: "To"}, {Name: "ref-2_x", Label: "Reference"},
		},
		MaxBody: 16 << 10,
		TTL:     90 * time.Second,
		// File order is kept, scalars keep their YAML types, exactly as
		// levels' claims are converted.
		AuthorizationDetails: `[{"type":"payment_initiation","instructedAmount":{"amount":"{{amount}}","currency":"{{currency}}"},` +
			`"creditorAccount":{"iban":"{{payee.iban}}"},"remittance":"{{amount}} {{currency}} to {{payee.iban}}, ref {{ref-2_x}}",` +
			`"urgent":false,"locations":["https://bank.example.com/payments"],"limit":1.5}]`,
	}, {
		Title:   "Change payees",
		Fields:  []policy.ConfirmField{{Name: "payee_iban", Label: "Payee"}},
		MaxBody: 64 << 10,
		TTL:     5 * time.Minute,
	}}
	if len(c.Routes) != len(want) {
		t.Fatalf("Routes = %+v; want %d", c.Routes, len(want))
	}
	for i, w := range want {
		if got := c.Routes[i].Confirm; !reflect.DeepEqual(got, w) {
			t.Errorf("Routes[%d].Confirm =\n%+v\nwant\n%+v", i, got, w)
		}
	}
	if w := Warnings(c); len(w) != 0 {
		t.Errorf("Warnings = %q; want none for a once level on POST only, with max_age", w)
	}
}

func TestParsePAR(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "auto"},
		{"  par: auto\n", "auto"},
		{"  par: required\n", "required"},
		{"  par: off\n", "off"},
		{"  par: ~\n", "auto"},
	} {
		src := strings.Replace(base, "  client_id: stepgate\n", "  client_id: stepgate\n"+tc.yaml, 1)
		if c := mustParse(t, src); c.OIDC.PAR != tc.want {
			t.Errorf("%q: OIDC.PAR = %q; want %q", tc.yaml, c.OIDC.PAR, tc.want)
		}
	}
}

// TestConfirmBounds checks max_body's and ttl's syntax, defaults and bounds.
func TestConfirmBounds(t *testing.T) {
	route := func(extra string) string {
		return heldBase + `routes:
  - name: pay
    path: /pay
    methods: [POST]
    require: mfa_once
    confirm:
      title: Pay
      fields: [{name: amount, label: Amount}]
` + extra
	}
	for _, tc := range []struct {
		extra   string
		maxBody int64
		ttl     time.Duration
		err     string // a fragment of the error; "" when it must parse
	}{
		{"", 64 << 10, 5 * time.Minute, ""},
		{"      max_body: 64KiB\n", 64 << 10, 5 * time.Minute, ""},
		{"      max_body: 1MiB\n", 1 << 20, 5 * time.Minute, ""},
		{"      max_body: 4096\n", 4096, 5 * time.Minute, ""},
		{"      max_body: \"4096\"\n", 4096, 5 * time.Minute, ""},
		{"      max_body: 1048576\n", 1 << 20, 5 * time.Minute, ""},
		{"      max_body: 1\n", 1, 5 * time.Minute, ""},
		{"      ttl: 30s\n", 64 << 10, 30 * time.Second, ""},
		{"      ttl: 30m\n", 64 << 10, 30 * time.Minute, ""},
		{"      max_body: 0\n", 0, 0, `routes[0].confirm.max_body: 0 bytes is not positive`},
		{"      max_body: 0KiB\n", 0, 0, `routes[0].confirm.max_body: 0 bytes is not positive`},
		{"      max_body: -1\n", 0, 0, `routes[0].confirm.max_body: "-1" is not positive`},
		{"      max_body: 1048577\n", 0, 0, `routes[0].confirm.max_body: 1048577 bytes is more than 1MiB`},
		{"      max_body: 2MiB\n", 0, 0, `routes[0].confirm.max_body: 2097152 bytes is more than 1MiB`},
		{"      max_body: 99999999999999999999MiB\n", 0, 0, `routes[0].confirm.max_body: "99999999999999999999MiB" is more than 1MiB`},
		{"      max_body: 9999999999999MiB\n", 0, 0, `routes[0].confirm.max_body: "9999999999999MiB" is more than 1MiB`},
		{"      max_body: 64KB\n", 0, 0, `routes[0].confirm.max_body: "64KB" is not a size; did you mean "64KiB"?`},
		{"      max_body: 1.5MiB\n", 0, 0, `routes[0].confirm.max_body: "1.5MiB" is not a size`},
		{"      max_body: 64 KiB\n", 0, 0, `routes[0].confirm.max_body: "64 KiB" is not a size; did you mean "64KiB"?`},
		{"      max_body: [1]\n", 0, 0, `routes[0].confirm.max_body: expected a string, got a list`},
		{"      ttl: 29s\n", 0, 0, `routes[0].confirm.ttl: 29s is shorter than 30s`},
		{"      ttl: 31m\n", 0, 0, `routes[0].confirm.ttl: 31m0s is longer than 30m`},
		{"      ttl: 5\n", 0, 0, `routes[0].confirm.ttl: "5" is not a duration`},
	} {
		c, err := Parse("t.yaml", []byte(route(tc.extra)), lookup)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v; want one containing %q", tc.extra, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.extra, err)
		case c.Routes[0].Confirm == nil:
			t.Errorf("%q: Confirm is nil", tc.extra)
		case c.Routes[0].Confirm.MaxBody != tc.maxBody || c.Routes[0].Confirm.TTL != tc.ttl:
			t.Errorf("%q: MaxBody, TTL = %d, %v; want %d, %v", tc.extra, c.Routes[0].Confirm.MaxBody, c.Routes[0].Confirm.TTL, tc.maxBody, tc.ttl)
		}
	}
}

func TestReportOnlyRoutes(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`public_url: https://bank.example.com
oidc: {issuer: "https://idp.example.com/", client_id: stepgate}
session: {secrets: ["0123456789abcdef0123456789abcdef"]}
levels:
  mfa: {acr_values: [urn:mfa], satisfied_by: [{acr: [urn:mfa]}]}
routes:
  - {name: transfers, path: /api/transfers/**, require: mfa, mode: report}
  - {name: admin, path: /admin/**, require: mfa, mode: enforce}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Routes[0].Report || c.Routes[1].Report {
		t.Errorf("Report = %v, %v; want true for mode: report only", c.Routes[0].Report, c.Routes[1].Report)
	}
	ws := strings.Join(Warnings(c), "\n")
	if !strings.Contains(ws, `routes[0] "transfers" is report-only`) || strings.Contains(ws, `"admin" is report-only`) {
		t.Errorf("warnings:\n%s\nwant one for the report-only route", ws)
	}
}
