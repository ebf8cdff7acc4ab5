package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/secrets"
	"github.com/esctl/esctl/snapshots"
	"github.com/esctl/esctl/transfer"
)

// customer is an aggregate state that holds personal data the recommended
// way: sealed, exactly as in the events, so its snapshots hold ciphertext.
type customer struct {
	Name  secrets.Sealed `json:"name"`
	Email secrets.Sealed `json:"email"`
}

type customerPayload struct {
	Name  secrets.Sealed `json:"name,omitempty"`
	Email secrets.Sealed `json:"email,omitempty"`
}

func applyCustomer(c *customer, e eventstore.StoredEvent) error {
	var p customerPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return err
	}
	switch e.Type {
	case "CustomerRegistered":
		c.Name, c.Email = p.Name, p.Email
	case "EmailChanged":
		c.Email = p.Email
	default:
		return fmt.Errorf("unknown event type %q", e.Type)
	}
	return nil
}

type person struct{ name, email, newEmail string }

// Acceptance 2: after Forget, no projection rebuilt from the store recovers
// the subject's plaintext, nothing the store gives out holds it or the key,
// a scan of the SQLite files finds neither, and other subjects' data still
// decrypts.
//
// Checked once against broken variants: leaving the plaintext read-model
// snapshot out of SnapshotKeys fails the export check, and dropping it after
// Forget (so that the WAL checkpoint after the key's deletion does not cover
// it) fails the SQLite file scan with the store open.
func TestForgetLeavesNothingToRecover(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *eventstore.Store, url string) {
		ctx := context.Background()
		k := newKeyring(t, s, nil)
		customers, err := snapshots.New(s, "customer", applyCustomer, &snapshots.Options[customer]{Every: 2})
		require.NoError(t, err)

		people := map[string]person{
			"customer-alice": {"Alice Wonderland-7f3a9c", "alice.7f3a9c@example.org", "alice.new.7f3a9c@example.org"},
			"customer-bob":   {"Bob Builder-51e0d2", "bob.51e0d2@example.org", "bob.new.51e0d2@example.org"},
		}
		for id, p := range people {
			name, err := k.Encrypt(ctx, id, p.name)
			require.NoError(t, err)
			email, err := k.Encrypt(ctx, id, p.email)
			require.NoError(t, err)
			_, err = customers.Update(ctx, id, func(*snapshots.Aggregate[customer]) ([]eventstore.Event, error) {
				return []eventstore.Event{{Type: "CustomerRegistered", Payload: mustJSON(t, customerPayload{Name: name, Email: email})}}, nil
			})
			require.NoError(t, err)
			newEmail, err := k.Encrypt(ctx, id, p.newEmail)
			require.NoError(t, err)
			out, err := customers.Update(ctx, id, func(*snapshots.Aggregate[customer]) ([]eventstore.Event, error) {
				return []eventstore.Event{{Type: "EmailChanged", Payload: mustJSON(t, customerPayload{Email: newEmail})}}, nil
			})
			require.NoError(t, err)
			require.NoError(t, out.Aggregate.SnapshotErr)
			require.Zero(t, out.Aggregate.SinceSnapshot(), "a snapshot holding sealed fields was saved")
			// A careless read model that keeps decrypted data in a snapshot.
			require.NoError(t, s.SaveSnapshot(ctx, "readmodel:"+id, mustJSON(t, map[string]string{"name": p.name, "email": p.newEmail})))
		}
		keyOf := func(subject string) string {
			v, found, err := s.Secrets().GetSecret(ctx, k.KeyID(subject))
			require.NoError(t, err)
			require.True(t, found)
			return v
		}
		aliceKey, bobKey := keyOf("customer-alice"), keyOf("customer-bob")

		forgotten, err := k.Forget(ctx, "customer-alice", &secrets.ForgetOptions{
			SnapshotKeys: []string{customers.Key("customer-alice"), "readmodel:customer-alice"},
		})
		require.NoError(t, err)
		require.True(t, forgotten)

		// A projection rebuilt from the whole store.
		view := rebuildCustomerView(t, s, k)
		require.Equal(t, map[string][2]string{
			"customer-alice": {secrets.ForgottenText, secrets.ForgottenText},
			"customer-bob":   {people["customer-bob"].name, people["customer-bob"].newEmail},
		}, view)

		// The aggregates, from snapshot or events.
		for id, want := range map[string][2]string{
			"customer-alice": {secrets.ForgottenText, secrets.ForgottenText},
			"customer-bob":   {people["customer-bob"].name, people["customer-bob"].newEmail},
		} {
			a, err := customers.Load(ctx, id)
			require.NoError(t, err)
			name, err := k.Decrypt(ctx, id, a.State.Name)
			require.NoError(t, err)
			email, err := k.Decrypt(ctx, id, a.State.Email)
			require.NoError(t, err)
			require.Equal(t, want, [2]string{name.String(), email.String()}, id)
		}

		// Everything the store gives out: events, secrets, snapshots.
		var out bytes.Buffer
		_, err = transfer.ExportEvents(ctx, s, &out, nil)
		require.NoError(t, err)
		_, err = transfer.ExportSecrets(ctx, s, &out, nil)
		require.NoError(t, err)
		for _, key := range []string{customers.Key("customer-alice"), customers.Key("customer-bob"), "readmodel:customer-alice", "readmodel:customer-bob"} {
			content, _, err := s.LoadSnapshot(ctx, key)
			require.NoError(t, err)
			out.Write(content)
		}
		alice := needles(people["customer-alice"], aliceKey)
		requireNone(t, "the store's exports and snapshots", out.Bytes(), alice)
		require.Contains(t, out.String(), keyBase64(bobKey), "control: bob's key is exported")
		require.Contains(t, out.String(), people["customer-bob"].name, "control: bob's careless read model is still there")

		if s.Engine() != "sqlite" {
			return // PostgreSQL keeps old row versions and WAL: see the package documentation
		}
		path := strings.TrimPrefix(url, "sqlite://")
		files := func() []byte {
			var all []byte
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				b, err := os.ReadFile(f)
				if os.IsNotExist(err) {
					continue
				}
				require.NoError(t, err)
				all = append(all, b...)
			}
			return all
		}
		open := files()
		requireNone(t, "the SQLite files, store open", open, alice)
		require.True(t, bytes.Contains(open, []byte(keyBase64(bobKey))), "control: the scan sees bob's key")
		require.True(t, bytes.Contains(open, []byte(people["customer-bob"].name)), "control: the scan sees bob's careless read model")
		require.NoError(t, s.Close())
		closed := files()
		requireNone(t, "the SQLite files, store closed", closed, alice)
		require.True(t, bytes.Contains(closed, []byte(keyBase64(bobKey))), "control: the scan sees bob's key")
	})
}

