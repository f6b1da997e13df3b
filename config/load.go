package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/policy"
)

// maxFileSize bounds what Load reads; a route table is a few kilobytes.
const maxFileSize = 1 << 20

// maxLifetime bounds session.lifetime: a session that outlives a month
// stops meaning "the user signed in recently" even for plain logins.
const maxLifetime = 30 * 24 * time.Hour

// minSecretLen is the shortest session secret accepted: 256 bits, which is
// also what the cookie sealing keys are derived to.
const minSecretLen = 32

var topKeys = []string{
	"listen", "admin_listen", "upstream", "public_url", "oidc", "session",
	"levels", "routes", "default", "strip_path_params", "case_insensitive_paths",
	"insecure_allow_http", "trusted_proxies", "identity_headers", "admin", "api",
}

// Options change how LoadWith and ParseWith read a file.
type Options struct {
	// AllowUnset turns an unset ${NAME} into a placeholder instead of an
	// error, and reports no problem with a value that holds one, since its
	// real value is unknown. It is for linting a file without its secrets
	// (stepgate check -allow-unset); a Config read this way lists the
	// placeholders in Unset and must never be served.
	AllowUnset bool
}

// Unset is a ${NAME} that became a placeholder, and where.
type Unset struct {
	Name      string
	Line, Col int
}

// Load reads and parses the file at path, expanding ${NAME} from the process
// environment. Problems in the file come back as an ErrorList.
func Load(path string) (*Config, error) { return LoadWith(path, Options{}) }

// LoadWith is Load with options.
func LoadWith(path string, opt Options) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config: %s is larger than %d bytes; is it the right file?", path, maxFileSize)
	}
	return ParseWith(path, data, os.LookupEnv, opt)
}

// Parse validates data, a routes.yaml named name in messages. env looks up
// ${NAME} references; a nil env has no variables set. Parse does no I/O.
// On failure the error is an ErrorList holding every problem found.
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	return ParseWith(name, data, env, Options{})
}

// ParseWith is Parse with options.
func ParseWith(name string, data []byte, env func(string) (string, bool), opt Options) (*Config, error) {
	d := &decoder{file: name, env: env, allowUnset: opt.AllowUnset}
	var c *Config
	if root := d.document(data); root != nil {
		c = d.config(root)
	}
	if len(d.errs) > 0 {
		d.errs.sort()
		return nil, d.errs
	}
	slices.SortStableFunc(d.unset, func(a, b Unset) int { return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col)) })
	c.Unset = d.unset
	return c, nil
}

// document parses data into one YAML document's root node, or records why it
// cannot.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &Error{File: d.file, Line: 1, Col: 1, Msg: "the file is empty", Hint: "start from the example routes.yaml"})
		} else {
			d.errs = append(d.errs, syntaxError(d.file, data, err))
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errorAt(&next, "", "a second YAML document", `keep one document; remove the "---" line`)
		return nil
	} else if !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, syntaxError(d.file, data, err))
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorAt(&doc, "", "the file is empty", "start from the example routes.yaml")
		return nil
	}
	return doc.Content[0]
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns yaml.v3's "yaml: line N: problem" into a positioned
// Error. yaml.v3 reports no column, and for tabs the line of the enclosing
// context, so a tab in indentation is located here.
func syntaxError(file string, data []byte, err error) *Error {
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	switch {
	case strings.Contains(e.Msg, "tab character"):
		for i, line := range strings.Split(string(data), "\n") {
			indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			if col := strings.IndexByte(indent, '\t'); col >= 0 && i+1 >= e.Line {
				e.Line, e.Col = i+1, col+1
				break
			}
		}
		e.Hint = "indent with spaces, never tabs"
	case strings.Contains(e.Msg, "cannot start any token"):
		e.Hint = "indent with spaces, never tabs, and quote values that start with @ or `"
	case strings.Contains(e.Msg, "mapping values are not allowed"):
		e.Hint = `check the indentation, and quote values that contain ": "`
	case strings.Contains(e.Msg, "did not find expected"):
		e.Hint = "check the indentation and the brackets and quotes on this line and the one above"
	}
	return e
}

