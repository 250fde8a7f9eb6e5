package telemetry

import "go.opentelemetry.io/otel/attribute"

// roleKey is the resource attribute naming the signupsync role.
const roleKey = attribute.Key("signupsync.role")
