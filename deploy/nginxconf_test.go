package deploy_test

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// directive is one nginx directive: its name, its arguments with quotes
// removed, and, for a block such as location, the directives inside.
type directive struct {
	name  string
	args  []string
	block []*directive
}

// parseNginx reads the subset of nginx's configuration syntax the shipped
// sample uses: directives ending in ";", blocks in "{}", "#" comments and
// single- or double-quoted arguments ("" is an empty argument). Placeholders
// such as {{LISTEN}} are arguments like any other.
func parseNginx(src string) (*directive, error) {
	toks, err := nginxTokens(src)
	if err != nil {
		return nil, err
	}
	root := &directive{name: "main"}
	stack := []*directive{root}
	var cur *directive
	for _, tk := range toks {
		top := stack[len(stack)-1]
		switch {
		case tk.punct && tk.text == ";":
			if cur == nil {
				return nil, fmt.Errorf("line %d: empty directive", tk.line)
			}
			top.block = append(top.block, cur)
			cur = nil
		case tk.punct && tk.text == "{":
			if cur == nil {
				return nil, fmt.Errorf("line %d: block without a name", tk.line)
			}
			top.block = append(top.block, cur)
			stack = append(stack, cur)
			cur = nil
		case tk.punct && tk.text == "}":
			if cur != nil || len(stack) == 1 {
				return nil, fmt.Errorf("line %d: unexpected }", tk.line)
			}
			stack = stack[:len(stack)-1]
		case cur == nil:
			cur = &directive{name: tk.text}
		default:
			cur.args = append(cur.args, tk.text)
		}
	}
	if cur != nil || len(stack) != 1 {
		return nil, fmt.Errorf("unterminated directive or block at the end")
	}
	return root, nil
}

type nginxToken struct {
	text  string
	punct bool // ; { or }
	line  int
}

func nginxTokens(src string) ([]nginxToken, error) {
	var toks []nginxToken
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			// "{{LISTEN}}" is a placeholder, not two blocks.
			if c == '{' && strings.HasPrefix(src[i:], "{{") {
				end := strings.Index(src[i:], "}}")
				if end < 0 {
					return nil, fmt.Errorf("line %d: unterminated placeholder", line)
				}
				j := i + end + 2
				for j < len(src) && !strings.ContainsRune(" \t\r\n;{}", rune(src[j])) {
					j++
				}
				toks = append(toks, nginxToken{text: src[i:j], line: line})
				i = j
				continue
			}
			toks = append(toks, nginxToken{text: string(c), punct: true, line: line})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(src[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated quote", line)
			}
			toks = append(toks, nginxToken{text: src[i+1 : i+1+end], line: line})
			line += strings.Count(src[i+1:i+1+end], "\n")
			i += end + 2
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}#\"'", rune(src[j])) {
				if strings.HasPrefix(src[j:], "{{") {
					j += strings.Index(src[j:], "}}") + 2
					continue
				}
				j++
			}
			toks = append(toks, nginxToken{text: src[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}

// walk calls f for every directive below d, depth first.
func (d *directive) walk(f func(*directive)) {
	for _, c := range d.block {
		f(c)
		c.walk(f)
	}
}

// find returns the first directive below d that ok accepts.
func (d *directive) find(ok func(*directive) bool) *directive {
	var found *directive
	d.walk(func(c *directive) {
		if found == nil && ok(c) {
			found = c
		}
	})
	return found
}

func TestParseNginx(t *testing.T) {
	root, err := parseNginx(`# comment
server {
    listen {{LISTEN}};
    location = /a {   # trailing comment
        proxy_set_header X-Empty "";
        proxy_set_header 'X-Single' 'a b';
        return 200 "x;y{}";
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	loc := root.find(func(d *directive) bool { return d.name == "location" })
	if loc == nil || strings.Join(loc.args, "|") != "=|/a" || len(loc.block) != 3 {
		t.Fatalf("location = %+v", loc)
	}
	got := fmt.Sprintf("%q %q %q", loc.block[0].args, loc.block[1].args, loc.block[2].args)
	if want := `["X-Empty" ""] ["X-Single" "a b"] ["200" "x;y{}"]`; got != want {
		t.Errorf("arguments %s; want %s", got, want)
	}
	if l := root.find(func(d *directive) bool { return d.name == "listen" }); l == nil || l.args[0] != "{{LISTEN}}" {
		t.Errorf("listen = %+v; want the placeholder as one argument", l)
	}
	for _, bad := range []string{"a {", "a;}", "a \"b;", "}"} {
		if _, err := parseNginx(bad); err == nil {
			t.Errorf("parseNginx(%q) succeeded; want an error", bad)
		}
	}
}

func parseYAML(t *testing.T, src string) doc {
	t.Helper()
	var v doc
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// walkYAML calls f for every mapping in v, depth first.
func walkYAML(v any, f func(doc)) {
	switch x := v.(type) {
	case doc:
		f(x)
		for _, c := range x {
			walkYAML(c, f)
		}
	case []any:
		for _, c := range x {
			walkYAML(c, f)
		}
	}
}
