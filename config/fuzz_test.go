package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/policy"
)

// FuzzParse checks that Parse never panics, that it fails only with an
// ErrorList of positioned lines, and that whatever it accepts keeps the
// invariants the rest of stepgate relies on.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../routes.yaml")
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data, lookup)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse error %T %v; want a non-empty ErrorList", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") {
					t.Fatalf("error line %q has no position", line)
				}
			}
			return
		}
		if c.Table == nil {
			t.Fatalf("Parse accepted a file without compiling its rules")
		}
		if len(c.Session.Secrets) == 0 || len(c.OIDC.Scopes) == 0 || c.OIDC.Scopes[0] != "openid" || c.PublicURL == nil {
			t.Fatalf("accepted config breaks an invariant: %+v", c)
		}
		for _, s := range c.Session.Secrets {
			if len(s) < minSecretLen {
				t.Fatalf("accepted a %d-byte secret", len(s))
			}
		}
		for _, l := range c.Levels {
			if len(l.SatisfiedBy) == 0 || l.MaxAge < 0 || strings.Contains(l.Prompt, "none") {
				t.Fatalf("accepted level %+v", l)
			}
		}
		if !slices.Contains([]string{"auto", "required", "off"}, c.OIDC.PAR) {
			t.Fatalf("accepted oidc.par %q", c.OIDC.PAR)
		}
		for _, r := range c.Routes {
			cf := r.Confirm
			if cf == nil {
				continue
			}
			if r.Access != policy.Leveled || cf.Title == "" || len(cf.Fields) == 0 || len(cf.Fields) > maxFields ||
				cf.MaxBody <= 0 || cf.MaxBody > maxMaxBody || cf.TTL < minHoldTTL || cf.TTL > maxHoldTTL {
				t.Fatalf("accepted confirm %+v on %s", cf, r.Access)
			}
			for _, f := range cf.Fields {
				if !fieldName.MatchString(f.Name) || f.Label == "" {
					t.Fatalf("accepted field %+v", f)
				}
			}
			if ad := cf.AuthorizationDetails; ad != "" {
				var objs []map[string]any
				if err := json.Unmarshal([]byte(ad), &objs); err != nil || len(objs) == 0 || len(ad) > maxAuthorizationDetails {
					t.Fatalf("accepted authorization_details %s (%v)", ad, err)
				}
				for _, o := range objs {
					if typ, _ := o["type"].(string); typ == "" {
						t.Fatalf("accepted authorization_details %s: an object without a string type", ad)
					}
				}
			}
		}
		_ = Warnings(c)
	})
}
