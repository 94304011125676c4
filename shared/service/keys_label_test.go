package service

import (
	"strings"
	"testing"
)

func TestValidateKeyLabel(t *testing.T) {
	for _, tt := range []struct {
		label string
		ok    bool
	}{
		{"", true},
		{"backend 支付", true},
		{strings.Repeat("é", maxKeyLabel), true},
		{strings.Repeat("é", maxKeyLabel+1), false},
		{"nul\x00", false},
		{"tab\there", false},
		{"bad \xff utf-8", false},
	} {
		if err := ValidateKeyLabel(tt.label); (err == nil) != tt.ok {
			t.Errorf("ValidateKeyLabel(%q) = %v; want ok %v", tt.label, err, tt.ok)
		}
	}
}
