package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/lakala"
)

func TestFaultsJSON(t *testing.T) {
	in := Faults{Latency: 250 * time.Millisecond, ErrorRate: 0.5, DuplicateNotify: true, NotifyDelay: time.Second,
		RefundUnknown: RefundUnknownSuccess, RefundUnknownQueries: 2, Seed: 7,
		DuplicateCreate: DuplicateCreateRefuse, DuplicateRefund: DuplicateRefundExceeds, FailedTradePayable: true,
		QueryLag: 30 * time.Millisecond, LostAnswerRate: 0.25, LostAnswerMode: LostAnswerTimeout,
		ResignNotifyRetries: true, AutoRefundAfterClose: true}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"latency":"250ms"`, `"query_lag":"30ms"`, `"duplicate_create":"refuse"`,
		`"duplicate_refund":"exceeds"`, `"failed_trade_payable":true`, `"lost_answer_rate":0.25`,
		`"lost_answer_mode":"timeout"`, `"resign_notify_retries":true`, `"auto_refund_after_close":true`} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Fatalf("faults JSON lacks %s: %s", want, raw)
		}
	}
	var out Faults
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
	var nanos Faults
	if err := json.Unmarshal([]byte(`{"latency":1000000}`), &nanos); err != nil || nanos.Latency != time.Millisecond {
		t.Fatalf("latency as nanoseconds = %v (%v)", nanos.Latency, err)
	}
}

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		name  string
		f     Faults
		valid bool
	}{
		{"zero", Faults{}, true},
		{"error rate 1", Faults{ErrorRate: 1}, true},
		{"error rate above 1", Faults{ErrorRate: 1.5}, false},
		{"negative latency", Faults{Latency: -1}, false},
		{"bad refund outcome", Faults{RefundUnknown: "maybe"}, false},
		{"negative queries", Faults{RefundUnknownQueries: -1}, false},
		{"refund fail and unknown at once", Faults{RefundFail: true, RefundUnknown: RefundUnknownSuccess}, false},
		{"refund fail alone", Faults{RefundFail: true}, true},
		{"pessimistic", Pessimistic(), true},
		{"every mode", Faults{DuplicateCreate: DuplicateCreateReturn, DuplicateRefund: DuplicateRefundFirstAnswer, LostAnswerMode: LostAnswer502}, true},
		{"bad duplicate_create", Faults{DuplicateCreate: "ignore"}, false},
		{"bad duplicate_refund", Faults{DuplicateRefund: "ignore"}, false},
		{"negative query lag", Faults{QueryLag: -time.Millisecond}, false},
		{"lost answer rate above 1", Faults{LostAnswerRate: 1.01}, false},
		{"negative lost answer rate", Faults{LostAnswerRate: -0.1}, false},
		{"bad lost answer mode", Faults{LostAnswerMode: "503"}, false},
	}
	for _, tt := range tests {
		if err := tt.f.validate(); (err == nil) != tt.valid {
			t.Errorf("%s: validate() = %v", tt.name, err)
		}
	}
}

func TestErrorRateIsDeterministicPerSeed(t *testing.T) {
	h := newHarness(t, Config{})
	roll := func() []bool {
		h.sb.SetFaults(Faults{ErrorRate: 0.5, Seed: 42})
		var out []bool
		for range 32 {
			out = append(out, h.sb.roll(0.5))
		}
		return out
	}
	first, second := roll(), roll()
	if !reflect.DeepEqual(first, second) {
		t.Fatal("the same seed rolled different errors")
	}
	if !slices.Contains(first, true) || !slices.Contains(first, false) {
		t.Fatalf("rate 0.5 rolled all the same over 32 calls: %v", first)
	}
}

func adminDo(t *testing.T, method, u, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func TestAdminEndpoints(t *testing.T) {
	h := newHarness(t, Config{})
	base := h.srv.URL + "/sandbox"

	if status, body := adminDo(t, http.MethodPut, base+"/faults", `{"latency":"1ms","duplicate_notify":true}`); status != http.StatusOK {
		t.Fatalf("PUT faults: HTTP %d %s", status, body)
	}
	if f := h.sb.Faults(); f.Latency != time.Millisecond || !f.DuplicateNotify {
		t.Fatalf("faults after PUT = %+v", f)
	}
	if status, _ := adminDo(t, http.MethodPut, base+"/faults", `{"error_rate":2}`); status != http.StatusBadRequest {
		t.Fatalf("PUT invalid faults: HTTP %d, want 400", status)
	}
	if status, body := adminDo(t, http.MethodGet, base+"/faults", ""); status != http.StatusOK || !bytes.Contains(body, []byte(`"duplicate_notify":true`)) {
		t.Fatalf("GET faults: HTTP %d %s", status, body)
	}
	h.sb.SetFaults(Faults{})

	h.create(t, "order1", 100)
	status, body := adminDo(t, http.MethodPost, base+"/orders/order1/pay", "")
	var v OrderView
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Status != lakala.OrderStatusPaid {
		t.Fatalf("admin pay: HTTP %d %s", status, body)
	}
	h.rc.next(t)
	h.waitNotifications(t)
	status, body = adminDo(t, http.MethodGet, base+"/orders/order1", "")
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || len(v.NotifyAttempts) != 1 || !v.NotifyAcked {
		t.Fatalf("admin order view: HTTP %d %s", status, body)
	}
	if status, _ := adminDo(t, http.MethodPost, base+"/orders/nope/fail", ""); status != http.StatusNotFound {
		t.Fatalf("admin fail of unknown order: HTTP %d, want 404", status)
	}

	status, body = adminDo(t, http.MethodGet, base+"/platform-cert.pem", "")
	if status != http.StatusOK {
		t.Fatalf("GET platform cert: HTTP %d", status)
	}
	pub, err := lakala.ParsePublicKey(body)
	if err != nil || !pub.Equal(h.sb.PlatformPublicKey()) {
		t.Fatalf("platform cert does not hold the platform key: %v", err)
	}
}

func TestAdminFaultsPutPatch(t *testing.T) {
	h := newHarness(t, Config{})
	u := h.srv.URL + "/sandbox/faults"

	status, body := adminDo(t, http.MethodPut, u, `{"latency":"5ms","duplicate_create":"refuse","query_lag":"20ms","pay_after_close":true}`)
	want := Faults{Latency: 5 * time.Millisecond, DuplicateCreate: DuplicateCreateRefuse, QueryLag: 20 * time.Millisecond, PayAfterClose: true}
	if status != http.StatusOK || h.sb.Faults() != want {
		t.Fatalf("PUT: HTTP %d %s; faults %+v, want %+v", status, body, h.sb.Faults(), want)
	}

	// PATCH merges: the knobs it names change, the others stay.
	status, body = adminDo(t, http.MethodPatch, u, `{"lost_answer_rate":0.5,"lost_answer_mode":"502","pay_after_close":false}`)
	want.LostAnswerRate, want.LostAnswerMode, want.PayAfterClose = 0.5, LostAnswer502, false
	if status != http.StatusOK || h.sb.Faults() != want {
		t.Fatalf("PATCH: HTTP %d %s; faults %+v, want %+v", status, body, h.sb.Faults(), want)
	}
	var answered Faults
	if err := json.Unmarshal(body, &answered); err != nil || answered != want {
		t.Fatalf("PATCH answered %s (%v), want the merged faults", body, err)
	}

	// PUT replaces: what it does not name is off.
	status, body = adminDo(t, http.MethodPut, u, `{"duplicate_refund":"exceeds"}`)
	want = Faults{DuplicateRefund: DuplicateRefundExceeds}
	if status != http.StatusOK || h.sb.Faults() != want {
		t.Fatalf("PUT again: HTTP %d %s; faults %+v, want %+v", status, body, h.sb.Faults(), want)
	}

	tests := []struct {
		method, body, mention string
	}{
		{http.MethodPut, `{"no_such_knob":true}`, "no_such_knob"},
		{http.MethodPatch, `{"duplicate_refund":"refuse","DuplicateCreate":"refuse"}`, "DuplicateCreate"},
		{http.MethodPatch, `{"lost_answer_rate":2}`, "lost_answer_rate"},
		{http.MethodPatch, `{"lost_answer_rate":"high"}`, "lost_answer_rate"},
		{http.MethodPut, `{"lost_answer_mode":"smoke"}`, "lost_answer_mode"},
		{http.MethodPatch, `{"duplicate_create":"maybe"}`, "duplicate_create"},
		{http.MethodPatch, `{"duplicate_refund":"twice"}`, "duplicate_refund"},
		{http.MethodPatch, `{"query_lag":"-1s"}`, "query_lag"},
		{http.MethodPatch, `{"query_lag":"soon"}`, "query_lag"},
		{http.MethodPatch, `{"latency":"1ms"} {"latency":"2ms"}`, "trailing"},
		{http.MethodPatch, `[1]`, "faults"},
	}
	for _, tt := range tests {
		status, body := adminDo(t, tt.method, u, tt.body)
		var e struct {
			Error string `json:"error"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, tt.mention) {
			t.Errorf("%s %s: HTTP %d %s, want 400 naming %q", tt.method, tt.body, status, body, tt.mention)
		}
		if h.sb.Faults() != want {
			t.Fatalf("%s %s changed the faults to %+v", tt.method, tt.body, h.sb.Faults())
		}
	}

	status, body = adminDo(t, http.MethodGet, u, "")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"duplicate_refund":"exceeds"`)) || !bytes.Contains(body, []byte(`"query_lag":"0s"`)) {
		t.Fatalf("GET: HTTP %d %s", status, body)
	}
}
