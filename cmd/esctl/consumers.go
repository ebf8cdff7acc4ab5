package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/consumer"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

func consumersCommand(e *env) *cli.Command {
	forceRunning := func() cli.Flag {
		return &cli.BoolFlag{Name: "force", Usage: "go ahead while members run: their leases are cleared, so they stop at their next checkpoint (not saved) and start again from the new state"}
	}
	nameCmd := func(name, usage string, flags []cli.Flag, run func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "NAME", Flags: flags,
			Action: func(ctx context.Context, cmd *cli.Command) error {
				n, err := oneArg(cmd, "the consumer's name")
				if err != nil {
					return err
				}
				if err := consumer.ValidateName(n); err != nil {
					return usagef("%v", err)
				}
				return e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
					return run(ctx, cmd, s, n)
				})(ctx, cmd)
			},
		}
	}
	return &cli.Command{
		Name:  "consumers",
		Usage: "inspect and manage the store's durable consumers (checkpoints, leases, parked events)",
		Description: "Durable consumers (Go package consumer) keep their checkpoints, leases and parked events\n" +
			"in the store. list shows them; reset, resize and delete need every member stopped\n" +
			"(or --force); replay asks the running members to handle parked events again.",
		Action: groupAction,
		Commands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the consumers: members, checkpoint, lag in events and time, lease holders, parked events",
				Action: e.storeAction(func(ctx context.Context, cmd *cli.Command, s *eventstore.Store) error {
					infos, err := consumer.List(ctx, s)
					if err != nil {
						return err
					}
					if infos == nil {
						infos = []consumer.Info{}
					}
					if e.jsonOutput(cmd) {
						return e.printJSON(infos)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tMEMBERS\tACTIVE\tCHECKPOINT\tLAG\tLAG TIME\tPARKED\tHOLDERS")
					for _, in := range infos {
						var holders []string
						for _, m := range in.MemberStates {
							if m.Holder != "" {
								holders = append(holders, fmt.Sprintf("%d:%s", m.Member, m.Holder))
							}
						}
						fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", in.Name, in.Members, in.Active, in.Checkpoint, in.Lag,
							in.LagTime.Round(time.Millisecond), in.Parked, cmpOr(strings.Join(holders, " "), "-"))
					}
					return tw.Flush()
				}),
			},
			nameCmd("reset", "set a consumer's checkpoint (every member): it handles the events after it next",
				[]cli.Flag{
					&cli.StringFlag{Name: "to", Required: true, Usage: "start, end, a cursor, or a position (the last event counted as handled)"},
					forceRunning(), yesFlag(), dryRunFlag(),
				},
				func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error {
					pos, err := parseResetTarget(cmd.String("to"))
					if err != nil {
						return err
					}
					in, err := consumer.Get(ctx, s, name)
					if err != nil {
						return err
					}
					sum := (&summary{Command: "consumers reset"}).add("name", name, "")
					target := cmd.String("to")
					// The checks first (a dry run of the same call): a dry
					// run fails as the real command would, and nobody is
					// asked to confirm what would be refused.
					got, err := consumer.Reset(ctx, s, name, pos, e.adminOptions(cmd, true))
					if err != nil {
						return err
					}
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum.add("from", in.Checkpoint, "").add("checkpoint", got, ""), fmt.Sprintf("would reset consumer %q from checkpoint %d to %d (%s)", name, in.Checkpoint, got, target))
					}
					if err := e.confirm(ctx, cmd, fmt.Sprintf("reset consumer %q (checkpoint %d) to %s", name, in.Checkpoint, target)); err != nil {
						return err
					}
					got, err = consumer.Reset(ctx, s, name, pos, e.adminOptions(cmd, false))
					if err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("from", in.Checkpoint, "").add("checkpoint", got,
						fmt.Sprintf("consumer %q reset from checkpoint %d to %d; resume cursor %s", name, in.Checkpoint, got, eventstore.CursorAt(got))), false)
				}),
			nameCmd("resize", "change a consumer group's number of members (all restart from the lowest checkpoint)",
				[]cli.Flag{
					&cli.IntFlag{Name: "members", Required: true, Usage: "the new number of members"},
					forceRunning(), yesFlag(), dryRunFlag(),
				},
				func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error {
					n := int(cmd.Int("members"))
					if n < 1 {
						return usagef("--members must be 1 or more")
					}
					in, err := consumer.Get(ctx, s, name)
					if err != nil {
						return err
					}
					sum := (&summary{Command: "consumers resize"}).add("name", name, "")
					from, err := consumer.Resize(ctx, s, name, n, e.adminOptions(cmd, true))
					if err != nil {
						return err
					}
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum.add("members", n, "").add("checkpoint", from, ""), fmt.Sprintf("would resize consumer %q from %d to %d members, all at checkpoint %d", name, in.Members, n, from))
					}
					if err := e.confirm(ctx, cmd, fmt.Sprintf("resize consumer %q from %d to %d members", name, in.Members, n)); err != nil {
						return err
					}
					from, err = consumer.Resize(ctx, s, name, n, e.adminOptions(cmd, false))
					if err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("members", n, "").add("checkpoint", from,
						fmt.Sprintf("consumer %q now has %d members, each at checkpoint %d: start them with Members: %d", name, n, from, n)), false)
				}),
			nameCmd("delete", "delete a consumer's checkpoints, leases and parked events",
				[]cli.Flag{forceRunning(), yesFlag(), dryRunFlag()},
				func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error {
					in, err := consumer.Get(ctx, s, name)
					if err != nil {
						return err
					}
					sum := (&summary{Command: "consumers delete"}).add("name", name, "")
					if err := consumer.Delete(ctx, s, name, e.adminOptions(cmd, true)); err != nil {
						return err
					}
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum, fmt.Sprintf("would delete consumer %q (%d members, checkpoint %d, %d parked events)", name, in.Members, in.Checkpoint, in.Parked))
					}
					if err := e.confirm(ctx, cmd, fmt.Sprintf("delete consumer %q and its %d parked events", name, in.Parked)); err != nil {
						return err
					}
					if err := consumer.Delete(ctx, s, name, e.adminOptions(cmd, false)); err != nil {
						return err
					}
					return e.printSummary(cmd, sum.add("deleted", true, fmt.Sprintf("consumer %q deleted", name)), false)
				}),
			nameCmd("parked", "list a consumer's parked events (those its handler failed on) with their errors",
				[]cli.Flag{
					&cli.IntFlag{Name: "limit", Usage: "list at most this many (0: all)"},
					&cli.Int64Flag{Name: "after", Usage: "list those after this position"},
				},
				func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error {
					ps, err := consumer.Parked(ctx, s, name, cmd.Int64("after"), int(cmd.Int("limit")))
					if err != nil {
						return err
					}
					if ps == nil {
						ps = []consumer.ParkedEvent{}
					}
					if e.jsonOutput(cmd) {
						return e.printJSON(ps)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "POSITION\tAGGREGATE\tATTEMPTS\tPARKED AT\tREPLAY\tERROR")
					for _, p := range ps {
						fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%t\t%s\n", p.Position, p.AggregateID, p.Attempts, p.ParkedAt.UTC().Format(time.RFC3339), p.Replay, oneLine(p.Error))
					}
					return tw.Flush()
				}),
			nameCmd("replay", "ask the running members to handle parked events again (the checkpoint does not move)",
				[]cli.Flag{
					&cli.Int64SliceFlag{Name: "position", Usage: "replay only the parked event at this position (repeatable; default: all)"},
					dryRunFlag(),
				},
				func(ctx context.Context, cmd *cli.Command, s *eventstore.Store, name string) error {
					positions := cmd.Int64Slice("position")
					if len(positions) == 0 {
						positions = nil // all
					}
					// The same checks for a dry run and a real one: the
					// consumer exists, and each position given is parked.
					parked, err := consumer.Parked(ctx, s, name, 0, 0)
					if err != nil {
						return err
					}
					would := len(parked)
					if positions != nil {
						at := make(map[int64]bool, len(parked))
						for _, p := range parked {
							at[p.Position] = true
						}
						for _, p := range positions {
							if !at[p] {
								return fmt.Errorf("%w: consumer %q has no parked event at position %d (esctl consumers parked %s lists them)", transfer.ErrBadInput, name, p, name)
							}
						}
						would = len(slices.Compact(slices.Sorted(slices.Values(positions))))
					}
					sum := (&summary{Command: "consumers replay"}).add("name", name, "")
					if cmd.Bool("dry-run") {
						return e.printDryRun(cmd, sum.add("flagged", would, ""), fmt.Sprintf("would flag %s of consumer %q for replay", plural(int64(would), "parked event"), name))
					}
					n, err := consumer.Replay(ctx, s, name, positions)
					if err != nil {
						return err
					}
					text := fmt.Sprintf("%s of consumer %q flagged for replay: its running members handle them within about a checkpoint interval (esctl consumers parked %s shows what is left)", plural(int64(n), "parked event"), name, name)
					return e.printSummary(cmd, sum.add("flagged", n, text), false)
				}),
		},
	}
}

// adminOptions are the options of consumer.Reset, Resize and Delete: a
// dry run (the checks alone) or the real call.
func (e *env) adminOptions(cmd *cli.Command, dryRun bool) *consumer.AdminOptions {
	return &consumer.AdminOptions{Force: cmd.Bool("force"), DryRun: dryRun}
}

// parseResetTarget reads --to: start, end, a cursor, or a position.
func parseResetTarget(s string) (int64, error) {
	switch s {
	case "start":
		return consumer.Start, nil
	case "end":
		return consumer.End, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, usagef("--to %d: a position is 0 or more", n)
		}
		return n, nil
	}
	pos, err := eventstore.Cursor(s).Position()
	if err != nil {
		return 0, usagef("--to %q: use start, end, a cursor or a position (%v)", s, err)
	}
	return pos, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// consumerHint is the hint printed under a consumer error.
func consumerHint(err error) string {
	var lhe *consumer.LeaseHeldError
	switch {
	case errors.As(err, &lhe):
		return "stop the consumer's instances (or wait for the lease to end), or pass --force"
	case errors.Is(err, consumer.ErrNotFound):
		return "esctl consumers list shows the store's consumers"
	}
	return ""
}
