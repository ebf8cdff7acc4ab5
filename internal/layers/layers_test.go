// Package layers holds the test of the module's import layers: the picture
// in docs/architecture.md, checked against `go list`.
package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/esctl/esctl/"

// layers lists every package of the module, lowest layer first. A package
// imports only packages of lower layers: nothing runs back up, nothing
// within a layer (so an adapter never imports package eventstore, and
// eventstore never an adapter). Keep docs/architecture.md's picture in step.
var layers = [][]string{
	{"estype", "internal/redact", "internal/jsonx", "adapters/postgres/pgadmin"},
	{"internal/driver", "internal/ndjson"},
	{"migrations", "internal/core"},
	{"adapters/postgres", "adapters/sqlite", "internal/access"},
	{"eventstore"},
	{"consumer", "snapshots", "secrets", "transfer", "eventstoretest"},
	{"backup"},
	// The test harnesses, which engines' and applications' tests run.
	{"internal/driver/drivertest", "internal/conformance", "internal/testdb"},
	{"internal/conformance/consumertest"},
	{"cmd/esctl", "examples/bank", "bench"},
}

func TestImportLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	layerOf := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			layerOf[p] = i
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		if pkg == "internal/layers" {
			continue
		}
		seen[pkg] = true
		from, ok := layerOf[pkg]
		if !ok {
			t.Errorf("package %s is on no layer: add it to layers (and to docs/architecture.md)", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if to, ok := layerOf[dep]; ok && to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go only to lower layers", pkg, from, dep, to)
			}
		}
	}
	for p := range layerOf {
		if !seen[p] {
			t.Errorf("layers lists %s, which go list does not find", p)
		}
	}
}
