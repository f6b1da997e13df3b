package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Rejection explains why a request target cannot be canonicalized
// unambiguously. Callers answer it with 400 Bad Request. Reason is short,
// fixed text, safe to log and to show.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return "policy: rejected: " + r.Reason }

func reject(reason string) error { return &Rejection{Reason: reason} }

// PathOptions mirror routes.yaml's path switches.
type PathOptions struct {
	// StripPathParams removes ";params" from every segment, the way Tomcat
	// and Jetty do before they route, instead of rejecting them. The
	// stripped path is what is matched and forwarded.
	StripPathParams bool
}

// Canonical builds the Request that Match and Decide trust from a method, a
// Host header and the raw escaped path (without the query).
func Canonical(method, host, escapedPath string, opt PathOptions) (Request, error) {
	m, err := CanonicalMethod(method)
	if err != nil {
		return Request{}, err
	}
	h, err := CanonicalHost(host)
	if err != nil {
		return Request{}, err
	}
	p, err := CanonicalPath(escapedPath, opt)
	if err != nil {
		return Request{}, err
	}
	return Request{Method: m, Host: h, Path: p}, nil
}

// CanonicalPath returns the canonical form of escaped, the path of a request
// target exactly as received on the wire, without the query. The result is
// the one string that is both matched against the route table and forwarded
// upstream, so a backend cannot resolve it to anything else.
//
// It decodes percent-encoded unreserved characters (ALPHA DIGIT - . _ ~)
// once, upper-cases the hex digits of every escape it keeps, percent-encodes
// the printable characters RFC 3986 does not allow raw in a path (" < > [ ]
// ^ ` { | }), collapses repeated slashes and then removes dot segments (RFC
// 3986 §5.2.4), encoded ones included. A trailing slash is kept, since
// upstreams may tell /a from /a/.
//
// It refuses, with a *Rejection, anything a backend might read differently:
// a path not starting with "/"; ".." above the root; an encoded slash;
// raw or encoded backslash; control characters and whitespace, raw or
// encoded; a raw "#" or "?"; encoded "?" or "#"; "%25" (double encoding);
// malformed escapes; ";" path parameters unless opt.StripPathParams (an
// encoded ";" is refused either way, since backends disagree on whether it
// starts a parameter); invalid UTF-8 after decoding (overlong "%c0%ae");
// and any non-ASCII byte. The last one fails closed on purpose: backends
// that NFKC-fold would turn "ａｄｍｉｎ" into "admin" behind our back
// (threat model case 13), and internationalized paths are rare on the routes a
// step-up gateway guards.
//
// An already-canonical path is returned as is, without allocating.
func CanonicalPath(escaped string, opt PathOptions) (string, error) {
	if escaped == "" || escaped[0] != '/' {
		return "", reject("not an absolute path")
	}
	out := lazybuf{s: escaped, w: 1} // the leading "/" stays
	for i := 1; i < len(escaped); {
		end := strings.IndexByte(escaped[i:], '/')
		if end < 0 {
			end = len(escaped)
		} else {
			end += i
		}
		start := out.w
		if err := out.segment(escaped[i:end], opt); err != nil {
			return "", err
		}
		switch out.dots(start) {
		case 0:
			// An empty segment (from "//" or a stripped ";x") is dropped,
			// which collapses the slashes; any other keeps its slash.
			if out.w > start && end < len(escaped) {
				out.append('/')
			}
		case 1: // "."
			out.w = start
		case 2: // "..": drop it and the segment before it
			if start == 1 {
				return "", reject("dot-dot above root")
			}
			out.w = out.lastSlash(start-1) + 1
		}
		i = end + 1
	}
	return out.string(), nil
}

