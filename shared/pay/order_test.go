package pay_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/loomipay/loomipay/shared/pay"
)

func TestOutOrderNoRoundTrip(t *testing.T) {
	for range 20 {
		id := uuid.Must(uuid.NewV7()).String()
		out := pay.OutOrderNo(id)
		if len(out) != 32 || strings.Contains(out, "-") {
			t.Fatalf("OutOrderNo(%s) = %q; want 32 characters without dashes", id, out)
		}
		back, ok := pay.OrderIDFromOutOrderNo(out)
		if !ok || back != id {
			t.Fatalf("OrderIDFromOutOrderNo(%q) = %q, %v; want %q, true", out, back, ok, id)
		}
	}
	back, ok := pay.OrderIDFromOutOrderNo("550E8400E29B41D4A716446655440000")
	if want := "550e8400-e29b-41d4-a716-446655440000"; !ok || back != want {
		t.Errorf("upper-case out_order_no → %q, %v; want %q, true", back, ok, want)
	}
}

func TestOrderIDFromOutOrderNoRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"550e8400e29b41d4a71644665544000",       // 31
		"550e8400e29b41d4a7164466554400000",     // 33
		"550e8400-e29b-41d4-a716-446655440000",  // the id itself
		"550e8400e29b41d4a71644665544000g",      // not hex
		"CH2021090613190866292",                 // Lakala's sample, not ours
		"550e8400e29b41d4a71644665544000 ",      // trailing space
		"５５0e8400e29b41d4a716446655440000"[:32], // multibyte
	} {
		if id, ok := pay.OrderIDFromOutOrderNo(s); ok {
			t.Errorf("OrderIDFromOutOrderNo(%q) = %q, true; want false", s, id)
		}
	}
}
