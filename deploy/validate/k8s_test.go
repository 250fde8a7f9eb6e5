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
	want := map[string]int{"Namespace": 1, "ServiceAccount": 1, "ConfigMap": 1, "Deployment": 4, "Service": 1, "PodDisruptionBudget": 4}
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

func checkK8s(t *testing.T, objs, examples []manifest) {
	t.Helper()
	documented := readmeConfigVars(t)
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
			t.Errorf("ConfigMap: %s is not in README.md's Configuration table", k)
		}
	}

	roles := map[string]bool{}
	for _, d := range deployments {
		t.Run(d.Name, func(t *testing.T) {
			checkDeployment(t, d, documented, configMaps, secrets)
		})
		if len(d.Spec.Template.Spec.Containers) > 0 && len(d.Spec.Template.Spec.Containers[0].Args) > 0 {
			args := d.Spec.Template.Spec.Containers[0].Args
			roles[args[0]] = true
			if len(args) > 1 && args[1] == "deliveries" {
				roles["reconcile deliveries"] = true
			}
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
	for _, role := range []string{"ingest", "importer", "reconcile", "reconcile deliveries"} {
		if !roles[role] {
			t.Errorf("no Deployment runs the %s role", role)
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

	// Services: the ingest Service reaches a named port of the ingest pods.
	var ingestSvc bool
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
		ingestSvc = ingestSvc || target.Spec.Template.Spec.Containers[0].Args[0] == "ingest"
		for _, sp := range s.Spec.Ports {
			if _, ok := containerPort(target.Spec.Template.Spec.Containers[0], sp.TargetPort); !ok {
				t.Errorf("Service %s: targetPort %s is not a port of %s", s.Name, sp.TargetPort.String(), target.Name)
			}
		}
	}
	if !ingestSvc {
		t.Error("no Service for ingest")
	}
}

func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, documented map[string]bool, configMaps map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret) {
	spec := d.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Args) == 0 || !slices.Contains([]string{"ingest", "importer", "reconcile"}, c.Args[0]) {
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
	if e, ok := env["SIGNUPSYNC_HTTP_ADDR"]; ok && probedOK && e.Value == fmt.Sprintf("0.0.0.0:%d", probed) {
		t.Errorf("SIGNUPSYNC_HTTP_ADDR=%q is the probed port: /readyz and /metrics are not on the public port", e.Value)
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
			t.Errorf("env %s is not in README.md's Configuration table", e.Name)
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
	if c.Args[0] == "importer" {
		if _, ok := env["GOOGLE_APPLICATION_CREDENTIALS"]; !ok {
			t.Error("importer: no GOOGLE_APPLICATION_CREDENTIALS")
		}
	}
	if c.Args[0] == "reconcile" && !slices.Equal(c.Args, []string{"reconcile", "--since", "24h", "--every", "10m"}) &&
		!slices.Equal(c.Args, []string{"reconcile", "deliveries", "--since", "24h", "--every", "5m"}) {
		t.Errorf("reconcile args %v", c.Args)
	}

	// Draining fits in the grace period.
	if cm := configMaps["signupsync-config"]; cm != nil && spec.TerminationGracePeriodSeconds != nil {
		if *spec.TerminationGracePeriodSeconds <= 20 {
			t.Errorf("terminationGracePeriodSeconds %d: not above SIGNUPSYNC_SHUTDOWN_TIMEOUT (%s)", *spec.TerminationGracePeriodSeconds, cm.Data["SIGNUPSYNC_SHUTDOWN_TIMEOUT"])
		}
	}
}
