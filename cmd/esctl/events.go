package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/transfer"
)

// parseTime reads a time bound: milliseconds since the Unix epoch, or RFC
// 3339 (2026-11-22T10:00:00Z, fractions allowed).
func parseTime(flag, s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, usagef("--%s: %d is before the Unix epoch", flag, ms)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, usagef("--%s: %q is neither milliseconds since the Unix epoch nor an RFC 3339 time (2026-11-22T10:00:00Z)", flag, s)
	}
	return t.UnixMilli(), nil
}

func eventsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "print events as NDJSON on stdout, filtered, from a cursor or in a time range",
		Description: "Prints events in the export format (docs/ndjson-format.md), one per line, on stdout,\n" +
			"in position order from --cursor (the start by default), or in time order with --since\n" +
			"and/or --until (inclusive; milliseconds or RFC 3339). --type and --aggregate may be\n" +
			"repeated (OR within each, AND between them). --payload and --metadata select by content:\n" +
			"a JSON object the event's payload (metadata) must contain, as PostgreSQL's jsonb @> decides\n" +
			"on both engines ({\"accountId\":\"a-1\"}: nested objects and arrays by containment, numbers\n" +
			"by value); esctl index adds the indexes that make them fast. The cursor that continues the read is\n" +
			"printed on stderr at the end (and in the -o json summary).\n\n" +
			"With --follow, after the events so far it goes on printing new ones as they are appended\n" +
			"(by any process), until Ctrl-C, which exits 0 and prints the cursor to resume from; a\n" +
			"filter that matches nothing for a while still moves that cursor.\n\n" +
			"Examples:\n  esctl events --limit 10\n  esctl events --aggregate account-7 --type Deposited\n" +
			"  esctl events --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z\n" +
			"  esctl events --cursor \"$CURSOR\" --limit 1000 > page.ndjson\n" +
			"  esctl events --follow --type Deposited | my-projection\n" +
			"  esctl events --payload '{\"accountId\":\"a-1\"}' --metadata '{\"correlationId\":\"req-7\"}'",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cursor", Usage: "read after this cursor (from describe, export or a previous events)"},
			&cli.IntFlag{Name: "limit", Usage: "print at most N events (0: all)"},
			&cli.StringSliceFlag{Name: "type", Usage: "only events of this type (repeatable)"},
			&cli.StringSliceFlag{Name: "aggregate", Usage: "only events of this aggregate id (repeatable)"},
			&cli.StringFlag{Name: "since", Usage: "only events at or after this time (ms or RFC 3339); reads in time order"},
			&cli.StringFlag{Name: "until", Usage: "only events at or before this time (ms or RFC 3339); reads in time order"},
			&cli.StringFlag{Name: "payload", Usage: "only events whose payload contains this JSON object"},
			&cli.StringFlag{Name: "metadata", Usage: "only events whose metadata contains this JSON object"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "after the events so far, print new ones as they are appended, until Ctrl-C"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			f := eventstore.Filter{Cursor: eventstore.Cursor(cmd.String("cursor"))}
			if v := cmd.StringSlice("type"); len(v) > 0 {
				f.EventTypes = v
			}
			if v := cmd.StringSlice("aggregate"); len(v) > 0 {
				f.AggregateIDs = v
			}
			if cmd.IsSet("payload") {
				f.Payload = json.RawMessage(cmd.String("payload"))
			}
			if cmd.IsSet("metadata") {
				f.Metadata = json.RawMessage(cmd.String("metadata"))
			}
			if err := (&eventstore.Filter{Payload: f.Payload, Metadata: f.Metadata}).Validate(); err != nil {
				return usagef("%v", err) // a flag's value; the rest is checked by the read (exit 3)
			}
			for _, b := range []struct {
				flag string
				dst  **int64
			}{{"since", &f.StartTime}, {"until", &f.FinishTime}} {
				if v := cmd.String(b.flag); v != "" {
					ms, err := parseTime(b.flag, v)
					if err != nil {
						return err
					}
					*b.dst = &ms
				}
			}
			byTime := f.StartTime != nil || f.FinishTime != nil
			if byTime && f.Cursor != "" {
				return usagef("--cursor cannot be combined with --since/--until: a read is by cursor or by time range")
			}
			limit := cmd.Int("limit")
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			f.Limit = transfer.DefaultExportPageSize
			if limit > 0 && limit < f.Limit {
				f.Limit = int(limit)
			}
			follow := cmd.Bool("follow")
			if follow && byTime {
				return usagef("--follow reads by cursor: it cannot be combined with --since/--until")
			}
			s, err := e.openExisting(ctx, cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			if follow {
				return e.follow(ctx, cmd, s, f, int64(limit))
			}

			w := bufio.NewWriterSize(e.stdout, 64<<10)
			var n int64
			var last *eventstore.StoredEvent
			var line []byte
			for ev, err := range s.Events(ctx, f) {
				if err != nil {
					_ = w.Flush()
					if last == nil || byTime {
						return err
					}
					return withHint(err, fmt.Sprintf("%s printed, through cursor %s; continue with: %s",
						plural(n, "event"), last.Cursor(), e.rerun(cmd, []string{"cursor"}, "--cursor", string(last.Cursor()))))
				}
				line = transfer.AppendEventLine(line[:0], ev)
				if _, err := w.Write(line); err != nil {
					return err
				}
				n++
				last = &ev
				if limit > 0 && n == int64(limit) {
					break
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			sum := (&summary{Command: "events"}).add("events", n, plural(n, "event"))
			if !byTime {
				next := f.Cursor
				if last != nil {
					next = eventstore.CursorAt(last.Position)
				}
				sum.add("cursor", next, fmt.Sprintf("next cursor %s", orStart(next)))
			}
			return e.printSummary(cmd, sum, true)
		},
	}
}

// orStart shows the empty cursor (the start of the store) readably.
func orStart(c eventstore.Cursor) string {
	if c == "" {
		return `"" (the start)`
	}
	return string(c)
}

// follow prints the events of f, then new ones as they commit, until ctx
// ends (Ctrl-C: exit 0, the resume cursor on stderr) or limit events.
func (e *env) follow(ctx context.Context, cmd *cli.Command, s *eventstore.Store, f eventstore.Filter, limit int64) error {
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	var n int64
	next := f.Cursor
	var line []byte
	var ferr error
	for d, err := range s.Subscribe(ctx, f) {
		if err != nil {
			if ctx.Err() == nil {
				ferr = err
			}
			break
		}
		next = d.Cursor
		if d.Event == nil {
			continue
		}
		line = transfer.AppendEventLine(line[:0], *d.Event)
		if _, err := w.Write(line); err != nil {
			return err
		}
		n++
		// A line is out as soon as it is read: a pipe's reader follows too.
		if err := w.Flush(); err != nil {
			return err
		}
		if limit > 0 && n == limit {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if ferr != nil {
		return withHint(ferr, fmt.Sprintf("%s printed, through cursor %s; continue with: %s", plural(n, "event"), orStart(next), e.rerun(cmd, []string{"cursor"}, "--cursor", string(next))))
	}
	sum := (&summary{Command: "events"}).add("events", n, plural(n, "event")).
		add("cursor", next, fmt.Sprintf("next cursor %s; continue with: %s", orStart(next), e.rerun(cmd, []string{"cursor"}, "--cursor", string(next))))
	return e.printSummary(cmd, sum, true)
}
