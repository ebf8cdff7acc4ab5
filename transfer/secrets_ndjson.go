package transfer

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/eventstore"
	"github.com/esctl/esctl/internal/access"
	"github.com/esctl/esctl/internal/core"
	"github.com/esctl/esctl/internal/driver"
	"github.com/esctl/esctl/internal/ndjson"
)

// Secrets travel as NDJSON too, one per line, keys in reSolve's order:
//
//	{"secret":"key material","id":"user-1","idx":1}
//	{"secret":null,"id":"user-2","idx":2}
//
// A null secret is a tombstone: the secret was deleted and its id may never
// be used again. Unlike reSolve, tombstones are exported and imported, and
// imports keep idx.

// DefaultSecretsSourceID is the import source id ImportSecrets uses when
// none is given.
const DefaultSecretsSourceID = "secrets"

// DefaultSecretsBatch is how many secrets one transaction of ImportSecrets
// writes at most, by default.
const DefaultSecretsBatch = 1000

// SecretsExportOptions are the arguments of ExportSecrets.
type SecretsExportOptions struct {
	// Idx exports secrets with idx >= Idx (0: all).
	Idx int64
}

// SecretsExportResult reports what ExportSecrets wrote.
type SecretsExportResult struct {
	Secrets    int64
	Tombstones int64
	Bytes      int64
	// NextIdx resumes the export after the last secret written.
	NextIdx int64
}

// ExportSecrets writes the store's secrets, tombstones included, in idx
// order as NDJSON, from one consistent snapshot. Secret values are written
// in clear: protect the output like the database.
func ExportSecrets(ctx context.Context, s *eventstore.Store, w io.Writer, opts *SecretsExportOptions) (*SecretsExportResult, error) {
	sc := access.Core(s)
	var o SecretsExportOptions
	if opts != nil {
		o = *opts
	}
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	tx, err := sc.R.BeginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("export secrets: %w", err)
	}
	defer tx.Close(ctx)
	res := &SecretsExportResult{NextIdx: o.Idx}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for {
		page, err := tx.ListSecrets(ctx, &driver.ListSecretsParams{MinIdx: res.NextIdx, IncludeDeleted: true, Limit: core.SecretsPageSize})
		if err != nil {
			return res, fmt.Errorf("export secrets: %w", err)
		}
		for i := range page {
			sec := estype.Secret(page[i])
			line = ndjson.AppendSecret(line[:0], &sec)
			if _, err := bw.Write(line); err != nil {
				return res, fmt.Errorf("export secrets: write: %w", err)
			}
			res.Secrets++
			if sec.Secret == nil {
				res.Tombstones++
			}
			res.Bytes += int64(len(line))
			res.NextIdx = sec.Idx + 1
		}
		if err := bw.Flush(); err != nil {
			return res, fmt.Errorf("export secrets: write: %w", err)
		}
		if len(page) < core.SecretsPageSize {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
}

// SecretsImportOptions are the arguments of ImportSecrets.
type SecretsImportOptions struct {
	// SourceID, ByteOffset, Resume and MaxLineBytes work as for
	// ImportEvents. SourceID "" means DefaultSecretsSourceID.
	SourceID     string
	ByteOffset   int64
	Resume       bool
	MaxLineBytes int
	// BatchSecrets bounds one transaction. 0: DefaultSecretsBatch.
	BatchSecrets int
	// DryRun reads and checks the whole source against the store's
	// secrets (ids and idxs used, in the store or earlier in the source)
	// and writes nothing, as ImportOptions.DryRun.
	DryRun bool
}

// ImportSecrets reads NDJSON secrets from r and adds them to the store,
// keeping each idx (a line without idx gets the next free one) and
// tombstones, in batches that each commit with a checkpoint, as
// ImportEvents does. An id or idx already in the store stops the import
// with a *LineError (wrapping *SecretExistsError for an id). No audit events
// are written: they belong to the events stream. Secret writes are not
// blocked by freeze here: restoring is maintenance.
func ImportSecrets(ctx context.Context, s *eventstore.Store, r io.Reader, opts *SecretsImportOptions) (*ImportResult, error) {
	sc := access.Core(s)
	var o SecretsImportOptions
	if opts != nil {
		o = *opts
	}
	o.SourceID = cmp.Or(o.SourceID, DefaultSecretsSourceID)
	o.MaxLineBytes = cmp.Or(o.MaxLineBytes, DefaultMaxLineBytes)
	o.BatchSecrets = cmp.Or(o.BatchSecrets, DefaultSecretsBatch)
	if err := sc.Begin(ctx); err != nil {
		return nil, err
	}
	defer sc.Exit()
	si := &secretsImport{s: s, w: sc.W, o: o}
	if o.DryRun {
		dry, err := core.NewDryWriter(ctx, sc.D)
		if err != nil {
			return nil, fmt.Errorf("import secrets: %w", err)
		}
		si.w = dry
	}
	err := si.run(ctx, r)
	res := si.res
	if si.lr != nil {
		res.PrefixSHA256 = si.lr.Hash.Sum(nil)
	}
	return &res, err
}

type secretsImport struct {
	s     *eventstore.Store
	w     core.Writer // the store's, or a core.DryWriter
	o     SecretsImportOptions
	cp    *estype.ImportCheckpoint
	lr    *ndjson.Reader
	res   ImportResult
	batch []estype.Secret
	marks lineMarks
	ids   map[string]int
	idxs  map[int64]int
}

func (si *secretsImport) run(ctx context.Context, r io.Reader) error {
	if err := core.AwaitWriters(ctx, si.w); err != nil {
		return fmt.Errorf("import secrets: %w", err)
	}
	cp, err := access.Core(si.s).D.Checkpoint(ctx, si.o.SourceID)
	if err != nil {
		return fmt.Errorf("import secrets: read checkpoint: %w", err)
	}
	if cp != nil && cp.Kind != estype.CheckpointSecrets {
		return fmt.Errorf("%w: source %q is an %s import", estype.ErrResumeMismatch, si.o.SourceID, cp.Kind)
	}
	switch {
	case si.o.Resume || si.o.ByteOffset > 0:
		if cp == nil {
			return fmt.Errorf("%w: the store has no import of source %q to resume", estype.ErrResumeMismatch, si.o.SourceID)
		}
		h, err := ndjson.RestoreHash(cp.HashState)
		if err != nil {
			return err
		}
		if si.o.Resume {
			if err := verifyPrefix(r, cp, h); err != nil {
				return err
			}
		} else if si.o.ByteOffset != cp.ByteOffset {
			return fmt.Errorf("%w: source %q: byte offset %d is not the committed offset %d", estype.ErrResumeMismatch, si.o.SourceID, si.o.ByteOffset, cp.ByteOffset)
		}
		si.cp = cp
		si.lr = ndjson.NewReader(r, si.o.MaxLineBytes, cp.ByteOffset, cp.Line+1, h)
		si.res = ImportResult{ByteOffset: cp.ByteOffset, Lines: cp.Line, TotalEvents: cp.Events, Done: cp.Done}
		if cp.Done {
			return nil
		}
	default:
		si.cp = &estype.ImportCheckpoint{SourceID: si.o.SourceID, Kind: estype.CheckpointSecrets, Mode: estype.CheckpointManual}
		si.lr = ndjson.NewReader(r, si.o.MaxLineBytes, 0, 1, nil)
	}
	si.ids, si.idxs = map[string]int{}, map[int64]int{}
	for n := 0; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			if err := si.flush(context.WithoutCancel(ctx), false); err != nil {
				return err
			}
			return ctx.Err()
		}
		line, err := si.lr.Next()
		if errors.Is(err, io.EOF) {
			return si.flush(ctx, true)
		}
		if err == nil {
			err = si.accept(line)
		}
		if err != nil {
			if ferr := si.flush(ctx, false); ferr != nil {
				return ferr
			}
			return err
		}
		if len(si.batch) >= si.o.BatchSecrets {
			if err := si.flush(ctx, false); err != nil {
				return err
			}
		}
	}
}

