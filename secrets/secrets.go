// Package secrets implements crypto-shredding on top of an
// [eventstore.Store]: personal data is written to events encrypted with a key
// that belongs to its subject (a customer, a user), and forgetting the
// subject deletes the key, which makes every copy of the data in the event
// log unreadable without rewriting a single event.
//
// A [Keyring] keeps one random 256-bit data key per subject in the store's
// secrets manager (secret id KeyIDPrefix+subject, created on the subject's
// first Encrypt). Fields are encrypted with AES-256-GCM, a random 96-bit
// nonce per field and the subject id as associated data, so a field copied
// to another subject does not decrypt. An encrypted field is a [Sealed]
// string, which goes into a JSON payload as is.
//
// [Keyring.Forget] deletes the subject's key: the store replaces it by a
// tombstone (the id can never be used again, so nothing new can be encrypted
// for the subject) and writes a RESOLVE_DELETE_SECRET audit event in the same
// transaction. It cannot be undone. From then on [Keyring.Decrypt] returns a [Text] with Forgotten
// set for every field of the subject, never an error, so projections keep
// running and show the data as forgotten. Other subjects are unaffected.
//
// # What crypto-shredding guarantees, and what it does not
//
// From the moment Forget returns, the store can no longer decrypt the
// subject's fields: everything read through the store (a projection rebuilt
// from the first event, an aggregate, its snapshots, an export of the events
// or of the secrets, a logical backup such as pg_dump taken afterwards) holds
// the subject's ciphertext but not its key, and the plaintext was never
// written to the store. On SQLite this holds for the database files too: the
// store runs with secure_delete and checkpoints its write-ahead log
// (TRUNCATE) after deleting a secret, so neither the key nor the snapshots
// dropped just before it (ForgetOptions.SnapshotKeys) remain in the .db,
// -wal or -shm files; a long-running reader of the same file can delay that
// checkpoint.
//
// It does not reach copies made before Forget: backups, file copies and
// secrets exports taken earlier still hold the key, and restoring one
// restores the data (forget the subject again after a restore). On
// PostgreSQL the deleted key also survives physically: in the dead row
// version until VACUUM (so also in a physical backup, pg_basebackup or a disk
// snapshot, taken before that), and in WAL segments, WAL archives and
// replicas' WAL until they expire. Nor does it reach plaintext the
// application copied elsewhere: read models, caches, logs, search indexes,
// and snapshots holding decrypted data must be erased by the application (a
// projection sees the subject's RESOLVE_DELETE_SECRET event;
// [Keyring.ForgottenSubject] recognizes it). Crypto-shredding is as good as
// the retention of all those copies.
//
// Subject ids stay readable, in the key ids and the audit events: use opaque
// ids (customer-42), never personal data (an e-mail address), as subjects.
// The ciphertext reveals the length of the plaintext. With random 96-bit
// nonces a key must not seal more than 2^32 fields, a bound one subject does
// not approach.
//
// Keys are generated with crypto/rand and stored base64-encoded. The Keyring
// never logs; its errors never contain keys or plaintext.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/esctl/esctl/eventstore"
)

// DefaultKeyIDPrefix is the default prefix of the secret ids of subjects'
// keys: subject "customer-42" has key "subject-key:customer-42".
const DefaultKeyIDPrefix = "subject-key:"

// ForgottenText is what Text.String returns for a forgotten field.
const ForgottenText = "[forgotten]"

// Errors. Decrypt reports a forgotten subject as a Text with Forgotten set,
// never as an error.
var (
	// ErrForgotten: Encrypt was asked to encrypt for a subject that was
	// forgotten; nothing can be encrypted for it any more.
	ErrForgotten = errors.New("secrets: subject was forgotten")
	// ErrNoKey: a sealed field's subject has no key and was never
	// forgotten: the field was not encrypted by this store's keys (were
	// the secrets restored along with the events?).
	ErrNoKey = errors.New("secrets: subject has no key")
	// ErrMalformed: a value is not a sealed field, or a stored key is not
	// a key this package wrote.
	ErrMalformed = errors.New("secrets: malformed sealed value or key")
	// ErrDecrypt: a sealed field failed authentication: it was altered, or
	// it belongs to another subject.
	ErrDecrypt = errors.New("secrets: sealed value does not authenticate")
	// ErrInvalidSubject: a subject id is empty, not valid UTF-8, contains
	// NUL, or makes a key id longer than eventstore.MaxSecretIDBytes.
	ErrInvalidSubject = errors.New("secrets: invalid subject")
	// ErrInvalidArgument: New was given a nil store or a bad option.
	ErrInvalidArgument = errors.New("secrets: invalid argument")
)

