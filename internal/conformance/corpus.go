package conformance

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/esctl/esctl/eventstore"
)

// GenerateEvents returns n events of a deterministic corpus (same seed, same
// events) meant to break byte-exactness: payloads with unicode (including
// U+2028 and astral characters), every JSON escape, 20-digit and exponent
// numbers, nested arrays and objects, unusual key orders, empty and null
// payloads, and a few payloads of about 1 MiB. Versions are contiguous per
// aggregate; timestamps rise.
func GenerateEvents(seed uint64, n int) []eventstore.Event {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	aggregates := max(1, n/20)
	versions := make([]int64, aggregates)
	words := []string{"plain", "héllo wörld", "日本語テキスト", "emoji 🎉🚀", `quote " backslash \ slash /`, "tab\tnewline\nreturn\r",
		"\u2028line\u2029sep", "<script>&amp;</script>", "ключ", "\x01\x1f control", "🀄️ astral 𝄞"}
	out := make([]eventstore.Event, n)
	for i := range out {
		a := rng.IntN(aggregates)
		versions[a]++
		out[i] = eventstore.Event{
			AggregateID:      fmt.Sprintf("aggregate-%05d", a),
			AggregateVersion: versions[a],
			Type:             fmt.Sprintf("EventType%02d", rng.IntN(20)),
			Timestamp:        1_700_000_000_000 + int64(i)*7,
			Payload:          corpusPayload(rng, i, n, words),
		}
		if i%97 == 5 {
			out[i].AggregateID = fmt.Sprintf("agg \"quoted\" é-%d", a) // ids with escapes and unicode
			versions[a]--
			out[i].AggregateVersion = int64(i + 1)
		}
	}
	return out
}

// WithMetadata gives every event of events metadata (deterministic for a
// seed) meant to break byte-exactness like the corpus's payloads:
// correlation and causation ids, a traceparent, unicode and escapes, large
// and exponent numbers, unusual key orders, nested values, and on a few
// events an empty object. It returns events.
func WithMetadata(seed uint64, events []eventstore.Event) []eventstore.Event {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range events {
		var b strings.Builder
		switch i % 50 {
		case 7:
			b.WriteString(`{}`)
		case 8:
			fmt.Fprintf(&b, `{"z":%d,"a":"\u00e9\ud83c\udf89\/\b\f\n","m":{"y":[1.50,-0,1E+2,12345678901234567890]}}`, rng.Int64())
		default:
			fmt.Fprintf(&b, `{"correlationId":"c-%d","causationId":"%d","traceparent":"00-%016x%016x-%016x-01"`,
				i/10, i, rng.Uint64(), rng.Uint64(), rng.Uint64())
			if rng.IntN(3) == 0 {
				b.WriteString(`,"user":` + jsonString("ü\"ser "+fmt.Sprint(rng.IntN(100))+" 🎉\u2028"))
			}
			b.WriteString(`}`)
		}
		events[i].Metadata = []byte(b.String())
	}
	return events
}

func corpusPayload(rng *rand.Rand, i, n int, words []string) []byte {
	switch {
	case i == 0:
		return nil // stored as null
	case i == 1:
		return []byte(`{}`)
	case i == 2:
		return []byte(`""`)
	case i == 3:
		return []byte(`0`)
	case n >= 1000 && (i == n/3 || i == n/2 || i == n-7):
		// About 1 MiB, with escapes spread through it.
		return []byte(`{"blob":"` + strings.Repeat(`0123456789\"abcdef\u00e9\\`, 1<<20/24) + `","end":true}`)
	}
	var b strings.Builder
	b.WriteString(`{"z":`)
	fmt.Fprintf(&b, "%d", rng.Int64())
	fmt.Fprintf(&b, `,"big":%d%d,"neg":-%d%d`, 1_000_000_000+rng.IntN(1_000_000_000), 1_000_000_000+rng.IntN(1_000_000_000),
		1+rng.IntN(9), rng.Int64())
	fmt.Fprintf(&b, `,"exp":%de-%d,"frac":0.%03d`, 1+rng.IntN(9), rng.IntN(30), rng.IntN(1000))
	b.WriteString(`,"text":`)
	b.WriteString(jsonString(words[rng.IntN(len(words))] + fmt.Sprint(i)))
	b.WriteString(`,"esc":"\u00e9\ud83c\udf89\/\b\f"`)
	b.WriteString(`,"list":[`)
	for k := range rng.IntN(8) {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"k":%d,"v":[null,true,false,%d.5]}`, k, rng.IntN(100))
	}
	b.WriteString(`],"a":{"nested":{"deep":[[["x"]]]}}`)
	if rng.IntN(4) == 0 {
		b.WriteString(`,"pad":"` + strings.Repeat("x", rng.IntN(2000)) + `"`)
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

// jsonString encodes s as a JSON string (escaping only what JSON requires).
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
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
