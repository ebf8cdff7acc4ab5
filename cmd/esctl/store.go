package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/adapters/sqlite"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/migrations"
)

// storeStateError is a store whose state refuses the command (exit 4).
type storeStateError struct{ err error }

func (e *storeStateError) Error() string { return e.err.Error() }
func (e *storeStateError) Unwrap() error { return e.err }

func stateErrorf(format string, args ...any) error {
	return &storeStateError{fmt.Errorf(format, args...)}
}

// storeAction is the action of a command that works on the existing store
// at --db: fn gets it open.
func (e *env) storeAction(fn func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		s, err := e.openExisting(ctx, cmd)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(ctx, cmd, s)
	}
}

// dbURL is the --db value.
func dbURL(cmd *cli.Command) string { return cmd.Root().String("db") }

// openExisting opens the store at --db for a command that must not create
// one: a SQLite file that does not exist is an error, not a new empty file.
func (e *env) openExisting(ctx context.Context, cmd *cli.Command) (*eventstore.Store, error) {
	return e.openURL(ctx, dbURL(cmd), false)
}

// openURL opens the store at rawURL; with create, a missing SQLite file is
// created.
func (e *env) openURL(ctx context.Context, rawURL string, create bool) (*eventstore.Store, error) {
	path, missing, err := missingFile(rawURL)
	if err != nil {
		return nil, err
	}
	if missing && !create {
		return nil, stateErrorf("no store at %s: the file does not exist (create one with: esctl --db %s init)", path, eventstore.RedactURL(rawURL))
	}
	return eventstore.Open(ctx, rawURL, e.storeOptions(rawURL))
}

// missingFile reports whether rawURL names a SQLite file that does not
// exist, and its path.
func missingFile(rawURL string) (path string, missing bool, err error) {
	engine, err := eventstore.EngineForURL(rawURL)
	if err != nil {
		return "", false, usagef("%v", err)
	}
	if engine != "sqlite" {
		return "", false, nil
	}
	path, err = sqlite.PathFromURL(rawURL)
	if err != nil {
		return "", false, usagef("%v", err)
	}
	_, err = os.Stat(path)
	return path, errors.Is(err, os.ErrNotExist), nil
}

func initCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the store (or bring its schema up to date); safe to run again",
		Description: "Applies the embedded migrations to the database named by --db: on PostgreSQL in\n" +
			"the URL's schema (?schema=NAME, created if missing), on SQLite in the file (created\n" +
			"if missing). Running it on an up-to-date store changes nothing.\n\n" +
			"Examples:\n  esctl --db sqlite://./app.db init\n  esctl --db 'postgres://app@db/app?schema=events' init",
		Flags: []cli.Flag{dryRunFlag()},
		Action: e.schemaUp("init", func(ctx context.Context, s *eventstore.Store) error {
			return s.Init(ctx)
		}),
	}
}

// schemaUp is the action of init and migrate up: apply every pending
// migration with up, or, with --dry-run, say what it would do.
func (e *env) schemaUp(name string, up func(context.Context, *eventstore.Store) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		dry := cmd.Bool("dry-run")
		if path, missing, err := missingFile(dbURL(cmd)); err != nil {
			return err
		} else if missing && dry {
			return e.printDryRun(cmd, (&summary{Command: name}).add("schemaVersion", 0, ""),
				fmt.Sprintf("would create the store in %s and apply every migration", path))
		}
		s, err := e.openURL(ctx, dbURL(cmd), !dry)
		if err != nil {
			return err
		}
		defer s.Close()
		status := func() (*eventstore.SchemaStatus, error) {
			return s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
		}
		before, err := status()
		if err != nil {
			return err
		}
		if dry {
			return e.printSummary(cmd, schemaSummary(name, before, before, true), false)
		}
		if err := up(ctx, s); err != nil {
			return err
		}
		after, err := status()
		if err != nil {
			return err
		}
		return e.printSummary(cmd, schemaSummary(name, before, after, false), false)
	}
}

