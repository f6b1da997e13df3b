package config

import (
	"reflect"
	"testing"
	"time"
)

func TestParseAPI(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       *API
	}{
		{"absent", ``, nil},
		{"defaults", `api: {audience: "https://api.bank.example.com"}`, &API{
			Audience: "https://api.bank.example.com", Tokens: TokensJWT, DPoP: DPoPOptional,
			CacheTTL: 5 * time.Minute, IntrospectionTTL: 30 * time.Second, CacheSize: 10000,
		}},
		{"everything", `api:
  audience: api://payments
  tokens: both
  introspection_url: https://idp.example.com/oauth/introspect
  dpop: required
  cache_ttl: 1m
  introspection_cache_ttl: 5s
  cache_size: 50
routes:
  - {name: pay, path: /pay, require: authenticated, api: {dpop: off}}
  - {name: read, path: /read, require: authenticated, api: {}}
`, &API{
			Audience: "api://payments", Tokens: TokensBoth, DPoP: DPoPRequired,
			IntrospectionURL: "https://idp.example.com/oauth/introspect",
			CacheTTL:         time.Minute, IntrospectionTTL: 5 * time.Second, CacheSize: 50,
			RouteDPoP: map[string]string{"pay": DPoPOff},
		}},
	} {
		c, err := Parse("t.yaml", []byte(base+tc.yaml), lookup)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(c.API, tc.want) {
			t.Errorf("%s: API = %+v; want %+v", tc.name, c.API, tc.want)
		}
	}
}

// A jwt-only gateway with an introspection URL would introspect nothing:
// the operator meant something else.
func TestParseAPIIntrospectionURLNeedsIntrospection(t *testing.T) {
	_, err := Parse("t.yaml", []byte(base+`api: {audience: a, introspection_url: "https://idp.example.com/i"}`), lookup)
	if err == nil || !contains([]string{err.Error()}, `t.yaml:7:39: api.introspection_url: set, but tokens is jwt, so nothing is introspected; set tokens: introspection or both, or remove introspection_url`) {
		t.Errorf("Parse = %v; want the positioned introspection_url error", err)
	}
}
