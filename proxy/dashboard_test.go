package proxy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepgate/stepgate/oidc/oidctest"
)

// The Grafana dashboard and the README's metrics table describe what the
// gateway exports: every stepgate_ metric a panel queries exists, and every
// one the gateway exports has a panel and a row in the table.

const (
	dashboardPath = "../deploy/grafana/stepgate.json"
	readmePath    = "../README.md"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Templating    struct {
		List []struct {
			Name, Type string
			Query      any // a string, or {"query": "..."} for query variables
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type, UID string
	} `json:"datasource"`
	Targets []dashTarget `json:"targets"`
	Panels  []dashPanel  `json:"panels"` // a collapsed row's panels
}

type dashTarget struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

var metricName = regexp.MustCompile(`\bstepgate_[a-z0-9_]+`)

// exported serves a little of every kind of traffic through a real Handler
// (a forwarded request, a step-up started at a real provider, a reload) and
// returns the stepgate_ families its registry then exports, with their types.
func exported(t *testing.T) map[string]string {
	t.Helper()
	fx := newFlowFixture(t, oidctest.Options{})
	fx.get("/public/x", jsonHdr).Body.Close()
	pwd := alice
	pwd.AuthTime = time.Now()
	fx.signIn(pwd)
	fx.authorize(fx.get("/feeds/live", htmlHdr)) // a step-up starts
	fx.h.CountReload(true)
	out := map[string]string{}
	for name, typ := range families(t, fx.h) {
		if strings.HasPrefix(name, "stepgate_") {
			out[name] = typ
		}
	}
	return out
}

// checkDashboard lists what is wrong with d against the families exported.
func checkDashboard(d *dashboard, exported map[string]string) []string {
	var problems []string
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		problems = append(problems, fmt.Sprintf("schemaVersion %d, uid %q, title %q; want a current dashboard (36 or later) with a uid and title", d.SchemaVersion, d.UID, d.Title))
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || v.Type == "datasource" && v.Name == "datasource" && v.Query == "prometheus"
	}
	if !hasDS {
		problems = append(problems, `no datasource variable named "datasource" for Prometheus`)
	}
	used := map[string]bool{}
	ids := map[int]string{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				problems = append(problems, fmt.Sprintf("panels %q and %q share id %d", prev, p.Title, p.ID))
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				problems = append(problems, fmt.Sprintf("panel %q: datasource %v; want the ${datasource} variable", p.Title, p.Datasource))
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q has no queries", p.Title))
			}
			for _, q := range p.Targets {
				names := metricName.FindAllString(q.Expr, -1)
				if len(names) == 0 {
					problems = append(problems, fmt.Sprintf("panel %q query %s: %q names no stepgate_ metric", p.Title, q.RefID, q.Expr))
				}
				for _, n := range names {
					family := familyOf(n, exported)
					if _, ok := exported[family]; !ok {
						problems = append(problems, fmt.Sprintf("panel %q queries %s, which the gateway does not export", p.Title, n))
					}
					used[family] = true
				}
			}
		}
	}
	walk(d.Panels)
	for name := range exported {
		if !used[name] {
			problems = append(problems, fmt.Sprintf("%s is exported but no panel shows it", name))
		}
	}
	slices.Sort(problems)
	return problems
}

// familyOf is the family a series name belongs to: a histogram's _bucket,
// _sum and _count series belong to the histogram.
func familyOf(series string, exported map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && exported[base] == "HISTOGRAM" {
			return base
		}
	}
	return series
}

func TestDashboardMatchesMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	exp := exported(t)
	if len(exp) < 10 {
		t.Fatalf("the gateway exports only %d stepgate_ families: %v", len(exp), exp)
	}
	for _, p := range checkDashboard(&d, exp) {
		t.Error(p)
	}

	// The check itself can fail: a panel naming a metric the gateway does
	// not have, or a family no panel shows, is reported.
	bad := d
	bad.Panels = append(slices.Clone(d.Panels), dashPanel{ID: 9999, Type: "timeseries", Title: "typo",
		Targets: []dashTarget{{Expr: `rate(stepgate_request_total[5m])`, RefID: "A"}}})
	if got := checkDashboard(&bad, exp); !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "stepgate_request_total, which") }) {
		t.Errorf("a panel querying stepgate_request_total went unreported: %q", got)
	}
	withExtra := maps.Clone(exp)
	withExtra["stepgate_unshown_total"] = "COUNTER"
	if got := checkDashboard(&d, withExtra); !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "stepgate_unshown_total is exported") }) {
		t.Errorf("a family without a panel went unreported: %q", got)
	}
}

// The README's metrics table has one row per exported family, with its
// type, and names no family the gateway does not export.
func TestReadmeMetricsTable(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(stepgate_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")
	table := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		table[m[1]] = strings.ToUpper(m[2])
	}
	exp := exported(t)
	for name, typ := range exp {
		if got, ok := table[name]; !ok {
			t.Errorf("README metrics table has no row for %s", name)
		} else if got != typ {
			t.Errorf("README says %s is a %s; it is a %s", name, strings.ToLower(got), strings.ToLower(typ))
		}
	}
	for name := range table {
		if _, ok := exp[name]; !ok {
			t.Errorf("README metrics table lists %s, which the gateway does not export", name)
		}
	}
}
