//go:build chaos

package main

import (
	"testing"
	"time"
)

// TestChaosLong is `make chaos`: five importer kills at random moments, a
// broker kill, a 30 s Firebase outage and late duplicates, at 200 signups/s
// for a minute.
func TestChaosLong(t *testing.T) {
	runChaos(t, chaosPlan{rate: 200, duration: 60 * time.Second, importerKills: 5, brokerKill: true, emulatorOutage: 30 * time.Second, lateDuplicates: true})
}

// TestChaosClusterLong runs the same faults against a three-node NATS
// cluster with three-replica streams: instead of the single broker, one node
// is killed, and later another after the first is back.
func TestChaosClusterLong(t *testing.T) {
	runChaos(t, chaosPlan{rate: 200, duration: 60 * time.Second, importerKills: 5, brokerKill: true, emulatorOutage: 30 * time.Second, lateDuplicates: true, cluster: true})
}

// TestChaosLongProduction runs the long faults against Firebase with
// production semantics and three importer replicas, counting lost,
// duplicated and replaced accounts.
func TestChaosLongProduction(t *testing.T) {
	runChaos(t, chaosPlan{rate: 200, duration: 60 * time.Second, importerKills: 5, brokerKill: true, emulatorOutage: 30 * time.Second, lateDuplicates: true, production: true, importers: 3})
}

// TestLifecycleChaosLong is issue 15's run: 1,500 signups mixed with
// updates for a third of the users (some older after newer) and deletions
// for a fifth (before their signup, racing its import, after it), 200
// events/s through ingest, one importer of two SIGKILLed halfway.
func TestLifecycleChaosLong(t *testing.T) {
	runLifecycleChaos(t, lifecyclePlan{signups: 1500, rate: 200})
}
