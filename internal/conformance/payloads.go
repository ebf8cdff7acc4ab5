package conformance

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esctl/esctl/eventstore"
)

// runPayloads checks that payloads are stored as the compact form of what the
// caller gave, byte for byte: key order, number spelling, unicode and escapes
// are kept (PostgreSQL jsonb would change all four).
func runPayloads(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := NewStore(t, h, nil)
	big := `{"blob":"` + strings.Repeat("0123456789abcdef", 1<<16) + `"}`
	tests := []struct {
		name, in, want string
	}{
		{"KeyOrder", `{"z":1,"a":2,"m":{"y":1,"b":2}}`, ""},
		{"TwentyDigitNumbers", `{"n":12345678901234567890,"neg":-98765432109876543210,"u64":18446744073709551616}`, ""},
		{"NumberSpelling", `{"f":1.230e-5,"g":1E+2,"z":-0,"d":0.10,"huge":1e400}`, ""},
		{"Unicode", `{"s":"héllo 世界 🎉","k":"ключ"}`, ""},
		{"UnicodeKeys", `{"日本":1,"ü":{"é":[]}}`, ""},
		{"Escapes", `{"s":"q\"b\\s\/n\n\t\r\b\f","u":"\u00e9\ud83c\udf89\u2028\u001f"}`, ""},
		{"RawSeparators", "{\"s\":\"a\u2028b\u2029c\"}", ""},
		{"HTMLCharacters", `{"h":"<a href='x'>&amp;</a>"}`, ""},
		{"Whitespace", " {\n \"a\" : [ 1 , 2 , { \"b\" : \"c d\" } ] ,\t\"e\" : null\r\n}\n", `{"a":[1,2,{"b":"c d"}],"e":null}`},
		{"EmptyObject", `{}`, ""},
		{"EmptyArray", `[]`, ""},
		{"String", `"just a string"`, ""},
		{"EmptyString", `""`, ""},
		{"Number", `42`, ""},
		{"Null", `null`, ""},
		{"True", `true`, ""},
		{"Nested", `{"a":[[[{"b":[{},[]]}]]],"c":false}`, ""},
		{"OneMebibyte", big, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			id := "payload-" + tt.name
			saved, err := s.SaveEvent(ctx, eventstore.Event{AggregateID: id, AggregateVersion: 1, Type: "P", Payload: []byte(tt.in)})
			require.NoError(t, err)
			require.Equal(t, want, string(saved.Payload))
			page, err := s.LoadEvents(ctx, eventstore.Filter{AggregateIDs: []string{id}, Limit: 1})
			require.NoError(t, err)
			require.Len(t, page.Events, 1)
			require.Equal(t, want, string(page.Events[0].Payload), "stored bytes")
			latest, err := s.LatestEvent(ctx, eventstore.Filter{AggregateIDs: []string{id}})
			require.NoError(t, err)
			require.Equal(t, want, string(latest.Payload))
		})
	}
}
