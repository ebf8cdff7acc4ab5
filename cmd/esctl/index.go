package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
)

// indexCommand makes, lists and drops the indexes of content filters
// (events --payload/--metadata).
func indexCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "index",
		Usage: "create, list and drop the indexes that make --payload and --metadata reads fast",
		Description: "Content filters (esctl events --payload/--metadata, Filter.Payload and Filter.Metadata)\n" +
			"are decided in the database; on a large store they need an index:\n\n" +
			"  PostgreSQL: one GIN index per column (payload or metadata) serves every filter on it.\n" +
			"    It is built CONCURRENTLY: appends and reads go on during the build.\n" +
			"    esctl index create payload\n" +
			"  SQLite: an expression index per member (a key, or keys into nested objects joined by\n" +
			"    dots) serves the filters that give that member a value. SQLite builds it under\n" +
			"    its write lock: appends wait for the build.\n" +
			"    esctl index create payload accountId\n" +
			"    esctl index create metadata correlationId\n\n" +
			"Every append then also updates the indexes (docs/metadata.md shows what that costs).",
		Action: groupAction,
		Commands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create an index on the payload or the metadata (SQLite: on one member, given as PATH)",
				ArgsUsage: "payload|metadata [PATH]",
				Flags:     []cli.Flag{dryRunFlag()},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					args := cmd.Args().Slice()
					if len(args) < 1 || len(args) > 2 {
						return usagef("index create takes payload or metadata, and on SQLite the member's PATH (a.b)")
					}
					spec := eventstore.IndexSpec{On: args[0]}
					if len(args) == 2 {
						if args[1] == "" {
							return usagef("the PATH is empty")
						}
						spec.Path = strings.Split(args[1], ".")
					}
					return e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
						sum := (&summary{Command: "index create"}).add("on", spec.On, "")
						if cmd.Bool("dry-run") {
							return e.printDryRun(cmd, sum, fmt.Sprintf("would create an index on the %s%s", spec.On, pathText(spec.Path)))
						}
						ix, err := s.CreateIndex(ctx, spec)
						if err != nil {
							return err
						}
						sum.add("name", ix.Name, fmt.Sprintf("index %s on the %s%s", ix.Name, ix.On, pathText(ix.Path)))
						return e.printSummary(cmd, sum.add("definition", ix.Definition, ""), false)
					})(ctx, cmd)
				},
			},
			{
				Name:  "list",
				Usage: "list the indexes esctl made, with their definitions",
				Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
					list, err := s.Indexes(ctx)
					if err != nil {
						return err
					}
					if e.jsonOutput(cmd) {
						type entry struct {
							Name       string   `json:"name"`
							On         string   `json:"on"`
							Path       []string `json:"path,omitempty"`
							Valid      bool     `json:"valid"`
							Definition string   `json:"definition"`
						}
						out := []entry{}
						for _, ix := range list {
							out = append(out, entry{ix.Name, ix.On, ix.Path, ix.Valid, ix.Definition})
						}
						return e.printJSON(out)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tON\tPATH\tVALID\tDEFINITION")
					for _, ix := range list {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", ix.Name, ix.On, strings.Join(ix.Path, "."), ix.Valid, ix.Definition)
					}
					return tw.Flush()
				}),
			},
			{
				Name:      "drop",
				Usage:     "drop an index esctl made (PostgreSQL: CONCURRENTLY)",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dryRunFlag()},
				Action: func(ctx context.Context, cmd *cli.Command) error {
					name, err := oneArg(cmd, "the index's name (esctl index list)")
					if err != nil {
						return err
					}
					return e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
						sum := (&summary{Command: "index drop"}).add("name", name, "")
						if cmd.Bool("dry-run") {
							return e.printDryRun(cmd, sum, fmt.Sprintf("would drop index %s", name))
						}
						found, err := s.DropIndex(ctx, name)
						if err != nil {
							return err
						}
						if !found {
							return fmt.Errorf("no index %s (esctl index list shows them)", name)
						}
						return e.printSummary(cmd, sum.add("dropped", true, fmt.Sprintf("index %s dropped", name)), false)
					})(ctx, cmd)
				},
			},
		},
	}
}

func pathText(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return ", member " + strings.Join(path, ".")
}
