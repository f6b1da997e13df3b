package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fakeEnv is the only environment tests see.
var fakeEnv = map[string]string{
	"STEPGATE_CLIENT_ID":      "bank-portal",
	"STEPGATE_CLIENT_SECRET":  `p@ss: "word" # not a comment`,
	"STEPGATE_SESSION_SECRET": "0123456789abcdef0123456789abcdef-session",
	"SHORT_SECRET":            "tooshort-secret-value",
	"NOT_A_BOOL":              "maybe",
	"STRIP_TRUE":              "true",
}

func lookup(name string) (string, bool) {
	v, ok := fakeEnv[name]
	return v, ok
}

// TestGolden parses each testdata/bad_*.yaml, which must fail, and each
// testdata/warn_*.yaml, which must parse, and compares the errors or
// warnings with the .golden file beside it. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var bad int
	for _, path := range files {
		name := filepath.Base(path)
		if strings.HasPrefix(name, "bad_") {
			bad++
		}
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(name, data, lookup)
			var got string
			switch {
			case strings.HasPrefix(name, "bad_"):
				var list ErrorList
				if !errors.As(err, &list) {
					t.Fatalf("Parse(%s) = %v, %v; want an ErrorList", name, c, err)
				}
				got = err.Error() + "\n"
			case strings.HasPrefix(name, "warn_"):
				if err != nil {
					t.Fatalf("Parse(%s): %v", name, err)
				}
				got = strings.Join(Warnings(c), "\n") + "\n"
			default:
				t.Fatalf("%s: name it bad_*.yaml or warn_*.yaml", path)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s:\ngot:\n%s\nwant:\n%s", name, got, want)
			}
		})
	}
	if bad < 18 {
		t.Errorf("%d bad_*.yaml cases; want at least 18", bad)
	}
}
