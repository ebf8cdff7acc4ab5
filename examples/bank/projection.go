package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/secrets"
)

// overviewVersion is bumped when the read model's meaning changes: a saved
// read model of another version is rebuilt from the first event.
const overviewVersion = 1

// overview is the projection's read model and its checkpoint. It is saved as
// a whole, with the cursor, in one snapshot write, so the state and the
// checkpoint can never disagree. It keeps the customers' personal data
// sealed, as the events have it, and decrypts it only to show it: the saved
// read model holds no plaintext.
type overview struct {
	Version   int                     `json:"version"`
	Cursor    eventstore.Cursor       `json:"cursor"`
	Customers map[string]*customerRow `json:"customers"`
	Accounts  map[string]*accountRow  `json:"accounts"`
}

type customerRow struct {
	Name      secrets.Sealed `json:"name,omitempty"`
	Email     secrets.Sealed `json:"email,omitempty"`
	Forgotten bool           `json:"forgotten,omitempty"`
}

type accountRow struct {
	CustomerID   string `json:"customerId"`
	Balance      int64  `json:"balance"`
	Transactions int    `json:"transactions"`
}

// projection keeps an overview up to date by reading the store page by page
// from its checkpoint.
type projection struct {
	store *eventstore.Store
	keys  *secrets.Keyring
	key   string // snapshot key of the saved read model; "" to keep it in memory only
	v     overview
	// Erased lists the customers whose data the projection erased when it
	// saw their key's deletion.
	Erased []string
}

// openProjection loads the read model saved under key, or starts an empty one
// (key "": an in-memory projection rebuilt from the first event). resumed
// reports whether a saved read model was found.
func openProjection(ctx context.Context, s *eventstore.Store, keys *secrets.Keyring, key string) (p *projection, resumed bool, err error) {
	p = &projection{store: s, keys: keys, key: key}
	p.v = overview{Version: overviewVersion, Customers: map[string]*customerRow{}, Accounts: map[string]*accountRow{}}
	if key == "" {
		return p, false, nil
	}
	content, found, err := s.LoadSnapshot(ctx, key)
	if err != nil || !found {
		return p, false, err
	}
	var saved overview
	if err := json.Unmarshal(content, &saved); err != nil || saved.Version != overviewVersion {
		return p, false, nil // unusable: rebuild from the first event
	}
	p.v = saved
	return p, true, nil
}

// Checkpoint returns the cursor the projection resumes from.
func (p *projection) Checkpoint() eventstore.Cursor { return p.v.Cursor }

// CatchUp reads every event after the checkpoint, pageSize at a time, and
// saves the read model with its new checkpoint after each page. A crash
// between two pages loses nothing: the next run resumes from the last saved
// page.
func (p *projection) CatchUp(ctx context.Context, pageSize int) (events, pages int, err error) {
	for {
		page, err := p.store.LoadEvents(ctx, eventstore.Filter{Cursor: p.v.Cursor, Limit: pageSize})
		if err != nil {
			return events, pages, fmt.Errorf("projection: read after %s: %w", p.v.Cursor, err)
		}
		if len(page.Events) == 0 {
			return events, pages, nil
		}
		for _, e := range page.Events {
			if err := p.apply(e); err != nil {
				return events, pages, fmt.Errorf("projection: event %d: %w", e.Position, err)
			}
		}
		p.v.Cursor = page.Cursor
		events += len(page.Events)
		pages++
		if err := p.save(ctx); err != nil {
			return events, pages, err
		}
	}
}

