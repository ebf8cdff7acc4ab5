package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v3"

	_ "github.com/esctl/esctl/adapters/sqlite" // the embedded default engine
	"github.com/esctl/esctl/eventstore"
)

// Exit codes (docs/cli.md).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitBadInput    = 3
	exitStoreState  = 4
	exitInterrupted = 130
)

// DefaultDB is the store esctl uses when neither --db, ESCTL_DB nor
// DATABASE_URL is set.
const DefaultDB = "sqlite://./esctl.db"

// env carries the process's streams; commands never touch os.Std*.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// notFound is set by CommandNotFound (esctl help NAME with an unknown NAME).
	notFound string
}

// usageError marks errors in how esctl was called (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run is esctl's main, testable: it parses args, runs the command and returns
// the exit code. Data goes to stdout; logs, progress and errors to stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	app := newApp(e)
	err := app.Run(ctx, args)
	if err == nil && e.notFound != "" {
		err = usagef("unknown command %q", e.notFound)
	}
	code := exitCode(ctx, err)
	if err != nil {
		fmt.Fprintf(stderr, "esctl: %s\n", redactError(err))
		if code == exitUsage {
			fmt.Fprintln(stderr, "Try: esctl --help")
		}
	}
	return code
}

func exitCode(ctx context.Context, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, eventstore.ErrInvalidEvent), errors.Is(err, eventstore.ErrInvalidFilter),
		errors.Is(err, eventstore.ErrInvalidCursor), errors.Is(err, eventstore.ErrInvalidSecret),
		errors.Is(err, eventstore.ErrInvalidSnapshot), errors.Is(err, eventstore.ErrCursorBeyondEnd):
		return exitBadInput
	case errors.Is(err, eventstore.ErrFrozen), errors.Is(err, eventstore.ErrAlreadyFrozen),
		errors.Is(err, eventstore.ErrAlreadyUnfrozen), errors.Is(err, eventstore.ErrNotInitialized),
		errors.Is(err, eventstore.ErrSchemaVersion), errors.Is(err, eventstore.ErrSecretExists),
		errors.Is(err, eventstore.ErrConflict):
		return exitStoreState
	}
	return exitFailure
}

// redactError masks passwords of database URLs quoted in an error.
func redactError(err error) string {
	msg := err.Error()
	fields := strings.Fields(msg)
	for _, f := range fields {
		trimmed := strings.Trim(f, `"',:;()`)
		if strings.Contains(trimmed, "://") && strings.Contains(trimmed, "@") {
			msg = strings.ReplaceAll(msg, trimmed, eventstore.RedactURL(trimmed))
		}
	}
	return msg
}

func newApp(e *env) *cli.Command {
	return &cli.Command{
		Name:      "esctl",
		Usage:     "move, back up and inspect esctl event stores",
		Version:   buildVersion(),
		Writer:    e.stdout,
		ErrWriter: e.stderr,
		Reader:    e.stdin,
		// run() prints errors and picks exit codes; urfave/cli must not exit.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
		OnUsageError: func(_ context.Context, _ *cli.Command, err error, _ bool) error {
			return &usageError{err}
		},
		CommandNotFound: func(_ context.Context, _ *cli.Command, name string) {
			e.notFound = name
		},
		Action:                groupAction,
		EnableShellCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "db",
				Usage:   "database URL: " + eventstore.AcceptedURLs,
				Value:   DefaultDB,
				Sources: cli.EnvVars("ESCTL_DB", "DATABASE_URL"),
			},
			&cli.StringFlag{
				Name:    "output",
				Aliases: []string{"o"},
				Usage:   "output format: text or json",
				Value:   "text",
				Validator: func(s string) error {
					if s != "text" && s != "json" {
						return fmt.Errorf("--output must be text or json, not %q", s)
					}
					return nil
				},
			},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress and no summary"},
			&cli.StringFlag{
				Name:  "log-level",
				Usage: "log level on stderr: debug, info, warn, error",
				Value: "warn",
			},
		},
		Before: func(ctx context.Context, cmd *cli.Command) (context.Context, error) {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
				return ctx, usagef("--log-level: %v", err)
			}
			e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))
			return ctx, nil
		},
		Commands: []*cli.Command{
			demoCommand(e),
			versionCommand(e),
		},
	}
}

// groupAction is the action of commands that only hold subcommands: an
// unknown subcommand is a usage error, no subcommand shows the help.
func groupAction(_ context.Context, cmd *cli.Command) error {
	if cmd.Args().Present() {
		return usagef("unknown command %q for %q", cmd.Args().First(), cmd.FullName())
	}
	return cli.ShowSubcommandHelp(cmd)
}

func (e *env) jsonOutput(cmd *cli.Command) bool { return cmd.Root().String("output") == "json" }

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openStore opens the store named by --db.
func (e *env) openStore(ctx context.Context, cmd *cli.Command) (*eventstore.Store, error) {
	return eventstore.Open(ctx, cmd.Root().String("db"), &eventstore.Options{Logger: e.log})
}