func (si *secretsImport) accept(line []byte) error {
	lr := si.lr
	if col, reason := ndjson.CheckFrame(line, lr.Offset == 0); reason != "" {
		return lr.ErrAt(col, "", reason)
	}
	sec, lerr := core.ParseSecretLine(line)
	if lerr != nil {
		return lr.ErrAt(lerr.Column, lerr.Field, lerr.Reason)
	}
	if i, dup := si.ids[sec.ID]; dup {
		return lr.ErrAt(-1, "id", fmt.Sprintf("secret id %q is also on line %d", sec.ID, si.marks.marks[i].line))
	}
	if sec.Idx >= 0 {
		if i, dup := si.idxs[sec.Idx]; dup {
			return lr.ErrAt(-1, "idx", fmt.Sprintf("idx %d is also on line %d", sec.Idx, si.marks.marks[i].line))
		}
		si.idxs[sec.Idx] = len(si.batch)
	}
	si.ids[sec.ID] = len(si.batch)
	si.marks.add(lr)
	si.batch = append(si.batch, *sec)
	lr.Accept(line)
	return nil
}

func (si *secretsImport) flush(ctx context.Context, done bool) error {
	defer func() {
		si.batch = si.batch[:0]
		si.marks.reset()
		clear(si.ids)
		clear(si.idxs)
	}()
	if len(si.batch) == 0 && !done {
		return nil
	}
	return si.commit(ctx, len(si.batch), done)
}

func (si *secretsImport) commit(ctx context.Context, n int, done bool) error {
	cp := *si.cp
	cp.ByteOffset, cp.Line, cp.HashState = si.marks.before(n, si.lr)
	cp.Events += int64(n)
	cp.Done = done && n == len(si.batch)
	cp.UpdatedAt = access.Core(si.s).NowMillis()
	k, err := core.ImportSecretsTx(ctx, si.w, si.batch[:n], &cp)
	if err != nil {
		return fmt.Errorf("import secrets: store lines %d to %d: %w", si.res.Lines+1, cp.Line, err)
	}
	if k >= 0 {
		if k > 0 {
			if err := si.commit(ctx, k, false); err != nil {
				return err
			}
		}
		sec, mk := si.batch[k], si.marks.marks[k]
		return &estype.LineError{Line: mk.line, Offset: mk.offset, Column: -1, Field: "id",
			Reason: secretUsedReason(sec),
			Err:    &estype.SecretExistsError{ID: sec.ID}}
	}
	si.cp = &cp
	si.res.ByteOffset, si.res.Lines = cp.ByteOffset, cp.Line
	si.res.Events += int64(n)
	si.res.TotalEvents = cp.Events
	si.res.Done = cp.Done
	return nil
}

func secretUsedReason(sec estype.Secret) string {
	if sec.Idx < 0 {
		return fmt.Sprintf("secret id %q is already used in the store (or on an earlier line)", sec.ID)
	}
	return fmt.Sprintf("secret id %q or idx %d is already used in the store (or on an earlier line)", sec.ID, sec.Idx)
}
