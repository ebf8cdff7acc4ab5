//go:build race

package conformance

// RaceEnabled: this binary runs under the race detector.
const RaceEnabled = true
