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
		RefundUnknown: RefundUnknownSuccess, RefundUnknownQueries: 2, Seed: 7}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"latency":"250ms"`)) {
		t.Fatalf("latency not written as a duration string: %s", raw)
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
			out = append(out, h.sb.rollError(0.5))
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