// config decodes and validates the root mapping.
func (d *decoder) config(root *yaml.Node) *Config {
	if deref(root).Kind != yaml.MappingNode {
		d.errorAt(root, "", "expected a map of settings at the top level, got "+describe(root), "start from the example routes.yaml")
		return nil
	}
	top := d.mapping(root, "", topKeys...)
	c := &Config{
		File:                 d.file,
		Listen:               ":8080",
		AdminListen:          "127.0.0.1:9090",
		StripPathParams:      d.boolean(top["strip_path_params"], "strip_path_params"),
		CaseInsensitivePaths: d.boolean(top["case_insensitive_paths"], "case_insensitive_paths"),
		InsecureAllowHTTP:    d.boolean(top["insecure_allow_http"], "insecure_allow_http"),
	}
	if c.InsecureAllowHTTP {
		c.pos.insecure = at(top["insecure_allow_http"])
	}
	d.listeners(c, top)
	if n := top["upstream"]; !isNull(n) {
		c.Upstream = d.url(n, "upstream", true)
	}
	if n := top["public_url"]; isNull(n) {
		d.errorAt(orAt(n, root), "public_url", "missing", `add public_url: the origin browsers use, such as "https://bank.example.com"`)
	} else {
		c.PublicURL = d.url(n, "public_url", c.InsecureAllowHTTP)
	}
	c.OIDC = d.oidc(top["oidc"], root, c.InsecureAllowHTTP)
	c.Session = d.session(top["session"], root)
	c.Admin = d.admin(top["admin"])
	c.API = d.api(top["api"], c.InsecureAllowHTTP)

	levels := d.levels(top["levels"], c)
	c.Routes = d.routes(top["routes"], levels, c)
	c.Default = policy.Rule{Name: "default", Access: policy.Authenticated}
	if n := top["default"]; !isNull(n) {
		c.Default.Access, c.Default.Level = d.requirement(n, "default", levels)
		c.pos.def = at(n)
	}
	c.TrustedProxies = d.trustedProxies(top["trusted_proxies"], c)
	c.IdentityHeaders = d.identityHeaders(top["identity_headers"])

	c.Table = d.compile(c, orAt(top["default"], root))
	return c
}

// orAt returns n when it is set, else fallback: a missing key is reported
// at the mapping that should hold it.
func orAt(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func (d *decoder) listeners(c *Config, top map[string]*yaml.Node) {
	if s, ok := d.str(top["listen"], "listen"); ok && s != "" {
		c.Listen = s
		d.checkAddr(top["listen"], "listen", s)
	}
	if s, ok := d.str(top["admin_listen"], "admin_listen"); ok && s != "" {
		c.AdminListen = s
		d.checkAddr(top["admin_listen"], "admin_listen", s)
	}
	// /metrics and /readyz are for operators only.
	ph, pp, err1 := net.SplitHostPort(c.Listen)
	ah, ap, err2 := net.SplitHostPort(c.AdminListen)
	if err1 == nil && err2 == nil && pp == ap && pp != "0" && (ph == ah || wildcardHost(ph) || wildcardHost(ah)) {
		d.errorAt(orAt(top["admin_listen"], top["listen"]), "admin_listen", fmt.Sprintf("%q overlaps listen %q", c.AdminListen, c.Listen),
			"the admin endpoints must never be served on the public listener; use another port, such as 127.0.0.1:9090")
	}
}

func wildcardHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }

func (d *decoder) checkAddr(n *yaml.Node, field, s string) {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		if p, perr := strconv.ParseUint(port, 10, 16); perr != nil || p > 65535 {
			err = errors.New("bad port")
		}
	}
	if err != nil {
		d.errorAt(n, field, fmt.Sprintf("%q is not a host:port address", s), `write it as ":8080" or "127.0.0.1:9090"`)
	}
}

