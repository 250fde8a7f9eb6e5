package validate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newStrictDecoder knows the kinds deploy/k8s may contain (anything else
// fails to decode) and rejects unknown and duplicate fields, like the API
// server's strict field validation (kubectl apply --validate=strict).
var newStrictDecoder = sync.OnceValues(func() (runtime.Decoder, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true}), nil
})

type manifest struct {
	file string
	obj  runtime.Object
}

// decodeAll splits a multi-document YAML stream and decodes every document
// strictly into its typed object.
func decodeAll(t *testing.T, name string, data []byte) []manifest {
	t.Helper()
	dec, err := newStrictDecoder()
	if err != nil {
		t.Fatalf("scheme: %v", err)
	}
	r := utilyaml.NewYAMLReader(bufioReader(data))
	var out []manifest
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s: document %d: %v", name, i, err)
			continue
		}
		if gvk.Version == "" || gvk.Kind == "" {
			t.Errorf("%s: document %d: no apiVersion/kind", name, i)
		}
		out = append(out, manifest{file: name, obj: obj})
	}
	return out
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// k8sFiles classifies deploy/k8s: applied manifests (listed in
// kustomization.yaml), examples (*.example.yaml, never applied), and the
// NATS Helm values.
func k8sFiles(t *testing.T) (kust *kusttypes.Kustomization, applied, examples []string) {
	t.Helper()
	dir := path(t, "deploy", "k8s")
	kust = &kusttypes.Kustomization{}
	if err := yaml.UnmarshalStrict(readFile(t, "deploy", "k8s", "kustomization.yaml"), kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")):
			t.Errorf("deploy/k8s/%s: unexpected entry", name)
		case name == "kustomization.yaml", name == "nats-values.yaml":
		case strings.HasSuffix(name, ".example.yaml"):
			examples = append(examples, name)
			if slices.Contains(kust.Resources, name) {
				t.Errorf("kustomization.yaml applies %s: examples hold placeholders", name)
			}
		default:
			applied = append(applied, name)
			if !slices.Contains(kust.Resources, name) {
				t.Errorf("deploy/k8s/%s is not listed in kustomization.yaml", name)
			}
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			t.Errorf("kustomization.yaml: resource %s: %v", r, err)
		}
	}
	return kust, applied, examples
}

// TestK8sManifests decodes every manifest strictly and checks the
// invariants of the deployment: probes, resources, non-root, PDBs, Services,
// Secrets and ConfigMap references, documented settings.
func TestK8sManifests(t *testing.T) {
	_, applied, examples := k8sFiles(t)
	var objs, exampleObjs []manifest
	for _, f := range applied {
		objs = append(objs, decodeAll(t, f, readFile(t, "deploy", "k8s", f))...)
	}
	for _, f := range examples {
		exampleObjs = append(exampleObjs, decodeAll(t, f, readFile(t, "deploy", "k8s", f))...)
	}
	checkK8s(t, objs, exampleObjs)
}

// TestK8sKustomizeBuild builds the kustomization (kubectl kustomize) and
// decodes its output strictly again: the applied set, with namespace and
// image set.
func TestK8sKustomizeBuild(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), path(t, "deploy", "k8s"))
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	built := decodeAll(t, "kustomize build", out)
	kinds := map[string]int{}
	for _, m := range built {
		gvk := m.obj.GetObjectKind().GroupVersionKind()
		kinds[gvk.Kind]++
		meta, err := metaOf(m.obj)
		if err != nil {
			t.Fatal(err)
		}
		if gvk.Kind != "Namespace" && meta.GetNamespace() != "signupsync" {
			t.Errorf("%s/%s: namespace %q, want signupsync", gvk.Kind, meta.GetName(), meta.GetNamespace())
		}
		if d, ok := m.obj.(*appsv1.Deployment); ok {
			for _, c := range d.Spec.Template.Spec.Containers {
				if !strings.Contains(c.Image, "/") || !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
					t.Errorf("%s: image %q after kustomize: want registry/name:tag (images: in kustomization.yaml)", d.Name, c.Image)
				}
			}
		}
	}
	want := map[string]int{"Namespace": 1, "ServiceAccount": 1, "ConfigMap": 1, "Deployment": len(k8sRoles), "Service": len(publicAddr), "PodDisruptionBudget": len(k8sRoles)}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("kustomize build: %d %s, want %d (all kinds: %v)", kinds[k], k, n, kinds)
		}
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", o)
	}
	return m, nil
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// k8sRoles are the roles deploy/k8s runs, one Deployment each.
var k8sRoles = []string{"ingest", "importer", "exchange", "reconcile", "reconcile deliveries"}