// Options configure a Keyring. A nil *Options means all defaults.
type Options struct {
	// KeyIDPrefix is prepended to a subject id to make its key's secret id.
	// "": DefaultKeyIDPrefix.
	KeyIDPrefix string
	// CacheTTL keeps keys, and the knowledge that a subject is forgotten,
	// in memory this long, saving a query per field. 0: no cache, every
	// Encrypt and Decrypt reads the key, so a Forget by another process
	// takes effect at once. With a cache, Forget by this Keyring takes
	// effect at once, a Forget by another process within CacheTTL.
	CacheTTL time.Duration
}

// maxCacheEntries bounds the cache; when it is full it is emptied.
const maxCacheEntries = 4096

// Keyring encrypts and decrypts subjects' personal data with per-subject
// keys kept in a store's secrets manager, and forgets subjects. It is safe
// for concurrent use, and several Keyrings (in several processes) may share
// a store.
type Keyring struct {
	store  *eventstore.Store
	prefix string
	ttl    time.Duration

	mu    sync.Mutex
	cache map[string]cacheEntry
}

type cacheEntry struct {
	aead      cipher.AEAD // nil: forgotten
	expiresAt time.Time
}

// New returns a Keyring over store's secrets manager.
func New(store *eventstore.Store, opts *Options) (*Keyring, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	if opts == nil {
		opts = &Options{}
	}
	if opts.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: CacheTTL must not be negative, got %v", ErrInvalidArgument, opts.CacheTTL)
	}
	k := &Keyring{store: store, prefix: opts.KeyIDPrefix, ttl: opts.CacheTTL}
	if k.prefix == "" {
		k.prefix = DefaultKeyIDPrefix
	}
	if !utf8.ValidString(k.prefix) || strings.IndexByte(k.prefix, 0) >= 0 {
		return nil, fmt.Errorf("%w: KeyIDPrefix must be valid UTF-8 without NUL", ErrInvalidArgument)
	}
	return k, nil
}

// KeyID returns the secret id under which subject's key is stored.
func (k *Keyring) KeyID(subject string) string { return k.prefix + subject }

func (k *Keyring) checkSubject(subject string) error {
	switch {
	case subject == "":
		return fmt.Errorf("%w: empty subject", ErrInvalidSubject)
	case !utf8.ValidString(subject) || strings.IndexByte(subject, 0) >= 0:
		return fmt.Errorf("%w: subject must be valid UTF-8 without NUL", ErrInvalidSubject)
	case len(k.KeyID(subject)) > eventstore.MaxSecretIDBytes:
		return fmt.Errorf("%w: key id would be %d bytes, more than %d", ErrInvalidSubject, len(k.KeyID(subject)), eventstore.MaxSecretIDBytes)
	}
	return nil
}

// Sealed is an encrypted field: "sealed1:" followed by the unpadded
// base64url encoding of the nonce, the ciphertext and the GCM tag. It is a
// plain string in JSON, so payload and state structs can hold Sealed fields
// as they are. The zero Sealed is an absent field: it decrypts to an empty
// Text.
type Sealed string

const sealedPrefix = "sealed1:"

// IsSealed reports whether s has the form of a sealed field (it does not
// check that it decrypts).
func (s Sealed) IsSealed() bool {
	_, err := s.bytes()
	return err == nil
}

func (s Sealed) bytes() ([]byte, error) {
	rest, ok := strings.CutPrefix(string(s), sealedPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: no %q prefix", ErrMalformed, sealedPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrMalformed)
	}
	if len(b) < 12+16 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrMalformed, len(b))
	}
	return b, nil
}

// Text is a decrypted field: its plaintext, or Forgotten when the subject's
// key was deleted.
type Text struct {
	// Value is the plaintext ("" when Forgotten).
	Value string
	// Forgotten: the subject was forgotten and the plaintext is gone.
	Forgotten bool
}

// String returns the plaintext, or ForgottenText when the field is
// forgotten.
func (t Text) String() string {
	if t.Forgotten {
		return ForgottenText
	}
	return t.Value
}

// Encrypt seals plaintext with subject's key, creating the key on the
// subject's first use. It fails with ErrForgotten when the subject was
// forgotten (even by another process an instant before), and with
// eventstore.ErrFrozen when a key must be created while the store is frozen.
func (k *Keyring) Encrypt(ctx context.Context, subject, plaintext string) (Sealed, error) {
	if err := k.checkSubject(subject); err != nil {
		return "", err
	}
	aead, err := k.key(ctx, subject, true)
	if err != nil {
		return "", err
	}
	if aead == nil {
		return "", fmt.Errorf("encrypt for %s: %w", subject, ErrForgotten)
	}
	out := aead.Seal(nil, nil, []byte(plaintext), []byte(subject))
	return Sealed(sealedPrefix + base64.RawURLEncoding.EncodeToString(out)), nil
}

// Decrypt opens a field sealed for subject. When the subject was forgotten
// it returns a Text with Forgotten set and no error, so that a projection
// rebuilt after a Forget keeps running. Errors are for what should not
// happen: a malformed value (ErrMalformed), one that does not authenticate
// for this subject (ErrDecrypt), a subject without a key or tombstone
// (ErrNoKey), or a failing store.
func (k *Keyring) Decrypt(ctx context.Context, subject string, sealed Sealed) (Text, error) {
	if err := k.checkSubject(subject); err != nil {
		return Text{}, err
	}
	if sealed == "" {
		return Text{}, nil
	}
	b, err := sealed.bytes()
	if err != nil {
		return Text{}, fmt.Errorf("decrypt for %s: %w", subject, err)
	}
	aead, err := k.key(ctx, subject, false)
	if err != nil {
		return Text{}, err
	}
	if aead == nil {
		return Text{Forgotten: true}, nil
	}
	plain, err := aead.Open(nil, nil, b, []byte(subject))
	if err != nil {
		return Text{}, fmt.Errorf("decrypt for %s: %w", subject, ErrDecrypt)
	}
	return Text{Value: string(plain)}, nil
}

// ForgetOptions are the arguments of Forget.
type ForgetOptions struct {
	// SnapshotKeys are snapshots to drop before the key is deleted: those
	// that may hold the subject's data decrypted (for example
	// snapshots.Repository.Key of the subject's aggregates). On SQLite the
	// checkpoint that follows the key's deletion then also clears them
	// from the write-ahead log.
	SnapshotKeys []string
}

// Forget makes subject's data unreadable for good: it drops
// opts.SnapshotKeys, then deletes the subject's key (the store leaves a
// tombstone and writes a RESOLVE_DELETE_SECRET audit event in the same
// transaction). A subject that never had a key gets a tombstone too, so that
// nothing can be encrypted for it later. Forget reports whether this call
// forgot the subject: false when it was already forgotten. It fails with
// eventstore.ErrFrozen while the store is frozen.
func (k *Keyring) Forget(ctx context.Context, subject string, opts *ForgetOptions) (bool, error) {
	if err := k.checkSubject(subject); err != nil {
		return false, err
	}
	if opts != nil {
		for _, key := range opts.SnapshotKeys {
			if err := k.store.DropSnapshot(ctx, key); err != nil {
				return false, fmt.Errorf("forget %s: %w", subject, err)
			}
		}
	}
	id := k.KeyID(subject)
	m := k.store.Secrets()
	k.evict(subject)
	// A concurrent Encrypt may create the key between two steps; each
	// round either deletes a key or learns that the subject is already
	// forgotten, so two rounds are enough unless Encrypt wins every race.
	for range 5 {
		deleted, err := m.DeleteSecret(ctx, id)
		if err != nil {
			return false, fmt.Errorf("forget %s: %w", subject, err)
		}
		if deleted {
			k.remember(subject, nil)
			return true, nil
		}
		st, err := k.status(ctx, id)
		if err != nil {
			return false, fmt.Errorf("forget %s: %w", subject, err)
		}
		switch st {
		case keyDeleted:
			k.remember(subject, nil)
			return false, nil
		case keyLive:
			continue // created since DeleteSecret: delete it
		}
		// No key yet: reserve the id with a key nobody will ever see, and
		// delete it in the next round.
		placeholder, err := newKey()
		if err != nil {
			return false, err
		}
		if err := m.SetSecret(ctx, id, encodeKey(placeholder)); err != nil && !errors.Is(err, eventstore.ErrSecretExists) {
			return false, fmt.Errorf("forget %s: %w", subject, err)
		}
	}
	return false, fmt.Errorf("forget %s: the key kept being recreated", subject)
}

