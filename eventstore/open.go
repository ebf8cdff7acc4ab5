package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/esctl/esctl/eventstore/driver"
)

// OpenFunc opens an engine's driver from a database URL. It returns the
// driver and a function that closes what it opened. Adapters register one
// with Register.
type OpenFunc func(ctx context.Context, rawURL string) (d driver.Driver, closeFunc func() error, err error)

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

// Register makes an engine available to Open. The adapters call it from their
// init functions; an application links an engine in with a blank import:
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
		panic("eventstore: Register of an engine without a name or an Open function")
	}
	if _, dup := engines[e.Name]; dup {
		panic("eventstore: Register called twice for engine " + e.Name)
	}
	for _, sc := range e.Schemes {
		if other, dup := bySchemes[sc]; dup {
			panic(fmt.Sprintf("eventstore: scheme %q of engine %s is registered already by %s", sc, e.Name, other.Name))
		}
	}
	for _, suf := range e.PathSuffixes {
		if other, dup := bySuffix[suf]; dup {
			panic(fmt.Sprintf("eventstore: path suffix %q of engine %s is registered already by %s", suf, e.Name, other.Name))
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

// engineFor returns the registered engine that opens rawURL: by its scheme,
// or, for a string without one, by its path's suffix.
func engineFor(rawURL string) (*Engine, error) {
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
	return nil, fmt.Errorf("%w %q", ErrUnknownScheme, RedactURL(rawURL))
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

// EngineForURL returns the name of the registered engine that opens rawURL
// (see AcceptedURLs), or an error wrapping ErrUnknownScheme.
func EngineForURL(rawURL string) (string, error) {
	e, err := engineFor(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: use %s", err, AcceptedURLs())
	}
	return e.Name, nil
}

// Open opens the store at a database URL (see AcceptedURLs). The engine's
// adapter must be linked in (see Register). The returned Store owns the
// connection pool it opened and closes it on Close. Open does not create the
// store: call Init once per database. An error's message has the URL's
// password masked (see Redactor); the driver's own error, which may quote
// the URL, stays in the chain for errors.As: do not print it by itself.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	e, err := engineFor(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: use %s", err, AcceptedURLs())
	}
	d, closeFunc, err := e.Open(ctx, rawURL)
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
	if s.opts.ReadURL != "" {
		re, err := engineFor(s.opts.ReadURL)
		if err == nil && re.Name != e.Name {
			err = fmt.Errorf("the read URL's engine is %s, the store's %s", re.Name, e.Name)
		}
		var rd driver.Driver
		var closeRead func() error
		if err == nil {
			rd, closeRead, err = re.Open(ctx, s.opts.ReadURL)
		}
		if err != nil {
			_ = closeFunc()
			msg := NewRedactor(s.opts.ReadURL).Redact(fmt.Sprintf("eventstore: open the read URL %s: %v", RedactURL(s.opts.ReadURL), err))
			return nil, &redactedError{msg: msg, err: err}
		}
		s.r = rd
		s.closeFunc = func() error { return errors.Join(closeRead(), closeFunc()) }
	}
	return s, nil
}
