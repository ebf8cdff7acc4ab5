// Command bank is a small bank built on esctl: the event store, aggregates
// rebuilt from snapshots (package snapshots), personal data encrypted per
// customer and forgotten on request (package secrets), and a projection that
// is a durable consumer (package consumer): SQL tables in the store's
// database, committed with its checkpoint.
//
//	go run ./examples/bank                                   # SQLite file ./bank-example.db, recreated
//	go run ./examples/bank -db 'postgres://localhost/app?schema=bank_example'
//	go run ./examples/bank postgres://localhost/app          # the URL may also be the first argument
//
// It prints what it does. A store given by URL must be empty or one this
// example created before (it is then recreated): the example never drops a
// store it did not create.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	_ "github.com/esctl/esctl/adapters/postgres"
	_ "github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
)

// defaultDB is the store used when no URL is given, in the current directory.
const defaultDB = "sqlite://bank-example.db"

// markerKey is a snapshot the example writes into its stores, so that a
// later run recognizes (and may recreate) a store it created.
const markerKey = "examples/bank:marker"

// The projections' consumer names (their tables are named after them):
// the overview that runs, stops and resumes, and a rebuild from position 0.
const (
	overviewName = "bank-overview"
	rebuildName  = "bank-rebuild"
)

// projectionPage is the projection's checkpoint batch.
const projectionPage = 100

type config struct {
	URL      string // "" means defaultDB
	Commands int    // deposits and withdrawals to run concurrently
	Workers  int    // goroutines running them
}

// report is what a run did, for the test.
type report struct {
	Engine                    string
	Commands, Appended        int64
	Refused, Conflicts        int64
	Balances                  map[string]int64 // from the aggregates
	ProjectionBalances        map[string]int64 // from the projection, after resuming
	SnapshotLoads             map[string]snapshotLoad
	Forgotten                 string
	ResumedEvents             int
	Erased                    []string                // customers the resumed projection erased
	Rebuilt                   map[string]customerView // the projection rebuilt from position 0
	EncryptAfterForgetErr     error
	Scanned                   bool     // the SQLite files were scanned
	ScanFound                 []string // what the scan found of the forgotten customer (nothing, we hope)
	ScanControlFound          bool     // the scan found a live customer's key (the scan works)
	TellerConflict            bool     // the step-by-step conflict happened
	TellerRetriedToVersion    int64
	DeleteSecretEventPosition int64
}

type snapshotLoad struct {
	Version, SnapshotVersion int64
	EventsRead               int
}

var people = []struct{ id, name, email string }{
	{"customer-alice", "Alice Martin", "alice.martin@example.com"},
	{"customer-bob", "Bob Chen", "bob.chen@example.com"},
	{"customer-carol", "Carol Diaz", "carol.diaz@example.com"},
}

var accountsOf = map[string][]string{
	"customer-alice": {"account-alice-1", "account-alice-2"},
	"customer-bob":   {"account-bob-1"},
	"customer-carol": {"account-carol-1"},
}

// forgetting is the customer who asks to be forgotten.
const forgetting = "customer-carol"