// url parses an absolute http(s) origin with an optional "/" path. upstream
// may always be http (it is usually on localhost or a cluster network);
// browser-facing and IdP URLs only with insecure_allow_http.
func (d *decoder) url(n *yaml.Node, field string, allowHTTP bool) *url.URL {
	s, ok := d.str(n, field)
	if !ok {
		return nil
	}
	if d.plainHTTPAroundPlaceholder(n, field, allowHTTP) {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		d.errorAt(n, field, fmt.Sprintf("%q is not an absolute http(s) URL", s), `write it as "https://host[:port]"`)
		return nil
	case u.User != nil:
		d.errorAt(n, field, "must not carry a user name or password", "remove the userinfo@ part")
		return nil
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		d.errorAt(n, field, fmt.Sprintf("%q has a query or fragment", s), "remove the part from ? or #")
		return nil
	case u.Path != "" && u.Path != "/":
		d.errorAt(n, field, fmt.Sprintf("%q has a path", s), "stepgate forwards request paths unchanged and serves at the root; remove "+strconv.Quote(u.Path))
		return nil
	case u.Scheme == "http" && !allowHTTP:
		d.errorAt(n, field, fmt.Sprintf("%q must use https", s), "set insecure_allow_http: true only for local testing")
		return nil
	}
	host, err := policy.CanonicalHost(u.Host)
	if err != nil {
		var rej *policy.Rejection
		errors.As(err, &rej)
		d.errorAt(n, field, fmt.Sprintf("%q has a bad host: %s", s, rej.Reason), "")
		return nil
	}
	return &url.URL{Scheme: u.Scheme, Host: host}
}

var (
	oidcKeys = []string{"issuer", "client_id", "client_secret", "scopes", "par"}
	parModes = []string{"auto", "required", "off"}
)

func (d *decoder) oidc(n, root *yaml.Node, allowHTTP bool) OIDC {
	if isNull(n) {
		d.errorAt(orAt(n, root), "oidc", "missing", "add an oidc section with issuer and client_id")
		return OIDC{}
	}
	m := d.mapping(n, "oidc", oidcKeys...)
	var o OIDC
	if iss, ok := d.str(m["issuer"], "oidc.issuer"); ok && iss == "" {
		d.errorAt(orAt(m["issuer"], n), "oidc.issuer", "missing", `add the provider's issuer URL exactly as its discovery document spells it, such as "https://example.us.auth0.com/"`)
	} else if ok {
		o.Issuer = iss
		if !d.plainHTTPAroundPlaceholder(m["issuer"], "oidc.issuer", allowHTTP) {
			d.checkIssuer(m["issuer"], iss, allowHTTP)
		}
	}
	if id, ok := d.str(m["client_id"], "oidc.client_id"); ok && id == "" {
		d.errorAt(orAt(m["client_id"], n), "oidc.client_id", "missing", "add the client ID registered at the provider, such as ${STEPGATE_CLIENT_ID}")
	} else {
		o.ClientID = id
	}
	o.ClientSecret, _ = d.str(m["client_secret"], "oidc.client_secret")
	o.Scopes = d.scopes(m["scopes"])
	o.PAR = d.par(m["par"])
	return o
}

// plainHTTPAroundPlaceholder reports, and says so, when n holds an
// http:// URL with a placeholder in it: a placeholder hides the value, not
// its literal scheme, and no value of the variable can make it https.
func (d *decoder) plainHTTPAroundPlaceholder(n *yaml.Node, field string, allowHTTP bool) bool {
	if n == nil || !d.unknown[n] || allowHTTP || !strings.HasPrefix(strings.ToLower(deref(n).Value), "http://") {
		return false
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Field: field,
		Msg: fmt.Sprintf("%q must use https", deref(n).Value), Hint: "set insecure_allow_http: true only for local testing"})
	return true
}

