package lakala

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Fit never splits a character and never exceeds n bytes, at the edge with multi-byte text.
func TestFit(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"refund", 32, "refund"},
		{strings.Repeat("a", 32), 32, strings.Repeat("a", 32)},
		{strings.Repeat("a", 33), 32, strings.Repeat("a", 32)},
		{strings.Repeat("退", 10) + "ab", 32, strings.Repeat("退", 10) + "ab"}, // exactly 32 bytes
		{strings.Repeat("退", 11), 32, strings.Repeat("退", 10)},               // 33 bytes: the 11th does not fit
		{"a" + strings.Repeat("退", 11), 32, "a" + strings.Repeat("退", 10)},   // 31 bytes, not 32
		{strings.Repeat("😀", 9), 32, strings.Repeat("😀", 8)},                 // 4-byte characters
		{"", 32, ""},
	}
	for _, tt := range tests {
		got := Fit(tt.in, tt.n)
		if got != tt.want || len(got) > tt.n || !utf8.ValidString(got) {
			t.Errorf("Fit(%q, %d) = %q (%d bytes); want %q", tt.in, tt.n, got, len(got), tt.want)
		}
	}
}