// schemaSummary reports a schema change (or, dry, the change that would be
// made).
func schemaSummary(name string, before, after *eventstore.SchemaStatus, dry bool) *summary {
	s := &summary{Command: name}
	switch {
	case dry && before.Version == before.Latest && !before.Dirty:
		s.add("schemaVersion", before.Version, fmt.Sprintf("schema at version %d, nothing to do (dry run)", before.Version))
	case dry:
		s.add("schemaVersion", before.Version, fmt.Sprintf("would migrate the schema from version %d to %d (dry run)", before.Version, before.Latest))
	case before.Version == after.Version:
		s.add("schemaVersion", after.Version, fmt.Sprintf("schema at version %d, nothing to do", after.Version))
	default:
		s.add("schemaVersion", after.Version, fmt.Sprintf("schema migrated from version %d to %d", before.Version, after.Version))
	}
	s.add("previousVersion", before.Version, "")
	s.add("latestVersion", before.Latest, "")
	s.add("dryRun", dry, "")
	return s
}

func migrateCommand(e *env) *cli.Command {
	status := func(ctx context.Context, cmd *cli.Command) (*eventstore.Store, *eventstore.SchemaStatus, error) {
		s, err := e.openExisting(ctx, cmd)
		if err != nil {
			return nil, nil, err
		}
		st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return s, st, nil
	}
	return &cli.Command{
		Name:   "migrate",
		Usage:  "apply, revert, inspect or repair the store's schema migrations",
		Action: groupAction,
		Commands: []*cli.Command{
			{
				Name:  "up",
				Usage: "apply every pending migration (exit 0 when there is nothing to do)",
				Flags: []cli.Flag{dryRunFlag()},
				Action: e.schemaUp("migrate up", func(ctx context.Context, s *eventstore.Store) error {
					_, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateUp})
					return err
				}),
			},
			{
				Name:      "down",
				Usage:     "revert migrations: the last N, or all of them (which deletes the store's data)",
				ArgsUsage: "[N]",
				Flags:     []cli.Flag{yesFlag(), dryRunFlag()},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					steps := 0
					if cmd.Args().Len() > 1 {
						return usagef("migrate down takes at most one argument, the number of migrations to revert")
					}
					if cmd.Args().Present() {
						n, err := strconv.Atoi(cmd.Args().First())
						if err != nil || n < 1 {
							return usagef("migrate down: N must be a positive integer, not %q", cmd.Args().First())
						}
						steps = n
					}
					s, before, err := status(ctx, cmd)
					if err != nil {
						return err
					}
					defer s.Close()
					target := uint(0)
					if steps > 0 && uint(steps) < before.Version {
						target = before.Version - uint(steps)
					}
					what := fmt.Sprintf("revert the schema of %s from version %d to %d", eventstore.RedactURL(dbURL(cmd)), before.Version, target)
					if target == 0 {
						what += " (deletes every event, secret and snapshot)"
					}
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, (&summary{Command: "migrate down"}).add("schemaVersion", before.Version, "").add("targetVersion", target, ""), "would "+what)
					}
					if err := e.confirm(ctx, cmd, what); err != nil {
						return err
					}
					after, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateDown, Steps: steps})
					if err != nil {
						return err
					}
					return e.printSummary(cmd, schemaSummary("migrate down", before, after, false), false)
				},
			},
			{
				Name:  "status",
				Usage: "print the schema version; exit 4 when migrations are pending, one was interrupted, or the schema is newer than this esctl",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					s, st, err := status(ctx, cmd)
					if err != nil {
						return err
					}
					defer s.Close()
					if e.jsonOutput(cmd) {
						if err := e.printJSON(map[string]any{"version": st.Version, "latest": st.Latest, "dirty": st.Dirty, "pending": st.Pending()}); err != nil {
							return err
						}
					} else {
						fmt.Fprintf(e.stdout, "version  %d\nlatest   %d\ndirty    %t\npending  %t\n", st.Version, st.Latest, st.Dirty, st.Pending())
					}
					switch {
					case st.Version > st.Latest:
						return &storeStateError{&eventstore.SchemaVersionError{Current: st.Version, Expected: st.Latest}}
					case st.Dirty:
						return stateErrorf("migration %d was interrupted (dirty): check the schema, then run esctl migrate force VERSION with the version it is really at", st.Version)
					case st.Pending():
						return stateErrorf("%d migration(s) pending: run esctl migrate up", st.Latest-st.Version)
					}
					return nil
				},
			},
			{
				Name:      "force",
				Usage:     "record VERSION as the schema version and clear the dirty flag, without running anything",
				ArgsUsage: "VERSION",
				Flags:     []cli.Flag{yesFlag(), dryRunFlag()},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Args().Len() != 1 {
						return usagef("migrate force takes one argument, the version to record")
					}
					v, err := strconv.ParseUint(cmd.Args().First(), 10, 32)
					if err != nil {
						return usagef("migrate force: VERSION must be a non-negative integer, not %q", cmd.Args().First())
					}
					s, err := e.openExisting(ctx, cmd)
					if err != nil {
						return err
					}
					defer s.Close()
					before, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
					if errors.Is(err, eventstore.ErrSchemaVersion) {
						// No version esctl can read (see migrations.Status):
						// recording one is what force is for.
						e.log.Warn("the store's schema version is unknown", "reason", err.Error())
						before, err = &eventstore.SchemaStatus{Latest: migrations.Latest(s.Engine())}, nil
					}
					if err != nil {
						return err
					}
					if uint(v) > before.Latest {
						return usagef("migrate force: version %d is newer than this build's latest, %d", v, before.Latest)
					}
					what := fmt.Sprintf("record schema version %d (now %d, dirty %t) without running migrations", v, before.Version, before.Dirty)
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, (&summary{Command: "migrate force"}).add("schemaVersion", before.Version, ""), "would "+what)
					}
					if err := e.confirm(ctx, cmd, what); err != nil {
						return err
					}
					after, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateForce, Version: uint(v)})
					if err != nil {
						return err
					}
					return e.printSummary(cmd, (&summary{Command: "migrate force"}).add("schemaVersion", after.Version, fmt.Sprintf("schema version recorded as %d, dirty flag cleared", after.Version)), false)
				},
			},
		},
	}
}

func dropCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "drop",
		Usage: "delete the store: every event, secret and snapshot, and its tables",
		Description: "Drops the store's tables (on PostgreSQL, then its schema if it is empty). It cannot be\n" +
			"undone: take a backup first. Asks on a terminal; pass --yes in scripts. Only the tables\n" +
			"esctl created are dropped; other tables in the same schema or file are left alone. A\n" +
			"database or schema that holds no esctl store is refused (exit 4).",
		Flags: []cli.Flag{yesFlag(), dryRunFlag()},
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			st, err := s.Migrate(ctx, &eventstore.MigrateOptions{Op: eventstore.MigrateStatus})
			if err != nil {
				return err
			}
			if st.Version == 0 && !st.Dirty {
				return stateErrorf("no esctl store at %s: nothing to drop (drop removes only what esctl created)", eventstore.RedactURL(dbURL(cmd)))
			}
			d, err := s.Describe(ctx, nil)
			var count int64
			if err == nil {
				count = d.EventCount
			}
			what := fmt.Sprintf("drop the store at %s (%s)", eventstore.RedactURL(dbURL(cmd)), plural(count, "event"))
			if cmd.Bool("dry-run") {
				return e.printDryRun(cmd, (&summary{Command: "drop"}).add("events", count, ""), "would "+what)
			}
			if err := e.confirm(ctx, cmd, what); err != nil {
				return err
			}
			if err := s.Drop(ctx); err != nil {
				return err
			}
			return e.printSummary(cmd, (&summary{Command: "drop"}).add("events", count, fmt.Sprintf("store dropped (%s)", plural(count, "event"))), false)
		}),
	}
}

func describeCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "describe",
		Usage: "print the store's counts, end cursor, frozen state and schema version",
		Description: "Text by default; with -o json, one object with reSolve's describe() keys (eventCount,\n" +
			"secretCount, setSecretCount, deletedSecretCount, isFrozen, lastEventTimestamp, cursor)\n" +
			"plus schemaVersion, frozenReason, lastPosition, latestSchemaVersion, dirty and engine.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "estimate-counts", Usage: "accepted for reSolve compatibility: the counts are always exact and cheap"},
		},
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			d, err := s.Describe(ctx, &eventstore.DescribeOptions{EstimateCounts: cmd.Bool("estimate-counts"), Stats: true})
			if err != nil {
				return err
			}
			if e.jsonOutput(cmd) {
				return e.printJSON(struct {
					*eventstore.Description
					// Always present: null on an empty store, 0 when empty.
					LastEventTimestamp  *int64 `json:"lastEventTimestamp"`
					FirstPosition       int64  `json:"firstPosition"`
					AggregateCount      int64  `json:"aggregateCount"`
					SnapshotCount       int64  `json:"snapshotCount"`
					LatestSchemaVersion uint   `json:"latestSchemaVersion"`
					Dirty               bool   `json:"dirty"`
					Pending             bool   `json:"pending"`
					Engine              string `json:"engine"`
				}{d, d.LastEventTimestamp, d.FirstPosition, d.AggregateCount, d.SnapshotCount,
					d.SchemaLatest, d.SchemaDirty, d.SchemaVersion < d.SchemaLatest, s.Engine()})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "store\t%s (%s)\n", eventstore.RedactURL(dbURL(cmd)), s.Engine())
			fmt.Fprintf(tw, "events\t%s\n", commas(d.EventCount))
			first := "none"
			if d.FirstPosition > 0 {
				first = commas(d.FirstPosition)
			}
			fmt.Fprintf(tw, "first position\t%s\n", first)
			fmt.Fprintf(tw, "last position\t%s\n", commas(d.LastPosition))
			fmt.Fprintf(tw, "aggregates\t%s\n", commas(d.AggregateCount))
			if d.LastEventTimestamp != nil {
				fmt.Fprintf(tw, "last event\t%s (%d)\n", time.UnixMilli(*d.LastEventTimestamp).UTC().Format(time.RFC3339Nano), *d.LastEventTimestamp)
			} else {
				fmt.Fprintf(tw, "last event\tnone\n")
			}
			fmt.Fprintf(tw, "end cursor\t%s\n", d.Cursor)
			fmt.Fprintf(tw, "secrets\t%s (%s set, %s deleted)\n", commas(d.SecretCount), commas(d.SetSecretCount), commas(d.DeletedSecretCount))
			frozen := "no"
			if d.IsFrozen {
				frozen = "yes"
				if d.FrozenReason != "" {
					frozen += " (" + d.FrozenReason + ")"
				}
			}
			fmt.Fprintf(tw, "snapshots\t%s\n", commas(d.SnapshotCount))
			fmt.Fprintf(tw, "frozen\t%s\n", frozen)
			schema := fmt.Sprintf("%d (latest %d)", d.SchemaVersion, d.SchemaLatest)
			switch {
			case d.SchemaDirty:
				schema += ", dirty: a migration was interrupted (esctl migrate force VERSION)"
			case d.SchemaVersion < d.SchemaLatest:
				schema += fmt.Sprintf(", %d migration(s) pending (esctl migrate up)", d.SchemaLatest-d.SchemaVersion)
			}
			fmt.Fprintf(tw, "schema version\t%s\n", schema)
			return tw.Flush()
		}),
	}
}

func freezeCommand(e *env) *cli.Command {
	return setFrozenCommand(e, "freeze", true,
		"refuse every append and secret write until unfreeze (a barrier: waits for appends in flight)")
}

func unfreezeCommand(e *env) *cli.Command {
	return setFrozenCommand(e, "unfreeze", false, "accept appends and secret writes again")
}

// defaultFreezeReason says who froze the store, from where and when, for a
// freeze without --reason.
func defaultFreezeReason(now time.Time) string {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("by %s@%s at %s", who, host, now.UTC().Format(time.RFC3339))
}

var frozenText = map[bool]string{true: "frozen", false: "not frozen"}

func setFrozenCommand(e *env, name string, freeze bool, usage string) *cli.Command {
	flags := []cli.Flag{dryRunFlag()}
	if freeze {
		flags = append(flags, &cli.StringFlag{Name: "reason", Usage: "why the store is frozen, shown by describe and in the error of a refused append (default: by USER@HOST at TIME)"})
	}
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: flags,
		Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
			if cmd.Bool("dry-run") {
				d, err := s.Describe(ctx, nil)
				if err != nil {
					return err
				}
				text := "would " + name + " the store"
				if d.IsFrozen == freeze {
					text = "the store is already " + frozenText[freeze] + ": " + name + " would fail"
				}
				return e.printDryRun(cmd, (&summary{Command: name}).add("frozen", d.IsFrozen, ""), text)
			}
			sum := &summary{Command: name}
			if freeze {
				reason := cmd.String("reason")
				if !cmd.IsSet("reason") {
					reason = defaultFreezeReason(time.Now())
				}
				if err := s.Freeze(ctx, reason); err != nil {
					return err
				}
				return e.printSummary(cmd, sum.add("frozen", true, "store frozen").add("reason", reason, "reason: "+reason), false)
			}
			if err := s.Unfreeze(ctx); err != nil {
				return err
			}
			return e.printSummary(cmd, sum.add("frozen", false, "store unfrozen"), false)
		}),
	}
}
