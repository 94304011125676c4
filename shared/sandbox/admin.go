package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/loomipay/loomipay/shared/lakala"
)

// The /sandbox/* endpoints let a process that runs the sandbox separately (the local
// stack, end-to-end scripts) steer it the way in-process tests call its methods.

func (s *Sandbox) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// putFaults replaces every fault setting with the body; omitted knobs are off.
func (s *Sandbox) putFaults(w http.ResponseWriter, r *http.Request) {
	s.writeFaults(w, r, func(Faults) Faults { return Faults{} })
}

// patchFaults merges the knobs in the body into the current settings.
func (s *Sandbox) patchFaults(w http.ResponseWriter, r *http.Request) {
	s.writeFaults(w, r, func(current Faults) Faults { return current })
}

// writeFaults decodes the body onto base(current faults) and installs the result. An
// unknown knob, a bad value or trailing data is a 400 that changes nothing. The read and
// the write are not one step: two admins racing a PATCH may lose one of the merges,
// which is acceptable for a test tool.
func (s *Sandbox) writeFaults(w http.ResponseWriter, r *http.Request, base func(Faults) Faults) {
	f := base(s.Faults())
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	err := dec.Decode(&f)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		err = s.setFaults(f)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("faults: %v", err)})
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// getLedger serves the ledger as JSON, or as a table to a browser (Accept: text/html).
func (s *Sandbox) getLedger(w http.ResponseWriter, r *http.Request) {
	l := s.Ledger()
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		writeJSON(w, http.StatusOK, l)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := ledgerTemplate.Execute(w, l); err != nil {
		s.log.Error("sandbox cannot render the ledger", "error", err)
	}
}

var ledgerTemplate = template.Must(template.New("ledger").Funcs(template.FuncMap{
	"yuan": yuan, "status": func(code string) string { return statusNames[code] },
}).Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lakala sandbox ledger</title></head>
<body>
<h1>Lakala sandbox ledger</h1>
<h2>Cashier orders</h2>
<table border="1">
<tr><th>out_order_no</th><th>pay_order_no</th><th>status</th><th>amount</th><th>payments</th><th>paid</th><th>refunded</th><th>auto-refunded</th><th>closed</th><th>payable</th></tr>
{{range .Orders}}<tr><td>{{.OutOrderNo}}</td><td>{{.PayOrderNo}}</td><td>{{.Status}} {{status .Status}}</td><td>{{yuan .Amount}}</td><td>{{.Payments}}</td><td>{{yuan .Paid}}</td><td>{{yuan .Refunded}}</td><td>{{yuan .AutoRefunded}}</td><td>{{.Closed}}</td><td>{{.Payable}}</td></tr>
{{end}}</table>
<h2>Refunds</h2>
<table border="1">
<tr><th>out_trade_no</th><th>out_order_no</th><th>amount</th><th>applied</th><th>trade_state</th></tr>
{{range .Refunds}}<tr><td>{{.OutTradeNo}}</td><td>{{.OutOrderNo}}</td><td>{{yuan .Amount}}</td><td>{{.Applied}}</td><td>{{.State}}</td></tr>
{{end}}</table>
<p>Amounts in yuan. JSON: the same URL without <code>Accept: text/html</code>.</p>
</body>
</html>
`))

func (s *Sandbox) getOrder(w http.ResponseWriter, r *http.Request) {
	v, ok := s.Order(r.PathValue("outOrderNo"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Sandbox) settleOrder(w http.ResponseWriter, r *http.Request) {
	outOrderNo := r.PathValue("outOrderNo")
	v, ok := s.Order(outOrderNo)
	var err error
	if ok {
		err = s.act(r.Context(), v.PayOrderNo, r.PathValue("action"))
	} else {
		err = fmt.Errorf("%w: out_order_no %s", ErrOrderNotFound, outOrderNo)
	}
	s.writeActionJSON(w, err, func() (OrderView, bool) { return s.Order(outOrderNo) })
}

// merchantRequest registers a merchant (POST /sandbox/merchants) or adds a certificate to an
// appid (POST /sandbox/certificates: merchant fields empty), as Lakala's onboarding and a key
// rotation do. certificate is the PEM certificate (or public key) of serial_no.
type merchantRequest struct {
	AppID       string `json:"appid"`
	SerialNo    string `json:"serial_no"`
	Certificate string `json:"certificate"`
	MerchantNo  string `json:"merchant_no"`
	TermNo      string `json:"term_no"`
	VposID      string `json:"vpos_id"`
}

func decodeAdmin[T any](w http.ResponseWriter, r *http.Request) (T, bool) {
	var v T
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("body: %v", err)})
		return v, false
	}
	return v, true
}

func (s *Sandbox) getMerchants(w http.ResponseWriter, r *http.Request) {
	ms, err := s.Merchants(r.Context())
	if err != nil {
		s.log.Error("sandbox cannot list merchants", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot list merchants"})
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (s *Sandbox) postMerchant(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAdmin[merchantRequest](w, r)
	if !ok {
		return
	}
	pub, err := lakala.ParsePublicKey([]byte(req.Certificate))
	if err == nil {
		err = s.AddMerchant(r.Context(), Merchant{AppID: req.AppID, SerialNo: req.SerialNo, PublicKey: pub,
			MerchantNo: req.MerchantNo, TermNo: req.TermNo, VposID: req.VposID})
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.getMerchants(w, r)
}

func (s *Sandbox) postCertificate(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAdmin[merchantRequest](w, r)
	if !ok {
		return
	}
	pub, err := lakala.ParsePublicKey([]byte(req.Certificate))
	if err == nil {
		err = s.AddCertificate(r.Context(), req.AppID, req.SerialNo, pub)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.getMerchants(w, r)
}

func (s *Sandbox) revokeCertificate(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAdmin[merchantRequest](w, r)
	if !ok {
		return
	}
	if err := s.RevokeCertificate(r.Context(), req.AppID, req.SerialNo); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.getMerchants(w, r)
}

// postDeliver attempts the notifications due now (what a sandbox function's schedule does).
func (s *Sandbox) postDeliver(w http.ResponseWriter, r *http.Request) {
	n, err := s.DeliverDue(r.Context())
	if err != nil {
		s.log.Error("sandbox cannot deliver notifications", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot deliver notifications"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"attempted": n})
}

func (s *Sandbox) getCalls(w http.ResponseWriter, r *http.Request) {
	calls, err := s.Calls(r.Context())
	if err != nil {
		s.log.Error("sandbox cannot list calls", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot list calls"})
		return
	}
	writeJSON(w, http.StatusOK, calls)
}
