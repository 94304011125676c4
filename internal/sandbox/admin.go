package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The /sandbox/* endpoints let a process that runs the sandbox separately (the local
// stack, end-to-end scripts) steer it the way in-process tests call its methods.

func (s *Sandbox) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// putFaults replaces every fault setting with the body; omitted fields are off.
func (s *Sandbox) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err == nil {
		err = json.Unmarshal(body, &f)
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
