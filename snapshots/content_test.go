package snapshots

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type node struct {
	Name     string  `json:"name"`
	Children []*node `json:"children"`
	hidden   int
}

type list []list

func TestShapeOf(t *testing.T) {
	type a struct {
		X int `json:"x"`
	}
	type sameAsA struct {
		X int `json:"x"`
	}
	type otherTag struct {
		X int `json:"y"`
	}
	type otherType struct {
		X int64 `json:"x"`
	}
	type withUnexported struct {
		X int `json:"x"`
		y int
	}
	type withTime struct {
		T time.Time `json:"t"`
	}
	shape := func(v any) string { return shapeOf(reflect.TypeOf(v)) }

	require.Equal(t, shape(a{}), shape(sameAsA{}), "the shape, not the type's name, counts")
	require.Equal(t, shape(a{}), shape(withUnexported{}), "unexported fields are not in the JSON")
	require.NotEqual(t, shape(a{}), shape(otherTag{}))
	require.NotEqual(t, shape(a{}), shape(otherType{}))
	require.NotEqual(t, shape(a{}), shape(&a{}))
	require.NotEqual(t, shape(map[string]int{}), shape(map[string]int64{}))
	require.Len(t, shape(a{}), 16)
	// Recursive types terminate; types that marshal themselves count by name.
	require.NotEmpty(t, shape(node{}))
	require.NotEmpty(t, shape(list{}))
	require.NotEqual(t, shape(withTime{}), shape(struct {
		T struct{} `json:"t"`
	}{}))
}

func TestSnapshotContentRoundTrip(t *testing.T) {
	h := header{Format: formatV1, Kind: "k", ID: "id\nwith newline", StateVersion: 3, Shape: "abc", Version: 7, Position: 9}
	state := []byte("binary\n\x00\xff state")
	content, err := joinSnapshot(h, state)
	require.NoError(t, err)
	gotH, gotState, err := splitSnapshot(content)
	require.NoError(t, err)
	require.Equal(t, h, gotH)
	require.Equal(t, state, gotState)

	for _, bad := range []string{"", "no newline", "{}\n", `{"format":"esctl-snapshot/2"}` + "\nx", "[1]\nx"} {
		_, _, err := splitSnapshot([]byte(bad))
		require.ErrorIs(t, err, ErrInvalidSnapshot, "%q", bad)
	}
}
