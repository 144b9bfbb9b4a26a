package k8s_test

// The components under k8s/components are not built on their own: each test
// here renders them inside an overlay (an in-memory kustomization beside
// the real ones, the disk untouched) and runs every check of the overlays
// on the result, plus the checks of the component.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/corsproc/corsproc/policy/reload"
	"github.com/corsproc/corsproc/processor"
)

// compositions are overlays with components added, as a user's overlay
// would write them: name -> the kustomization's resources and components.
var compositions = map[string]struct{ resources, components []string }{
	"monitoring":        {[]string{"namespaced"}, []string{"components/monitoring"}},
	"sidecar-monitored": {[]string{"sidecar"}, []string{"components/monitoring"}},
	"hpa":               {[]string{"namespaced"}, []string{"components/hpa"}},
}

// composeDir is where the compositions are written in the in-memory tree.
const composeDir = "zz-compose"

// compose adds the kustomization of composition name to tr and returns the
// overlay to render.
func compose(tr tree, name string) string {
	c := compositions[name]
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, r := range c.resources {
		fmt.Fprintf(&b, "  - ../../%s\n", r)
	}
	b.WriteString("components:\n")
	for _, r := range c.components {
		fmt.Fprintf(&b, "  - ../../%s\n", r)
	}
	dir := composeDir + "/" + name
	tr[dir+"/kustomization.yaml"] = []byte(b.String())
	return dir
}

// TestComponents renders every composition and checks it like an overlay.
// Every component must be in one.
func TestComponents(t *testing.T) {
	env := newTestEnv(t)
	orig := loadTree(t)
	used := map[string]bool{}
	for _, c := range compositions {
		for _, comp := range c.components {
			used[comp] = true
		}
	}
	// The overlays that include a component check it as TestOverlays
	// renders them.
	for p, data := range orig {
		if filepath.Base(p) == "kustomization.yaml" && !isComponent(data) {
			for _, m := range regexp.MustCompile(`(?m)^\s*-\s*\.\./(components/[\w.-]+)\s*$`).FindAllSubmatch(data, -1) {
				used[string(m[1])] = true
			}
		}
	}
	for p, data := range orig {
		if filepath.Base(p) == "kustomization.yaml" && isComponent(data) && !used[filepath.Dir(p)] {
			t.Errorf("component k8s/%s is in no composition of components_test.go: add one", filepath.Dir(p))
		}
	}
	names := make([]string, 0, len(compositions))
	for n := range compositions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			tr := orig.clone()
			overlay := compose(tr, name)
			objs, problems := checkRendered(env, tr, overlay)
			if objs == nil {
				t.Fatal(problems)
			}
			problems = append(problems, componentProblems(env, name, objs)...)
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

// componentProblems checks what each composition's components add.
func componentProblems(env *testEnv, name string, objs []*object) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, name+": "+fmt.Sprintf(format, args...)) }
	c := compositions[name]
	for _, comp := range c.components {
		switch {
		case comp == "components/hpa":
			if len(typed[*autoscalingv2.HorizontalPodAutoscaler](objs)) != 1 {
				add("want one HorizontalPodAutoscaler")
			}
		case strings.HasPrefix(comp, "components/networkpolicy"):
			if len(typed[*networkingv1.NetworkPolicy](objs)) == 0 {
				add("no NetworkPolicy rendered")
			}
		case comp == "components/monitoring":
			for _, p := range monitoringProblems(env, objs) {
				add("%s", p)
			}
		}
	}
	return problems
}

