package driver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/redact"
)

// The engine registry: adapters register, eventstore.Open looks up.

// OpenFunc opens an engine's driver from a database URL. It returns the
// driver and a function that closes what it opened. Adapters register one
// with Register.
type OpenFunc func(ctx context.Context, rawURL string) (d Driver, closeFunc func() error, err error)

// Engine is what an adapter registers with Register: its name, the URL
// forms it opens, and how.
type Engine struct {
	// Name is the engine's name ("postgres", "sqlite").
	Name string
	// Schemes are the URL schemes it opens, in lower case: "postgres"
	// matches postgres://... and "file" matches file:PATH.
	Schemes []string
	// PathSuffixes: a string with no scheme that ends in one of these
	// (before any ?query) opens with this engine: ".db".
	PathSuffixes []string
	// Forms describes the accepted forms for messages, as
	// "sqlite://PATH, file:PATH".
	Forms string
	// Open opens a URL of these forms.
	Open OpenFunc
}

var (
	registryMu sync.RWMutex
	engines    = map[string]*Engine{} // by name
	bySchemes  = map[string]*Engine{}
	bySuffix   = map[string]*Engine{}
)

// Register makes an engine available to eventstore.Open. The adapters call
// it from their init functions; an application links an engine in with a
// blank import:
//
//	import _ "github.com/esctl/esctl/adapters/sqlite"
//	import _ "github.com/esctl/esctl/adapters/postgres"
//
// As database/sql.Register does, it panics when Open is nil or when the
// name, a scheme or a path suffix is registered already.
func Register(e Engine) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if e.Open == nil || e.Name == "" {
		panic("esctl: Register of an engine without a name or an Open function")
	}
	if _, dup := engines[e.Name]; dup {
		panic("esctl: Register called twice for engine " + e.Name)
	}
	for _, sc := range e.Schemes {
		if other, dup := bySchemes[sc]; dup {
			panic(fmt.Sprintf("esctl: scheme %q of engine %s is registered already by %s", sc, e.Name, other.Name))
		}
	}
	for _, suf := range e.PathSuffixes {
		if other, dup := bySuffix[suf]; dup {
			panic(fmt.Sprintf("esctl: path suffix %q of engine %s is registered already by %s", suf, e.Name, other.Name))
		}
	}
	reg := e
	engines[e.Name] = &reg
	for _, sc := range e.Schemes {
		bySchemes[sc] = &reg
	}
	for _, suf := range e.PathSuffixes {
		bySuffix[suf] = &reg
	}
}

// AcceptedURLs describes the URL forms the registered engines accept, for
// messages and flag help.
func AcceptedURLs() string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if len(engines) == 0 {
		return "no engine is linked in (import one of the adapters, e.g. _ \"github.com/esctl/esctl/adapters/sqlite\")"
	}
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	slices.Sort(names)
	forms := make([]string, len(names))
	for i, n := range names {
		forms[i] = engines[n].Forms
	}
	return strings.Join(forms, ", ")
}

// Lookup returns the registered engine that opens rawURL: by its scheme,
// or, for a string without one, by its path's suffix.
func Lookup(rawURL string) (*Engine, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	if scheme, _, ok := strings.Cut(rawURL, ":"); ok && validScheme(scheme) {
		if e := bySchemes[strings.ToLower(scheme)]; e != nil {
			return e, nil
		}
	}
	if !strings.Contains(rawURL, "://") {
		path, _, _ := strings.Cut(rawURL, "?")
		lower := strings.ToLower(path)
		for suf, e := range bySuffix {
			if strings.HasSuffix(lower, suf) {
				return e, nil
			}
		}
	}
	return nil, fmt.Errorf("%w %q", estype.ErrUnknownScheme, redact.URL(rawURL))
}

// validScheme reports an RFC 3986 scheme: a letter, then letters, digits,
// + - or . .
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
