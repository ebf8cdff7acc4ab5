package eventstore

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/esctl/esctl/internal/driver"
)

// MaxSnapshotKeyBytes is the longest snapshot key accepted, in bytes.
const MaxSnapshotKeyBytes = 1024

func checkSnapshotKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key must not be empty", ErrInvalidSnapshot)
	case len(key) > MaxSnapshotKeyBytes:
		return fmt.Errorf("%w: key is %d bytes, more than the limit of %d", ErrInvalidSnapshot, len(key), MaxSnapshotKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidSnapshot)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: key contains a NUL character", ErrInvalidSnapshot)
	}
	return nil
}

// LoadSnapshot returns the snapshot stored under exactly key; found is false
// when there is none. Snapshot content is opaque bytes.
func (s *Store) LoadSnapshot(ctx context.Context, key string) (content []byte, found bool, err error) {
	if err := checkSnapshotKey(key); err != nil {
		return nil, false, err
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, false, err
	}
	defer s.c.Exit()
	content, found, err = s.c.D.GetSnapshot(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("load snapshot: %w", err)
	}
	if found && content == nil {
		content = []byte{} // found: never nil, whatever the engine's driver returns for an empty blob
	}
	return content, found, nil
}

// SaveSnapshot stores content under key, replacing any previous snapshot.
// Every call writes (reSolve silently kept only one save in 100; here a
// caller that wants fewer writes decides so itself, see package snapshots).
// Snapshots are not blocked by Freeze.
func (s *Store) SaveSnapshot(ctx context.Context, key string, content []byte) error {
	if err := checkSnapshotKey(key); err != nil {
		return err
	}
	if len(content) > s.opts.MaxSnapshotBytes {
		return fmt.Errorf("%w: content is %d bytes, more than the limit of %d", ErrInvalidSnapshot, len(content), s.opts.MaxSnapshotBytes)
	}
	if err := s.c.Begin(ctx); err != nil {
		return err
	}
	defer s.c.Exit()
	if content == nil {
		content = []byte{}
	}
	if err := s.c.D.PutSnapshot(ctx, &driver.Snapshot{Key: key, Content: content}); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return nil
}

// DropSnapshot deletes the snapshot stored under exactly key (not a prefix,
// unlike reSolve's PostgreSQL adapter). Dropping a missing key succeeds.
func (s *Store) DropSnapshot(ctx context.Context, key string) error {
	if err := checkSnapshotKey(key); err != nil {
		return err
	}
	if err := s.c.Begin(ctx); err != nil {
		return err
	}
	defer s.c.Exit()
	if err := s.c.D.DeleteSnapshot(ctx, key); err != nil {
		return fmt.Errorf("drop snapshot: %w", err)
	}
	return nil
}

// SnapshotInfo describes a stored snapshot without its content.
type SnapshotInfo struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// ListSnapshots returns up to limit (1..MaxLimit) snapshots in key order
// (bytewise), after afterKey ("" from the start), without their content.
// Page with the last returned key.
func (s *Store) ListSnapshots(ctx context.Context, afterKey string, limit int) ([]SnapshotInfo, error) {
	if limit < 1 || limit > MaxLimit {
		return nil, fmt.Errorf("%w: limit %d is outside 1..%d", ErrInvalidSnapshot, limit, MaxLimit)
	}
	if err := s.c.Begin(ctx); err != nil {
		return nil, err
	}
	defer s.c.Exit()
	page, err := s.c.D.ListSnapshots(ctx, &driver.ListSnapshotsParams{AfterKey: afterKey, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]SnapshotInfo, len(page))
	for i, p := range page {
		out[i] = SnapshotInfo{Key: p.Key, Bytes: len(p.Content)}
	}
	return out, nil
}
