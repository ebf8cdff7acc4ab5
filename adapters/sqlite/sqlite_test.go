package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore/eventstoretest"
)

// harness gives each test its own SQLite file.
var harness = eventstoretest.Harness{
	NewURL: func(t testing.TB) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "es.db")
	},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, harness)
}

func TestEngineName(t *testing.T) {
	if got := sqlite.New(nil).Name(); got != "sqlite" {
		t.Fatalf("Name() = %q", got)
	}
}