// monitoringProblems checks the monitoring component in a rendered overlay:
// the PodMonitor scrapes the admin port of every corsproc pod, and every
// metric the alerts and the dashboard query is one corsproc exports.
func monitoringProblems(env *testEnv, objs []*object) []string {
	var problems []string
	ps := pods(objs)
	pms := typed[*monitoringv1.PodMonitor](objs)
	if len(pms) != 1 {
		problems = append(problems, fmt.Sprintf("want one PodMonitor, got %d", len(pms)))
	}
	for _, o := range pms {
		pm := as[*monitoringv1.PodMonitor](o)
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil || sel.Empty() {
			problems = append(problems, fmt.Sprintf("%s: empty or invalid selector", o))
			continue
		}
		targets := selected(ps, o.namespace, sel)
		if !slices.ContainsFunc(targets, func(p *pod) bool { return p.container(corsprocContainer) != nil }) {
			problems = append(problems, fmt.Sprintf("%s: selector %s selects no corsproc pod in namespace %q", o, sel, o.namespace))
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || ep.Path != "/metrics" {
				problems = append(problems, fmt.Sprintf("%s: endpoint must name a port and scrape /metrics", o))
				continue
			}
			for _, p := range targets {
				c := p.container(corsprocContainer)
				if c == nil {
					continue
				}
				if cp := containerPort(c, intstr.FromString(*ep.Port)); cp == nil || cp.Name != adminPortName {
					problems = append(problems, fmt.Sprintf("%s: port %q is not corsproc's admin port in %s (its ports: %s)", o, *ep.Port, p.owner, portList(c)))
				}
			}
		}
	}

	exported, err := env.exportedMetrics()
	if err != nil {
		return append(problems, err.Error())
	}
	rules := typed[*monitoringv1.PrometheusRule](objs)
	if len(rules) != 1 {
		problems = append(problems, fmt.Sprintf("want one PrometheusRule, got %d", len(rules)))
	}
	for _, o := range rules {
		problems = append(problems, ruleProblems(o.String(), as[*monitoringv1.PrometheusRule](o), exported)...)
	}
	var dash *object
	for _, o := range typed[*corev1.ConfigMap](objs) {
		if strings.HasPrefix(o.name, "corsproc-grafana-dashboard") {
			dash = o
		}
	}
	if dash == nil {
		return append(problems, "no ConfigMap corsproc-grafana-dashboard")
	}
	if cm := as[*corev1.ConfigMap](dash); cm.Labels["grafana_dashboard"] == "" {
		problems = append(problems, fmt.Sprintf("%s: no grafana_dashboard label: Grafana's sidecar would not load it", dash))
	}
	for k, v := range configMapData(dash) {
		problems = append(problems, dashboardProblems(dash.String()+" key "+k, []byte(v), exported)...)
	}
	return problems
}

// wantAlerts are the conditions the alerts must cover (issue: reload
// failing, rejections spiking, ext_proc errors, no traffic), by a metric
// the alert's expression must query.
var wantAlerts = map[string]string{
	"a policy reload failing":      reload.MetricReloadHealthy,
	"refusals spiking":             processor.MetricRejections,
	"ext_proc stream errors":       processor.MetricStreamErrors,
	"no traffic reaching corsproc": processor.MetricStreams,
}

func ruleProblems(where string, pr *monitoringv1.PrometheusRule, exported map[string]bool) []string {
	var problems []string
	covered := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			name := rule.Alert
			if name == "" {
				name = rule.Record
			}
			expr := rule.Expr.String()
			names := promqlMetricNames(expr)
			if len(names) == 0 {
				problems = append(problems, fmt.Sprintf("%s: rule %s queries no metric: %s", where, name, expr))
			}
			for _, m := range names {
				if !exported[m] {
					problems = append(problems, fmt.Sprintf("%s: rule %s queries %s, which corsproc does not export (a typo, or a renamed metric): it would never fire", where, name, m))
				}
				for what, metric := range wantAlerts {
					if m == metric && rule.Alert != "" {
						covered[what] = true
					}
				}
			}
			if rule.Alert == "" {
				continue
			}
			if rule.Labels["severity"] == "" {
				problems = append(problems, fmt.Sprintf("%s: alert %s has no severity label", where, name))
			}
			if rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
				problems = append(problems, fmt.Sprintf("%s: alert %s needs a summary and a description annotation", where, name))
			}
			if rule.For == nil {
				problems = append(problems, fmt.Sprintf("%s: alert %s has no `for`: one bad scrape would page", where, name))
			}
		}
	}
	for what := range wantAlerts {
		if !covered[what] {
			problems = append(problems, fmt.Sprintf("%s: no alert covers %s (an alert on %s)", where, what, wantAlerts[what]))
		}
	}
	sort.Strings(problems)
	return problems
}