func main() {
	fs := flag.NewFlagSet("bank", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./examples/bank [-db URL | URL] [-commands N] [-workers N]\n\n")
		fs.PrintDefaults()
	}
	db := fs.String("db", "", "store URL: "+eventstore.AcceptedURLs()+` (default "`+defaultDB+`", recreated on each run)`)
	commands := fs.Int("commands", 400, "deposits and withdrawals to run")
	workers := fs.Int("workers", 8, "goroutines running them concurrently")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	url := *db
	switch {
	case fs.NArg() > 1 || (fs.NArg() == 1 && url != ""):
		fmt.Fprintln(os.Stderr, "bank: give the store URL once, with -db or as the only argument")
		os.Exit(2)
	case fs.NArg() == 1:
		url = fs.Arg(0)
	}
	if *commands < 0 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "bank: -commands must be at least 0 and -workers at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := run(ctx, os.Stdout, config{URL: url, Commands: *commands, Workers: *workers}); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// run runs the whole scenario on the store at cfg.URL and prints what it did
// to out.
func run(ctx context.Context, out io.Writer, cfg config) (*report, error) {
	rep := &report{Commands: int64(cfg.Commands)}
	url := cmp.Or(cfg.URL, defaultDB)
	s, err := openFresh(ctx, url, cfg.URL == "")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rep.Engine = s.Engine()
	fmt.Fprintf(out, "bank example on %s (%s), created fresh\n", eventstore.RedactURL(url), s.Engine())
	b, err := newBank(s)
	if err != nil {
		return nil, err
	}

	// 1. Customers: personal data encrypted with a key per customer.
	fmt.Fprintln(out, "\n1. Customers. Names and e-mails are encrypted with a key per customer (AES-256-GCM);")
	fmt.Fprintln(out, "   the keys live in the store's secrets table, the events hold only ciphertext.")
	for _, p := range people {
		if err := b.RegisterCustomer(ctx, p.id, p.name, p.email); err != nil {
			return nil, err
		}
	}
	if err := b.ChangeEmail(ctx, "customer-alice", "alice@martin.example"); err != nil {
		return nil, err
	}
	first, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{forgetting}})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "   registered %d customers; %s changed her e-mail\n", len(people), "customer-alice")
	fmt.Fprintf(out, "   %s's event as stored: %s %s\n", forgetting, first.Type, shorten(string(first.Payload), 90))

	// 2. Accounts.
	var accountIDs []string
	for _, p := range people {
		for _, acc := range accountsOf[p.id] {
			if err := b.OpenAccount(ctx, acc, p.id); err != nil {
				return nil, err
			}
			if _, err := b.Deposit(ctx, acc, 100); err != nil {
				return nil, err
			}
			accountIDs = append(accountIDs, acc)
		}
	}
	fmt.Fprintf(out, "\n2. Accounts. Opened %s with a deposit of 100 each.\n", strings.Join(accountIDs, ", "))

	// 3. Concurrent commands: conflicts retried by reloading and deciding again.
	if err := runCommands(ctx, b, accountIDs, cfg, rep); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n3. Commands. %d deposits and withdrawals from %d goroutines on %d accounts:\n", cfg.Commands, cfg.Workers, len(accountIDs))
	fmt.Fprintf(out, "   %d appended, %d withdrawals refused (insufficient funds), %d concurrency conflicts retried\n",
		rep.Appended, rep.Refused, rep.Conflicts)
	fmt.Fprintln(out, "   (a conflict: another teller appended to the account first; the command reloads the account and decides again)")

	// 4. One conflict, step by step.
	if err := tellers(ctx, out, b, "account-bob-1", rep); err != nil {
		return nil, err
	}

	// 5. Snapshots.
	fmt.Fprintf(out, "\n5. Snapshots. Accounts are snapshotted every %d events; a load reads the snapshot and the events after it:\n", accountSnapshotEvery)
	rep.Balances = map[string]int64{}
	rep.SnapshotLoads = map[string]snapshotLoad{}
	for _, id := range accountIDs {
		a, err := b.accounts.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		rep.Balances[id] = a.State.Balance
		rep.SnapshotLoads[id] = snapshotLoad{Version: a.Version, SnapshotVersion: a.Loaded.SnapshotVersion, EventsRead: a.Loaded.EventsRead}
		from := "no snapshot yet"
		if a.Loaded.SnapshotVersion > 0 {
			from = fmt.Sprintf("snapshot at version %d", a.Loaded.SnapshotVersion)
		}
		fmt.Fprintf(out, "   %-16s version %4d, balance %5d: %s + %d events read (of %d)\n",
			id, a.Version, a.State.Balance, from, a.Loaded.EventsRead, a.Version)
	}

	// 6. The projection, a durable consumer, from the start until it is
	// caught up; its tables and checkpoint commit together.
	p, err := newProjection(ctx, s, b.keys, overviewName)
	if err != nil {
		return nil, err
	}
	at, err := s.Describe(ctx, nil)
	if err != nil {
		return nil, err
	}
	events, err := p.Run(ctx, projectionPage, func(cp int64) bool { return cp >= at.LastPosition })
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n6. Projection. The durable consumer %q handled %d events into its SQL tables, committing them with its\n", overviewName, events)
	fmt.Fprintf(out, "   checkpoint every %d events; stopped at checkpoint %d.\n", projectionPage, at.LastPosition)
	if err := printCustomers(ctx, out, p); err != nil {
		return nil, err
	}

	// 7. A customer asks to be forgotten.
	carolKey, _, err := s.Secrets().GetSecret(ctx, b.keys.KeyID(forgetting)) // only to scan for it in step 10
	if err != nil {
		return nil, err
	}
	forgot, err := b.ForgetCustomer(ctx, forgetting)
	if err != nil {
		return nil, err
	}
	if !forgot {
		return nil, fmt.Errorf("%s was already forgotten", forgetting)
	}
	del, err := s.LatestEvent(ctx, eventstore.Filter{EventTypes: []string{eventstore.DeleteSecretEventType}})
	if err != nil {
		return nil, err
	}
	rep.Forgotten = forgetting
	rep.DeleteSecretEventPosition = del.Position
	fmt.Fprintf(out, "\n7. Forget. %s asked to be forgotten: her key was deleted (a tombstone, and a %s event at position %d).\n",
		forgetting, eventstore.DeleteSecretEventType, del.Position)
	fmt.Fprintln(out, "   Her events stay in the log, unreadable; her account stays too: it holds no personal data.")
	_, rep.EncryptAfterForgetErr = b.keys.Encrypt(ctx, forgetting, "Carol D.")
	fmt.Fprintf(out, "   storing new personal data for her now fails: %v\n", rep.EncryptAfterForgetErr)
	if _, err := b.Deposit(ctx, "account-carol-1", 25); err != nil {
		return nil, err
	}
	if _, err := b.Deposit(ctx, "account-bob-1", 5); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "   then 25 was deposited on account-carol-1 and 5 on account-bob-1")

	// 8. The projection restarts from its checkpoint and follows the store
	// live: it catches up, then a deposit made while it follows reaches it
	// as it commits.
	resumedAt, err := consumer.Get(ctx, s, overviewName)
	if err != nil {
		return nil, fmt.Errorf("the projection's checkpoint was not found: %w", err)
	}
	from := resumedAt.Checkpoint
	end, err := s.Describe(ctx, nil)
	if err != nil {
		return nil, err
	}
	liveAt := end.LastPosition + 1 // nothing else writes now: the live deposit's position
	followed := make(chan error, 1)
	caughtUp := make(chan struct{})
	go func() {
		var once sync.Once
		_, err := p.Run(ctx, projectionPage, func(cp int64) bool {
			if cp >= end.LastPosition {
				once.Do(func() { close(caughtUp) })
			}
			return cp >= liveAt
		})
		followed <- err
	}()
	select {
	case <-caughtUp:
	case err := <-followed:
		return nil, fmt.Errorf("the projection stopped before catching up: %v", err)
	}
	if _, err := b.Deposit(ctx, "account-alice-1", 10); err != nil {
		return nil, err
	}
	if err := <-followed; err != nil {
		return nil, err
	}
	events = end.LastPosition - from
	rep.ResumedEvents = int(events)
	if rep.Erased, err = p.Erased(ctx); err != nil {
		return nil, err
	}
	if rep.ProjectionBalances, err = p.Balances(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n8. Projection restarted from its checkpoint at position %d, following the store live: caught up %d new events,\n", from, events)
	fmt.Fprintf(out, "   then got a deposit of 10 on account-alice-1 (position %d) as it committed;\n", liveAt)
	fmt.Fprintf(out, "   it saw the %s event and erased %s from its read model.\n", eventstore.DeleteSecretEventType, strings.Join(rep.Erased, ", "))
	same := "match"
	for _, id := range accountIDs {
		a, err := b.accounts.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		rep.Balances[id] = a.State.Balance
		if rep.ProjectionBalances[id] != a.State.Balance {
			same = "DO NOT MATCH"
		}
	}
	fmt.Fprintf(out, "   its balances %s the aggregates' (%d accounts).\n", same, len(accountIDs))

	// 9. A projection rebuilt from the first event cannot recover her data.
	p3, err := newProjection(ctx, s, b.keys, rebuildName)
	if err != nil {
		return nil, err
	}
	last, err := s.Describe(ctx, nil)
	if err != nil {
		return nil, err
	}
	events, err = p3.Run(ctx, projectionPage, func(cp int64) bool { return cp >= last.LastPosition })
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n9. Projection rebuilt from position 0 (consumer %q, %d events): her fields no longer decrypt, the others' do.\n", rebuildName, events)
	if err := printCustomers(ctx, out, p3); err != nil {
		return nil, err
	}
	views, err := p3.Customers(ctx)
	if err != nil {
		return nil, err
	}
	rep.Rebuilt = map[string]customerView{}
	for _, v := range views {
		rep.Rebuilt[v.ID] = v
	}

	// 10. What is left in the SQLite files.
	if err := scanFiles(ctx, out, s, url, carolKey, b, rep); err != nil {
		return nil, err
	}

	d, err := s.Describe(ctx, nil)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\nThe store now holds %d events, %d secrets (%d deleted); last position %d.\n",
		d.EventCount, d.SecretCount, d.DeletedSecretCount, d.LastPosition)
	return rep, nil
}

