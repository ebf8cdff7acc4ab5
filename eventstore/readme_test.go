package eventstore_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeListsEveryError: the README's error table names every exported
// error variable of the packages an application or a tool uses: eventstore,
// transfer and backup.
func TestReadmeListsEveryError(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, dir := range []string{".", "../transfer", "../backup"} {
		fs, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	fset := token.NewFileSet()
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if id.IsExported() && strings.HasPrefix(id.Name, "Err") {
						found++
						if !strings.Contains(string(readme), "`"+id.Name+"`") {
							t.Errorf("README.md does not list %s (%s)", id.Name, name)
						}
					}
				}
			}
		}
	}
	if found < 20 {
		t.Fatalf("only %d error variables found", found)
	}
}

// TestErrorsLiveInErrorsGo: every exported error variable and error type of
// the package is declared in errors.go, the one place to read them.
func TestErrorsLiveInErrorsGo(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "errors.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				switch sp := spec.(type) {
				case *ast.ValueSpec:
					for _, id := range sp.Names {
						if id.IsExported() && strings.HasPrefix(id.Name, "Err") {
							t.Errorf("%s declares %s: errors belong in errors.go", name, id.Name)
						}
					}
				case *ast.TypeSpec:
					if sp.Name.IsExported() && strings.HasSuffix(sp.Name.Name, "Error") {
						t.Errorf("%s declares type %s: errors belong in errors.go", name, sp.Name.Name)
					}
				}
			}
		}
	}
}
