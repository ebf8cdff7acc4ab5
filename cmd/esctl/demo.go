package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
)

// DemoDB is the store the demo (re)creates.
const DemoDB = "sqlite://./esctl-demo.db"

func demoCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a small CQRS scenario on a SQLite store in the current directory",
		Description: "Creates (or re-creates) the store " + DemoDB + " and runs a bank scenario on it:\n" +
			"accounts opened, hundreds of deposits and withdrawals from concurrent goroutines,\n" +
			"a concurrency conflict handled by reloading and retrying, a projection that pages\n" +
			"through the store by cursor, and a freeze. It prints what it did and the store's\n" +
			"description. --db is ignored: the demo never touches your store.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "commands", Value: 400, Usage: "number of deposit/withdraw commands to run"},
			&cli.IntFlag{Name: "workers", Value: 8, Usage: "goroutines issuing commands concurrently"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Int("commands") < 1 || cmd.Int("workers") < 1 {
				return usagef("--commands and --workers must be at least 1")
			}
			return runDemo(ctx, e, int(cmd.Int("commands")), int(cmd.Int("workers")))
		},
	}
}

// account is the demo's aggregate, rebuilt from its events.
type account struct {
	id      string
	version int64
	open    bool
	balance int64
}

type amountPayload struct {
	Amount int64 `json:"amount"`
}

func (a *account) apply(e eventstore.StoredEvent) error {
	var p amountPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return fmt.Errorf("event %d: %w", e.Position, err)
	}
	switch e.Type {
	case "AccountOpened":
		a.open = true
		a.balance = p.Amount
	case "MoneyDeposited":
		a.balance += p.Amount
	case "MoneyWithdrawn":
		a.balance -= p.Amount
	}
	a.version = e.AggregateVersion
	return nil
}

// loadAccount rebuilds an account from its events.
func loadAccount(ctx context.Context, s *eventstore.Store, id string) (*account, error) {
	a := &account{id: id}
	for e, err := range s.Events(ctx, eventstore.Filter{AggregateIDs: []string{id}}) {
		if err != nil {
			return nil, err
		}
		if err := a.apply(e); err != nil {
			return nil, err
		}
	}
	return a, nil
}

var errInsufficientFunds = errors.New("insufficient funds")

// handle runs one command against an account: load, decide, append the next
// version. On a concurrency conflict it reloads and decides again.
func handle(ctx context.Context, s *eventstore.Store, id, typ string, amount int64, retries *atomic.Int64) error {
	for {
		a, err := loadAccount(ctx, s, id)
		if err != nil {
			return err
		}
		if typ == "MoneyWithdrawn" && a.balance < amount {
			return errInsufficientFunds
		}
		_, err = s.SaveEvent(ctx, eventstore.Event{
			AggregateID: id, AggregateVersion: a.version + 1, Type: typ,
			Payload: fmt.Appendf(nil, `{"amount":%d}`, amount),
		})
		if errors.Is(err, eventstore.ErrConflict) {
			retries.Add(1)
			continue
		}
		return err
	}
}

func runDemo(ctx context.Context, e *env, commands, workers int) error {
	out := e.stdout
	s, err := eventstore.Open(ctx, DemoDB, &eventstore.Options{Logger: e.log})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Drop(ctx); err != nil {
		return err
	}
	if err := s.Init(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "store %s (engine %s), created fresh\n", DemoDB, s.Engine())

	ids := []string{"account-alice", "account-bob", "account-carol", "account-dave", "account-erin"}
	for i, id := range ids {
		if _, err := s.SaveEvent(ctx, eventstore.Event{
			AggregateID: id, AggregateVersion: 1, Type: "AccountOpened",
			Payload: fmt.Appendf(nil, `{"amount":%d}`, 100*(i+1)),
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "opened %d accounts\n", len(ids))

	// Concurrent commands on shared accounts: conflicts are expected and
	// handled by reloading the aggregate and deciding again.
	var retries, refused atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range jobs {
				id := ids[rng.IntN(len(ids))]
				typ, amount := "MoneyDeposited", int64(1+rng.IntN(50))
				if rng.IntN(3) == 0 {
					typ = "MoneyWithdrawn"
				}
				err := handle(ctx, s, id, typ, amount, &retries)
				switch {
				case errors.Is(err, errInsufficientFunds):
					refused.Add(1)
				case err != nil:
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < commands; i++ {
		select {
		case jobs <- i:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Fprintf(out, "ran %d commands from %d goroutines: %d appended, %d withdrawals refused for insufficient funds, %d concurrency conflicts retried\n",
		commands, workers, int64(commands)-refused.Load(), refused.Load(), retries.Load())

	// A conflict, step by step: two tellers read the same version.
	a1, err := loadAccount(ctx, s, "account-alice")
	if err != nil {
		return err
	}
	a2 := *a1
	if _, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: a1.id, AggregateVersion: a1.version + 1, Type: "MoneyDeposited", Payload: []byte(`{"amount":10}`)}); err != nil {
		return err
	}
	_, err = s.SaveEvent(ctx, eventstore.Event{AggregateID: a2.id, AggregateVersion: a2.version + 1, Type: "MoneyDeposited", Payload: []byte(`{"amount":10}`)})
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("expected a concurrency conflict, got %v", err)
	}
	fmt.Fprintf(out, "two tellers read %s at version %d and deposited 10 each: the second got %q\n", a1.id, a1.version, err)
	if err := handle(ctx, s, a2.id, "MoneyDeposited", 10, &retries); err != nil {
		return err
	}
	a3, err := loadAccount(ctx, s, a2.id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  it reloaded the account and retried: saved at version %d, balance %d\n", a3.version, a3.balance)

	// A projection: page through the whole store by cursor.
	balances := map[string]*account{}
	var cursor eventstore.Cursor
	pages, events := 0, 0
	for {
		page, err := s.LoadEvents(ctx, eventstore.Filter{Cursor: cursor, Limit: 50})
		if err != nil {
			return err
		}
		if len(page.Events) == 0 {
			break
		}
		pages++
		events += len(page.Events)
		for _, ev := range page.Events {
			acc := balances[ev.AggregateID]
			if acc == nil {
				acc = &account{id: ev.AggregateID}
				balances[ev.AggregateID] = acc
			}
			if err := acc.apply(ev); err != nil {
				return err
			}
		}
		cursor = page.Cursor
	}
	fmt.Fprintf(out, "projection: read %d events in %d pages of up to 50 by cursor (resume cursor %s)\n", events, pages, cursor)
	sort.Strings(ids)
	for _, id := range ids {
		agg, err := loadAccount(ctx, s, id)
		if err != nil {
			return err
		}
		match := "matches"
		if agg.balance != balances[id].balance {
			match = "DOES NOT MATCH"
		}
		fmt.Fprintf(out, "  %-14s balance %5d at version %3d (%s the aggregate)\n", id, balances[id].balance, balances[id].version, match)
	}

	// Freeze: appends are refused until unfreeze.
	if err := s.Freeze(ctx, "esctl demo"); err != nil {
		return err
	}
	err = handle(ctx, s, "account-bob", "MoneyDeposited", 1, &retries)
	if !errors.Is(err, eventstore.ErrFrozen) {
		return fmt.Errorf("expected the frozen store to refuse a deposit, got %v", err)
	}
	fmt.Fprintf(out, "froze the store: a deposit was refused (%v)\n", err)
	if err := s.Unfreeze(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "unfroze the store")

	d, err := s.Describe(ctx, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "description:")
	enc := json.NewEncoder(out)
	enc.SetIndent("  ", "  ")
	fmt.Fprint(out, "  ")
	return enc.Encode(d)
}
