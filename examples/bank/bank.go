package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/secrets"
	"github.com/esctl/esctl/snapshots"
)

// Event types.
const (
	CustomerRegistered   = "CustomerRegistered"
	CustomerEmailChanged = "CustomerEmailChanged"
	AccountOpened        = "AccountOpened"
	MoneyDeposited       = "MoneyDeposited"
	MoneyWithdrawn       = "MoneyWithdrawn"
)

// Snapshot policies: accounts get many events, customers few.
const (
	accountSnapshotEvery  = 50
	customerSnapshotEvery = 2
)

// Event payloads. Personal data is sealed with the customer's key: the
// payloads hold ciphertext only.
type (
	customerRegistered struct {
		Name  secrets.Sealed `json:"name"`
		Email secrets.Sealed `json:"email"`
	}
	customerEmailChanged struct {
		Email secrets.Sealed `json:"email"`
	}
	accountOpened struct {
		CustomerID string `json:"customerId"`
	}
	moneyMoved struct {
		Amount int64 `json:"amount"`
	}
)

// customer is the customer aggregate's state. It keeps the personal data
// sealed, as the events have it, so that its snapshots hold no plaintext:
// only the edges (the projection's report) decrypt.
type customer struct {
	Registered bool           `json:"registered"`
	Name       secrets.Sealed `json:"name"`
	Email      secrets.Sealed `json:"email"`
}

func applyCustomer(c *customer, e eventstore.StoredEvent) error {
	switch e.Type {
	case CustomerRegistered:
		var p customerRegistered
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		c.Registered, c.Name, c.Email = true, p.Name, p.Email
	case CustomerEmailChanged:
		var p customerEmailChanged
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		c.Email = p.Email
	default:
		return fmt.Errorf("customer: unknown event type %q", e.Type)
	}
	return nil
}

// account is the account aggregate's state: no personal data at all.
type account struct {
	Open         bool   `json:"open"`
	CustomerID   string `json:"customerId"`
	Balance      int64  `json:"balance"`
	Transactions int    `json:"transactions"`
}

func applyAccount(a *account, e eventstore.StoredEvent) error {
	switch e.Type {
	case AccountOpened:
		var p accountOpened
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		a.Open, a.CustomerID = true, p.CustomerID
	case MoneyDeposited, MoneyWithdrawn:
		var p moneyMoved
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return err
		}
		if e.Type == MoneyWithdrawn {
			p.Amount = -p.Amount
		}
		a.Balance += p.Amount
		a.Transactions++
	default:
		return fmt.Errorf("account: unknown event type %q", e.Type)
	}
	return nil
}

// Command errors: the command was refused, nothing was written.
var (
	errExists            = errors.New("already exists")
	errNotFound          = errors.New("not found")
	errInsufficientFunds = errors.New("insufficient funds")
	errBadAmount         = errors.New("the amount must be positive")
)

// bank handles the commands: each loads an aggregate (snapshot plus the
// events after it), decides, and appends, retrying on concurrency conflicts.
type bank struct {
	store     *eventstore.Store
	keys      *secrets.Keyring
	customers *snapshots.Repository[customer]
	accounts  *snapshots.Repository[account]
}

func newBank(s *eventstore.Store) (*bank, error) {
	keys, err := secrets.New(s, nil)
	if err != nil {
		return nil, err
	}
	customers, err := snapshots.New(s, "customer", applyCustomer, &snapshots.Options[customer]{Every: customerSnapshotEvery})
	if err != nil {
		return nil, err
	}
	accounts, err := snapshots.New(s, "account", applyAccount, &snapshots.Options[account]{
		Every:       accountSnapshotEvery,
		MaxAttempts: 100, // many tellers on few accounts
	})
	if err != nil {
		return nil, err
	}
	return &bank{store: s, keys: keys, customers: customers, accounts: accounts}, nil
}

func event(typ string, payload any) (eventstore.Event, error) {
	b, err := json.Marshal(payload)
	return eventstore.Event{Type: typ, Payload: b}, err
}

