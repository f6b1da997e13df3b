package proxy

import (
	"strings"

	"github.com/stepgate/stepgate/policy"
)

// localRedirect returns the canonical form of rd if rd is a safe local path
// to send a browser to after login, else "". rd is the value after query
// decoding; it is not decoded again (threat model cases 43-49).
//
// It accepts only "/" followed by something no browser can read as another
// origin: not "//" or "/\", no backslash, control, space or non-ASCII byte
// anywhere (browsers drop tab and newline, so "/\t/evil" is "//evil"), and a
// path that policy canonicalizes — so no encoded slash or dot-segment trick
// can reach another path, and none can reach the gateway's reserved prefix.
func localRedirect(rd string) string {
	if len(rd) == 0 || len(rd) > 2048 || rd[0] != '/' {
		return ""
	}
	if len(rd) > 1 && (rd[1] == '/' || rd[1] == '\\') {
		return ""
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c < 0x21 || c >= 0x7f || c == '\\' {
			return ""
		}
	}
	path, query, hasQuery := strings.Cut(rd, "?")
	if strings.IndexByte(path, '#') >= 0 || strings.IndexByte(query, '#') >= 0 {
		return ""
	}
	canon, err := policy.CanonicalPath(path, policy.PathOptions{})
	if err != nil || isReserved(canon) {
		return ""
	}
	if hasQuery {
		return canon + "?" + query
	}
	return canon
}

// isReserved reports whether a canonical path is under the gateway's own
// prefix, in any letter case.
func isReserved(path string) bool {
	p := reservedPrefix[:len(reservedPrefix)-1] // "/.stepgate"
	return len(path) >= len(p) && strings.EqualFold(path[:len(p)], p) &&
		(len(path) == len(p) || path[len(p)] == '/')
}
