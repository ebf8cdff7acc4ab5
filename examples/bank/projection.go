package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/secrets"
)

// The projection is a durable consumer (package consumer): the store keeps
// its checkpoint, and it keeps the bank overview in two SQL tables of the
// store's own database, written in the transaction that also saves the
// checkpoint (consumer.TxFunc). The overview and the checkpoint change
// together, exactly once per event, whatever crashes; a restart resumes
// from the checkpoint. It keeps the customers' personal data sealed, as the
// events have it, and decrypts it only to show it.
type projection struct {
	store *eventstore.Store
	keys  *secrets.Keyring
	name  string // the consumer's name; its tables are named after it
}

// Table layout, per projection (prefix: the consumer name with _ for -).
const (
	createCustomersSQL = `CREATE TABLE IF NOT EXISTS %s_customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, forgotten BOOLEAN NOT NULL)`
	createAccountsSQL  = `CREATE TABLE IF NOT EXISTS %s_accounts (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, balance BIGINT NOT NULL, transactions BIGINT NOT NULL)`
	dropCustomersSQL   = `DROP TABLE IF EXISTS %s_customers`
	dropAccountsSQL    = `DROP TABLE IF EXISTS %s_accounts`
	registerSQL        = `INSERT INTO %s_customers (id, name, email, forgotten) VALUES ($1, $2, $3, false)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email`
	changeEmailSQL = `UPDATE %s_customers SET email = $2 WHERE id = $1 AND NOT forgotten`
	forgetSQL      = `UPDATE %s_customers SET name = '', email = '', forgotten = true WHERE id = $1`
	openAccountSQL = `INSERT INTO %s_accounts (id, customer_id, balance, transactions) VALUES ($1, $2, 0, 0)`
	moveMoneySQL   = `UPDATE %s_accounts SET balance = balance + $2, transactions = transactions + 1 WHERE id = $1`
	customersSQL   = `SELECT id, name, email, forgotten FROM %s_customers ORDER BY id`
	accountsSQL    = `SELECT id, customer_id, balance FROM %s_accounts ORDER BY id`
)

// tx is the part of a transaction on the store's database the projection
// uses, on either engine: the handler's, or one of consumer.WithTx.
type tx interface {
	exec(ctx context.Context, q string, args ...any) (rows int64, err error)
	query(ctx context.Context, q string, scan func(row func(dest ...any) error) error) error
}

// pgTx is a PostgreSQL transaction.
type pgTx struct{ pgx.Tx }

func (t pgTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.Exec(ctx, q, args...)
	return tag.RowsAffected(), err
}

func (t pgTx) query(ctx context.Context, q string, scan func(row func(dest ...any) error) error) error {
	rows, err := t.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scanRows(rows, scan)
}

// liteTx is a SQLite transaction; $n becomes SQLite's ?n.
type liteTx struct{ *sql.Tx }

