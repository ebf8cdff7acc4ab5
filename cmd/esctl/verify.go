package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

func verifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check a backup file offline (--in FILE) and the store's invariants (--db)",
		Description: "With --in FILE, checks a backup without any store: its sha256 sidecar if present, its\n" +
			"compression frames, every line (as strictly as restore reads it), the counts and the\n" +
			"SHA-256 in its manifest (exit 3 if anything is wrong). Without --in, or with --db (or\n" +
			"$ESCTL_DB, $DATABASE_URL) given, checks the store: positions dense from 1 to the last,\n" +
			"the state row's counters equal to the rows, import checkpoints consistent with the store\n" +
			"(exit 4 on any problem). The report goes to stdout (-o json: one object). It reads every\n" +
			"row: as slow as a full scan.\n\n" +
			"Examples:\n  esctl verify --in store.esbackup\n  esctl --db \"$PG_URL\" verify\n" +
			"  esctl --db \"$PG_URL\" verify --in store.esbackup",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "a backup file to check (no store needed)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			in := cmd.String("in")
			if in == "-" {
				return usagef("verify needs --in FILE, not stdin: the sidecar FILE.sha256 is looked up next to it")
			}
			storeToo := in == "" || cmd.Root().IsSet("db") || os.Getenv("ESCTL_DB") != "" || os.Getenv("DATABASE_URL") != ""
			var out struct {
				Backup *verifiedBackup        `json:"backup,omitempty"`
				Store  *transfer.VerifyReport `json:"store,omitempty"`
			}
			if in != "" {
				var err error
				if out.Backup, err = e.verifyBackupFile(ctx, cmd, in); err != nil {
					return err
				}
			}
			if storeToo {
				s, err := e.openExisting(ctx, cmd)
				if err != nil {
					return err
				}
				defer s.Close()
				if out.Store, err = transfer.Verify(ctx, s); err != nil {
					return err
				}
			}
			if e.jsonOutput(cmd) {
				if err := e.printJSON(out); err != nil {
					return err
				}
			} else {
				if out.Backup != nil {
					b := out.Backup
					fmt.Fprintf(e.stdout, "backup  %s: sound (%s, %s, %s, last position %s); %s\n",
						in, plural(b.Events, "event"), plural(b.Secrets, "secret"), plural(b.Snapshots, "snapshot"), commas(b.LastPosition), b.sums(in))
				}
				if r := out.Store; r != nil {
					state := "consistent"
					if !r.OK() {
						state = fmt.Sprintf("%d problem(s)", len(r.Problems))
					}
					fmt.Fprintf(e.stdout, "store   %s: %s (%s, last position %s, %s of which %s deleted, %s)\n",
						eventstore.RedactURL(dbURL(cmd)), state, plural(r.Events, "event"), commas(r.LastPosition), plural(r.Secrets, "secret"), commas(r.Tombstones), plural(int64(r.Checkpoints), "import checkpoint"))
					for _, p := range r.Problems {
						fmt.Fprintf(e.stdout, "problem %s\n", p)
					}
					for _, n := range r.Notes {
						fmt.Fprintf(e.stdout, "note    %s\n", n)
					}
				}
			}
			if out.Store != nil && !out.Store.OK() {
				return stateErrorf("the store at %s fails %d check(s): see the report", eventstore.RedactURL(dbURL(cmd)), len(out.Store.Problems))
			}
			return nil
		},
	}
}
