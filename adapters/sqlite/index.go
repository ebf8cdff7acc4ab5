package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/esctl/esctl/estype"
	"github.com/esctl/esctl/internal/driver"
)

// CreateIndex implements driver.Driver: an expression index on
// json_extract(column, path), the expression the containment conditions
// write for the member at path (contains.go), so that an equality on it
// is an index search. SQLite builds it under the write lock: appends wait
// for the build (seconds per million events).
func (d *Dialect) CreateIndex(ctx context.Context, spec *estype.IndexSpec) (*estype.Index, error) {
	if len(spec.Path) == 0 {
		return nil, &estype.InvalidIndexError{Field: "path", Reason: "SQLite indexes one member of the " + spec.On + ": give its path (accountId, or customer.id)"}
	}
	ix := &estype.Index{Name: driver.IndexName(spec), IndexSpec: *spec, Valid: true}
	ix.Definition = fmt.Sprintf(createIndexTmpl, ix.Name, spec.On, sqlString(jsonPathOf(spec.Path)))
	err := d.write(ctx, func(c *wconn) error {
		_, err := c.ExecContext(ctx, ix.Definition)
		return err
	})
	if err != nil {
		return nil, interpretError(err)
	}
	ix.Definition = strings.Replace(ix.Definition, "IF NOT EXISTS ", "", 1)
	return ix, nil
}

// ListIndexes implements driver.Driver.
func (d *Dialect) ListIndexes(ctx context.Context) ([]estype.Index, error) {
	rows, err := d.rdb.QueryContext(ctx, listIndexesSQL)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []estype.Index
	for rows.Next() {
		ix := estype.Index{Valid: true}
		if err := rows.Scan(&ix.Name, &ix.Definition); err != nil {
			return nil, interpretError(err)
		}
		ix.On = driver.IndexOn(ix.Name)
		ix.Path = pathOfDefinition(ix.Definition)
		out = append(out, ix)
	}
	return out, interpretError(rows.Err())
}

// DropIndex implements driver.Driver.
func (d *Dialect) DropIndex(ctx context.Context, name string) (bool, error) {
	found := false
	err := d.write(ctx, func(c *wconn) error {
		var n int
		if err := c.QueryRowContext(ctx, indexExistsSQL, name).Scan(&n); err != nil {
			return err
		}
		if found = n > 0; !found {
			return nil
		}
		_, err := c.ExecContext(ctx, fmt.Sprintf(dropIndexTmpl, name))
		return err
	})
	return found, interpretError(err)
}

// pathOfDefinition reads the keys back from an index's statement: the
// labels of its path literal '$."a"."b"'.
func pathOfDefinition(def string) []string {
	start := strings.Index(def, `'$`)
	end := strings.LastIndex(def, `')`)
	if start < 0 || end <= start {
		return nil
	}
	p := strings.ReplaceAll(def[start+2:end], "''", "'")
	var keys []string
	for strings.HasPrefix(p, `."`) {
		p = p[1:]
		i := 1
		for i < len(p) && p[i] != '"' {
			if p[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(p) {
			return keys
		}
		var k string
		if json.Unmarshal([]byte(p[:i+1]), &k) != nil {
			return keys
		}
		keys = append(keys, k)
		p = p[i+1:]
	}
	return keys
}