// openFresh opens the store at url and recreates it. A store given by the
// user is recreated only when it is empty or was created by this example.
func openFresh(ctx context.Context, url string, ours bool) (*eventstore.Store, error) {
	s, err := eventstore.Open(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*eventstore.Store, error) { _ = s.Close(); return nil, err }
	if err := s.Init(ctx); err != nil {
		return fail(err)
	}
	if !ours {
		d, err := s.Describe(ctx, nil)
		if err != nil {
			return fail(err)
		}
		_, marked, err := s.LoadSnapshot(ctx, markerKey)
		if err != nil {
			return fail(err)
		}
		if (d.EventCount > 0 || d.SecretCount > 0) && !marked {
			return fail(fmt.Errorf("the store at %s holds %d events and %d secrets and was not created by this example: "+
				"give an empty database (or a new schema: ?schema=bank_example)", eventstore.RedactURL(url), d.EventCount, d.SecretCount))
		}
	}
	for _, name := range []string{overviewName, rebuildName} {
		if err := dropProjection(ctx, s, name); err != nil {
			return fail(err)
		}
	}
	if err := s.Drop(ctx); err != nil {
		return fail(err)
	}
	if err := s.Init(ctx); err != nil {
		return fail(err)
	}
	if err := s.SaveSnapshot(ctx, markerKey, []byte(`{"createdBy":"examples/bank"}`)); err != nil {
		return fail(err)
	}
	return s, nil
}

