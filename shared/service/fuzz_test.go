package service

import (
	"strings"
	"testing"
)

// FuzzParseKey: API keys arrive in every request's Authorization header; whatever parseKey
// accepts has the shape of a key we issue.
func FuzzParseKey(f *testing.F) {
	for _, seed := range []string{"lp_abcdefghijkl_" + strings.Repeat("a", 40), "lp_", "lp__", "lp_abc_def", "sk_abcdefghijkl_" + strings.Repeat("a", 40),
		"lp_abcdefghijkl_" + strings.Repeat("a", 41), "lp_abcdefghijk_l" + strings.Repeat("a", 40)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id, ok := parseKey(key)
		if !ok {
			return
		}
		if !strings.HasPrefix(key, keyPrefix+id+"_") || len(id) != 12 || len(key) != len(keyPrefix)+12+1+40 {
			t.Fatalf("parseKey(%q) accepted id %q", key, id)
		}
	})
}