// publicAddr names the variable of each role's public listener, the one its
// Service exposes; the others serve only the metrics port.
var publicAddr = map[string]string{"ingest": "SIGNUPSYNC_HTTP_ADDR", "exchange": "SIGNUPSYNC_EXCHANGE_ADDR"}

// k8sRequired are settings a role refuses to start without, which must be
// set in its Deployment or the ConfigMap.
var k8sRequired = map[string][]string{
	"importer": {"SIGNUPSYNC_FIREBASE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"},
	"exchange": {
		"SIGNUPSYNC_AUTH0_ISSUER", "SIGNUPSYNC_AUTH0_AUDIENCE", "SIGNUPSYNC_AUTH0_DOMAIN",
		"SIGNUPSYNC_AUTH0_CLIENT_ID", "SIGNUPSYNC_AUTH0_CLIENT_SECRET",
		"SIGNUPSYNC_FIREBASE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS",
	},
}

// roleOf is the role a Deployment runs: its first argument, or "reconcile
// deliveries".
func roleOf(d *appsv1.Deployment) string {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 || len(cs[0].Args) == 0 {
		return ""
	}
	if args := cs[0].Args; len(args) > 1 && args[0] == "reconcile" && args[1] == "deliveries" {
		return "reconcile deliveries"
	}
	return cs[0].Args[0]
}

// plainEnv is a Deployment's container environment with literal values:
// the ConfigMaps it reads, overridden by its own env.
func plainEnv(d *appsv1.Deployment, configMaps map[string]*corev1.ConfigMap) map[string]string {
	out := map[string]string{}
	c := d.Spec.Template.Spec.Containers[0]
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range configMaps[ef.ConfigMapRef.Name].Data {
				out[k] = v
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			out[e.Name] = e.Value
		} else {
			delete(out, e.Name)
		}
	}
	return out
}

