package policy

import "strings"

// Shadow is an earlier, weaker rule that catches requests a later, stricter
// rule was meant for: since the first match wins, those requests never reach
// the later rule. The example fields describe one such request.
type Shadow struct {
	Earlier, Later int    // indexes into the rules given to Shadows
	Example        string // a request path both match
	Method         string // a method both match; "" when both take every method
	Host           string // a host both match; "" when neither names a host
}

// Shadows lists, ordered by Later and then Earlier, every pair of rules where
// an earlier rule is weaker than a later one (public < authenticated < a
// level < deny; two levels count as equal) and some request matches both.
//
// Two globs are compared exactly. A glob and a regex are compared on a few
// paths built from the glob ("*" and "**" filled with "x" or "0"), so an
// overlap that needs other segments is missed; two regexes are not compared
// at all. Paths are compared case-sensitively. Invalid rules are skipped:
// NewTable reports them.
func Shadows(rules []Rule) []Shadow {
	var out []Shadow
	for j := range rules {
		for i := range j {
			ri, rj := rules[i].Access.strictness(), rules[j].Access.strictness()
			if ri == 0 || rj == 0 || ri >= rj {
				continue
			}
			if s, ok := overlap(&rules[i], &rules[j]); ok {
				s.Earlier, s.Later = i, j
				out = append(out, s)
			}
		}
	}
	return out
}

// overlap finds a request that both a and b match.
func overlap(a, b *Rule) (Shadow, bool) {
	host, ok := commonHost(a.Host, b.Host)
	if !ok {
		return Shadow{}, false
	}
	method, ok := commonMethod(a.Methods, b.Methods)
	if !ok {
		return Shadow{}, false
	}
	path, ok := commonPath(a, b)
	if !ok {
		return Shadow{}, false
	}
	return Shadow{Example: path, Method: method, Host: host}, true
}

func commonHost(a, b string) (string, bool) {
	if a == "" && b == "" {
		return "", true
	}
	for _, h := range []string{hostExample(a), hostExample(b)} {
		if h != "" && hostMatch(a, h) && hostMatch(b, h) {
			return h, true
		}
	}
	return "", false
}

func hostExample(pat string) string {
	if strings.HasPrefix(pat, "*.") {
		return "x" + pat[1:]
	}
	return pat
}

func commonMethod(a, b []string) (string, bool) {
	switch {
	case a == nil && b == nil:
		return "", true
	case a == nil && len(b) > 0:
		return b[0], true
	case b == nil && len(a) > 0:
		return a[0], true
	}
	for _, m := range append(append([]string{"HEAD"}, a...), b...) {
		if methodMatch(a, m) && methodMatch(b, m) {
			return m, true
		}
	}
	return "", false
}

func commonPath(a, b *Rule) (string, bool) {
	switch {
	case a.PathRegex != "" && b.PathRegex != "":
		return "", false // undecidable here; see Shadows
	case a.PathRegex != "":
		return globRegexOverlap(b.Path, a.PathRegex)
	case b.PathRegex != "":
		return globRegexOverlap(a.Path, b.PathRegex)
	}
	ga, msg, _ := parseGlob(a.Path)
	if msg != "" {
		return "", false
	}
	gb, msg, _ := parseGlob(b.Path)
	if msg != "" {
		return "", false
	}
	return intersect(ga, gb)
}

// globRegexOverlap tries a few paths of glob against expr.
func globRegexOverlap(glob, expr string) (string, bool) {
	segs, msg, _ := parseGlob(glob)
	if msg != "" {
		return "", false
	}
	re, msg := compileRegex(expr, false)
	if msg != "" {
		return "", false
	}
	for _, fill := range []string{"x", "0"} {
		for many := range 3 {
			var b strings.Builder
			for _, s := range segs {
				switch s.kind {
				case litSeg:
					b.WriteString("/" + s.lit)
				case starSeg:
					b.WriteString("/" + fill)
				case dstarSeg:
					b.WriteString(strings.Repeat("/"+fill, many))
				}
			}
			p := b.String()
			if p == "" {
				p = "/"
			}
			if re.MatchString(matchKey(p, false)) {
				return p, true
			}
		}
	}
	return "", false
}

// intersect returns a path that both globs match, if there is one. It runs
// a breadth-first search over pairs of positions in a and b, the product of
// the two globs read as automata over segments.
func intersect(a, b []globSeg) (string, bool) {
	type state struct{ i, j int }
	type step struct {
		from state
		seg  string // the segment consumed; "" for a "**" taking nothing
	}
	start := state{0, 0}
	prev := map[state]step{start: {}}
	queue := []state{start}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s.i == len(a) && s.j == len(b) {
			var segs []string
			for ; s != start; s = prev[s].from {
				if seg := prev[s].seg; seg != "" {
					segs = append(segs, seg)
				}
			}
			var p strings.Builder
			for k := len(segs) - 1; k >= 0; k-- {
				p.WriteString("/" + segs[k])
			}
			if p.Len() == 0 {
				return "/", true
			}
			return p.String(), true
		}
		visit := func(n state, seg string) {
			if _, ok := prev[n]; !ok {
				prev[n] = step{from: s, seg: seg}
				queue = append(queue, n)
			}
		}
		if s.i < len(a) && a[s.i].kind == dstarSeg {
			visit(state{s.i + 1, s.j}, "")
		}
		if s.j < len(b) && b[s.j].kind == dstarSeg {
			visit(state{s.i, s.j + 1}, "")
		}
		if s.i == len(a) || s.j == len(b) {
			continue
		}
		x, y := a[s.i], b[s.j]
		seg, ok := commonSeg(x, y)
		if !ok {
			continue
		}
		n := s
		if x.kind != dstarSeg {
			n.i++
		}
		if y.kind != dstarSeg {
			n.j++
		}
		if n != s { // "**" against "**" consuming a segment changes nothing
			visit(n, seg)
		}
	}
	return "", false
}

// commonSeg returns a segment both x and y match.
func commonSeg(x, y globSeg) (string, bool) {
	switch {
	case x.kind == litSeg && y.kind == litSeg:
		return x.lit, matchKey(x.lit, false) == matchKey(y.lit, false)
	case x.kind == litSeg:
		return x.lit, true
	case y.kind == litSeg:
		return y.lit, true
	}
	return "x", true
}
