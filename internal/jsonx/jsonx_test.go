package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"Object", `{"b":1,"a":2}`, `{"b":1,"a":2}`},
		{"Whitespace", " { \"a\" :\n[ 1 ,\t2 ] }\r\n", `{"a":[1,2]}`},
		{"Numbers", `[0,-0,1.5,1e10,1E-2,-12.5e+3,123456789012345678901234567890]`, ``},
		{"StringEscapesKept", `"\u00e9\n\"\/\\\ud83c\udf89"`, ``},
		{"Literals", `[true,false,null]`, ``},
		{"Empty", `{"a":{},"b":[],"c":""}`, ``},
		{"Unicode", `"héllo 世界"`, ``},
		{"SameKeyInSiblings", `[{"a":1},{"a":2}]`, ``},
		{"ManyKeys", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got, err := Compact(nil, []byte(tt.in))
			if err != nil {
				t.Fatalf("Compact(%q): %v", tt.in, err)
			}
			if string(got) != want {
				t.Fatalf("Compact(%q) = %q, want %q", tt.in, got, want)
			}
		})
	}
}

func TestCompactRejects(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	tests := []struct {
		name, in, msg string
		offset        int
	}{
		{"Empty", ``, "unexpected end of input", 0},
		{"OnlySpace", `  `, "unexpected end of input", 2},
		{"Truncated", `{"a":1`, "unexpected end of input", 6},
		{"TwoValues", `{}{}`, "unexpected data after the JSON value", 2},
		{"DuplicateKey", `{"a":1,"a":2}`, `duplicate key "a"`, 7},
		{"DuplicateKeyEscaped", `{"ab":1,"\u0061b":2}`, `duplicate key "ab"`, 8},
		{"DuplicateKeyManyKeys", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":18}`, `duplicate key "k3"`, 143},
		{"NaN", `[NaN]`, "NaN and Infinity", 1},
		{"Infinity", `-Infinity`, "NaN and Infinity", 0},
		{"SingleQuote", `{'a':1}`, "single-quoted", 1},
		{"Comment", `[1,/*x*/2]`, "comments", 3},
		{"TrailingCommaObject", `{"a":1,}`, "trailing comma", 7},
		{"TrailingCommaArray", `[1,]`, "trailing comma", 3},
		{"UnquotedKey", `{a:1}`, "expected an object key", 1},
		{"LeadingZero", `01`, "leading zero", 0},
		{"BareDot", `1.`, "after the decimal point", 2},
		{"BadExponent", `1e`, "exponent", 2},
		{"PlusSign", `+1`, "expected a JSON value", 0},
		{"NULEscape", `"a\u0000"`, `\u0000`, 2},
		{"LoneHigh", `"\ud800x"`, "lone high surrogate", 1},
		{"LoneLow", `"\udc00"`, "lone low surrogate", 1},
		{"HighThenNonLow", `"\ud800\u0041"`, "not followed by a low surrogate", 1},
		{"InvalidUTF8", "\"a\xffb\"", "invalid UTF-8", 2},
		{"RawControl", "\"a\nb\"", "raw control character", 2},
		{"RawNUL", "\"a\x00b\"", "raw control character", 2},
		{"BadEscape", `"\x"`, "invalid escape", 1},
		{"BadHex", `"\u12g4"`, "invalid hex digit", 1},
		{"Unterminated", `"abc`, "unterminated string", 0},
		{"TooDeep", deep, "nesting deeper than 512", MaxDepth},
		{"BOM", "\xef\xbb\xbf{}", "expected a JSON value, found byte 0xef", 0},
		{"BadLiteral", `tru`, "expected a JSON value", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compact(nil, []byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compact(%q) = %v, want a *SyntaxError", tt.in, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", se.Msg, tt.msg)
			}
			if se.Offset != tt.offset {
				t.Errorf("offset = %d, want %d (%v)", se.Offset, tt.offset, err)
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\s`, `"q\"b\\s"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x01\x1f", `"\u0001\u001f"`},
		{"<&>\u2028é🎉\x7f", "\"<&>\u2028é🎉\x7f\""}, // as JSON.stringify: no HTML or U+2028 escaping
	}
	for _, tt := range tests {
		got := string(AppendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		p := NewParser([]byte(got))
		back, err := p.String()
		if err != nil || back != tt.in {
			t.Errorf("round trip of %q: %q, %v", tt.in, back, err)
		}
	}
}

func TestParserInt(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"0", "-1", "9223372036854775807", "-9223372036854775808"} {
		if _, err := NewParser([]byte(ok)).Int(); err != nil {
			t.Errorf("Int(%s): %v", ok, err)
		}
	}
	for _, bad := range []string{"1.0", "1e3", "9223372036854775808", `"1"`, "-", "01", "null"} {
		if _, err := NewParser([]byte(bad)).Int(); err == nil {
			t.Errorf("Int(%s) accepted", bad)
		}
	}
}

// FuzzCompact checks Compact against encoding/json: whatever Compact accepts
// is valid JSON and compacts identically; whatever encoding/json rejects,
// Compact rejects; and every rejection of JSON that encoding/json accepts is
// confirmed by an independent check of the rule Compact names.
func FuzzCompact(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}]}`, ` "x" `, `[1e5,-0.5]`, `{"a":1,"a":2}`, `"\ud800"`, `"\u0000"`,
		"\"\xff\"", `{"k":"v",}`, `[` + strings.Repeat("[", 600), `{"\u00e9":1,"é":2}`, `01`, `NaN`, "\xef\xbb\xbf{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := Compact(nil, src)
		if err == nil {
			if !json.Valid(src) {
				t.Fatalf("Compact accepted invalid JSON %q", src)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, src); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("Compact(%q) = %q, encoding/json: %q", src, got, want.Bytes())
			}
			if err := Valid(got); err != nil {
				t.Fatalf("compact form %q is rejected: %v", got, err)
			}
			return
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("error is not a *SyntaxError: %v", err)
		}
		if se.Offset < 0 || se.Offset > len(src) {
			t.Fatalf("offset %d outside the input (%d bytes)", se.Offset, len(src))
		}
		if !json.Valid(src) {
			return
		}
		// encoding/json accepts it: the rejection must be one of the extra
		// rules, and that rule must really be broken.
		switch {
		case strings.Contains(se.Msg, "duplicate key"):
			if !hasDuplicateKey(src) {
				t.Fatalf("%q: reported a duplicate key, there is none: %v", src, err)
			}
		case strings.Contains(se.Msg, `\u0000`):
			if !bytes.Contains(bytes.ToLower(src), []byte(`\u0000`)) {
				t.Fatalf("%q: reported \\u0000, there is none: %v", src, err)
			}
		case strings.Contains(se.Msg, "surrogate"):
			if !loneSurrogate.Match(src) {
				t.Fatalf("%q: reported a surrogate escape, there is none: %v", src, err)
			}
		case strings.Contains(se.Msg, "invalid UTF-8"):
			if utf8.Valid(src) {
				t.Fatalf("%q: reported invalid UTF-8 in valid UTF-8: %v", src, err)
			}
		case strings.Contains(se.Msg, "nesting deeper"):
			if depth(src) <= MaxDepth {
				t.Fatalf("%q: reported nesting deeper than %d, depth is %d", src, MaxDepth, depth(src))
			}
		default:
			t.Fatalf("Compact rejected valid JSON %q: %v", src, err)
		}
	})
}

var loneSurrogate = regexp.MustCompile(`(?i)\\ud[89a-f][0-9a-f]{2}`)

// hasDuplicateKey walks src with encoding/json's tokenizer and reports
// whether some object has two keys that decode to the same string.
func hasDuplicateKey(src []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(src))
	type frame struct {
		object  bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.object {
			top.wantKey = true // this token is the value
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// depth returns the deepest nesting of src, ignoring brackets in strings.
func depth(src []byte) int {
	d, deepest, inString, escaped := 0, 0, false, false
	for _, c := range src {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			d++
			deepest = max(deepest, d)
		case !inString && (c == '}' || c == ']'):
			d--
		}
	}
	return deepest
}

// TestDuplicateKeyAtEveryCount: a duplicate is found whichever key it
// repeats and however many keys come before it, on both sides of the switch
// from the key slice to the key map.
func TestDuplicateKeyAtEveryCount(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 20; n++ {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		for dup := range n {
			src := b.String() + fmt.Sprintf(`"k%d":0}`, dup)
			if err := Valid([]byte(src)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`duplicate key "k%d"`, dup)) {
				t.Fatalf("%s: %v", src, err)
			}
		}
		if err := Valid([]byte(b.String() + `"x":0}`)); err != nil {
			t.Fatalf("%d distinct keys: %v", n+1, err)
		}
	}
}

func TestStringBytes(t *testing.T) {
	t.Parallel()
	src := []byte(`"plain" "a\u00e9\n\"b"`)
	p := NewParser(src)
	b, err := p.StringBytes(nil)
	if err != nil || string(b) != "plain" || &b[0] != &src[1] {
		t.Fatalf("plain: %q, %v (want a slice of the input)", b, err)
	}
	scratch := make([]byte, 0, 64)
	b, err = p.StringBytes(scratch)
	if err != nil || string(b) != "a\u00e9\n\"b" || &b[0] != &scratch[:1][0] {
		t.Fatalf("escaped: %q, %v (want it in scratch)", b, err)
	}
	if string(src) != `"plain" "a\u00e9\n\"b"` {
		t.Fatalf("the input changed: %s", src)
	}
	b, err = NewParser([]byte(`"\u00e9"`)).StringBytes(nil)
	if err != nil || string(b) != "\u00e9" {
		t.Fatalf("escaped, no scratch: %q, %v", b, err)
	}
}