func checkK8s(t *testing.T, objs, examples []manifest) {
	t.Helper()
	documented, where := configVars(t)
	var (
		deployments []*appsv1.Deployment
		pdbs        []*policyv1.PodDisruptionBudget
		services    []*corev1.Service
		configMaps  = map[string]*corev1.ConfigMap{}
		secrets     = map[string]*corev1.Secret{}
	)
	for _, m := range objs {
		switch o := m.obj.(type) {
		case *appsv1.Deployment:
			deployments = append(deployments, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.Service:
			services = append(services, o)
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *corev1.Secret:
			t.Errorf("%s: Secret %s in an applied manifest; keep secrets out of the repository", m.file, o.Name)
		case *corev1.Namespace, *corev1.ServiceAccount:
		default:
			t.Errorf("%s: unexpected %T", m.file, o)
		}
	}
	for _, m := range examples {
		if s, ok := m.obj.(*corev1.Secret); ok {
			secrets[s.Name] = s
		}
	}

	// The Secret layout.
	wantKeys := map[string][]string{
		"signupsync-secrets":  {"action-secrets", "event-stream-token", "log-stream-token", "auth0-client-id", "auth0-client-secret"},
		"signupsync-firebase": {"service-account.json"},
	}
	for _, user := range []string{"ingest", "importer", "reconcile", "exchange"} {
		wantKeys["signupsync-secrets"] = append(wantKeys["signupsync-secrets"], "nats-"+user+"-password")
	}
	for name, keys := range wantKeys {
		s := secrets[name]
		if s == nil {
			t.Errorf("secrets.example.yaml: no Secret %s", name)
			continue
		}
		for _, k := range keys {
			if _, ok := s.StringData[k]; !ok {
				t.Errorf("Secret %s: no key %s", name, k)
			}
		}
	}

	// The ConfigMap: documented settings, three replicas.
	cm := configMaps["signupsync-config"]
	if cm == nil {
		t.Fatal("no ConfigMap signupsync-config")
	}
	if cm.Data["SIGNUPSYNC_STREAM_REPLICAS"] != "3" {
		t.Errorf("ConfigMap: SIGNUPSYNC_STREAM_REPLICAS %q, want 3", cm.Data["SIGNUPSYNC_STREAM_REPLICAS"])
	}
	for k := range cm.Data {
		if !documented[k] && !strings.HasPrefix(k, "OTEL_") {
			t.Errorf("ConfigMap: %s is not among %s", k, where)
		}
	}

	roles := map[string]bool{}
	envs := map[string]map[string]string{}
	for _, d := range deployments {
		t.Run(d.Name, func(t *testing.T) {
			checkDeployment(t, d, documented, where, configMaps, secrets)
		})
		role := roleOf(d)
		if roles[role] {
			t.Errorf("%s: a second Deployment runs the %s role", d.Name, role)
		}
		roles[role] = true
		if len(d.Spec.Template.Spec.Containers) > 0 {
			envs[role] = plainEnv(d, configMaps)
		}

		// Exactly one PDB selects this Deployment's pods, and it can be
		// satisfied while one pod is down.
		podLabels := labels.Set(d.Spec.Template.Labels)
		var matching []*policyv1.PodDisruptionBudget
		for _, p := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				t.Errorf("PDB %s: %v", p.Name, err)
				continue
			}
			if !sel.Empty() && sel.Matches(podLabels) {
				matching = append(matching, p)
			}
		}
		if len(matching) != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", d.Name, len(matching))
			continue
		}
		p := matching[0]
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if p.Spec.MinAvailable != nil {
			min, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, int(replicas), true)
			if err != nil || int32(min) >= replicas {
				t.Errorf("PDB %s: minAvailable %s with %d replicas blocks every eviction", p.Name, p.Spec.MinAvailable.String(), replicas)
			}
		} else if p.Spec.MaxUnavailable == nil {
			t.Errorf("PDB %s: neither minAvailable nor maxUnavailable", p.Name)
		}
	}
	for _, role := range k8sRoles {
		if !roles[role] {
			t.Errorf("no Deployment runs the %s role", role)
		}
	}
	// The exchange finds and mints for the accounts the importer made: the
	// same Firebase project and uid policy.
	if envs["importer"] != nil && envs["exchange"] != nil {
		for _, k := range []string{"SIGNUPSYNC_FIREBASE_PROJECT", "SIGNUPSYNC_UID_POLICY"} {
			if envs["importer"][k] != envs["exchange"][k] {
				t.Errorf("%s: importer %q, exchange %q; they must be equal", k, envs["importer"][k], envs["exchange"][k])
			}
		}
	}
	for _, p := range pdbs {
		used := false
		for _, d := range deployments {
			sel, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			used = used || sel.Matches(labels.Set(d.Spec.Template.Labels))
		}
		if !used {
			t.Errorf("PDB %s selects no Deployment's pods", p.Name)
		}
	}

	// Services: each public role's Service reaches the port its public
	// listener is on, never the metrics port; no other role has one.
	exposed := map[string]int{}
	for _, s := range services {
		var target *appsv1.Deployment
		for _, d := range deployments {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				target = d
			}
		}
		if target == nil {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
			continue
		}
		role := roleOf(target)
		exposed[role]++
		addrVar, public := publicAddr[role]
		if !public {
			t.Errorf("Service %s exposes %s, which has no public listener", s.Name, role)
			continue
		}
		c := target.Spec.Template.Spec.Containers[0]
		for _, sp := range s.Spec.Ports {
			port, ok := containerPort(c, sp.TargetPort)
			if !ok {
				t.Errorf("Service %s: targetPort %s is not a port of %s", s.Name, sp.TargetPort.String(), target.Name)
				continue
			}
			if addr := envs[role][addrVar]; addr != fmt.Sprintf("0.0.0.0:%d", port) {
				t.Errorf("Service %s: targetPort %s is container port %d, but %s=%q", s.Name, sp.TargetPort.String(), port, addrVar, addr)
			}
		}
		// The client address header is trusted only behind a proxy: the
		// Service must not be reachable from outside the cluster directly.
		if role == "exchange" && envs[role]["SIGNUPSYNC_EXCHANGE_CLIENT_IP_HEADER"] != "" && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service %s: type %s with SIGNUPSYNC_EXCHANGE_CLIENT_IP_HEADER set: clients could choose their rate-limit address", s.Name, s.Spec.Type)
		}
	}
	for role := range publicAddr {
		if exposed[role] != 1 {
			t.Errorf("%d Services for %s, want 1", exposed[role], role)
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, documented map[string]bool, where string, configMaps map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret) {
	spec := d.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Args) == 0 || !slices.Contains([]string{"ingest", "importer", "exchange", "reconcile"}, c.Args[0]) {
		t.Errorf("args %v: want a role subcommand first (the image's ENTRYPOINT is /signupsync)", c.Args)
	}
	if len(c.Command) != 0 {
		t.Errorf("command %v overrides the image's ENTRYPOINT", c.Command)
	}

	// Non-root, read-only, no capabilities.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext.runAsUser is unset or root")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Error("no container securityContext")
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Error("capabilities do not drop ALL")
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false")
	}

	// Resources.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("no %s request", r)
		}
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		t.Error("no memory limit")
	} else if req := c.Resources.Requests[corev1.ResourceMemory]; q.Cmp(req) < 0 {
		t.Errorf("memory limit %s below request %s", q.String(), req.String())
	}

	// Probes: readiness on /readyz, liveness (and startup) on /healthz, on a
	// port the container exposes.
	probes := map[string]struct {
		p    *corev1.Probe
		path string
	}{
		"readinessProbe": {c.ReadinessProbe, "/readyz"},
		"livenessProbe":  {c.LivenessProbe, "/healthz"},
		"startupProbe":   {c.StartupProbe, "/healthz"},
	}
	for name, pr := range probes {
		if pr.p == nil {
			if name != "startupProbe" {
				t.Errorf("no %s", name)
			}
			continue
		}
		g := pr.p.HTTPGet
		if g == nil {
			t.Errorf("%s is not an httpGet probe", name)
			continue
		}
		if g.Path != pr.path {
			t.Errorf("%s path %q, want %q", name, g.Path, pr.path)
		}
		if _, ok := containerPort(c, g.Port); !ok {
			t.Errorf("%s port %s is not a container port (%v)", name, g.Port.String(), c.Ports)
		}
	}

	// The listen address matches the probed port.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	// Every role serves /metrics, /healthz and /readyz on SIGNUPSYNC_METRICS_ADDR
	// (ingest's webhook port serves neither /metrics nor /readyz), which
	// Prometheus scrapes too.
	addrVar := "SIGNUPSYNC_METRICS_ADDR"
	probed, probedOK := containerPort(c, c.ReadinessProbe.HTTPGet.Port)
	if e, ok := env[addrVar]; !ok {
		t.Errorf("no %s: the default listens on 127.0.0.1, unreachable for probes", addrVar)
	} else if probedOK && e.Value != fmt.Sprintf("0.0.0.0:%d", probed) {
		t.Errorf("%s=%q, want 0.0.0.0:%d (the probed port)", addrVar, e.Value, probed)
	}
	if a := d.Spec.Template.Annotations["prometheus.io/port"]; probedOK && a != fmt.Sprint(probed) {
		t.Errorf("prometheus.io/port %q, want %d (the port serving /metrics)", a, probed)
	}
	role := roleOf(d)
	for _, v := range []string{"SIGNUPSYNC_HTTP_ADDR", "SIGNUPSYNC_EXCHANGE_ADDR"} {
		if e, ok := env[v]; ok && probedOK && e.Value == fmt.Sprintf("0.0.0.0:%d", probed) {
			t.Errorf("%s=%q is the probed port: /readyz and /metrics are not on the public port", v, e.Value)
		}
	}
	if v, public := publicAddr[role]; public {
		e, ok := env[v]
		switch {
		case !ok:
			t.Errorf("no %s: the default listens on 127.0.0.1, unreachable for its Service", v)
		default:
			port := strings.TrimPrefix(e.Value, "0.0.0.0:")
			found := false
			for _, cp := range c.Ports {
				found = found || fmt.Sprint(cp.ContainerPort) == port
			}
			if !strings.HasPrefix(e.Value, "0.0.0.0:") || !found {
				t.Errorf("%s=%q: want 0.0.0.0 and a port the container declares (%v)", v, e.Value, c.Ports)
			}
		}
		// A public role is taken out of its Service before it stops.
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Error("no preStop sleep: the endpoint removal must reach the load balancers before the server stops")
		}
	}
	// Highly available roles: two replicas spread over nodes.
	if slices.Contains([]string{"ingest", "importer", "exchange"}, role) {
		if n := ptrOr(d.Spec.Replicas, 1); n < 2 {
			t.Errorf("replicas %d, want at least 2", n)
		}
		if len(spec.TopologySpreadConstraints) == 0 {
			t.Error("no topologySpreadConstraints: replicas may share a node")
		}
		for _, tsc := range spec.TopologySpreadConstraints {
			if sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector); err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("topology spread on %s does not select this Deployment's pods", tsc.TopologyKey)
			}
		}
	}

	// The environment: documented names, references that resolve.
	defined := map[string]bool{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			cm := configMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				t.Errorf("envFrom ConfigMap %s does not exist", ef.ConfigMapRef.Name)
				continue
			}
			for k := range cm.Data {
				defined[k] = true
			}
		}
		if ef.SecretRef != nil {
			t.Errorf("envFrom Secret %s: name secret keys one by one", ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "SIGNUPSYNC_") && !documented[e.Name] {
			t.Errorf("env %s is not among %s", e.Name, where)
		}
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				t.Errorf("env %s refers to $(%s), which is not defined before it", e.Name, ref[1])
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			s := secrets[ref.Name]
			if s == nil {
				t.Errorf("env %s: Secret %s is not in secrets.example.yaml", e.Name, ref.Name)
			} else if _, ok := s.StringData[ref.Key]; !ok {
				t.Errorf("env %s: Secret %s has no key %s in secrets.example.yaml", e.Name, ref.Name, ref.Key)
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			t.Errorf("env %s: use the envFrom ConfigMap", e.Name)
		}
		defined[e.Name] = true
	}
	if e := env["SIGNUPSYNC_NATS_URL"]; !strings.HasPrefix(e.Value, "nats://") || !strings.Contains(e.Value, "@") {
		t.Errorf("SIGNUPSYNC_NATS_URL %q: want nats://user:$(password)@host:4222", e.Value)
	} else {
		// Each role logs in as its own user (reconcile deliveries as
		// reconcile), with that user's password key.
		user := roleNATSUser[strings.TrimSuffix(role, " deliveries")]
		if !strings.HasPrefix(e.Value, "nats://"+user+":$(NATS_PASSWORD)@") {
			t.Errorf("SIGNUPSYNC_NATS_URL %q: want user %s with $(NATS_PASSWORD)", e.Value, user)
		}
		pw := env["NATS_PASSWORD"]
		if pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Key != "nats-"+user+"-password" ||
			(pw.ValueFrom.SecretKeyRef.Optional != nil && *pw.ValueFrom.SecretKeyRef.Optional) {
			t.Errorf("NATS_PASSWORD: want secret key nats-%s-password (not optional), got %+v", user, pw.ValueFrom)
		}
	}

	// What the role cannot start without is set, and secrets it needs are
	// not optional.
	for _, k := range k8sRequired[role] {
		if e, ok := env[k]; ok {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
				t.Errorf("%s is required by %s but its secret key is optional", k, role)
			}
			continue
		}
		if !defined[k] {
			t.Errorf("%s: %s is set neither in the Deployment nor in the ConfigMap", role, k)
		}
	}
	if role == "exchange" && !slices.Equal(c.Args, []string{"exchange"}) {
		t.Errorf("exchange args %v: set its settings as SIGNUPSYNC_* variables (flag names may change)", c.Args)
	}

	// Mounted secrets exist; GOOGLE_APPLICATION_CREDENTIALS names a mounted file.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	for _, v := range spec.Volumes {
		m, ok := mounts[v.Name]
		if !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
		if v.Secret == nil {
			continue
		}
		s := secrets[v.Secret.SecretName]
		if s == nil {
			t.Errorf("volume %s: Secret %s is not in secrets.example.yaml", v.Name, v.Secret.SecretName)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("secret volume %s is mounted writable", v.Name)
		}
		for _, it := range v.Secret.Items {
			if _, ok := s.StringData[it.Key]; !ok {
				t.Errorf("volume %s: Secret %s has no key %s", v.Name, s.Name, it.Key)
			}
		}
	}
	if gac, ok := env["GOOGLE_APPLICATION_CREDENTIALS"]; ok {
		found := false
		for _, v := range spec.Volumes {
			if v.Secret == nil || v.Secret.SecretName != "signupsync-firebase" {
				continue
			}
			for _, it := range v.Secret.Items {
				if filepath.Join(mounts[v.Name].MountPath, it.Path) == gac.Value {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("GOOGLE_APPLICATION_CREDENTIALS %q is not a file of a mounted signupsync-firebase Secret", gac.Value)
		}
	}
	if c.Args[0] == "reconcile" && !slices.Equal(c.Args, []string{"reconcile", "--since", "24h", "--every", "10m"}) &&
		!slices.Equal(c.Args, []string{"reconcile", "deliveries", "--since", "24h", "--every", "5m"}) {
		t.Errorf("reconcile args %v", c.Args)
	}

	// Draining (after the preStop pause) fits in the grace period.
	if cm := configMaps["signupsync-config"]; cm != nil && spec.TerminationGracePeriodSeconds != nil {
		drain, err := time.ParseDuration(cm.Data["SIGNUPSYNC_SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Errorf("ConfigMap SIGNUPSYNC_SHUTDOWN_TIMEOUT: %v", err)
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			drain += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		if grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
			t.Errorf("terminationGracePeriodSeconds %d: not above SIGNUPSYNC_SHUTDOWN_TIMEOUT (%s) plus the preStop pause", *spec.TerminationGracePeriodSeconds, cm.Data["SIGNUPSYNC_SHUTDOWN_TIMEOUT"])
		}
	}
}