// segment appends the canonical form of one path segment (no "/" inside).
func (b *lazybuf) segment(seg string, opt PathOptions) error {
	if k := strings.IndexByte(seg, ';'); k >= 0 {
		if !opt.StripPathParams {
			return reject("path parameter")
		}
		// Like Tomcat: parameters go before decoding and dot removal, so
		// "..;x" is "..". They are not forwarded, so they are not checked.
		seg = seg[:k]
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c >= utf8.RuneSelf {
			return reject(highReason(seg[i:]))
		}
		if c != '%' {
			switch class[c] {
			case unreserved, keep:
				b.append(c)
			case encode:
				b.appendEscape(c)
			default:
				return reject(rawReason[c])
			}
			continue
		}
		if i+2 >= len(seg) || unhex(seg[i+1]) < 0 || unhex(seg[i+2]) < 0 {
			return reject("bad percent-encoding")
		}
		v := byte(unhex(seg[i+1])<<4 | unhex(seg[i+2]))
		if v >= utf8.RuneSelf {
			return reject(highReason(seg[i:]))
		}
		switch class[v] {
		case unreserved:
			b.append(v)
		case keep, encode:
			b.appendEscape(v)
		default:
			return reject(escapedReason[v])
		}
		i += 2
	}
	return nil
}

// highReason tells invalid UTF-8 from merely non-ASCII text for the run of
// raw or escaped bytes >= 0x80 at the start of s.
func highReason(s string) string {
	var run []byte
	for i := 0; i < len(s); {
		switch {
		case s[i] >= utf8.RuneSelf:
			run = append(run, s[i])
			i++
		case s[i] == '%' && i+2 < len(s) && unhex(s[i+1]) >= 8 && unhex(s[i+2]) >= 0:
			run = append(run, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 3
		default:
			i = len(s)
		}
	}
	if !utf8.Valid(run) {
		return "invalid utf-8"
	}
	return "non-ascii"
}

// Character classes of the bytes below 0x80, raw or decoded.
const (
	refused    = iota // never in a canonical path; see rawReason, escapedReason
	unreserved        // ALPHA DIGIT - . _ ~: raw in the output, decoded when escaped
	keep              // sub-delims other than ";", plus ":" and "@": legal raw, kept escaped when escaped
	encode            // printable but not allowed raw in a path: escaped in the output
)

var class, rawReason, escapedReason = classes()

func classes() (class [utf8.RuneSelf]uint8, raw, escaped [utf8.RuneSelf]string) {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~", byte(c)) >= 0:
			class[c] = unreserved
		case strings.IndexByte("!$&'()*+,=:@", byte(c)) >= 0:
			class[c] = keep
		case strings.IndexByte("\"<>[]^`{|}", byte(c)) >= 0:
			class[c] = encode
		case c == ' ' || c == '\t':
			raw[c], escaped[c] = "whitespace", "whitespace"
		case c < 0x20 || c == 0x7f:
			raw[c], escaped[c] = "control character", "control character"
		}
	}
	raw['\\'], escaped['\\'] = "backslash", "backslash"
	raw['#'], escaped['#'] = "fragment", "encoded ? or #"
	raw['?'], escaped['?'] = "raw ? in path", "encoded ? or #"
	escaped['%'] = "double encoding" // a raw "%" starts an escape
	raw[';'], escaped[';'] = "path parameter", "encoded ;"
	escaped['/'] = "encoded slash" // a raw "/" never reaches segment
	return class, raw, escaped
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

const upperhex = "0123456789ABCDEF"

// lazybuf builds the output of CanonicalPath. Until the output first differs
// from the input it only counts (the output is then s[:w]), so a path that is
// already canonical costs no allocation; the idea is path.Clean's.
type lazybuf struct {
	s   string
	buf []byte
	w   int
}

func (b *lazybuf) at(i int) byte {
	if b.buf == nil {
		return b.s[i]
	}
	return b.buf[i]
}

func (b *lazybuf) append(c byte) {
	if b.buf == nil {
		if b.w < len(b.s) && b.s[b.w] == c {
			b.w++
			return
		}
		b.buf = make([]byte, b.w, len(b.s)+8)
		copy(b.buf, b.s[:b.w])
	}
	b.buf = append(b.buf[:b.w], c)
	b.w++
}

func (b *lazybuf) appendEscape(c byte) {
	b.append('%')
	b.append(upperhex[c>>4])
	b.append(upperhex[c&15])
}

