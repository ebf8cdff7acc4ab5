package transfer

// DefaultMaxLineBytes is the default limit on one NDJSON line.
const DefaultMaxLineBytes = 64 << 20