// par reads oidc.par; absent or null is "auto".
func (d *decoder) par(n *yaml.Node) string {
	if isNull(n) {
		return "auto"
	}
	s, ok := d.str(n, "oidc.par")
	if !ok {
		return "auto"
	}
	if contains(parModes, s) {
		return s
	}
	hint := "use auto (push requests when the provider advertises pushed_authorization_request_endpoint), required or off"
	switch v := deref(n); {
	case v.ShortTag() == "!!bool" && strings.EqualFold(s, "false"):
		hint = `did you mean "off"?`
	case v.ShortTag() == "!!bool":
		hint = `use "auto", or "required" to refuse a provider without PAR`
	case closest(s, parModes) != "":
		hint = fmt.Sprintf("did you mean %q?", closest(s, parModes))
	}
	d.errorAt(n, "oidc.par", fmt.Sprintf("%q is not auto, required or off", s), hint)
	return "auto"
}

// checkIssuer keeps the issuer as written (ID tokens' iss must equal it
// byte for byte) and checks only what OpenID Connect Discovery §2 requires:
// https, a host, no query or fragment.
func (d *decoder) checkIssuer(n *yaml.Node, s string, allowHTTP bool) {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		d.errorAt(n, "oidc.issuer", fmt.Sprintf("%q is not an absolute https URL", s), `write it as "https://idp.example.com/"`)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") || u.User != nil:
		d.errorAt(n, "oidc.issuer", fmt.Sprintf("%q has a query, fragment or userinfo", s), "an issuer is scheme, host and optional path only (OpenID Connect Discovery §2)")
	case u.Scheme == "http" && !allowHTTP:
		d.errorAt(n, "oidc.issuer", fmt.Sprintf("%q must use https", s), "set insecure_allow_http: true only for local testing")
	}
}

var scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 §3.3

