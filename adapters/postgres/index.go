package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// CreateIndex implements driver.Driver: a GIN index (jsonb_path_ops) on
// the column as jsonb, the expression the containment condition reads
// (payloadContainsSQL), built CONCURRENTLY: appends and reads go on
// meanwhile. A build that failed or was interrupted leaves an invalid
// index, which is dropped and built again.
func (d *Dialect) CreateIndex(ctx context.Context, spec *estype.IndexSpec) (*estype.Index, error) {
	if len(spec.Path) != 0 {
		return nil, &estype.InvalidIndexError{Field: "path", Reason: "PostgreSQL's GIN index covers the whole " + spec.On + ": give no path"}
	}
	name := driver.IndexName(spec)
	valid, found, err := d.indexValid(ctx, name)
	if err != nil {
		return nil, err
	}
	if found && !valid {
		if _, err := d.pool.Exec(ctx, d.q(fmt.Sprintf(dropIndexTmpl, name)), pgx.QueryExecModeSimpleProtocol); err != nil {
			return nil, interpretError(err)
		}
	}
	if _, err := d.pool.Exec(ctx, d.q(fmt.Sprintf(createIndexTmpl, name, spec.On)), pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, interpretError(err)
	}
	// The planner knows an expression's values only from ANALYZE: without
	// it, it takes a containment filter for a common one and reads the
	// store in position order instead of the index (found by make bench:
	// about a second per read of 100 matches in 1,000,000 events).
	if _, err := d.pool.Exec(ctx, d.q(analyzeEventsSQL)); err != nil {
		return nil, interpretError(err)
	}
	list, err := d.ListIndexes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i], nil
		}
	}
	return nil, fmt.Errorf("postgres: index %s not found after its creation", name)
}

func (d *Dialect) indexValid(ctx context.Context, name string) (valid, found bool, err error) {
	err = d.pool.QueryRow(ctx, indexValidSQL, d.schema, name).Scan(&valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	return valid, err == nil, interpretError(err)
}

// ListIndexes implements driver.Driver.
func (d *Dialect) ListIndexes(ctx context.Context) ([]estype.Index, error) {
	rows, err := d.pool.Query(ctx, listIndexesSQL, d.schema, strings.ReplaceAll(driver.IndexPrefix, "_", `\_`)+"%")
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []estype.Index
	for rows.Next() {
		var ix estype.Index
		if err := rows.Scan(&ix.Name, &ix.Definition, &ix.Valid); err != nil {
			return nil, interpretError(err)
		}
		ix.On = driver.IndexOn(ix.Name)
		out = append(out, ix)
	}
	return out, interpretError(rows.Err())
}

// DropIndex implements driver.Driver (CONCURRENTLY).
func (d *Dialect) DropIndex(ctx context.Context, name string) (bool, error) {
	_, found, err := d.indexValid(ctx, name)
	if err != nil || !found {
		return false, err
	}
	_, err = d.pool.Exec(ctx, d.q(fmt.Sprintf(dropIndexTmpl, name)), pgx.QueryExecModeSimpleProtocol)
	return true, interpretError(err)
}