// Follow subscribes from the checkpoint and applies each event as it
// commits, live, until done returns true (it is asked after each step) or
// ctx ends. The read model is saved with its checkpoint whenever the
// subscription reaches the end of the store (a progress step) or every
// pageSize events: a restart resumes from the last save.
func (p *projection) Follow(ctx context.Context, pageSize int, done func(*projection) bool) (events int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	unsaved := 0
	for d, err := range p.store.Subscribe(ctx, eventstore.Filter{Cursor: p.v.Cursor, Limit: pageSize}) {
		if err != nil {
			return events, fmt.Errorf("projection: follow after %s: %w", p.v.Cursor, err)
		}
		if d.Event != nil {
			if err := p.apply(*d.Event); err != nil {
				return events, fmt.Errorf("projection: event %d: %w", d.Event.Position, err)
			}
			events++
			unsaved++
		}
		p.v.Cursor = d.Cursor
		if d.Event == nil || unsaved >= pageSize || done(p) {
			if err := p.save(ctx); err != nil {
				return events, err
			}
			unsaved = 0
		}
		if done(p) {
			return events, nil
		}
	}
	return events, ctx.Err()
}

// save writes the read model with its checkpoint (nothing for an
// in-memory projection).
func (p *projection) save(ctx context.Context) error {
	if p.key == "" {
		return nil
	}
	b, err := json.Marshal(p.v)
	if err != nil {
		return err
	}
	if err := p.store.SaveSnapshot(ctx, p.key, b); err != nil {
		return fmt.Errorf("projection: save checkpoint: %w", err)
	}
	return nil
}

func (p *projection) apply(e eventstore.StoredEvent) error {
	if subject, ok := p.keys.ForgottenSubject(e); ok {
		// The customer's key was deleted: erase what the read model holds.
		if row := p.v.Customers[subject]; row != nil {
			*row = customerRow{Forgotten: true}
			p.Erased = append(p.Erased, subject)
		}
		return nil
	}
	switch e.Type {
	case CustomerRegistered:
		var pl customerRegistered
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		p.v.Customers[e.AggregateID] = &customerRow{Name: pl.Name, Email: pl.Email}
	case CustomerEmailChanged:
		var pl customerEmailChanged
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		if row := p.v.Customers[e.AggregateID]; row != nil && !row.Forgotten {
			row.Email = pl.Email
		}
	case AccountOpened:
		var pl accountOpened
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		p.v.Accounts[e.AggregateID] = &accountRow{CustomerID: pl.CustomerID}
	case MoneyDeposited, MoneyWithdrawn:
		var pl moneyMoved
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		row := p.v.Accounts[e.AggregateID]
		if row == nil {
			return fmt.Errorf("%s on unknown account %s", e.Type, e.AggregateID)
		}
		if e.Type == MoneyWithdrawn {
			pl.Amount = -pl.Amount
		}
		row.Balance += pl.Amount
		row.Transactions++
	}
	return nil
}

// customerView is a customer as the report shows it, decrypted.
type customerView struct {
	ID, Name, Email string
	Forgotten       bool
	Accounts        []string
	Balance         int64
}

// Customers returns the customers, decrypted, in id order. A forgotten
// customer's fields read ForgottenText: the projection never fails on them.
func (p *projection) Customers(ctx context.Context) ([]customerView, error) {
	var out []customerView
	for _, id := range sortedKeys(p.v.Customers) {
		row := p.v.Customers[id]
		name, err := p.keys.Decrypt(ctx, id, row.Name)
		if err != nil {
			return nil, err
		}
		email, err := p.keys.Decrypt(ctx, id, row.Email)
		if err != nil {
			return nil, err
		}
		v := customerView{ID: id, Name: name.String(), Email: email.String(), Forgotten: row.Forgotten || name.Forgotten}
		if v.Forgotten {
			v.Name, v.Email = secrets.ForgottenText, secrets.ForgottenText
		}
		for _, acc := range sortedKeys(p.v.Accounts) {
			if p.v.Accounts[acc].CustomerID == id {
				v.Accounts = append(v.Accounts, acc)
				v.Balance += p.v.Accounts[acc].Balance
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// Balances returns every account's balance.
func (p *projection) Balances() map[string]int64 {
	out := make(map[string]int64, len(p.v.Accounts))
	for id, row := range p.v.Accounts {
		out[id] = row.Balance
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