// RegisterCustomer records a new customer; name and e-mail are encrypted
// with the customer's own key (created here, on first use).
func (b *bank) RegisterCustomer(ctx context.Context, id, name, email string) error {
	sealedName, err := b.keys.Encrypt(ctx, id, name)
	if err != nil {
		return err
	}
	sealedEmail, err := b.keys.Encrypt(ctx, id, email)
	if err != nil {
		return err
	}
	_, err = b.customers.Update(ctx, id, func(c *snapshots.Aggregate[customer]) ([]eventstore.Event, error) {
		if c.State.Registered {
			return nil, fmt.Errorf("customer %s: %w", id, errExists)
		}
		e, err := event(CustomerRegistered, customerRegistered{Name: sealedName, Email: sealedEmail})
		return []eventstore.Event{e}, err
	})
	return err
}

// ChangeEmail records a customer's new e-mail address, encrypted.
func (b *bank) ChangeEmail(ctx context.Context, id, email string) error {
	sealed, err := b.keys.Encrypt(ctx, id, email)
	if err != nil {
		return err
	}
	_, err = b.customers.Update(ctx, id, func(c *snapshots.Aggregate[customer]) ([]eventstore.Event, error) {
		if !c.State.Registered {
			return nil, fmt.Errorf("customer %s: %w", id, errNotFound)
		}
		e, err := event(CustomerEmailChanged, customerEmailChanged{Email: sealed})
		return []eventstore.Event{e}, err
	})
	return err
}

// OpenAccount opens an account for a registered customer who was not
// forgotten.
func (b *bank) OpenAccount(ctx context.Context, id, customerID string) error {
	c, err := b.customers.Load(ctx, customerID)
	if err != nil {
		return err
	}
	if !c.State.Registered {
		return fmt.Errorf("customer %s: %w", customerID, errNotFound)
	}
	if forgotten, err := b.keys.Forgotten(ctx, customerID); err != nil {
		return err
	} else if forgotten {
		return fmt.Errorf("customer %s: %w", customerID, secrets.ErrForgotten)
	}
	_, err = b.accounts.Update(ctx, id, func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) {
		if a.State.Open {
			return nil, fmt.Errorf("account %s: %w", id, errExists)
		}
		e, err := event(AccountOpened, accountOpened{CustomerID: customerID})
		return []eventstore.Event{e}, err
	})
	return err
}

// Deposit adds money to an account. It returns the number of concurrency
// conflicts it retried.
func (b *bank) Deposit(ctx context.Context, id string, amount int64) (int, error) {
	return b.move(ctx, id, MoneyDeposited, amount)
}

// Withdraw takes money from an account, refusing to overdraw it.
func (b *bank) Withdraw(ctx context.Context, id string, amount int64) (int, error) {
	return b.move(ctx, id, MoneyWithdrawn, amount)
}

func (b *bank) move(ctx context.Context, id, typ string, amount int64) (int, error) {
	if amount <= 0 {
		return 0, errBadAmount
	}
	out, err := b.accounts.Update(ctx, id, func(a *snapshots.Aggregate[account]) ([]eventstore.Event, error) {
		switch {
		case !a.State.Open:
			return nil, fmt.Errorf("account %s: %w", id, errNotFound)
		case typ == MoneyWithdrawn && a.State.Balance < amount:
			return nil, fmt.Errorf("account %s: withdraw %d from %d: %w", id, amount, a.State.Balance, errInsufficientFunds)
		}
		e, err := event(typ, moneyMoved{Amount: amount})
		return []eventstore.Event{e}, err
	})
	if out == nil {
		return 0, err
	}
	return out.Conflicts, err
}

// ForgetCustomer erases a customer's personal data for good (a GDPR erasure
// request): the customer's key is deleted, so every sealed field of the
// customer, in every event and snapshot, becomes unreadable. The customer's
// snapshot holds only sealed fields, but it is dropped too (belt and braces).
// Accounts and balances stay: they hold no personal data.
func (b *bank) ForgetCustomer(ctx context.Context, id string) (bool, error) {
	return b.keys.Forget(ctx, id, &secrets.ForgetOptions{SnapshotKeys: []string{b.customers.Key(id)}})
}