// dashboardProblems checks a Grafana dashboard: valid JSON, and every
// metric its panels and variables query exported by corsproc.
func dashboardProblems(where string, data []byte, exported map[string]bool) []string {
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return []string{fmt.Sprintf("%s: not JSON: %v", where, err)}
	}
	var problems []string
	if d.Title == "" || d.UID == "" {
		problems = append(problems, fmt.Sprintf("%s: a dashboard needs a title and a uid", where))
	}
	queried := 0
	check := func(what, expr string) {
		for _, m := range promqlMetricNames(expr) {
			queried++
			if !exported[m] {
				problems = append(problems, fmt.Sprintf("%s: %s queries %s, which corsproc does not export: the panel would stay empty", where, what, m))
			}
		}
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			problems = append(problems, fmt.Sprintf("%s: panel %q has no query", where, p.Title))
		}
		for _, tg := range p.Targets {
			check(fmt.Sprintf("panel %q", p.Title), tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if m := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`).FindStringSubmatch(v.Definition); m != nil {
			check(fmt.Sprintf("variable %q", v.Name), m[1])
		}
	}
	if queried == 0 {
		problems = append(problems, fmt.Sprintf("%s: queries no metric", where))
	}
	return problems
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlNonMetric = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"offset": true, "bool": true, "and": true, "or": true, "unless": true, "atan2": true,
	}
)

// promqlMetricNames returns the metric names a PromQL expression selects:
// identifiers that are not functions, aggregations, keywords, label names
// or label values. Grafana's $variables live in matchers and ranges, which
// go first.
func promqlMetricNames(expr string) []string {
	s := promqlStrings.ReplaceAllString(expr, " ")
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlRanges.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promqlIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if promqlNonMetric[id] || loc[0] > 0 && (s[loc[0]-1] == '$' || s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue
		}
		if next := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(next, "(") {
			continue // a function or an aggregation
		}
		if !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names
}

// exportedMetrics returns the metric names corsproc exports: those a
// running `corsproc serve` (built from this checkout) shows on /metrics,
// with the series names of its histograms and summaries, plus the labelled
// counters that appear only once a request was counted (their names are
// the processor's and the reloader's exported constants).
func (e *testEnv) exportedMetrics() (map[string]bool, error) {
	e.metricsOnce.Do(func() { e.metrics, e.metricsErr = scrapeCorsproc() })
	return e.metrics, e.metricsErr
}

func scrapeCorsproc() (map[string]bool, error) {
	bin := filepath.Join(tmpDir, "corsproc")
	if _, err := os.Stat(bin); err != nil {
		if _, err := corsprocServeFlags(); err != nil { // builds it
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(tmpDir, "metrics-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "admin.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--admin", "unix://"+sock, "--policy", "base/policy.yaml")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var body []byte
	for {
		resp, err := client.Get("http://corsproc/metrics")
		if err == nil {
			body, err = readAll(resp)
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("corsproc serve never served /metrics: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	if !names[reload.MetricReloadHealthy] {
		return nil, fmt.Errorf("corsproc's /metrics has no %s: not corsproc's exposition?\n%s", reload.MetricReloadHealthy, body)
	}
	for _, m := range []string{processor.MetricRequests, processor.MetricRejections, processor.MetricStreams,
		processor.MetricStreamErrors, processor.MetricUnknownPolicy, processor.MetricLimitsExceeded, reload.MetricReloads} {
		names[m] = true
	}
	return names, nil
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

// TestMonitoringChecksFail proves the monitoring checks fail: a dashboard
// and an alert querying a metric corsproc does not export, and the metric
// name extraction on the shapes the files use.
func TestMonitoringChecksFail(t *testing.T) {
	env := newTestEnv(t)
	exported, err := env.exportedMetrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum by (outcome) (rate(corsproc_requests_total{namespace="$namespace", pod=~"$pod"}[$__rate_interval]))`, []string{"corsproc_requests_total"}},
		{`histogram_quantile(0.99, sum by (le, message) (rate(corsproc_processing_seconds_bucket{a="b"}[5m])))`, []string{"corsproc_processing_seconds_bucket"}},
		{"sum by (a) (rate(x_total[10m])) > 1\nand\nsum by (a) (rate(x_total[10m])) > 5 * sum by (a) (rate(y_total[1d] offset 10m))", []string{"x_total", "y_total"}},
		{`time() - corsproc_policy_loaded_timestamp_seconds{pod=~"$pod"}`, []string{"corsproc_policy_loaded_timestamp_seconds"}},
		{`max by (namespace, pod) (corsproc_policy_last_reload_successful) == 0`, []string{"corsproc_policy_last_reload_successful"}},
	} {
		if got := promqlMetricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("promqlMetricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
	data, err := os.ReadFile("components/monitoring/corsproc-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	const q = "sum(rate(corsproc_unknown_policy_total{"
	if n := bytes.Count(data, []byte(q)); n != 1 {
		t.Fatalf("the dashboard holds %q %d times, want once: update this test", q, n)
	}
	bad := bytes.Replace(data, []byte(q), []byte("sum(rate(corsproc_unknown_policies_total{"), 1)
	if ps := dashboardProblems("dashboard", bad, exported); len(ps) != 1 || !strings.Contains(ps[0], "queries corsproc_unknown_policies_total, which corsproc does not export") {
		t.Errorf("a dashboard querying a metric corsproc does not export: got %q", ps)
	}
	pr := &monitoringv1.PrometheusRule{Spec: monitoringv1.PrometheusRuleSpec{Groups: []monitoringv1.RuleGroup{{Name: "g", Rules: []monitoringv1.Rule{
		{Alert: "A", Expr: intstr.FromString("corsproc_policy_last_reload_sucessful == 0")},
	}}}}}
	ps := ruleProblems("rule", pr, exported)
	if !slices.ContainsFunc(ps, func(p string) bool {
		return strings.Contains(p, "queries corsproc_policy_last_reload_sucessful, which corsproc does not export")
	}) {
		t.Errorf("an alert on a metric corsproc does not export: got %q", ps)
	}
	if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, "no alert covers no traffic reaching corsproc") }) {
		t.Errorf("alerts missing a condition: got %q", ps)
	}
}

// TestNetworkPolicyComponentsFollowOverlays breaks the NetworkPolicy
// components the Istio and Envoy Gateway overlays include and expects the
// break reported, so that they stay in step with the overlays' callers.
func TestNetworkPolicyComponentsFollowOverlays(t *testing.T) {
	env := newTestEnv(t)
	orig := loadTree(t)
	cases := []struct{ overlay, file, old, new, want string }{
		{"istio-ingress", "components/networkpolicy-istio-ingress/networkpolicy.yaml",
			"              istio: ingressgateway\n", "              istio: egressgateway\n",
			"no NetworkPolicy admits the workloads EnvoyFilter istio-system/"},
		{"envoy-gateway-api", "components/networkpolicy-envoy-gateway-api/networkpolicy.yaml",
			"              gateway.envoyproxy.io/owning-gateway-name: eg\n", "              gateway.envoyproxy.io/owning-gateway-name: other\n",
			"no NetworkPolicy admits Envoy Gateway's proxies of Gateway default/eg to port 9001"},
		{"istio-mesh", "components/networkpolicy-istio-mesh/networkpolicy.yaml",
			"        - namespaceSelector:\n            matchLabels:\n              istio-injection: enabled\n", "        - namespaceSelector: {}\n",
			"admits another pod of corsproc's namespace to port 9001"},
	}
	for _, c := range cases {
		t.Run(c.overlay, func(t *testing.T) { mutate(t, env, orig, c.overlay, c.file, c.old, c.new, []string{c.want}) })
	}
}

// TestMonitoringMutations breaks the monitoring component's files and
// expects each break reported.
func TestMonitoringMutations(t *testing.T) {
	env := newTestEnv(t)
	orig := loadTree(t)
	cases := []struct{ name, file, old, new, want string }{
		{"PodMonitor on the gRPC port", "components/monitoring/podmonitor.yaml",
			"    - port: admin\n", "    - port: grpc\n", `port "grpc" is not corsproc's admin port`},
		{"PodMonitor selecting nothing", "components/monitoring/podmonitor.yaml",
			"  selector:\n    matchLabels:\n      app.kubernetes.io/name: corsproc\n", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: cors-proc\n", "selects no corsproc pod"},
		{"PrometheusRule field misspelt", "components/monitoring/prometheusrule.yaml",
			"        - alert: CorsprocNoTraffic\n", "        - alret: CorsprocNoTraffic\n", `unknown field "spec.groups[0].rules[5].alret"`},
		{"alert on a metric corsproc does not export", "components/monitoring/prometheusrule.yaml",
			"expr: max by (namespace, pod) (corsproc_policy_last_reload_successful) == 0", "expr: max by (namespace, pod) (corsproc_policy_reload_successful) == 0",
			"queries corsproc_policy_reload_successful, which corsproc does not export"},
		{"alert without for", "components/monitoring/prometheusrule.yaml",
			"          for: 30m\n", "", "alert CorsprocNoTraffic has no `for`"},
		{"dashboard on a metric corsproc does not export", "components/monitoring/corsproc-dashboard.json",
			"rate(process_cpu_seconds_total{", "rate(process_cpu_seconds{", "queries process_cpu_seconds, which corsproc does not export"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := mutated(t, orig, c.file, c.old, c.new)
			overlay := compose(tr, "monitoring")
			objs, problems := checkRendered(env, tr, overlay)
			if objs != nil {
				problems = append(problems, componentProblems(env, "monitoring", objs)...)
			}
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					t.Logf("reported as: %s", p)
					return
				}
			}
			t.Errorf("no problem mentions %q; got:\n%s", c.want, strings.Join(problems, "\n"))
		})
	}
}
