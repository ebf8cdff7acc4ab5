package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// maxValueBytes bounds a value read for secrets set and snapshots set.
const maxValueBytes = 64 << 20

// readValue reads a value from --value-file FILE, or stdin when it is "-"
// or not given (refused when stdin is a terminal). One trailing newline
// ("\n" or "\r\n") is removed unless raw: echo and editors add one.
func (e *env) readValue(cmd *cli.Command, raw bool) ([]byte, error) {
	path := cmd.String("value-file")
	var r io.Reader
	switch path {
	case "", "-":
		if isTerminal(e.stdin) {
			return nil, usagef("%s reads the value from stdin, which is a terminal: pipe it in or pass --value-file FILE", cmd.FullName())
		}
		r = e.stdin
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxValueBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxValueBytes {
		return nil, usagef("the value is larger than %d bytes", maxValueBytes)
	}
	if !raw {
		b = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	}
	if len(b) == 0 && !cmd.Bool("allow-empty") {
		from := "stdin"
		if path != "" && path != "-" {
			from = path
		}
		return nil, fmt.Errorf("%w: the value read from %s is empty: nothing was stored (pass --allow-empty to store an empty value)", transfer.ErrBadInput, from)
	}
	return b, nil
}

// fingerprint identifies a value without revealing it.
func fingerprint(v []byte) string {
	sum := sha256.Sum256(v)
	return "sha256:" + hex.EncodeToString(sum[:6])
}

func valueFileFlag(what string) cli.Flag {
	return &cli.StringFlag{Name: "value-file", Usage: "read the " + what + " from this file (- or absent: stdin); never from a flag"}
}

func rawFlag() cli.Flag {
	return &cli.BoolFlag{Name: "raw", Usage: "keep a trailing newline of the value (by default one is removed)"}
}

// oneArg returns a command's single positional argument.
func oneArg(cmd *cli.Command, name string) (string, error) {
	if cmd.Args().Len() != 1 {
		return "", usagef("%s takes one argument, %s", cmd.FullName(), name)
	}
	return cmd.Args().First(), nil
}

// keyed describes a command on one item of the store named by its only
// argument: a secret id, a snapshot key.
type keyed struct {
	name, usage string
	arg         string // ArgsUsage: ID, KEY
	argText     string // for the usage error: "the secret's id"
	// value, when set, names what --value-file or stdin holds ("secret",
	// "content"): the command reads it, before opening the store.
	value string
	flags []cli.Flag
	run   func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, key string, value []byte) error
}

// command builds k: the argument, the value and the store are ready when
// k.run is called.
func (k keyed) command(e *env) *cli.Command {
	flags := k.flags
	if k.value != "" {
		flags = append([]cli.Flag{valueFileFlag(k.value), rawFlag(),
			&cli.BoolFlag{Name: "allow-empty", Usage: "store an empty " + k.value + " (an empty input is refused otherwise)"}}, flags...)
	}
	return &cli.Command{
		Name:      k.name,
		Usage:     k.usage,
		ArgsUsage: k.arg,
		Flags:     flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			key, err := oneArg(cmd, k.argText)
			if err != nil {
				return err
			}
			var v []byte
			if k.value != "" {
				if v, err = e.readValue(cmd, cmd.Bool("raw")); err != nil {
					return err
				}
			}
			return e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
				return k.run(ctx, cmd, s, key, v)
			})(ctx, cmd)
		},
	}
}

func secretsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "secrets",
		Usage: "export, import, read, set and delete the store's secrets",
		Description: "Secrets are kept next to the events (per-subject keys for crypto-shredding): ids are\n" +
			"never reusable, a deleted secret leaves a tombstone, and set and delete write an audit\n" +
			"event. Values are read from a file or stdin, never from a flag, and never printed back\n" +
			"except by secrets get.",
		Action: groupAction,
		Commands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the secrets' ids and states (set or deleted) in idx order, never their values",
				Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
					type entry struct {
						Idx   int64  `json:"idx"`
						ID    string `json:"id"`
						State string `json:"state"`
					}
					all := []entry{}
					for idx := int64(0); ; {
						page, err := s.Secrets().LoadSecrets(ctx, eventstore.SecretFilter{Idx: idx, Limit: 500, IncludeDeleted: true})
						if err != nil {
							return err
						}
						for _, sec := range page.Secrets {
							state := "set"
							if sec.Secret == nil {
								state = "deleted"
							}
							all = append(all, entry{Idx: sec.Idx, ID: sec.ID, State: state})
						}
						if len(page.Secrets) < 500 {
							break
						}
						idx = page.NextIdx
					}
					if e.jsonOutput(cmd) {
						return e.printJSON(all)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "IDX\tID\tSTATE")
					for _, x := range all {
						fmt.Fprintf(tw, "%d\t%s\t%s\n", x.Idx, x.ID, x.State)
					}
					return tw.Flush()
				}),
			},
			{
				Name:  "export",
				Usage: "write every secret and tombstone as NDJSON (key material in clear: protect the file)",
				Flags: []cli.Flag{
					outFlag(),
					forceFlag(),
					yesFlag(),
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					s, err := e.openExisting(ctx, cmd)
					if err != nil {
						return err
					}
					defer s.Close()
					out, err := e.createOutput(ctx, cmd, cmd.String("out"))
					if err != nil {
						return err
					}
					res, err := transfer.ExportSecrets(ctx, s, out, nil)
					if err == nil {
						err = out.commit()
					}
					if err != nil {
						out.abandon()
						return err
					}
					return e.printSummary(cmd, (&summary{Command: "secrets export"}).
						add("secrets", res.Secrets, fmt.Sprintf("%s including %s tombstones, %s", plural(res.Secrets, "secret"), commas(res.Tombstones), humanBytes(res.Bytes))).
						add("tombstones", res.Tombstones, "").add("bytes", res.Bytes, ""), out.path == "")
				},
			},
			{
				Name:  "import",
				Usage: "read NDJSON secrets (esctl's or reSolve's exports) into the store, resumable",
				Flags: []cli.Flag{
					inFlag(),
					&cli.BoolFlag{Name: "resume", Usage: "continue the interrupted import of this source, reading the input from its start"},
					sourceIDFlag("secrets"),
					dryRunFlag(),
				},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					s, sourceID, err := e.openForImport(ctx, cmd, "secrets")
					if err != nil {
						return err
					}
					defer s.Close()
					in, _, err := e.openInput(cmd, cmd.String("in"))
					if err != nil {
						return err
					}
					defer in.Close()
					dry := cmd.Bool("dry-run")
					res, err := transfer.ImportSecrets(ctx, s, in, &transfer.SecretsImportOptions{SourceID: sourceID, Resume: cmd.Bool("resume"), DryRun: dry})
					if dry {
						if res == nil {
							return err
						}
						if err != nil {
							return fmt.Errorf("%w (dry run: nothing was written; a real import would commit the %s before it)", err, plural(res.Lines, "line"))
						}
						return e.printDryRun(cmd, (&summary{Command: "secrets import"}).add("secrets", res.Events, "").add("lines", res.Lines, "").add("sourceId", sourceID, ""),
							fmt.Sprintf("every line checked: would import %s (%s); nothing written", plural(res.Events, "secret"), plural(res.Lines, "line")))
					}
					if err != nil {
						return withHint(err, e.importResumeHint(cmd, res, err))
					}
					return e.printSummary(cmd, (&summary{Command: "secrets import"}).
						add("secrets", res.Events, fmt.Sprintf("%s imported", plural(res.Events, "secret"))).
						add("lines", res.Lines, "").add("byteOffset", res.ByteOffset, fmt.Sprintf("byte offset %d", res.ByteOffset)).
						add("sourceId", sourceID, ""), false)
				},
			},
			keyed{
				name: "get", usage: "print a secret's value on stdout (exit 1 when there is none)",
				arg: "ID", argText: "the secret's id",
				run: func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, id string, _ []byte) error {
					v, found, err := s.Secrets().GetSecret(ctx, id)
					if err != nil {
						return err
					}
					if !found {
						return fmt.Errorf("no secret %q (never set, or deleted)", id)
					}
					if e.jsonOutput(cmd) {
						return e.printJSON(map[string]string{"id": id, "secret": v})
					}
					_, err = fmt.Fprintln(e.stdout, v)
					return err
				},
			}.command(e),
			keyed{
				name: "set", usage: "store a new secret, its value read from --value-file or stdin",
				arg: "ID", argText: "the secret's id", value: "secret",
				flags: []cli.Flag{dryRunFlag()},
				run: func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, id string, v []byte) error {
					sum := (&summary{Command: "secrets set"}).add("id", id, "").add("fingerprint", fingerprint(v), "")
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum, fmt.Sprintf("would set secret %q (%s, %s)", id, plural(int64(len(v)), "byte"), fingerprint(v)))
					}
					if err := s.Secrets().SetSecret(ctx, id, string(v)); err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("bytes", len(v), fmt.Sprintf("secret %q set (%s, %s)", id, plural(int64(len(v)), "byte"), fingerprint(v))), false)
				},
			}.command(e),
			keyed{
				name: "delete", usage: "delete a secret for good, leaving a tombstone (crypto-shredding: cannot be undone)",
				arg: "ID", argText: "the secret's id",
				flags: []cli.Flag{yesFlag(), dryRunFlag()},
				run: func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, id string, _ []byte) error {
					sum := (&summary{Command: "secrets delete"}).add("id", id, "")
					if cmd.Bool("dry-run") {
						_, found, err := s.Secrets().GetSecret(ctx, id)
						if err != nil {
							return err
						}
						if !found {
							return e.printDryRun(cmd, sum, fmt.Sprintf("secret %q is not set: nothing to delete", id))
						}
						return e.printDryRun(cmd, sum, fmt.Sprintf("would delete secret %q", id))
					}
					if err := e.confirm(ctx, cmd, fmt.Sprintf("delete secret %q for good", id)); err != nil {
						return err
					}
					deleted, err := s.Secrets().DeleteSecret(ctx, id)
					if err != nil {
						return err
					}
					text := fmt.Sprintf("secret %q deleted", id)
					if !deleted {
						text = fmt.Sprintf("secret %q was not set: nothing deleted", id)
					}
					return e.printSummary(cmd, sum.add("deleted", deleted, text), false)
				},
			}.command(e),
		},
	}
}

func snapshotsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "snapshots",
		Usage: "read, write and drop aggregate snapshots by key",
		Description: "Snapshots are a cache of aggregate state kept by key (snapshots.Repository uses\n" +
			"aggregate:KIND:ID). get prints the content on stdout as stored; set reads it from\n" +
			"--value-file or stdin.",
		Action: groupAction,
		Commands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the snapshots' keys and sizes in key order (never their content)",
				Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
					var all []eventstore.SnapshotInfo
					for after := ""; ; {
						page, err := s.ListSnapshots(ctx, after, 500)
						if err != nil {
							return err
						}
						all = append(all, page...)
						if len(page) < 500 {
							break
						}
						after = page[len(page)-1].Key
					}
					if e.jsonOutput(cmd) {
						return e.printJSON(append([]eventstore.SnapshotInfo{}, all...))
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "KEY\tBYTES")
					for _, sn := range all {
						fmt.Fprintf(tw, "%s\t%d\n", sn.Key, sn.Bytes)
					}
					return tw.Flush()
				}),
			},
			keyed{
				name: "get", usage: "print a snapshot's content on stdout (exit 1 when there is none)",
				arg: "KEY", argText: "the snapshot's key",
				run: func(ctx context.Context, _ *cli.Command, s *eventstore.Store, key string, _ []byte) error {
					content, found, err := s.LoadSnapshot(ctx, key)
					if err != nil {
						return err
					}
					if !found {
						return fmt.Errorf("no snapshot %q", key)
					}
					_, err = e.stdout.Write(content)
					return err
				},
			}.command(e),
			keyed{
				name: "set", usage: "store a snapshot, its content read from --value-file or stdin (replaces any previous one)",
				arg: "KEY", argText: "the snapshot's key", value: "content",
				flags: []cli.Flag{dryRunFlag()},
				run: func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, key string, v []byte) error {
					sum := (&summary{Command: "snapshots set"}).add("key", key, "")
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum, fmt.Sprintf("would set snapshot %q (%s)", key, plural(int64(len(v)), "byte")))
					}
					if err := s.SaveSnapshot(ctx, key, v); err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("bytes", len(v), fmt.Sprintf("snapshot %q set (%s)", key, plural(int64(len(v)), "byte"))), false)
				},
			}.command(e),
			keyed{
				name: "drop", usage: "delete a snapshot (the next load rebuilds from the events)",
				arg: "KEY", argText: "the snapshot's key",
				flags: []cli.Flag{dryRunFlag()},
				run: func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, key string, _ []byte) error {
					sum := (&summary{Command: "snapshots drop"}).add("key", key, "")
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum, fmt.Sprintf("would drop snapshot %q", key))
					}
					if err := s.DropSnapshot(ctx, key); err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("dropped", true, fmt.Sprintf("snapshot %q dropped", key)), false)
				},
			}.command(e),
		},
	}
}
