package service_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/service"
)

// A function without LAKALA_NOTIFY_URL (createorder, whose close only winds orders down) must
// never create a cashier order: Lakala would reject it, and a rejected first call fails the
// order. It leaves the task to the processor, recording nothing.
func TestPaymentsWithoutNotifyURLLeaveCreatesToTheProcessor(t *testing.T) {
	s := testenv.NewStack(t, testenv.StackOptions{})
	ctx := context.Background()
	o := s.CreateOrder(t, "NO_NOTIFY_1", 100)
	payments := service.NewPayments(s.Service, s.Merchants, service.PaymentsConfig{})

	task, err := s.Store.TaskFor(ctx, postgres.TaskPayment, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	claimed, ok, err := s.Store.ClaimIdleTask(ctx, task.ID, time.Now(), time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim task: %v, %v", ok, err)
	}
	res := payments.AdvancePayment(ctx, claimed)
	if res.Done || res.Review || !strings.Contains(res.Reason, "LAKALA_NOTIFY_URL") {
		t.Errorf("AdvancePayment = %+v; want a retry naming LAKALA_NOTIFY_URL", res)
	}
	attempts, err := s.Store.Attempts(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 0 {
		t.Errorf("attempts = %+v; want none recorded", attempts)
	}
	if got := s.Order(t, "NO_NOTIFY_1"); got.Status != "pending" {
		t.Errorf("order status = %s; want pending", got.Status)
	}
}
