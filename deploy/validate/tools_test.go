package validate

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// requireTools makes a missing external validator a failure instead of a
// skip: SIGNUPSYNC_VALIDATE_REQUIRE_TOOLS=1 (set it where the tools are
// installed, e.g. CI).
const requireToolsEnv = "SIGNUPSYNC_VALIDATE_REQUIRE_TOOLS"

// tool finds an external validator or skips (or fails, see requireTools).
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(requireToolsEnv) == "1" {
			t.Fatalf("%s not found (%s) and %s=1", name, install, requireToolsEnv)
		}
		t.Skipf("%s not found (%s); the in-process checks still ran", name, install)
	}
	return p
}

// run runs a validator from the repository root with a minimal
// environment, so the caller's SIGNUPSYNC_* or COMPOSE_* variables do not
// change the result.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDockerComposeV1Config runs Debian's docker-compose (1.29, the Python
// implementation) as a second, independent validator of compose.yaml:
// `config -q` parses, validates against its schema and interpolates, in
// four modes (the last with every profile).
func TestDockerComposeV1Config(t *testing.T) {
	bin := tool(t, "docker-compose", "apt-get install docker-compose")
	run(t, bin, "-f", "compose.yaml", "config", "-q")
	run(t, bin, "-f", "compose.yaml", "--profile", "cluster", "--profile", "auth0", "config", "-q")
	run(t, bin, "-f", "compose.yaml", "--env-file", "deploy/compose.cluster.env", "--profile", "auth0", "config", "-q")
	run(t, bin, "-f", "compose.yaml", "--env-file", "deploy/compose.cluster.env", "--profile", "auth0", "--profile", "exchange", "config", "-q")
}

// TestDockerComposeConfig runs `docker compose config -q` where the
// compose plugin is installed (it is what users run).
func TestDockerComposeConfig(t *testing.T) {
	bin := tool(t, "docker", "Docker with the compose plugin")
	if err := exec.Command(bin, "compose", "version").Run(); err != nil {
		if os.Getenv(requireToolsEnv) == "1" {
			t.Fatalf("docker compose plugin not installed and %s=1", requireToolsEnv)
		}
		t.Skip("the docker compose plugin is not installed; compose-go (TestComposeLoads) validated compose.yaml")
	}
	run(t, bin, "compose", "-f", "compose.yaml", "config", "-q")
	run(t, bin, "compose", "-f", "compose.yaml", "--env-file", "deploy/compose.cluster.env", "--profile", "auth0", "--profile", "exchange", "config", "-q")
}

// TestKubectlKustomize builds deploy/k8s with kubectl's bundled kustomize
// (no cluster needed).
func TestKubectlKustomize(t *testing.T) {
	bin := tool(t, "kubectl", "kubectl")
	out := run(t, bin, "kustomize", "deploy/k8s")
	built := decodeAll(t, "kubectl kustomize", []byte(out))
	// Namespace, ServiceAccount, ConfigMap; a Deployment and a PDB per
	// role; a Service per public role.
	if want := 3 + 2*len(k8sRoles) + len(publicAddr); len(built) != want {
		t.Errorf("kubectl kustomize: %d objects, want %d", len(built), want)
	}
}

// TestPromtoolCheckConfig runs Prometheus's own config check.
func TestPromtoolCheckConfig(t *testing.T) {
	bin := tool(t, "promtool", "apt-get install prometheus")
	run(t, bin, "check", "config", "deploy/prometheus/prometheus.yml")
}