// runCommands runs cfg.Commands random deposits and withdrawals from
// cfg.Workers goroutines.
func runCommands(ctx context.Context, b *bank, accountIDs []string, cfg config, rep *report) error {
	var appended, refused, conflicts atomic.Int64
	jobs := make(chan int)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 8))
			for range jobs {
				id := accountIDs[rng.IntN(len(accountIDs))]
				amount := int64(1 + rng.IntN(60))
				var n int
				var err error
				if rng.IntN(2) == 0 {
					n, err = b.Withdraw(ctx, id, amount)
				} else {
					n, err = b.Deposit(ctx, id, amount)
				}
				conflicts.Add(int64(n))
				switch {
				case err == nil:
					appended.Add(1)
				case errors.Is(err, errInsufficientFunds):
					refused.Add(1)
				default:
					cancel(err)
					return
				}
			}
		})
	}
send:
	for i := range cfg.Commands {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	rep.Appended, rep.Refused, rep.Conflicts = appended.Load(), refused.Load(), conflicts.Load()
	return nil
}

// tellers shows one concurrency conflict step by step.
func tellers(ctx context.Context, out io.Writer, b *bank, id string, rep *report) error {
	t1, err := b.accounts.Load(ctx, id)
	if err != nil {
		return err
	}
	t2, err := b.accounts.Load(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n4. A conflict, step by step. Two tellers load %s at version %d (balance %d) and each deposit 10.\n", id, t1.Version, t1.State.Balance)
	dep, err := event(MoneyDeposited, moneyMoved{Amount: 10})
	if err != nil {
		return err
	}
	if _, err := b.accounts.Append(ctx, t1, dep); err != nil {
		return err
	}
	fmt.Fprintf(out, "   teller 1 saved version %d\n", t1.Version)
	_, err = b.accounts.Append(ctx, t2, dep)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) {
		return fmt.Errorf("expected a concurrency conflict, got %v", err)
	}
	rep.TellerConflict = true
	fmt.Fprintf(out, "   teller 2 got: %v\n", err)
	conflicts, err := b.Deposit(ctx, id, 10) // Update: load, decide, append
	if err != nil {
		return err
	}
	a, err := b.accounts.Load(ctx, id)
	if err != nil {
		return err
	}
	rep.TellerRetriedToVersion = a.Version
	fmt.Fprintf(out, "   teller 2 ran the command again: reloaded the account, saved version %d (%d further conflicts); balance %d\n",
		a.Version, conflicts, a.State.Balance)
	return nil
}