// dots reports whether the output from start on is "." (1) or ".." (2).
func (b *lazybuf) dots(start int) int {
	n := b.w - start
	if n < 1 || n > 2 || b.at(start) != '.' || b.at(b.w-1) != '.' {
		return 0
	}
	return n
}

// lastSlash returns the index of the last "/" in the output before end.
func (b *lazybuf) lastSlash(end int) int {
	for i := end - 1; i > 0; i-- {
		if b.at(i) == '/' {
			return i
		}
	}
	return 0
}

func (b *lazybuf) string() string {
	if b.buf == nil {
		return b.s[:b.w]
	}
	return string(b.buf[:b.w])
}

// CanonicalHost returns host (a Host header or URL authority) lower-cased,
// without a trailing dot and without the default ports 80 and 443; other
// ports are kept. It refuses an empty host, userinfo, characters outside
// letters, digits, "-", "_" and ".", empty labels, and a port that is not a
// decimal number from 1 to 65535. IPv6 literals in brackets are accepted and
// written in their canonical (RFC 5952) form; zones are refused.
// An already-canonical host is returned as is, without allocating.
func CanonicalHost(host string) (string, error) {
	if host == "" {
		return "", reject("empty host")
	}
	if strings.IndexByte(host, '@') >= 0 {
		return "", reject("userinfo in host")
	}
	name, port, hasPort := host, "", false
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", reject("bad IPv6 literal")
		}
		name = host[:end+1]
		if rest := host[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", reject("bad character in host")
			}
			port, hasPort = rest[1:], true
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port, hasPort = host[:i], host[i+1:], true
	}

	n, err := canonicalName(name)
	if err != nil {
		return "", err
	}
	if !hasPort {
		return n, nil
	}
	p, err := canonicalPort(port)
	if err != nil {
		return "", err
	}
	switch {
	case p == "":
		return n, nil
	case n == name && p == port:
		return host, nil
	}
	return n + ":" + p, nil
}

func canonicalName(name string) (string, error) {
	if name == "" {
		return "", reject("empty host")
	}
	if name[0] == '[' {
		a, err := netip.ParseAddr(name[1 : len(name)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", reject("bad IPv6 literal")
		}
		if s := a.String(); s != name[1:len(name)-1] {
			return "[" + s + "]", nil
		}
		return name, nil
	}
	name = strings.TrimSuffix(name, ".")
	if len(name) > 253 {
		return "", reject("host too long")
	}
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '.':
			if i == 0 || name[i-1] == '.' {
				return "", reject("empty label in host")
			}
		default:
			return "", reject("bad character in host")
		}
	}
	if name == "" {
		return "", reject("empty host") // it was "."
	}
	if upper {
		name = strings.ToLower(name)
	}
	return name, nil
}

// canonicalPort returns port in decimal without leading zeros, or "" for
// the default ports.
func canonicalPort(port string) (string, error) {
	if port == "" || len(port) > 5 {
		return "", reject("invalid port")
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", reject("invalid port")
		}
	}
	n, _ := strconv.Atoi(port) // at most 5 digits: cannot fail
	switch {
	case n < 1 || n > 65535:
		return "", reject("invalid port")
	case n == 80 || n == 443:
		return "", nil
	case port[0] == '0':
		return strconv.Itoa(n), nil
	}
	return port, nil
}

// CanonicalMethod returns m if it is a method stepgate handles: an RFC 9110
// token of upper-case letters only. Methods are case-sensitive and backends
// disagree on "get", so anything else is refused rather than guessed at
// (threat model case 40). CONNECT, TRACE and IIS's TRACE alias TRACK are refused
// (E42): a gateway has no business tunnelling or echoing requests.
func CanonicalMethod(m string) (string, error) {
	if m == "" || len(m) > 32 {
		return "", reject("invalid method")
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return "", reject("invalid method")
		}
	}
	switch m {
	case "CONNECT", "TRACE", "TRACK":
		return "", reject("method " + m + " refused")
	}
	return m, nil
}
