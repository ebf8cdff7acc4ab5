package redact

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// mask replaces every password in redacted text.
const mask = "xxxxx"

var (
	// urlPassword matches the user:password@ of a URL in free text,
	// parsable or not (a password may hold an unescaped @: up to the last
	// one before a space or a quote).
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s"'` + "`" + `]*):([^\s"'` + "`" + `]*)@`)
	// keyPassword matches password=VALUE in a query string or a libpq
	// key=value string, VALUE unquoted or single-quoted (with backslash
	// escapes, as libpq reads it).
	keyPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^&\s"'` + "`" + `\\]|\\.)*)`)
)

// minPiece is the shortest password, or part of one, that Redactor masks
// wherever it appears (a password's pieces are what a driver may quote out
// of a malformed URL, a host name say); shorter ones would garble messages,
// and are masked only where the patterns find them (user:pw@, password=).
const minPiece = 4

// Redactor masks database passwords in text: the passwords of URLs and
// password= parameters found in the text itself, and, wherever they appear,
// the passwords of the database URLs (or libpq key=value strings) it was
// made with, parsable or not, as given, percent-decoded, and the pieces of
// them that a driver's error may quote. It is the one redactor of this
// module: Open's errors, URL and esctl's messages and logs use it.
type Redactor struct {
	secrets []string // longest first
}

// New returns a Redactor for the passwords of dsns.
func New(dsns ...string) *Redactor {
	r := &Redactor{}
	add := func(p string) {
		if len(p) >= minPiece && !slices.Contains(r.secrets, p) {
			r.secrets = append(r.secrets, p)
		}
	}
	for _, dsn := range dsns {
		for _, p := range dsnPasswords(dsn) {
			for _, v := range []string{p, pathUnescaped(p), queryUnescaped(p), unquoted(p), unescapedValue(p)} {
				// As given, and as a quoting printer (slog's text
				// handler, %q, JSON) writes it.
				add(v)
				add(strings.Trim(strconv.Quote(v), `"`))
				if j, err := json.Marshal(v); err == nil {
					add(strings.Trim(string(j), `"`))
				}
				for _, piece := range strings.Split(v, "@") {
					add(piece)
				}
			}
		}
	}
	// The longest first, so that a piece never masks part of a longer one.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// Redact returns msg with every password it knows or finds masked. A nil
// Redactor masks only what the patterns find.
func (r *Redactor) Redact(msg string) string {
	if r != nil {
		for _, pw := range r.secrets {
			msg = strings.ReplaceAll(msg, pw, mask)
		}
	}
	msg = urlPassword.ReplaceAllString(msg, "${1}:"+mask+"@")
	return keyPassword.ReplaceAllString(msg, "${1}"+mask)
}

// URL returns rawURL with any password replaced by "xxxxx", for
// messages and logs: a URL's user:password@ and password= parameter, and a
// libpq key=value string's password=, whether or not the string parses.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Fragment != "" || strings.ContainsAny(rawURL, "# \t\n") {
		return New(rawURL).Redact(rawURL)
	}
	if _, has := u.User.Password(); !has && len(userinfoPasswords(rawURL)) > 0 || atAfterAuthority(rawURL) {
		// What reads as user:password@ to a lenient eye is not (all)
		// in the parsed userinfo: trust the lenient reading.
		return New(rawURL).Redact(rawURL)
	}
	// A URL that parses plainly is masked by its structure only, so that
	// a password that is also a word of the URL ("postgres") leaves the
	// rest readable.
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", mask)
		u.RawQuery = q.Encode()
	}
	out := (*Redactor)(nil).Redact(u.String())
	// What the structure did not catch (a query the parser could not
	// read, say) is masked as a known secret, unless it is one of the
	// URL's public parts, which a password may coincide with.
	public := []string{u.Scheme, u.User.Username(), u.Hostname(), u.Port(), strings.Trim(u.Path, "/")}
	for _, pw := range New(rawURL).secrets {
		if strings.Contains(out, pw) && !slices.Contains(public, pw) {
			out = strings.ReplaceAll(out, pw, mask)
		}
	}
	return out
}

// dsnPasswords returns what may be passwords in one database URL or libpq
// key=value string: generous, since masking too much only garbles a message.
func dsnPasswords(dsn string) []string {
	out := userinfoPasswords(dsn)
	for _, m := range keyPassword.FindAllStringSubmatch(dsn, -1) {
		out = append(out, m[2])
	}
	// Every password= value, whatever it holds: a quoted key=value one to
	// its closing quote, as libpq reads it.
	const key = "password"
	isURL := strings.Contains(dsn, "://")
	for from := 0; from+len(key) <= len(dsn); {
		if !strings.EqualFold(dsn[from:from+len(key)], key) {
			from++
			continue
		}
		from += len(key)
		v := strings.TrimLeft(dsn[from:], " \t")
		if !strings.HasPrefix(v, "=") {
			continue
		}
		raw := v[1:]
		if v := strings.TrimLeft(raw, " \t"); strings.HasPrefix(v, "'") {
			out = append(out, quotedPrefix(v))
		}
		// A query value ends at & (a typed URL may hold spaces and
		// quotes there), a key=value one at a space after any leading
		// ones.
		if isURL {
			if end := strings.IndexByte(raw, '&'); end >= 0 {
				out = append(out, raw[:end])
			} else {
				out = append(out, raw)
			}
		}
		v = strings.TrimLeft(raw, " \t")
		end := 0
		for end < len(v) && !strings.ContainsRune(" \t\n", rune(v[end])) {
			if v[end] == '\\' {
				end++ // an escaped character, a space included
			}
			end++
		}
		out = append(out, v[:min(end, len(v))])
	}
	return out
}

// userinfoPasswords returns what may be the password of a URL's userinfo:
// after scheme:// up to each @ that follows the first colon (a password may
// hold unescaped @, /, #, spaces).
func userinfoPasswords(dsn string) []string {
	var out []string
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if c := strings.IndexByte(rest, ':'); c >= 0 {
			for j := c + 1; j < len(rest); j++ {
				if rest[j] == '@' {
					out = append(out, rest[c+1:j])
				}
			}
		}
	}
	return out
}

// atAfterAuthority reports an @ after a URL's authority (in its path, query
// or fragment), where a password holding / ? or # would put it.
func atAfterAuthority(rawURL string) bool {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	return end >= 0 && strings.LastIndexByte(rest, '@') > end
}

func pathUnescaped(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func queryUnescaped(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// quotedPrefix returns the single-quoted value at the start of s, quotes
// included (all of s if it is not closed).
func quotedPrefix(s string) string {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			return s[:i+1]
		}
	}
	return s
}

// unescapedValue reads a libpq unquoted value's backslash escapes
// (pass\ word is "pass word").
func unescapedValue(s string) string {
	if !strings.Contains(s, `\`) || strings.HasPrefix(s, "'") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unquoted reads a libpq single-quoted value ('it\'s'), or returns s.
func unquoted(s string) string {
	if len(s) < 2 || s[0] != '\'' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '\'':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Error is an error whose message has its passwords masked; the
// original stays in the chain for errors.Is and errors.As.
type Error struct {
	msg string
	err error
}

// NewError returns an error with the message msg (passwords masked already)
// and err in its chain.
func NewError(msg string, err error) *Error { return &Error{msg: msg, err: err} }

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }
