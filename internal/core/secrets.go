package core

import (
	"crypto/rand"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/esctl/esctl/estype"
)

// CheckSecretID returns why id is not a valid secret id (estype.ErrInvalidSecret), or nil.
func CheckSecretID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: id must not be empty", estype.ErrInvalidSecret)
	case len(id) > estype.MaxSecretIDBytes:
		return fmt.Errorf("%w: id is %d bytes, more than the limit of %d", estype.ErrInvalidSecret, len(id), estype.MaxSecretIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: id is not valid UTF-8", estype.ErrInvalidSecret)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: id contains a NUL character", estype.ErrInvalidSecret)
	}
	return nil
}

// CheckSecretValue returns why v is not a valid secret value (estype.ErrInvalidSecret), or nil.
func CheckSecretValue(v string) error {
	switch {
	case len(v) > estype.MaxSecretBytes:
		return fmt.Errorf("%w: value is %d bytes, more than the limit of %d", estype.ErrInvalidSecret, len(v), estype.MaxSecretBytes)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: value is not valid UTF-8 (encode binary keys, e.g. as base64)", estype.ErrInvalidSecret)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%w: value contains a NUL character", estype.ErrInvalidSecret)
	}
	return nil
}

// RandomID returns n random characters of the nanoid alphabet.
func RandomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	for i := range b {
		b[i] = IDAlphabet[b[i]&63]
	}
	return string(b)
}

// VersionKey is an event's (aggregate id, version) pair, for finding the
// repeats in one call.
type VersionKey struct {
	ID      string
	Version int64
}