// rebuildCustomerView is a projection rebuilt from the first event: customer
// id to decrypted name and e-mail.
func rebuildCustomerView(t *testing.T, s *eventstore.Store, k *secrets.Keyring) map[string][2]string {
	t.Helper()
	ctx := context.Background()
	view := map[string][2]string{}
	for e, err := range s.Events(ctx, eventstore.Filter{Limit: 3}) {
		require.NoError(t, err)
		if subject, ok := k.ForgottenSubject(e); ok {
			view[subject] = [2]string{secrets.ForgottenText, secrets.ForgottenText}
			continue
		}
		if !strings.HasPrefix(e.AggregateID, "customer-") {
			continue
		}
		var p customerPayload
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		row := view[e.AggregateID]
		if p.Name != "" {
			name, err := k.Decrypt(ctx, e.AggregateID, p.Name)
			require.NoError(t, err)
			row[0] = name.String()
		}
		email, err := k.Decrypt(ctx, e.AggregateID, p.Email)
		require.NoError(t, err)
		row[1] = email.String()
		view[e.AggregateID] = row
	}
	return view
}

// needles are the byte strings that would reveal a subject's data: its
// plaintext, and its key in every encoding that could plausibly be stored.
func needles(p person, storedKey string) map[string][]byte {
	raw, err := base64.RawStdEncoding.DecodeString(keyBase64(storedKey))
	if err != nil || len(raw) != 32 {
		panic("not a key: " + err.Error())
	}
	return map[string][]byte{
		"name":              []byte(p.name),
		"email":             []byte(p.email),
		"new email":         []byte(p.newEmail),
		"stored key":        []byte(storedKey),
		"key base64":        []byte(keyBase64(storedKey)),
		"key base64url":     []byte(base64.RawURLEncoding.EncodeToString(raw)),
		"raw key":           raw,
		"raw key, 1st half": raw[:16],
		"raw key, 2nd half": raw[16:],
	}
}

func keyBase64(storedKey string) string { return strings.TrimPrefix(storedKey, "A256GCM:") }

func requireNone(t *testing.T, where string, haystack []byte, needles map[string][]byte) {
	t.Helper()
	for what, needle := range needles {
		require.False(t, bytes.Contains(haystack, needle), "%s: found the forgotten subject's %s", where, what)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
