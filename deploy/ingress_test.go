package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/proxy"
)

// stepgateHeaders are the request headers stepgate reads as instructions
// (level, answer style) or that carry identity. A client's copy of any of
// them must never reach /.stepgate/auth: X-Stepgate-Level: junk would be a
// 400 and X-Stepgate-Mode: redirect a 302, both of which nginx auth_request
// turns into a 500 (threat model case 90).
var stepgateHeaders = proxy.GatewayHeaders()

// describing are the headers that describe the original request. An ingress
// that sets one of them must not let a client add another (stepgate then
// refuses the contradiction instead of deciding).
var describing = []string{"X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Host", "X-Forwarded-Uri", "X-Original-URI", "X-Original-URL"}

// TestNginxSampleClearsClientHeaders reads deploy/nginx/stepgate.conf: the
// auth subrequest must drop the client's copy of every X-Stepgate-* header
// (nginx passes the client's headers to it, and cannot drop them by
// prefix), and set or drop every describing header.
func TestNginxSampleClearsClientHeaders(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("nginx", "stepgate.conf"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseNginx(string(b))
	if err != nil {
		t.Fatalf("stepgate.conf: %v", err)
	}
	// The locations that ask (and then proxy to the app), and the
	// locations they ask.
	var auth []string
	askers := 0
	root.walk(func(loc *directive) {
		if loc.name != "location" {
			return
		}
		i := slices.IndexFunc(loc.block, func(d *directive) bool { return d.name == "auth_request" && len(d.args) == 1 })
		if i < 0 {
			return
		}
		askers++
		if uri := loc.block[i].args[0]; !slices.Contains(auth, uri) {
			auth = append(auth, uri)
		}
		// The app trusts X-Stepgate-* from the ingress: each one is set
		// from stepgate's answer or dropped, never the client's.
		set := proxySetHeaders(loc)
		for _, name := range stepgateHeaders {
			switch v, ok := set[strings.ToLower(name)]; {
			case !ok:
				t.Errorf("location %s passes the client's %s to the app; want it set from stepgate's answer or to \"\"", loc.args, name)
			case v != "" && !strings.HasPrefix(v, "$stepgate_"):
				t.Errorf("location %s sets %s to %q for the app; want stepgate's answer or \"\"", loc.args, name, v)
			}
		}
	})
	if askers == 0 {
		t.Fatal("stepgate.conf has no location with auth_request")
	}
	for _, uri := range auth {
		loc := root.find(func(d *directive) bool {
			return d.name == "location" && len(d.args) == 2 && d.args[0] == "=" && d.args[1] == uri
		})
		if loc == nil {
			t.Errorf("auth_request %s: no exact location for it", uri)
			continue
		}
		set := proxySetHeaders(loc)
		// With proxy_pass_request_headers off nothing of the client's goes
		// to stepgate but what proxy_set_header names.
		passes := !slices.ContainsFunc(loc.block, func(d *directive) bool {
			return d.name == "proxy_pass_request_headers" && len(d.args) == 1 && d.args[0] == "off"
		})
		for _, name := range stepgateHeaders {
			v, ok := set[strings.ToLower(name)]
			switch {
			case !ok && passes:
				t.Errorf("location %s passes the client's %s to stepgate; want proxy_set_header %s \"\"", uri, name, name)
			case v != "":
				t.Errorf("location %s sets %s to %q; want \"\" (the ingress names a level with ?level= on proxy_pass)", uri, name, v)
			}
		}
		for _, name := range describing {
			v, ok := set[strings.ToLower(name)]
			if !ok && passes {
				t.Errorf("location %s neither sets nor drops %s: a client's copy reaches stepgate", uri, name)
			}
			// $http_host is the request's own Host; $http_x_* would copy a
			// client's header into the description.
			if strings.Contains(strings.ToLower(v), "$http_x_") {
				t.Errorf("location %s sets %s from a client header (%s)", uri, name, v)
			}
		}
	}
}

// proxySetHeaders maps the lower-case name of each proxy_set_header in loc
// to its value.
func proxySetHeaders(loc *directive) map[string]string {
	set := map[string]string{}
	for _, d := range loc.block {
		if d.name == "proxy_set_header" && len(d.args) == 2 {
			set[strings.ToLower(d.args[0])] = d.args[1]
		}
	}
	return set
}

// TestIngressNginxSampleClearsClientHeaders: ingress-nginx passes the
// client's headers to the auth service too. Its auth-proxy-set-headers
// annotation names a ConfigMap whose entries become proxy_set_header lines
// in the auth location; an empty value drops the header.
func TestIngressNginxSampleClearsClientHeaders(t *testing.T) {
	docs := readDocs(t, filepath.Join("kubernetes", "ingress-nginx.yaml"))
	configMaps := map[string]doc{}
	for _, d := range docs {
		if d["kind"] == "ConfigMap" {
			configMaps[str(get(d, "metadata", "namespace"))+"/"+str(get(d, "metadata", "name"))] = d
		}
	}
	n := 0
	for _, d := range docs {
		ann, _ := get(d, "metadata", "annotations").(doc)
		if d["kind"] != "Ingress" || ann["nginx.ingress.kubernetes.io/auth-url"] == nil {
			continue
		}
		n++
		name := str(get(d, "metadata", "name"))
		ref := str(ann["nginx.ingress.kubernetes.io/auth-proxy-set-headers"])
		cm, ok := configMaps[ref]
		if !ok {
			t.Errorf("Ingress %s: auth-proxy-set-headers %q; want the namespace/name of a ConfigMap in this file", name, ref)
			continue
		}
		data, _ := cm["data"].(doc)
		for _, h := range append(slices.Clone(stepgateHeaders), "X-Forwarded-Method", "X-Forwarded-Host", "X-Forwarded-Uri", "X-Original-URI") {
			v, ok := data[h]
			if !ok {
				t.Errorf("Ingress %s: ConfigMap %s does not drop the client's %s", name, ref, h)
			} else if str(v) != "" {
				t.Errorf("Ingress %s: ConfigMap %s sets %s to %q; want \"\"", name, ref, h, v)
			}
		}
	}
	if n == 0 {
		t.Fatal("ingress-nginx.yaml has no Ingress with auth-url")
	}
}

// TestTraefikSampleAllowListsHeaders: Traefik's ForwardAuth sends only the
// headers in authRequestHeaders (plus the X-Forwarded-* it sets itself), so
// the list must be present and name no X-Stepgate-* or describing header.
func TestTraefikSampleAllowListsHeaders(t *testing.T) {
	n := 0
	for _, d := range readDocs(t, filepath.Join("kubernetes", "traefik.yaml")) {
		fa, ok := get(d, "spec", "forwardAuth").(doc)
		if d["kind"] != "Middleware" || !ok {
			continue
		}
		n++
		name := str(get(d, "metadata", "name"))
		if fa["trustForwardHeader"] != false {
			t.Errorf("Middleware %s: trustForwardHeader %v; want false, so that Traefik overwrites the client's X-Forwarded-*", name, fa["trustForwardHeader"])
		}
		list, ok := fa["authRequestHeaders"].([]any)
		if !ok || len(list) == 0 {
			t.Errorf("Middleware %s: no authRequestHeaders; Traefik then passes every client header to stepgate", name)
			continue
		}
		for _, h := range list {
			if forbiddenHeader(str(h)) {
				t.Errorf("Middleware %s: authRequestHeaders passes the client's %s to stepgate", name, h)
			}
		}
	}
	if n == 0 {
		t.Fatal("traefik.yaml has no ForwardAuth Middleware")
	}
}

// TestEnvoySampleAllowListsHeaders: Envoy's ext_authz sends the check only
// the headers allowed_headers matches (plus Host, Method, Path,
// Content-Length and Authorization); none of its patterns may match an
// X-Stepgate-* or describing header, and what headers_to_add sets must be
// fixed values.
func TestEnvoySampleAllowListsHeaders(t *testing.T) {
	var env doc
	for _, d := range readDocs(t, filepath.Join("kubernetes", "envoy.yaml")) {
		if src, ok := get(d, "data", "envoy.yaml").(string); ok {
			env = parseYAML(t, src)
		}
	}
	if env == nil {
		t.Fatal("envoy.yaml has no ConfigMap with envoy.yaml")
	}
	var filters []doc
	walkYAML(env, func(m doc) {
		if m["name"] == "envoy.filters.http.ext_authz" && get(m, "typed_config", "http_service") != nil {
			filters = append(filters, m)
		}
	})
	if len(filters) == 0 {
		t.Fatal("envoy.yaml has no ext_authz HTTP filter")
	}
	for _, f := range filters {
		req := get(f, "typed_config", "http_service", "authorization_request")
		patterns, ok := get(req, "allowed_headers", "patterns").([]any)
		if !ok || len(patterns) == 0 {
			t.Errorf("ext_authz: no allowed_headers patterns; Envoy then passes every client header to stepgate")
			continue
		}
		for _, p := range patterns {
			m, _ := p.(doc)
			if m["ignore_case"] == true {
				t.Errorf("ext_authz: pattern %v ignores case; the check below assumes it does not", m)
			}
			for _, name := range append(slices.Clone(stepgateHeaders), describing...) {
				if matchesEnvoy(m, strings.ToLower(name)) {
					t.Errorf("ext_authz: allowed_headers pattern %v passes the client's %s to stepgate", m, name)
				}
			}
		}
		adds, _ := get(req, "headers_to_add").([]any)
		for _, a := range adds {
			k, v := str(get(a, "key")), str(get(a, "value"))
			if strings.Contains(v, "%") {
				t.Errorf("ext_authz: headers_to_add %s = %q is computed per request; want a fixed value", k, v)
			}
		}
	}
}

// forbiddenHeader reports whether an allow-listed header name would let a
// client's X-Stepgate-* or describing header through.
func forbiddenHeader(h string) bool {
	h = strings.ToLower(h)
	if strings.HasPrefix(h, "x-stepgate-") {
		return true
	}
	for _, d := range describing {
		if h == strings.ToLower(d) {
			return true
		}
	}
	return false
}

// matchesEnvoy evaluates one Envoy StringMatcher on a lower-case header
// name (Envoy lower-cases header names). A matcher this check does not
// understand matches everything, so that it is reported.
func matchesEnvoy(m doc, name string) bool {
	switch {
	case m["exact"] != nil:
		return str(m["exact"]) == name
	case m["prefix"] != nil:
		return strings.HasPrefix(name, str(m["prefix"]))
	case m["suffix"] != nil:
		return strings.HasSuffix(name, str(m["suffix"]))
	case m["contains"] != nil:
		return strings.Contains(name, str(m["contains"]))
	}
	return true
}
