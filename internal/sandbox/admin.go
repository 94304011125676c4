package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
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
	s.mu.Lock()
	o, ok := s.orders[outOrderNo]
	payOrderNo := ""
	if ok {
		payOrderNo = o.payOrderNo
	}
	s.mu.Unlock()
	var err error
	if ok {
		err = s.act(r.Context(), payOrderNo, r.PathValue("action"))
	} else {
		err = fmt.Errorf("%w: out_order_no %s", ErrOrderNotFound, outOrderNo)
	}
	s.writeActionJSON(w, err, func() (OrderView, bool) { return s.Order(outOrderNo) })
}
