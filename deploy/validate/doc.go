// Package validate checks the deployment files under deploy/ and the
// compose.yaml at the repository root without a container runtime or a
// cluster: compose.yaml through the compose-spec loader (what `docker
// compose config` runs), the Kubernetes manifests decoded strictly into the
// k8s.io/api types and built with kustomize, the NATS configurations through
// nats-server's own parser (and started as a three-node cluster), the Grafana
// dashboard against the metrics docs/metrics.md documents, and the collector and
// Prometheus configurations.
//
// It is a module of its own so that none of its dependencies enter the main
// module. Run it from this directory with `go test ./...`.
package validate
