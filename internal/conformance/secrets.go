package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// runSecrets ports reSolve's eventstore-secrets and parallel-save tests.
func runSecrets(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("ResolveSequence", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		m := s.Secrets()
		counts := func(total, set, deleted int64) {
			t.Helper()
			d, err := s.Describe(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, total, d.SecretCount, "secretCount")
			require.Equal(t, set, d.SetSecretCount, "setSecretCount")
			require.Equal(t, deleted, d.DeletedSecretCount, "deletedSecretCount")
		}
		auditEvents := func(typ string) []eventstore.StoredEvent {
			t.Helper()
			events, _ := LoadAll(t, s, eventstore.Filter{EventTypes: []string{typ}})
			return events
		}

		page, err := m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 50})
		require.NoError(t, err)
		require.Empty(t, page.Secrets)
		require.Zero(t, page.NextIdx)
		counts(0, 0, 0)

		for i := range 50 {
			require.NoError(t, m.SetSecret(ctx, fmt.Sprintf("id_%d", i), fmt.Sprintf("secret_%d", i)))
		}
		counts(50, 50, 0)
		sets := auditEvents(eventstore.SetSecretEventType)
		require.Len(t, sets, 50)
		for i, e := range sets {
			require.Equal(t, fmt.Sprintf(`{"id":"id_%d"}`, i), string(e.Payload))
			require.True(t, strings.HasPrefix(e.AggregateID, fmt.Sprintf("RESOLVE_SET_SECRET_id_%d_", i)), e.AggregateID)
			require.EqualValues(t, 1, e.AggregateVersion)
		}

		err = m.SetSecret(ctx, "id_7", "again")
		require.ErrorIs(t, err, eventstore.ErrSecretExists)
		var se *eventstore.SecretExistsError
		require.ErrorAs(t, err, &se)
		require.Equal(t, "id_7", se.ID)

		v, found, err := m.GetSecret(ctx, "id_13")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "secret_13", v)

		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 51})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 50)
		require.Equal(t, "id_0", page.Secrets[0].ID)
		for i, sec := range page.Secrets {
			require.EqualValues(t, i+1, sec.Idx, "idx is dense from 1")
			require.Equal(t, fmt.Sprintf("secret_%d", i), *sec.Secret)
		}
		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 50, Skip: 16})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 34)

		// Continuous paging by idx: 25, 25, 0.
		var idx int64
		for _, want := range []int{25, 25, 0} {
			page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 25, Idx: idx})
			require.NoError(t, err)
			require.Len(t, page.Secrets, want)
			idx = page.NextIdx
		}
		// Continuous paging by skip: 16, 34, 0.
		for _, tt := range []struct{ skip, want int }{{0, 16}, {16, 34}, {50, 0}} {
			limit := 50
			if tt.skip == 0 {
				limit = 16
			}
			page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: limit, Skip: tt.skip})
			require.NoError(t, err)
			require.Len(t, page.Secrets, tt.want)
		}

		deleted, err := m.DeleteSecret(ctx, "id_50")
		require.NoError(t, err)
		require.False(t, deleted, "deleting an unknown id")
		require.Empty(t, auditEvents(eventstore.DeleteSecretEventType))

		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 50, IDs: []string{"id_0", "id_25", "id_49"}})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 3)
		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 50, IDs: []string{}})
		require.NoError(t, err)
		require.Empty(t, page.Secrets)

		deleted, err = m.DeleteSecret(ctx, "id_21")
		require.NoError(t, err)
		require.True(t, deleted)
		_, found, err = m.GetSecret(ctx, "id_21")
		require.NoError(t, err)
		require.False(t, found)
		dels := auditEvents(eventstore.DeleteSecretEventType)
		require.Len(t, dels, 1)
		var p struct{ ID string }
		require.NoError(t, json.Unmarshal(dels[0].Payload, &p))
		require.Equal(t, "id_21", p.ID)

		for _, id := range []string{"id_21", "id_unknown"} {
			deleted, err = m.DeleteSecret(ctx, id)
			require.NoError(t, err)
			require.False(t, deleted, id)
		}
		require.Len(t, auditEvents(eventstore.DeleteSecretEventType), 1)

		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 100})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 49)
		counts(50, 49, 1)
		page, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 100, IncludeDeleted: true})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 50)
		require.Equal(t, "id_21", page.Secrets[21].ID)
		require.Nil(t, page.Secrets[21].Secret, "a tombstone has no value")

		err = m.SetSecret(ctx, "id_21", "reused")
		require.ErrorIs(t, err, eventstore.ErrSecretExists, "a deleted id is never reusable")
		counts(50, 49, 1)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 51, d.EventCount, "50 set events and 1 delete event")
	})

	t.Run("Parallel", func(t *testing.T) {
		// reSolve's parallel-save tests: several Stores on one database.
		t.Parallel()
		a, url := NewStore(t, h, nil)
		stores := []*eventstore.Store{a, Open(t, url, nil), Open(t, url, nil)}
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for i := range 200 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				errs <- stores[i%3].Secrets().SetSecret(ctx, fmt.Sprintf("p_%d", i), "v")
			}()
			go func() {
				defer wg.Done()
				_, err := stores[(i+1)%3].SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("e_%d", i), AggregateVersion: 1, Type: "T"})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		page, err := a.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Limit: 1000})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 200)
		for i, sec := range page.Secrets {
			require.EqualValues(t, i+1, sec.Idx)
		}
		// Parallel deletes mixed with saves.
		deletes := make(chan error, 200)
		for i := range 100 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				ok, err := stores[i%3].Secrets().DeleteSecret(ctx, fmt.Sprintf("p_%d", i*2))
				if err == nil && !ok {
					err = fmt.Errorf("p_%d was not deleted", i*2)
				}
				deletes <- err
			}()
			go func() {
				defer wg.Done()
				_, err := stores[i%3].SaveEvent(ctx, eventstore.Event{AggregateID: fmt.Sprintf("f_%d", i), AggregateVersion: 1, Type: "T"})
				deletes <- err
			}()
		}
		wg.Wait()
		close(deletes)
		for err := range deletes {
			require.NoError(t, err)
		}
		d, err := a.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 200+200+100+100, d.EventCount)
		require.EqualValues(t, d.EventCount, d.LastPosition)
		require.EqualValues(t, 100, d.SetSecretCount)
		require.EqualValues(t, 100, d.DeletedSecretCount)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, h, nil)
		m := s.Secrets()
		for _, id := range []string{"", strings.Repeat("i", eventstore.MaxSecretIDBytes+1), "a\x00", "a\xff"} {
			require.ErrorIs(t, m.SetSecret(ctx, id, "v"), eventstore.ErrInvalidSecret)
			_, _, err := m.GetSecret(ctx, id)
			require.ErrorIs(t, err, eventstore.ErrInvalidSecret)
			_, err = m.DeleteSecret(ctx, id)
			require.ErrorIs(t, err, eventstore.ErrInvalidSecret)
		}
		for _, v := range []string{"a\x00b", "a\xffb", strings.Repeat("s", eventstore.MaxSecretBytes+1)} {
			require.ErrorIs(t, m.SetSecret(ctx, "ok", v), eventstore.ErrInvalidSecret)
		}
		require.NoError(t, m.SetSecret(ctx, "ok", ""), "an empty secret is a value")
		v, found, err := m.GetSecret(ctx, "ok")
		require.NoError(t, err)
		require.True(t, found)
		require.Empty(t, v)
		_, err = m.LoadSecrets(ctx, eventstore.SecretFilter{})
		require.ErrorIs(t, err, eventstore.ErrInvalidFilter)
		_, err = m.LoadSecrets(ctx, eventstore.SecretFilter{Limit: 1, Skip: -1})
		require.ErrorIs(t, err, eventstore.ErrInvalidFilter)
		d, err := s.Describe(ctx, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, d.SecretCount)
	})
}
