// Package deploy_test checks the Kubernetes examples under deploy/ and, when
// check.sh passes one in, the Helm chart's rendered output: every document
// parses, is a kind it claims to be, and runs stepgate the way the binary
// expects (flags, ports, probes, a valid routes.yaml).
package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stepgate/stepgate/config"
)

// kinds maps every kind the examples may use to its apiVersion.
var kinds = map[string]string{
	"Namespace":               "v1",
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"Service":                 "v1",
	"Deployment":              "apps/v1",
	"Ingress":                 "networking.k8s.io/v1",
	"NetworkPolicy":           "networking.k8s.io/v1",
	"PodDisruptionBudget":     "policy/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"Middleware":              "traefik.io/v1alpha1",
	"IngressRoute":            "traefik.io/v1alpha1",
}

// The binary's contract (main.go, the Dockerfile).
const (
	publicPort = 8080
	adminPort  = 9090
)

type doc = map[string]any

// readDocs parses every YAML document of a file.
func readDocs(t *testing.T, path string) []doc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []doc
	for i := 0; ; i++ {
		var d doc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML documents", path)
	}
	return docs
}

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(doc)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func TestKubernetesExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files under deploy/kubernetes: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, d := range readDocs(t, f) {
				checkDoc(t, d)
				seen[str(d["kind"])] = true
			}
		})
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap", "Secret", "Ingress", "Middleware", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if !seen[k] {
			t.Errorf("no %s among the examples", k)
		}
	}
}

// TestRenderedChart checks `helm template` output; deploy/check.sh runs it
// once per chart mode with STEPGATE_RENDERED set.
func TestRenderedChart(t *testing.T) {
	path := os.Getenv("STEPGATE_RENDERED")
	if path == "" {
		t.Skip("STEPGATE_RENDERED is not set; deploy/check.sh sets it to helm template's output")
	}
	stepgates := 0
	for _, d := range readDocs(t, path) {
		checkDoc(t, d)
		if d["kind"] == "Deployment" {
			stepgates++
		}
	}
	if stepgates != 1 {
		t.Errorf("chart rendered %d Deployments; want 1", stepgates)
	}
}

func checkDoc(t *testing.T, d doc) {
	t.Helper()
	kind, api, name := str(d["kind"]), str(d["apiVersion"]), str(get(d, "metadata", "name"))
	if kind == "" || api == "" || name == "" {
		t.Errorf("document without apiVersion, kind or metadata.name: %v", d)
		return
	}
	want, ok := kinds[kind]
	if !ok {
		t.Errorf("%s %s: kind not known to this check", kind, name)
		return
	}
	if api != want {
		t.Errorf("%s %s: apiVersion %q; want %q", kind, name, api, want)
	}
	switch kind {
	case "Deployment":
		checkDeployment(t, name, d)
	case "ConfigMap":
		checkConfigMap(t, name, d)
	case "Service":
		for i := range 8 {
			if tp := str(get(d, "spec", "ports", i, "targetPort")); tp == "admin" || tp == fmt.Sprint(adminPort) {
				t.Errorf("Service %s exposes the admin port (it serves /metrics)", name)
			}
		}
	}
}

func checkDeployment(t *testing.T, name string, d doc) {
	t.Helper()
	spec := get(d, "spec", "template", "spec")
	var sg doc
	for i := range 8 {
		if c, ok := get(spec, "containers", i).(doc); ok && c["name"] == "stepgate" {
			sg = c
		}
	}
	if sg == nil {
		t.Errorf("Deployment %s: no container named stepgate", name)
		return
	}
	if img := str(sg["image"]); !strings.Contains(img, "stepgate") || !strings.Contains(img, ":") {
		t.Errorf("Deployment %s: image %q; want a tagged stepgate image", name, img)
	}
	args, _ := sg["args"].([]any)
	if len(args) != 3 || args[0] != "serve" || args[1] != "-config" {
		t.Fatalf("Deployment %s: args %v; want [serve -config PATH]", name, args)
	}
	cfgPath := str(args[2])
	mounted := false
	for i := range 8 {
		if mp := str(get(sg, "volumeMounts", i, "mountPath")); mp != "" && strings.HasPrefix(cfgPath, strings.TrimSuffix(mp, "/")+"/") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("Deployment %s: %s is not under any volumeMount", name, cfgPath)
	}
	ports := map[string]int{}
	var numbers []int
	for i := range 8 {
		p, ok := get(sg, "ports", i).(doc)
		if !ok {
			break
		}
		n, _ := p["containerPort"].(int)
		ports[str(p["name"])] = n
		numbers = append(numbers, n)
	}
	if !slices.Contains(numbers, publicPort) || !slices.Contains(numbers, adminPort) {
		t.Errorf("Deployment %s: container ports %v; want %d and %d", name, numbers, publicPort, adminPort)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		p := str(get(sg, probe, "httpGet", "path"))
		port := str(get(sg, probe, "httpGet", "port"))
		if n, named := ports[port]; named {
			port = fmt.Sprint(n)
		}
		if p != path || port != fmt.Sprint(adminPort) {
			t.Errorf("Deployment %s: %s is %s on port %s; want %s on the admin port %d", name, probe, p, port, path, adminPort)
		}
	}
	if get(sg, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("Deployment %s: stepgate's root filesystem is not read-only", name)
	}
}

// checkConfigMap validates an embedded routes.yaml with stepgate's own
// parser, and its listeners against the ports the manifests use.
func checkConfigMap(t *testing.T, name string, d doc) {
	t.Helper()
	src, ok := get(d, "data", "routes.yaml").(string)
	if !ok {
		if env, ok := get(d, "data", "envoy.yaml").(string); ok {
			var v doc
			if err := yaml.Unmarshal([]byte(env), &v); err != nil {
				t.Errorf("ConfigMap %s: envoy.yaml: %v", name, err)
			}
			if !strings.Contains(env, "path_prefix: /.stepgate/auth") {
				t.Errorf("ConfigMap %s: envoy.yaml does not use path_prefix /.stepgate/auth", name)
			}
		}
		return
	}
	env := func(k string) (string, bool) { return "placeholder-" + k + "-0123456789abcdef0123456789", true }
	cfg, err := config.Parse(name+"/routes.yaml", []byte(src), env)
	if err != nil {
		t.Errorf("ConfigMap %s: routes.yaml: %v", name, err)
		return
	}
	if cfg.Listen != fmt.Sprintf(":%d", publicPort) {
		t.Errorf("ConfigMap %s: listen %q; want \":%d\"", name, cfg.Listen, publicPort)
	}
	if a := cfg.AdminListen; a != fmt.Sprintf(":%d", adminPort) && a != fmt.Sprintf("0.0.0.0:%d", adminPort) {
		t.Errorf("ConfigMap %s: admin_listen %q; the kubelet's probes need \":%d\"", name, a, adminPort)
	}
	if cfg.Upstream == nil && len(cfg.TrustedProxies) == 0 {
		t.Errorf("ConfigMap %s: forward-auth configuration (no upstream) without trusted_proxies answers every ingress 403", name)
	}
}
