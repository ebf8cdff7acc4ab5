// Package tooltest is the tooling's conformance suite every engine runs,
// unchanged: NDJSON export and import (checkpoints, resumes, SIGKILLed
// imports, dry runs), incremental imports, secrets export and import,
// backups and restores, copies between engines, and the aggregate count
// every write path keeps. It works through the public packages transfer
// and backup over real databases, which the engine's test supplies through
// a conformance.Harness; its child processes start through
// conformance.Child, which the adapters' TestMain call.
package tooltest

import (
	"testing"

	"github.com/esctl/esctl/internal/conformance"
)

// Run runs the whole suite.
func Run(t *testing.T, h conformance.Harness) {
	t.Helper()
	suites := []struct {
		name string
		run  func(t *testing.T, h conformance.Harness)
	}{
		{"NDJSON", runNDJSON},
		{"IncrementalImport", runIncremental},
		{"Backup", runBackup},
		{"Copy", runCopy},
		{"AggregateCount", runAggregateCount},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, h)
		})
	}
}
