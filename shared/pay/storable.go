package pay

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PostgreSQL cannot store everything that is valid JSON. text refuses NUL and invalid UTF-8;
// jsonb also refuses the escapes \u0000 and lone or misordered UTF-16 surrogates, and numbers
// beyond numeric (more than 131072 digits before the point or 16383 after it). Go's decoder
// turns bad escapes and bytes into U+FFFD without a word, and lets a repeated key win
// silently. CheckStorable refuses all of these before anything reaches the database, so a
// client's mistake is a 400 naming the field rather than a 500 or a silent rewrite.

// Limits of PostgreSQL's numeric, which jsonb uses for numbers.
const (
	numericMaxIntDigits  = 131072
	numericMaxScale      = 16383
	numericExponentLimit = 1<<30 - 1 // INT_MAX/2: numeric_in refuses any exponent this large
)

// CheckStorable walks a JSON text that encoding/json has already accepted and returns a
// validation error for the first string, key or number PostgreSQL could not store, or the
// first object holding a key twice.
func CheckStorable(data []byte) error {
	w := walker{data: data}
	return w.value(nil)
}

type walker struct {
	data []byte
	i    int
}

func (w *walker) skipSpace() {
	for w.i < len(w.data) && strings.IndexByte(" \t\r\n", w.data[w.i]) >= 0 {
		w.i++
	}
}

// value checks the value at w.i; path names it ("extra_data", "tags[2]" …).
func (w *walker) value(path []string) error {
	w.skipSpace()
	switch w.data[w.i] {
	case '{':
		return w.object(path)
	case '[':
		w.i++
		for n := 0; ; n++ {
			w.skipSpace()
			if w.data[w.i] == ']' {
				w.i++
				return nil
			}
			if w.data[w.i] == ',' {
				w.i++
			}
			if err := w.value(append(path, "["+strconv.Itoa(n)+"]")); err != nil {
				return err
			}
		}
	case '"':
		if problem := w.str(); problem != "" {
			return storableError(path, problem)
		}
		return nil
	default:
		start := w.i
		for w.i < len(w.data) && strings.IndexByte(",]} \t\r\n", w.data[w.i]) < 0 {
			w.i++
		}
		if lit := string(w.data[start:w.i]); lit[0] == '-' || (lit[0] >= '0' && lit[0] <= '9') {
			if !numericFits(lit) {
				return storableError(path, "holds a number beyond the range PostgreSQL can store")
			}
		}
		return nil
	}
}

func (w *walker) object(path []string) error {
	w.i++ // '{'
	seen := map[string]bool{}
	for {
		w.skipSpace()
		if w.data[w.i] == '}' {
			w.i++
			return nil
		}
		if w.data[w.i] == ',' {
			w.i++
			w.skipSpace()
		}
		start := w.i
		if problem := w.str(); problem != "" {
			return storableError(path, "has a key that "+problem)
		}
		var key string
		if err := json.Unmarshal(w.data[start:w.i], &key); err != nil {
			return storableError(path, "has a key that is not a JSON string") // cannot happen after json.Valid
		}
		if seen[key] {
			return storableError(append(path, key), "is given more than once; each key may appear only once in an object")
		}
		seen[key] = true
		w.skipSpace()
		w.i++ // ':'
		if err := w.value(append(path, key)); err != nil {
			return err
		}
	}
}

// str moves past the string literal at w.i and says what is wrong with it, or "".
func (w *walker) str() string {
	w.i++ // opening quote
	for {
		switch c := w.data[w.i]; {
		case c == '"':
			w.i++
			return ""
		case c == '\\' && w.data[w.i+1] == 'u':
			r := w.hex4(w.i + 2)
			w.i += 6
			switch {
			case r == 0:
				return `contains a NUL character (\u0000)`
			case r >= 0xDC00 && r <= 0xDFFF:
				return "contains a lone or misordered UTF-16 surrogate escape"
			case r >= 0xD800 && r <= 0xDBFF:
				if w.data[w.i] != '\\' || w.data[w.i+1] != 'u' {
					return "contains a lone or misordered UTF-16 surrogate escape"
				}
				if low := w.hex4(w.i + 2); low < 0xDC00 || low > 0xDFFF {
					return "contains a lone or misordered UTF-16 surrogate escape"
				}
				w.i += 6
			}
		case c == '\\':
			w.i += 2
		case c < utf8.RuneSelf:
			w.i++
		default:
			r, size := utf8.DecodeRune(w.data[w.i:])
			if r == utf8.RuneError && size == 1 {
				return "is not valid UTF-8"
			}
			w.i += size
		}
	}
}

// hex4 reads the four hex digits of a \u escape starting at i (json.Valid checked them).
func (w *walker) hex4(i int) rune {
	n, _ := strconv.ParseUint(string(w.data[i:i+4]), 16, 32)
	return rune(n)
}

// numericFits reports whether PostgreSQL's numeric can hold the JSON number lit.
func numericFits(lit string) bool {
	mantissa, exp := strings.TrimPrefix(lit, "-"), 0
	if at := strings.IndexAny(mantissa, "eE"); at >= 0 {
		e, err := strconv.Atoi(mantissa[at+1:])
		if err != nil || e >= numericExponentLimit || e <= -numericExponentLimit {
			return false
		}
		mantissa, exp = mantissa[:at], e
	}
	intPart, frac, _ := strings.Cut(mantissa, ".")
	if len(frac)-exp > numericMaxScale {
		return false
	}
	digits := intPart + frac
	significant := strings.TrimLeft(digits, "0")
	if significant == "" {
		return true // zero
	}
	// Digits before the point, counted from the first significant one.
	return len(intPart)-(len(digits)-len(significant))+exp <= numericMaxIntDigits
}

// storableError names the top-level field (the client's field) and the full path in detail.
func storableError(path []string, problem string) *Error {
	if len(path) == 0 {
		return Invalid("", "the request body %s", problem)
	}
	where := path[0]
	for _, p := range path[1:] {
		if strings.HasPrefix(p, "[") {
			where += p
		} else {
			where += "." + p
		}
	}
	return Invalid(path[0], "%s %s", where, problem)
}