// Forgotten reports whether subject was forgotten.
func (k *Keyring) Forgotten(ctx context.Context, subject string) (bool, error) {
	if err := k.checkSubject(subject); err != nil {
		return false, err
	}
	st, err := k.status(ctx, k.KeyID(subject))
	return st == keyDeleted, err
}

// ForgottenSubject reports whether e is the audit event of the deletion of a
// subject's key by this Keyring's prefix (a RESOLVE_DELETE_SECRET event), and
// which subject it forgot. A projection that holds decrypted data erases the
// subject's data when it sees one.
func (k *Keyring) ForgottenSubject(e eventstore.StoredEvent) (string, bool) {
	if e.Type != eventstore.DeleteSecretEventType {
		return "", false
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return "", false
	}
	subject, ok := strings.CutPrefix(p.ID, k.prefix)
	if !ok || subject == "" {
		return "", false
	}
	return subject, true
}

type keyStatus int

const (
	keyMissing keyStatus = iota
	keyLive
	keyDeleted
)

// status tells whether secret id is live, a tombstone, or was never set.
func (k *Keyring) status(ctx context.Context, id string) (keyStatus, error) {
	page, err := k.store.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{IDs: []string{id}, IncludeDeleted: true, Limit: 1})
	if err != nil {
		return keyMissing, err
	}
	if len(page.Secrets) == 0 {
		return keyMissing, nil
	}
	if page.Secrets[0].Secret == nil {
		return keyDeleted, nil
	}
	return keyLive, nil
}

// key returns subject's key as an AEAD, nil when the subject is forgotten.
// With create it makes the key when the subject has none.
func (k *Keyring) key(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	if aead, ok := k.cached(subject); ok {
		return aead, nil
	}
	id := k.KeyID(subject)
	m := k.store.Secrets()
	v, found, err := m.GetSecret(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	if !found {
		if !create {
			st, err := k.status(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("key of %s: %w", subject, err)
			}
			switch st {
			case keyMissing:
				return nil, fmt.Errorf("decrypt for %s: %w", subject, ErrNoKey)
			case keyLive:
				// Created since GetSecret: read it again. A live key only
				// ever becomes a tombstone, so this recursion ends.
				return k.key(ctx, subject, false)
			}
			k.remember(subject, nil)
			return nil, nil
		}
		raw, err := newKey()
		if err != nil {
			return nil, err
		}
		v = encodeKey(raw)
		err = m.SetSecret(ctx, id, v)
		switch {
		case errors.Is(err, eventstore.ErrSecretExists):
			// Another writer created the key first, or the subject was
			// forgotten: use theirs, or report it forgotten.
			v, found, err = m.GetSecret(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("key of %s: %w", subject, err)
			}
			if !found {
				k.remember(subject, nil)
				return nil, nil
			}
		case err != nil:
			return nil, fmt.Errorf("create key of %s: %w", subject, err)
		}
	}
	raw, err := decodeKey(v)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k.remember(subject, aead)
	return aead, nil
}

func (k *Keyring) cached(subject string) (cipher.AEAD, bool) {
	if k.ttl == 0 {
		return nil, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.cache[subject]
	if !ok {
		return nil, false
	}
	if time.Now().After(e.expiresAt) {
		delete(k.cache, subject)
		return nil, false
	}
	return e.aead, true
}

func (k *Keyring) remember(subject string, aead cipher.AEAD) {
	if k.ttl == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cache == nil || len(k.cache) >= maxCacheEntries {
		k.cache = make(map[string]cacheEntry)
	}
	k.cache[subject] = cacheEntry{aead: aead, expiresAt: time.Now().Add(k.ttl)}
}

func (k *Keyring) evict(subject string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, subject)
}

// Key encoding in the secrets table: a format tag, then the unpadded
// standard base64 of the 32 key bytes (secret values must be UTF-8).
const keyPrefix = "A256GCM:"

func newKey() ([]byte, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	return raw, nil
}

func encodeKey(raw []byte) string {
	return keyPrefix + base64.RawStdEncoding.EncodeToString(raw)
}

func decodeKey(v string) ([]byte, error) {
	rest, ok := strings.CutPrefix(v, keyPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: stored key has no %q tag", ErrMalformed, keyPrefix)
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%w: stored key is not 32 bytes of base64", ErrMalformed)
	}
	return raw, nil
}

func newAEAD(raw []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return aead, nil
}
