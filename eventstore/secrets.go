package eventstore

import (
	"context"
	"fmt"

	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/jsonx"

	"github.com/esctl/esctl/internal/driver"
)

// Secret limits.

// SecretsManager stores secrets (typically per-subject encryption keys for
// crypto-shredding) next to the events, as reSolve's secrets manager does:
//
//   - ids are never reusable: setting an id that exists, or existed and was
//     deleted, fails with *SecretExistsError;
//   - DeleteSecret leaves a tombstone (the id stays, the value is gone);
//   - SetSecret and DeleteSecret write a RESOLVE_SET_SECRET or
//     RESOLVE_DELETE_SECRET audit event (payload {"id": ...}) in the same
//     transaction as the secret row;
//   - both are refused with ErrFrozen while the store is frozen.
//
// On SQLite the store runs with secure_delete on, so a deleted value is
// zeroed in the file once the WAL is checkpointed. On PostgreSQL the value
// remains in WAL segments, archives and base backups until they expire: see
// docs/architecture.md.
type SecretsManager struct{ s *Store }

// Secrets returns the store's secrets manager.
func (s *Store) Secrets() *SecretsManager { return &SecretsManager{s: s} }

// GetSecret returns the secret stored under id; found is false when the id
// is unknown or the secret was deleted.
func (m *SecretsManager) GetSecret(ctx context.Context, id string) (secret string, found bool, err error) {
	if err := core.CheckSecretID(id); err != nil {
		return "", false, err
	}
	if err := m.s.c.Begin(ctx); err != nil {
		return "", false, err
	}
	defer m.s.c.Exit()
	secret, found, err = m.s.c.D.GetSecret(ctx, id)
	if err != nil {
		return "", false, fmt.Errorf("get secret: %w", err)
	}
	return secret, found, nil
}

// SetSecret stores a new secret under id and writes its RESOLVE_SET_SECRET
// audit event atomically. It fails with *SecretExistsError when the id is or
// was in use, and with ErrFrozen while the store is frozen.
func (m *SecretsManager) SetSecret(ctx context.Context, id, secret string) error {
	if err := core.CheckSecretID(id); err != nil {
		return err
	}
	if err := core.CheckSecretValue(secret); err != nil {
		return err
	}
	if err := m.s.c.Begin(ctx); err != nil {
		return err
	}
	defer m.s.c.Exit()
	ev := m.s.secretEvent(SetSecretEventType, id)
	res, err := core.SetSecretTx(ctx, m.s.c.W, id, secret, &ev)
	if err != nil {
		return fmt.Errorf("set secret: %w", err)
	}
	switch {
	case res.Frozen:
		return ErrFrozen
	case res.Exists:
		return &SecretExistsError{ID: id}
	}
	return nil
}

// DeleteSecret replaces the secret stored under id by a tombstone and writes
// its RESOLVE_DELETE_SECRET audit event atomically. It reports whether a
// secret was deleted: false (and nothing written) when the id is unknown or
// already deleted. It fails with ErrFrozen while the store is frozen.
func (m *SecretsManager) DeleteSecret(ctx context.Context, id string) (bool, error) {
	if err := core.CheckSecretID(id); err != nil {
		return false, err
	}
	if err := m.s.c.Begin(ctx); err != nil {
		return false, err
	}
	defer m.s.c.Exit()
	ev := m.s.secretEvent(DeleteSecretEventType, id)
	res, err := core.DeleteSecretTx(ctx, m.s.c.W, id, &ev)
	if err != nil {
		return false, fmt.Errorf("delete secret: %w", err)
	}
	if res.Frozen {
		return false, ErrFrozen
	}
	return res.Deleted, nil
}

// SecretFilter selects secrets for LoadSecrets.
type SecretFilter struct {
	// Idx: only secrets with idx >= Idx (0: from the start).
	Idx int64
	// Skip this many matching secrets first.
	Skip int
	// Limit is required: 1..MaxLimit.
	Limit int
	// IDs restricts to these ids; nil means any, an empty list matches nothing.
	IDs []string
	// IncludeDeleted also returns tombstones (Secret.Secret nil).
	IncludeDeleted bool
}

// SecretPage is the result of LoadSecrets.
type SecretPage struct {
	Secrets []Secret
	// NextIdx continues paging: the last returned idx + 1, or the filter's
	// Idx when the page is empty.
	NextIdx int64
}

// LoadSecrets returns secrets in idx order (see SecretFilter).
func (m *SecretsManager) LoadSecrets(ctx context.Context, f SecretFilter) (*SecretPage, error) {
	switch {
	case f.Limit < 1 || f.Limit > MaxLimit:
		return nil, &InvalidFilterError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d, got %d", MaxLimit, f.Limit)}
	case f.Skip < 0:
		return nil, &InvalidFilterError{Field: "skip", Reason: fmt.Sprintf("must not be negative, got %d", f.Skip)}
	case f.Idx < 0:
		return nil, &InvalidFilterError{Field: "idx", Reason: fmt.Sprintf("must not be negative, got %d", f.Idx)}
	case len(f.IDs) > MaxFilterValues:
		return nil, &InvalidFilterError{Field: "ids", Reason: fmt.Sprintf("has %d values, more than the limit of %d", len(f.IDs), MaxFilterValues)}
	}
	if err := m.s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer m.s.c.Exit()
	if f.IDs != nil && len(f.IDs) == 0 {
		return &SecretPage{NextIdx: f.Idx}, nil
	}
	rows, err := m.s.c.D.ListSecrets(ctx, &driver.ListSecretsParams{
		MinIdx: f.Idx, IDs: f.IDs, IncludeDeleted: f.IncludeDeleted, Skip: f.Skip, Limit: f.Limit,
	})
	if err != nil {
		return nil, fmt.Errorf("load secrets: %w", err)
	}
	secrets := rows
	page := &SecretPage{Secrets: secrets, NextIdx: f.Idx}
	if n := len(secrets); n > 0 {
		page.NextIdx = secrets[n-1].Idx + 1
	}
	return page, nil
}

// secretEvent builds the audit event of a secret write, the way reSolve
// does: a fresh single-event aggregate "<TYPE>_<id>_<10 random chars>",
// version 1, payload {"id": id}.
func (s *Store) secretEvent(typ, id string) Event {
	payload := append([]byte(`{"id":`), jsonx.AppendString(nil, id)...)
	payload = append(payload, '}')
	return Event{
		AggregateID:      typ + "_" + id + "_" + core.RandomID(10),
		AggregateVersion: 1,
		Type:             typ,
		Timestamp:        s.c.NowMillis(),
		Payload:          payload,
	}
}
