package eventstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// OpenFunc opens a Dialect from a database URL. It returns the dialect and a
// function that closes what it opened. Adapters register one with Register.
type OpenFunc func(ctx context.Context, rawURL string) (d Dialect, closeFunc func() error, err error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes an engine available to Open. The adapters call it from their
// init functions; an application links an engine in with a blank import:
//
//	import _ "github.com/esctl/esctl/adapters/sqlite"
//	import _ "github.com/esctl/esctl/adapters/postgres"
func Register(engine string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[engine] = open
}

// AcceptedURLs describes the URL forms Open accepts, for error messages.
const AcceptedURLs = "postgres://..., postgresql://... (optional ?schema=NAME), sqlite://PATH, file:PATH, or a path ending in .db, .sqlite or .sqlite3"

// EngineForURL returns the engine a database URL selects: "postgres" for
// postgres:// and postgresql://, "sqlite" for sqlite://, file: and bare paths
// ending in .db, .sqlite or .sqlite3.
func EngineForURL(rawURL string) (string, error) {
	lower := strings.ToLower(rawURL)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return "postgres", nil
	case strings.HasPrefix(lower, "sqlite://"), strings.HasPrefix(lower, "sqlite3://"), strings.HasPrefix(lower, "file:"):
		return "sqlite", nil
	}
	if !strings.Contains(rawURL, "://") {
		path := rawURL
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		for _, ext := range []string{".db", ".sqlite", ".sqlite3"} {
			if strings.HasSuffix(strings.ToLower(path), ext) {
				return "sqlite", nil
			}
		}
	}
	return "", fmt.Errorf("%w %q: use %s", ErrUnknownScheme, RedactURL(rawURL), AcceptedURLs)
}

// Open opens the store at a database URL (see AcceptedURLs). The engine's
// adapter must be linked in (see Register). The returned Store owns the
// connection pool it opened and closes it on Close. Open does not create the
// store: call Init once per database. An error's message has the URL's
// password masked (see Redactor); the driver's own error, which may quote
// the URL, stays in the chain for errors.As: do not print it by itself.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	engine, err := EngineForURL(rawURL)
	if err != nil {
		return nil, err
	}
	registryMu.RLock()
	open := registry[engine]
	registryMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("eventstore: open %s: the %s adapter is not linked in: import _ \"github.com/esctl/esctl/adapters/%s\"", RedactURL(rawURL), engine, engine)
	}
	d, closeFunc, err := open(ctx, rawURL)
	if err != nil {
		// Drivers may quote the URL, or parts of it, in their errors.
		msg := NewRedactor(rawURL).Redact(fmt.Sprintf("eventstore: open %s: %v", RedactURL(rawURL), err))
		return nil, &redactedError{msg: msg, err: err}
	}
	s, err := New(d, opts)
	if err != nil {
		_ = closeFunc()
		return nil, err
	}
	s.closeFunc = closeFunc
	return s, nil
}
