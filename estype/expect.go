package estype

import "fmt"

// Expect is what Append expects of an aggregate before it appends: Any,
// NoStream, StreamExists or Exactly(v), the expected-version forms of
// KurrentDB. Expectations other than Exactly are checked, and the events'
// versions chosen, inside the write transaction under the store lock, so
// that concurrent appenders, in this process or any other, cannot both
// take the same versions: a violated expectation fails with *ConflictError
// (errors.Is(err, ErrConflict)) naming what was expected and what was found.
//
// The zero Expect is no expectation: Append refuses it. Expect values are
// comparable with ==.
type Expect struct {
	kind    expectKind
	version int64 // Exactly's
}

type expectKind uint8

const (
	expectNone expectKind = iota
	expectAny
	expectNoStream
	expectStreamExists
	expectExactly
)

var (
	// Any appends at the aggregate's next version, whatever it is (1 for
	// a new aggregate). It never conflicts.
	Any = Expect{kind: expectAny}
	// NoStream appends only if the aggregate has no event yet; its events
	// get versions 1, 2, ...
	NoStream = Expect{kind: expectNoStream}
	// StreamExists appends at the aggregate's next version only if the
	// aggregate has at least one event.
	StreamExists = Expect{kind: expectStreamExists}
)

// Exactly expects the aggregate to be at version v (0: no event): the
// events get versions v+1, v+2, ..., and the append conflicts when any of
// them is already stored, exactly as SaveEvents with explicit versions
// (the unique key decides; an aggregate whose versions have a gap below
// v+1 is not detected). v must be at least 0.
func Exactly(v int64) Expect { return Expect{kind: expectExactly, version: v} }

// String says what e expects: "any", "no stream", "stream exists",
// "version 3", or "none" for the zero Expect.
func (e Expect) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExactly:
		return fmt.Sprintf("version %d", e.version)
	}
	return "none"
}

// Resolved reports whether the store chooses the versions under the lock
// (Any, NoStream, StreamExists), rather than the caller (Exactly).
func (e Expect) Resolved() bool {
	return e.kind == expectAny || e.kind == expectNoStream || e.kind == expectStreamExists
}

// Allows reports whether an aggregate at version last (0: no event)
// satisfies a resolved expectation (Exactly is checked by the unique key,
// not here: Allows reports true for it).
func (e Expect) Allows(last int64) bool {
	switch e.kind {
	case expectNoStream:
		return last == 0
	case expectStreamExists:
		return last > 0
	}
	return true
}

// Exact returns Exactly's version and true, or 0 and false for the other
// forms.
func (e Expect) Exact() (v int64, ok bool) {
	return e.version, e.kind == expectExactly
}
