package apicheck

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

func jsonDecoder(b []byte) *json.Decoder {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d
}

// recorder keeps a copy of what a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Middleware serves next and fails t for every exchange that does not match the document.
// functions, if given, are the Lambda functions next serves (httpapi.API.Handler's argument).
// The server it sits in must be closed by a t.Cleanup (httptest servers are), so no request
// reaches it after t ended.
func Middleware(t testing.TB, next http.Handler, functions ...string) http.Handler {
	c := Must(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read at most a little beyond the service's limit: enough to validate, and the
		// handler still sees an oversized body as oversized.
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			t.Errorf("apicheck: read request body: %v", err)
		}
		req := r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if err := c.Check(req, body, rec.status, w.Header(), rec.body.Bytes(), functions...); err != nil {
			t.Errorf("apicheck: %v", err)
		}
	})
}

// Exchange validates a request sent and the response received, for tests that talk to a
// server they do not wrap (a separate process, the local stack).
func Exchange(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := Must(t).Check(req, reqBody, resp.StatusCode, resp.Header, respBody); err != nil {
		t.Errorf("apicheck: %v", err)
	}
}
