package sqlite

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/esctl/esctl/internal/driver"
)

// contains writes the conditions under which column's JSON contains the
// filter object root (driver.Contains), with PostgreSQL jsonb's @>
// semantics; the conformance suite's containment table holds both engines
// to the same answers.
func (q *eventQuery) contains(column string, root *driver.JSONNode) {
	q.sb.WriteByte('(')
	q.node(column, "$", root, true)
	q.sb.WriteByte(')')
}

// node writes the conditions of n at path of expr (a column, or an
// element's JSON text).
func (q *eventQuery) node(expr, path string, n *driver.JSONNode, first bool) {
	and := func() {
		if !first {
			q.sb.WriteString(andSQL)
		}
		first = false
	}
	lit := sqlString(path)
	switch n.Kind {
	case driver.JSONObject:
		if len(n.Keys) == 0 {
			and()
			fmt.Fprintf(&q.sb, jsonTypeTmpl, expr, lit, "object")
		}
		for i, k := range n.Keys {
			q.node(expr, path+"."+jsonKey(k), n.Values[i], first)
			first = false
		}
	case driver.JSONArray:
		and()
		fmt.Fprintf(&q.sb, jsonTypeTmpl, expr, lit, "array")
		for _, e := range n.Elems {
			q.sb.WriteString(andSQL)
			q.each(expr, lit, e)
		}
	case driver.JSONString:
		and()
		fmt.Fprintf(&q.sb, jsonExtractTmpl, expr, lit)
		q.args = append(q.args, n.Str)
	case driver.JSONNumber:
		and()
		fmt.Fprintf(&q.sb, jsonNumberTmpl, expr, lit)
		q.args = append(q.args, numberArg(n))
	default:
		and()
		fmt.Fprintf(&q.sb, jsonTypeTmpl, expr, lit, scalarType(n.Kind))
	}
}

// each writes "some element of the array at lit of expr contains e".
func (q *eventQuery) each(expr, lit string, e *driver.JSONNode) {
	q.aliases++
	alias := "j" + strconv.Itoa(q.aliases)
	cond := eventQuery{args: q.args, aliases: q.aliases}
	switch e.Kind {
	case driver.JSONObject:
		fmt.Fprintf(&cond.sb, elemTypeTmpl, alias, "object")
		for i, k := range e.Keys {
			cond.node(fmt.Sprintf(elemValueTmpl, alias), "$."+jsonKey(k), e.Values[i], false)
		}
	case driver.JSONArray:
		fmt.Fprintf(&cond.sb, elemTypeTmpl, alias, "array")
		for _, inner := range e.Elems {
			cond.sb.WriteString(andSQL)
			cond.each(fmt.Sprintf(elemValueTmpl, alias), sqlString("$"), inner)
		}
	case driver.JSONString:
		fmt.Fprintf(&cond.sb, elemAtomTmpl, alias, alias)
		cond.args = append(cond.args, e.Str)
	case driver.JSONNumber:
		fmt.Fprintf(&cond.sb, elemNumberTmpl, alias)
		cond.args = append(cond.args, numberArg(e))
	default:
		fmt.Fprintf(&cond.sb, elemTypeTmpl, alias, scalarType(e.Kind))
	}
	fmt.Fprintf(&q.sb, existsEachTmpl, expr, lit, alias, cond.sb.String())
	q.args, q.aliases = cond.args, cond.aliases
}

func numberArg(n *driver.JSONNode) any {
	if n.IsInt {
		return n.Int
	}
	return n.Float
}

// scalarType is json_type's name of a true, false or null.
func scalarType(k driver.JSONKind) string {
	switch k {
	case driver.JSONTrue:
		return "true"
	case driver.JSONFalse:
		return "false"
	}
	return "null"
}

// jsonKey is an object key as a quoted label of a SQLite JSON path: a
// JSON string (SQLite compares labels with escapes decoded, so any key,
// dots and quotes included, is one label).
func jsonKey(k string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range k {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sqlString is s as a SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// jsonPathOf is the path of the member at keys (a.b.c) of a column.
func jsonPathOf(keys []string) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, k := range keys {
		b.WriteByte('.')
		b.WriteString(jsonKey(k))
	}
	return b.String()
}