// scopes returns the requested scopes with "openid" first and no duplicates.
func (d *decoder) scopes(n *yaml.Node) []string {
	if n == nil {
		return []string{"openid", "profile", "email"}
	}
	out := []string{"openid"}
	vals, nodes := d.strList(n, "oidc.scopes")
	for i, s := range vals {
		if !scopeToken.MatchString(s) {
			d.errorAt(nodes[i], index("oidc.scopes", i), fmt.Sprintf("%q is not a scope", s), "write one scope per list entry, without spaces or quotes")
			continue
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

var sessionKeys = []string{"secrets", "lifetime", "store", "store_grace"}

func (d *decoder) session(n, root *yaml.Node) Session {
	s := Session{Lifetime: 12 * time.Hour}
	if isNull(n) {
		d.errorAt(orAt(n, root), "session", "missing", "add a session section with secrets: [${STEPGATE_SESSION_SECRET}]")
		return s
	}
	m := d.mapping(n, "session", sessionKeys...)
	items := d.list(m["secrets"], "session.secrets")
	if len(items) == 0 && (isNull(m["secrets"]) || deref(m["secrets"]).Kind == yaml.SequenceNode) {
		d.errorAt(orAt(m["secrets"], n), "session.secrets", "needs at least one secret", "generate one with: openssl rand -base64 32")
	}
	for i, item := range items {
		v, ok := d.str(item, index("session.secrets", i))
		if !ok {
			continue
		}
		// Never print the secret: its length is all the operator needs.
		if len(v) < minSecretLen {
			d.errorAt(item, index("session.secrets", i), fmt.Sprintf("secret is %d bytes; need at least %d", len(v), minSecretLen), "generate one with: openssl rand -base64 32")
			continue
		}
		s.Secrets = append(s.Secrets, []byte(v))
	}
	if dur, set := d.duration(m["lifetime"], "session.lifetime"); set {
		switch {
		case dur <= 0:
			d.errorAt(m["lifetime"], "session.lifetime", fmt.Sprintf("%s is not positive", dur), `use a duration such as "12h"`)
		case dur > maxLifetime:
			d.errorAt(m["lifetime"], "session.lifetime", fmt.Sprintf("%s is longer than 30 days", dur), `use at most "720h"`)
		default:
			s.Lifetime = dur
		}
	}
	s.Store = d.storeURL(m["store"])
	s.StoreGrace = 30 * time.Second
	if dur, set := d.duration(m["store_grace"], "session.store_grace"); set {
		switch {
		case dur < time.Second:
			d.errorAt(m["store_grace"], "session.store_grace", fmt.Sprintf("%s is less than a second", dur), `use a duration such as "30s"`)
		case dur > 10*time.Minute:
			d.errorAt(m["store_grace"], "session.store_grace", fmt.Sprintf("%s is longer than 10 minutes", dur),
				"a revoked session would keep working that long while the store is unreachable; use at most \"10m\"")
		default:
			s.StoreGrace = dur
		}
	}
	return s
}

// storeURL reads session.store: "memory" (the default) or a redis:// or
// rediss:// URL. The URL may hold a password, so no message repeats it.
func (d *decoder) storeURL(n *yaml.Node) string {
	v, ok := d.str(n, "session.store")
	if !ok || v == "" || v == "memory" {
		return ""
	}
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || u.Opaque != "":
		d.errorAt(n, "session.store", "is neither memory nor a redis:// or rediss:// URL",
			`write "memory", or "redis://[user:password@]host:port/db" (Redis or Valkey 7 or later)`)
		return ""
	case u.RawQuery != "" || u.Fragment != "":
		d.errorAt(n, "session.store", "has a query or fragment", "remove the part from ? or #")
		return ""
	case strings.Trim(u.Path, "/") != "" && strings.Trim(strings.Trim(u.Path, "/"), "0123456789") != "":
		d.errorAt(n, "session.store", "names a database that is not a number", `write the database as a number, such as "redis://host:6379/0"`)
		return ""
	}
	return v
}

var adminKeys = []string{"token"}

// admin reads the admin section: the bearer token of the admin API. The
// API is off without one.
func (d *decoder) admin(n *yaml.Node) Admin {
	var a Admin
	if isNull(n) {
		return a
	}
	m := d.mapping(n, "admin", adminKeys...)
	if v, ok := d.str(m["token"], "admin.token"); ok && v != "" {
		// Never print the token: its length is all the operator needs.
		if len(v) < minSecretLen {
			d.errorAt(m["token"], "admin.token", fmt.Sprintf("token is %d bytes; need at least %d", len(v), minSecretLen), "generate one with: openssl rand -base64 32")
		} else {
			a.Token = v
		}
	}
	return a
}

func (d *decoder) trustedProxies(n *yaml.Node, c *Config) []netip.Prefix {
	var out []netip.Prefix
	vals, nodes := d.strList(n, "trusted_proxies")
	for i, s := range vals {
		field := index("trusted_proxies", i)
		p, err := parsePrefix(s)
		if err != "" {
			d.errorAt(nodes[i], field, err, `write a CIDR such as "10.0.0.0/8" or an address such as "10.1.2.3"`)
			continue
		}
		if p != p.Masked() {
			d.errorAt(nodes[i], field, fmt.Sprintf("%q has bits set past the prefix length", s), fmt.Sprintf("did you mean %q?", p.Masked()))
			continue
		}
		out = append(out, p)
		c.pos.proxies = append(c.pos.proxies, at(nodes[i]))
	}
	return out
}

// parsePrefix accepts a CIDR or a bare address (as a single-host prefix).
func parsePrefix(s string) (netip.Prefix, string) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Sprintf("%q has an IPv6 zone", s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			return netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)), ""
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

var tchar = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$") // RFC 9110 §5.6.2 token

func (d *decoder) identityHeaders(n *yaml.Node) []string {
	var out []string
	vals, nodes := d.strList(n, "identity_headers")
	for i, s := range vals {
		if !tchar.MatchString(s) {
			d.errorAt(nodes[i], index("identity_headers", i), fmt.Sprintf("%q is not a header name", s), "use letters, digits and -, such as X-User-Email")
			continue
		}
		if h := textproto.CanonicalMIMEHeaderKey(s); !contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
