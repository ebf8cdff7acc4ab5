package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/esctl/esctl/eventstore"

	"github.com/esctl/esctl/internal/driver"
)

// TestEngineRegistry: engines are found by their URL schemes and path
// suffixes, which the adapters register (the core knows none); a second
// registration of a name, scheme or suffix panics.
func TestEngineRegistry(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h/db": "postgres", "POSTGRESQL://u@h/db?schema=x": "postgres",
		"sqlite:///var/lib/a.db": "sqlite", "sqlite3://./a": "sqlite", "file:./a.db?mode=ro": "sqlite",
		"./events.db": "sqlite", "/data/x.SQLITE3": "sqlite", "events.sqlite?cache=shared": "sqlite",
	} {
		got, err := eventstore.EngineForURL(in)
		if err != nil || got != want {
			t.Errorf("EngineForURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"mysql://root@h/db", "events.txt", "http://x/y.db", ""} {
		if _, err := eventstore.EngineForURL(in); !errors.Is(err, eventstore.ErrUnknownScheme) {
			t.Errorf("EngineForURL(%q): %v, want ErrUnknownScheme", in, err)
		} else if !strings.Contains(err.Error(), "postgres://..., postgresql://... (optional ?schema=NAME), sqlite://PATH, file:PATH") {
			t.Errorf("EngineForURL(%q): %v: the accepted forms are not listed", in, err)
		}
	}
	open := func(context.Context, string) (driver.Driver, func() error, error) {
		return nil, nil, errors.New("no")
	}
	for _, e := range []driver.Engine{
		{Name: "sqlite", Schemes: []string{"other"}, Open: open},
		{Name: "other1", Schemes: []string{"postgresql"}, Open: open},
		{Name: "other2", PathSuffixes: []string{".db"}, Open: open},
		{Name: "other3"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", e.Name)
				}
			}()
			driver.Register(e)
		}()
	}
	if _, err := eventstore.EngineForURL("other://x"); err == nil {
		t.Error("a refused registration left its scheme behind")
	}
}