func (t liteTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := t.ExecContext(ctx, strings.ReplaceAll(q, "$", "?"), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t liteTx) query(ctx context.Context, q string, scan func(row func(dest ...any) error) error) error {
	rows, err := t.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scanRows(rows, scan)
}

// scanRows hands each row of pgx.Rows or *sql.Rows to scan.
func scanRows(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}, scan func(row func(dest ...any) error) error) error {
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// withTx runs fn in a transaction of the store's database, committed when
// fn returns nil.
func withTx(ctx context.Context, s *eventstore.Store, fn func(ctx context.Context, t tx) error) error {
	if s.Engine() == "postgres" {
		return consumer.WithTx(ctx, s, func(ctx context.Context, t pgx.Tx) error { return fn(ctx, pgTx{t}) })
	}
	return consumer.WithTx(ctx, s, func(ctx context.Context, t *sql.Tx) error { return fn(ctx, liteTx{t}) })
}

// newProjection returns the projection of consumer name, creating its
// tables if they do not exist.
func newProjection(ctx context.Context, s *eventstore.Store, keys *secrets.Keyring, name string) (*projection, error) {
	p := &projection{store: s, keys: keys, name: name}
	err := withTx(ctx, s, func(ctx context.Context, t tx) error {
		for _, q := range []string{createCustomersSQL, createAccountsSQL} {
			if _, err := t.exec(ctx, p.sql(q)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projection %s: create its tables: %w", name, err)
	}
	return p, nil
}

// dropProjection drops a projection's tables and forgets its consumer.
func dropProjection(ctx context.Context, s *eventstore.Store, name string) error {
	p := &projection{name: name}
	err := withTx(ctx, s, func(ctx context.Context, t tx) error {
		for _, q := range []string{dropCustomersSQL, dropAccountsSQL} {
			if _, err := t.exec(ctx, p.sql(q)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := consumer.Delete(ctx, s, name, nil); err != nil && !errors.Is(err, consumer.ErrNotFound) {
		return err
	}
	return nil
}

// prefix is the tables' name prefix (the name holds letters, digits and -).
func (p *projection) prefix() string { return strings.ReplaceAll(p.name, "-", "_") }

func (p *projection) sql(q string) string { return strings.ReplaceAll(q, "%s", p.prefix()) }

// handler applies each event in the consumer's transaction.
func (p *projection) handler() consumer.Handler {
	if p.store.Engine() == "postgres" {
		return consumer.TxFunc(func(ctx context.Context, t pgx.Tx, e *eventstore.StoredEvent) error { return p.apply(ctx, pgTx{t}, e) })
	}
	return consumer.TxFunc(func(ctx context.Context, t *sql.Tx, e *eventstore.StoredEvent) error {
		return p.apply(ctx, liteTx{t}, e)
	})
}

// Run runs the projection's consumer until until(checkpoint) holds for the
// checkpoint it saved, then stops it (a restart: the next Run resumes
// there). It returns the events it handled.
func (p *projection) Run(ctx context.Context, pageSize int, until func(checkpoint int64) bool) (int64, error) {
	c, err := consumer.New(p.store, p.name, p.handler(), &consumer.Options{
		CheckpointEvery: pageSize, CheckpointInterval: 10 * time.Millisecond,
		MaxAttempts: 1, // a bug in the example must not be parked quietly
	})
	if err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	for !until(c.Stats().Checkpoint) {
		select {
		case err := <-ran:
			return c.Stats().Handled, fmt.Errorf("projection %s stopped: %v", p.name, err)
		case <-time.After(5 * time.Millisecond):
		}
		if st := c.Stats(); st.Parked > 0 {
			return st.Handled, fmt.Errorf("projection %s failed on an event (esctl consumers parked %s)", p.name, p.name)
		}
	}
	stop()
	return c.Stats().Handled, <-ran
}

func (p *projection) apply(ctx context.Context, t tx, e *eventstore.StoredEvent) error {
	if subject, ok := p.keys.ForgottenSubject(*e); ok {
		// The customer's key was deleted: erase what the read model holds.
		_, err := t.exec(ctx, p.sql(forgetSQL), subject)
		return err
	}
	switch e.Type {
	case CustomerRegistered:
		var pl customerRegistered
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		_, err := t.exec(ctx, p.sql(registerSQL), e.AggregateID, string(pl.Name), string(pl.Email))
		return err
	case CustomerEmailChanged:
		var pl customerEmailChanged
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		_, err := t.exec(ctx, p.sql(changeEmailSQL), e.AggregateID, string(pl.Email))
		return err
	case AccountOpened:
		var pl accountOpened
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		_, err := t.exec(ctx, p.sql(openAccountSQL), e.AggregateID, pl.CustomerID)
		return err
	case MoneyDeposited, MoneyWithdrawn:
		var pl moneyMoved
		if err := json.Unmarshal(e.Payload, &pl); err != nil {
			return err
		}
		if e.Type == MoneyWithdrawn {
			pl.Amount = -pl.Amount
		}
		n, err := t.exec(ctx, p.sql(moveMoneySQL), e.AggregateID, pl.Amount)
		if err == nil && n != 1 {
			err = fmt.Errorf("%s on unknown account %s", e.Type, e.AggregateID)
		}
		return err
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

type customerRow struct {
	id          string
	name, email secrets.Sealed
	forgotten   bool
}

type accountRow struct {
	id, customerID string
	balance        int64
}

// read returns the projection's tables.
func (p *projection) read(ctx context.Context) (customers []customerRow, accounts []accountRow, err error) {
	err = withTx(ctx, p.store, func(ctx context.Context, t tx) error {
		err := t.query(ctx, p.sql(customersSQL), func(row func(dest ...any) error) error {
			var c customerRow
			var name, email string
			if err := row(&c.id, &name, &email, &c.forgotten); err != nil {
				return err
			}
			c.name, c.email = secrets.Sealed(name), secrets.Sealed(email)
			customers = append(customers, c)
			return nil
		})
		if err != nil {
			return err
		}
		return t.query(ctx, p.sql(accountsSQL), func(row func(dest ...any) error) error {
			var a accountRow
			if err := row(&a.id, &a.customerID, &a.balance); err != nil {
				return err
			}
			accounts = append(accounts, a)
			return nil
		})
	})
	return customers, accounts, err
}

// Customers returns the customers, decrypted, in id order. A forgotten
// customer's fields read ForgottenText: the projection never fails on them.
func (p *projection) Customers(ctx context.Context) ([]customerView, error) {
	customers, accounts, err := p.read(ctx)
	if err != nil {
		return nil, err
	}
	var out []customerView
	for _, row := range customers {
		v := customerView{ID: row.id, Name: secrets.ForgottenText, Email: secrets.ForgottenText, Forgotten: true}
		if !row.forgotten {
			if v, err = p.decrypt(ctx, row); err != nil {
				return nil, err
			}
		}
		for _, a := range accounts {
			if a.customerID == row.id {
				v.Accounts = append(v.Accounts, a.id)
				v.Balance += a.balance
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// decrypt shows a customer's row: a key deleted meanwhile reads as
// forgotten.
func (p *projection) decrypt(ctx context.Context, row customerRow) (customerView, error) {
	name, err := p.keys.Decrypt(ctx, row.id, row.name)
	if err != nil {
		return customerView{}, err
	}
	email, err := p.keys.Decrypt(ctx, row.id, row.email)
	if err != nil {
		return customerView{}, err
	}
	v := customerView{ID: row.id, Name: name.String(), Email: email.String(), Forgotten: name.Forgotten}
	if v.Forgotten {
		v.Name, v.Email = secrets.ForgottenText, secrets.ForgottenText
	}
	return v, nil
}

// Erased returns the customers the projection erased (it saw their key's
// deletion).
func (p *projection) Erased(ctx context.Context) ([]string, error) {
	customers, _, err := p.read(ctx)
	var out []string
	for _, c := range customers {
		if c.forgotten {
			out = append(out, c.id)
		}
	}
	return out, err
}

// Balances returns every account's balance.
func (p *projection) Balances(ctx context.Context) (map[string]int64, error) {
	_, accounts, err := p.read(ctx)
	out := make(map[string]int64, len(accounts))
	for _, a := range accounts {
		out[a.id] = a.balance
	}
	return out, err
}
