//go:build !race

package eventstoretest

// raceEnabled: this binary runs under the race detector.
const raceEnabled = false