func printCustomers(ctx context.Context, out io.Writer, p *projection) error {
	views, err := p.Customers(ctx)
	if err != nil {
		return err
	}
	for _, v := range views {
		fmt.Fprintf(out, "   %-15s %-13s %-25s %s: %d\n", v.ID, v.Name, v.Email, strings.Join(v.Accounts, "+"), v.Balance)
	}
	return nil
}

// scanFiles looks for the forgotten customer's plaintext and key in the
// SQLite database files, byte by byte. A live customer's key serves as a
// control: the scan must find it.
func scanFiles(ctx context.Context, out io.Writer, s *eventstore.Store, url, forgottenKey string, b *bank, rep *report) error {
	path, ok := strings.CutPrefix(url, "sqlite://")
	if s.Engine() != "sqlite" || !ok {
		fmt.Fprintln(out, "\n10. Files. Not scanned: PostgreSQL keeps a deleted key in dead row versions until VACUUM and in")
		fmt.Fprintln(out, "    WAL segments, archives and base backups until they expire (see the secrets package documentation).")
		return nil
	}
	path, _, _ = strings.Cut(path, "?")
	aliceKey, _, err := s.Secrets().GetSecret(ctx, b.keys.KeyID("customer-alice"))
	if err != nil {
		return err
	}
	var files []byte
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		files = append(files, data...)
	}
	var carol struct{ name, email string }
	for _, p := range people {
		if p.id == forgetting {
			carol.name, carol.email = p.name, p.email
		}
	}
	needles := map[string]string{"name": carol.name, "e-mail": carol.email, "key": strings.TrimPrefix(forgottenKey, "A256GCM:")}
	for _, what := range slices.Sorted(maps.Keys(needles)) {
		if bytes.Contains(files, []byte(needles[what])) {
			rep.ScanFound = append(rep.ScanFound, what)
		}
	}
	rep.Scanned = true
	rep.ScanControlFound = bytes.Contains(files, []byte(strings.TrimPrefix(aliceKey, "A256GCM:")))
	found := "none found"
	if len(rep.ScanFound) > 0 {
		found = "FOUND " + strings.Join(rep.ScanFound, ", ")
	}
	control := "customer-alice's key is there, as expected"
	if !rep.ScanControlFound {
		control = "but customer-alice's key was not found either: the scan is broken"
	}
	fmt.Fprintf(out, "\n10. Files. Scanned %s, -wal and -shm (%d bytes) for %s's name, e-mail and key: %s\n", path, len(files), forgetting, found)
	fmt.Fprintf(out, "    (%s).\n", control)
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
