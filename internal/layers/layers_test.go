// Package layers holds the test of the module's import layers: the picture
// in docs/architecture.md, checked against `go list`.
package layers

import (
	"os"
	"os/exec"
	"strconv"
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
	{"internal/conformance/consumertest", "internal/conformance/tooltest"},
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

// TestPictureMatches reads the layer picture of docs/architecture.md (the
// first code block under "## Layers": a line that starts with a number
// starts a layer, the lines below it continue it) and checks that it puts
// each package of layers on the same layer, counted from the bottom.
func TestPictureMatches(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "## Layers\n")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Layers" section`)
	}
	parts := strings.SplitN(after, "```", 3)
	if len(parts) < 3 {
		t.Fatal("the Layers section has no code block")
	}
	known := map[string]bool{}
	for _, l := range layers {
		for _, p := range l {
			known[p] = true
		}
	}
	var picture [][]string // top layer first, as drawn
	for _, line := range strings.Split(parts[1], "\n") {
		fields := strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" \t(),:;+", r) })
		if len(fields) == 0 {
			continue
		}
		if _, err := strconv.Atoi(fields[0]); err == nil {
			picture = append(picture, nil)
			fields = fields[1:]
		}
		if len(picture) == 0 {
			continue
		}
		for _, f := range fields {
			if known[f] {
				picture[len(picture)-1] = append(picture[len(picture)-1], f)
			}
		}
	}
	drawn := map[string]int{}
	for i, l := range picture {
		for _, p := range l {
			if at, twice := drawn[p]; twice && at != len(picture)-1-i {
				t.Errorf("docs/architecture.md draws %s on two layers", p)
			}
			drawn[p] = len(picture) - 1 - i
		}
	}
	if len(picture) != len(layers) {
		t.Errorf("docs/architecture.md draws %d layers, layers has %d", len(picture), len(layers))
	}
	for i, l := range layers {
		for _, p := range l {
			at, ok := drawn[p]
			switch {
			case !ok:
				t.Errorf("docs/architecture.md's picture does not show %s (layer %d)", p, i)
			case at != i:
				t.Errorf("docs/architecture.md draws %s on layer %d, layers puts it on %d", p, at, i)
			}
		}
	}
}
