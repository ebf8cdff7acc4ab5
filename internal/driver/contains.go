package driver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/esctl/esctl/estype"
)

// Contains is a containment filter on an event's payload or metadata (see
// eventstore.Filter.Payload): the event matches when its value contains
// the filter's JSON object, as PostgreSQL's jsonb @> decides: an object
// contains an object when each of the filter's members is in it with a
// value that contains the filter's value; an array contains an array when
// each of the filter's elements is contained in one of its elements; a
// scalar contains an equal scalar (numbers by value: 1 is 1.0; strings
// after unescaping). A filter is always an object, so that "a scalar in
// an array" (jsonb's exception for a top-level scalar) never arises.
type Contains struct {
	JSON []byte    // the filter's compact JSON text (PostgreSQL binds it)
	Root *JSONNode // the parsed filter, an object (SQLite translates it)
}

// JSONKind is the kind of a JSONNode.
type JSONKind int

// The kinds of JSON values.
const (
	JSONObject JSONKind = iota
	JSONArray
	JSONString
	JSONNumber
	JSONTrue
	JSONFalse
	JSONNull
)

// JSONNode is a parsed JSON value of a containment filter.
type JSONNode struct {
	Kind JSONKind
	// Str is a string's decoded value.
	Str string
	// Int, when IsInt, and else Float are a number's value.
	Int   int64
	IsInt bool
	Float float64
	// Keys and Values are an object's members, in order; Elems an
	// array's elements.
	Keys   []string
	Values []*JSONNode
	Elems  []*JSONNode
}

// MaxContainsBytes and MaxContainsDepth bound a containment filter.
const (
	MaxContainsBytes = 64 << 10
	MaxContainsDepth = 32
)

// ParseContains parses a containment filter: a JSON object (compact or
// not), at most MaxContainsBytes and MaxContainsDepth deep. nil or empty
// returns nil (no filter).
func ParseContains(text []byte) (*Contains, error) {
	if len(bytes.TrimSpace(text)) == 0 {
		return nil, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, text); err != nil {
		return nil, fmt.Errorf("is not valid JSON: %v", err)
	}
	if compact.Len() > MaxContainsBytes {
		return nil, fmt.Errorf("is %d bytes, more than the limit of %d", compact.Len(), MaxContainsBytes)
	}
	c := &Contains{JSON: bytes.Clone(compact.Bytes())}
	dec := json.NewDecoder(bytes.NewReader(c.JSON))
	dec.UseNumber()
	root, err := parseNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("has data after the JSON object")
	}
	if root.Kind != JSONObject {
		return nil, errors.New("must be a JSON object, such as {\"accountId\":\"a-1\"}")
	}
	c.Root = root
	return c, nil
}

func parseNode(dec *json.Decoder, depth int) (*JSONNode, error) {
	if depth > MaxContainsDepth {
		return nil, fmt.Errorf("nests deeper than %d", MaxContainsDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %v", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &JSONNode{Kind: JSONObject}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("is not valid JSON: %v", err)
				}
				k := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("has the key %q twice", k)
				}
				seen[k] = true
				child, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Keys, n.Values = append(n.Keys, k), append(n.Values, child)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &JSONNode{Kind: JSONArray}
			for dec.More() {
				child, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Elems = append(n.Elems, child)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
	case string:
		return &JSONNode{Kind: JSONString, Str: v}, nil
	case json.Number:
		n := &JSONNode{Kind: JSONNumber}
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			n.Int, n.IsInt = i, true
			return n, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("has the number %s, out of range", v)
		}
		n.Float = f
		return n, nil
	case bool:
		if v {
			return &JSONNode{Kind: JSONTrue}, nil
		}
		return &JSONNode{Kind: JSONFalse}, nil
	case nil:
		return &JSONNode{Kind: JSONNull}, nil
	}
	return nil, fmt.Errorf("has an unexpected token %v", tok)
}

// IndexPrefix starts the name of every index CreateIndex makes; DropIndex
// drops no other.
const IndexPrefix = "esctl_idx_"

// IndexName is the name of the index of spec: the prefix, the column,
// and for a path its keys (letters, digits and underscores kept) and a
// hash of the exact path, so that two paths never share a name.
func IndexName(spec *estype.IndexSpec) string {
	name := IndexPrefix + spec.On
	if len(spec.Path) == 0 {
		return name
	}
	var b strings.Builder
	for _, k := range spec.Path {
		b.WriteByte('_')
		for _, r := range strings.ToLower(k) {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
				b.WriteRune(r)
			}
		}
	}
	key := b.String()
	if len(key) > 40 {
		key = key[:40]
	}
	exact, _ := json.Marshal(spec.Path)
	sum := sha256.Sum256(exact)
	return name + key + "_" + hex.EncodeToString(sum[:4])
}

// ValidIndexName reports whether name can be one of IndexName's.
func ValidIndexName(name string) bool {
	if !strings.HasPrefix(name, IndexPrefix) || len(name) > 63 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// IndexOn returns the column of an index IndexName named.
func IndexOn(name string) string {
	for _, on := range []string{estype.IndexOnPayload, estype.IndexOnMetadata} {
		if strings.HasPrefix(name, IndexPrefix+on) {
			return on
		}
	}
	return ""
}
