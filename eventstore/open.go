package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/redact"
)

// AcceptedURLs describes the URL forms the linked-in engines accept, for
// messages and flag help.
func AcceptedURLs() string { return driver.AcceptedURLs() }

// EngineForURL returns the name of the linked-in engine that opens rawURL
// (see AcceptedURLs), or an error wrapping ErrUnknownScheme.
func EngineForURL(rawURL string) (string, error) {
	e, err := driver.Lookup(rawURL)
	if err != nil {
		return "", fmt.Errorf("%w: use %s", err, AcceptedURLs())
	}
	return e.Name, nil
}

// RedactURL returns rawURL with its password masked, for messages.
func RedactURL(rawURL string) string { return redact.URL(rawURL) }

// RedactFunc returns a function that masks, in a message, the passwords of
// dsns (URLs and key=value strings, as given or percent-decoded) and any
// password a URL or key=value pattern shows. Tools print every error
// through it: drivers may quote a connection string in their errors.
func RedactFunc(dsns ...string) func(msg string) string { return redact.New(dsns...).Redact }

// Open opens the store at a database URL (see AcceptedURLs). The engine's
// adapter must be linked in (link it in with a blank import). The returned Store owns the
// connection pool it opened and closes it on Close. Open does not create the
// store: call Init once per database. An error's message has the URL's
// password masked (see RedactURL); the driver's own error, which may quote
// the URL, stays in the chain for errors.As: do not print it by itself.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	e, err := driver.Lookup(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: use %s", err, AcceptedURLs())
	}
	d, closeFunc, err := e.Open(ctx, rawURL)
	if err != nil {
		// Drivers may quote the URL, or parts of it, in their errors.
		msg := redact.New(rawURL).Redact(fmt.Sprintf("eventstore: open %s: %v", redact.URL(rawURL), err))
		return nil, redact.NewError(msg, err)
	}
	s, err := New(d, opts)
	if err != nil {
		_ = closeFunc()
		return nil, err
	}
	s.closeFunc = closeFunc
	if s.opts.ReadURL != "" {
		re, err := driver.Lookup(s.opts.ReadURL)
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
			msg := redact.New(s.opts.ReadURL).Redact(fmt.Sprintf("eventstore: open the read URL %s: %v", redact.URL(s.opts.ReadURL), err))
			return nil, redact.NewError(msg, err)
		}
		s.c.R = rd
		s.closeFunc = func() error { return errors.Join(closeRead(), closeFunc()) }
	}
	return s, nil
}
