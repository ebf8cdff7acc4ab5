package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/secrets"
)

// openExampleStore opens and initializes a store in a temporary directory.
func openExampleStore() (*eventstore.Store, func()) {
	dir, err := os.MkdirTemp("", "secrets-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := eventstore.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Init(ctx); err != nil {
		log.Fatal(err)
	}
	return s, func() { _ = s.Close(); _ = os.RemoveAll(dir) }
}

// Encrypt personal data into an event, read it back in a projection, and
// forget the person: the event stays, its data is gone.
func ExampleKeyring() {
	s, done := openExampleStore()
	defer done()
	ctx := context.Background()
	k, err := secrets.New(s, nil)
	if err != nil {
		log.Fatal(err)
	}

	type registered struct {
		Name secrets.Sealed `json:"name"` // a plain JSON string holding ciphertext
	}
	name, err := k.Encrypt(ctx, "customer-42", "Ada Lovelace") // creates the subject's key
	if err != nil {
		log.Fatal(err)
	}
	payload, _ := json.Marshal(registered{Name: name})
	if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: "customer-42", AggregateVersion: 1, Type: "CustomerRegistered", Payload: payload}); err != nil {
		log.Fatal(err)
	}

	project := func() {
		for e, err := range s.Events(ctx, eventstore.Filter{}) {
			if err != nil {
				log.Fatal(err)
			}
			if subject, ok := k.ForgottenSubject(e); ok {
				fmt.Println("projection: forget", subject) // erase what the read model holds
				continue
			}
			if e.Type != "CustomerRegistered" {
				continue
			}
			var p registered
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				log.Fatal(err)
			}
			text, err := k.Decrypt(ctx, e.AggregateID, p.Name)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("projection: %s is %s (forgotten: %v)\n", e.AggregateID, text, text.Forgotten)
		}
	}
	project()

	if _, err := k.Forget(ctx, "customer-42", nil); err != nil {
		log.Fatal(err)
	}
	project() // rebuilt from the first event: the data is unreadable

	_, err = k.Encrypt(ctx, "customer-42", "Ada")
	fmt.Println(errors.Is(err, secrets.ErrForgotten))
	// Output:
	// projection: customer-42 is Ada Lovelace (forgotten: false)
	// projection: customer-42 is [forgotten] (forgotten: true)
	// projection: forget customer-42
	// true
}
