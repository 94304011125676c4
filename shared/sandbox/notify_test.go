package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

func TestNotificationRetriedUntilAcknowledged(t *testing.T) {
	h := newHarness(t, Config{}, "FAIL", "FAIL")
	created := h.create(t, "order1", 100)
	if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	first := h.rc.next(t)
	for range 2 {
		retry := h.rc.next(t)
		if !bytes.Equal(retry.body, first.body) {
			t.Fatalf("retry body differs:\n%s\n%s", retry.body, first.body)
		}
		if _, err := lakala.VerifyNotification(h.sb.PlatformPublicKey(), retry.header, retry.body); err != nil {
			t.Fatalf("retry does not verify: %v", err)
		}
	}
	h.waitNotifications(t)
	v, _ := h.sb.Order("order1")
	if len(v.NotifyAttempts) != 3 || v.NotifyAttempts[0].Acked || v.NotifyAttempts[1].Acked || !v.NotifyAttempts[2].Acked || !v.NotifyAcked {
		t.Fatalf("attempts = %+v", v.NotifyAttempts)
	}
}

func TestNotificationGivesUpAfterSchedule(t *testing.T) {
	// Three retries are configured, so four answers of FAIL exhaust them.
	h := newHarness(t, Config{}, "FAIL", "FAIL", "FAIL", "FAIL", "FAIL")
	created := h.create(t, "order1", 100)
	if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.rc.next(t)
	}
	h.waitNotifications(t)
	v, _ := h.sb.Order("order1")
	if len(v.NotifyAttempts) != 4 || v.NotifyAcked {
		t.Fatalf("attempts = %+v", v.NotifyAttempts)
	}
}

func TestNotificationFaults(t *testing.T) {
	tests := []struct {
		name       string
		faults     Faults
		deliveries int
		verifies   bool
	}{
		{"duplicate", Faults{DuplicateNotify: true}, 2, true},
		{"forged", Faults{ForgeNotify: true}, 1, false},
		{"dropped", Faults{DropNotify: true}, 0, false},
		{"late", Faults{NotifyDelay: 50 * time.Millisecond}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.sb.SetFaults(tt.faults)
			created := h.create(t, "order1", 100)
			paid := time.Now()
			if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
				t.Fatal(err)
			}
			h.waitNotifications(t)
			// A lower bound: a late notification must not arrive before its delay.
			if took := time.Since(paid); took < tt.faults.NotifyDelay {
				t.Errorf("notifications done %v after the payment; want at least NotifyDelay %v", took, tt.faults.NotifyDelay)
			}
			if got := len(h.rc.got); got != tt.deliveries {
				t.Fatalf("%d notifications arrived, want %d", got, tt.deliveries)
			}
			for range tt.deliveries {
				n := <-h.rc.got
				_, err := lakala.VerifyNotification(h.sb.PlatformPublicKey(), n.header, n.body)
				if tt.verifies && err != nil {
					t.Fatalf("notification does not verify: %v", err)
				}
				if !tt.verifies && !errors.Is(err, lakala.ErrBadSignature) {
					t.Fatalf("forged notification verified: %v", err)
				}
			}
			v, _ := h.sb.Order("order1")
			if v.NotifyDropped != (tt.deliveries == 0) {
				t.Fatalf("NotifyDropped = %v", v.NotifyDropped)
			}
		})
	}
}

func TestLegacyNotifyForm(t *testing.T) {
	h := newHarness(t, Config{})
	h.sb.SetFaults(Faults{LegacyNotifyForm: true})
	created := h.create(t, "order1", 1234)
	if err := h.sb.Pay(context.Background(), created.PayOrderNo); err != nil {
		t.Fatal(err)
	}
	got := h.rc.next(t)
	if _, err := lakala.VerifyNotification(h.sb.PlatformPublicKey(), got.header, got.body); err != nil {
		t.Fatalf("legacy notification does not verify: %v", err)
	}
	var n struct {
		PayOrderNo, MerchantOrderNo, PayStatus, TradeType, LklOrderNo, LogNo, TradeTime string
		Amount, ActualPayAmount                                                         int64
	}
	if err := json.Unmarshal(got.body, &n); err != nil {
		t.Fatal(err)
	}
	v, _ := h.sb.Order("order1")
	pay := v.Trades[0]
	if n.PayOrderNo != created.PayOrderNo || n.MerchantOrderNo != "order1" || n.PayStatus != "S" || n.TradeType != "PAY" ||
		n.Amount != 1234 || n.ActualPayAmount != 1234 || n.LklOrderNo != pay.TradeNo || n.LogNo != pay.LogNo || n.TradeTime == "" {
		t.Fatalf("legacy notification = %s", got.body)
	}
	if bytes.Contains(got.body, []byte("out_order_no")) {
		t.Fatalf("legacy notification carries snake_case fields: %s", got.body)
	}
}
