//go:build unix

package lambdaemu

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// fakeEmulator answers every invocation with status and body, as the emulator would.
func fakeEmulator(t *testing.T, status int, body string) *Emulator {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	out := &LockedBuffer{}
	_, _ = out.Write([]byte("function log line"))
	return &Emulator{url: srv.URL, out: out}
}

func TestInvokeTellsPayloadsFromFailures(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantErr   string // empty: the body is the payload
		wantFnErr bool
	}{
		{name: "payload", status: 200, body: `{"statusCode":200}`},
		{name: "function error", status: 200, body: `{"errorMessage":"boom","errorType":"errorString"}`,
			wantErr: "function error errorString: boom", wantFnErr: true},
		{name: "timeout", status: 200, body: "Task timed out after 1.00 seconds", wantErr: "Task timed out"},
		{name: "init failure", status: 502, body: "", wantErr: "function log line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := fakeEmulator(t, tc.status, tc.body)
			payload, err := e.Invoke(context.Background(), []byte("{}"))
			if tc.wantErr == "" {
				if err != nil || string(payload) != tc.body {
					t.Fatalf("Invoke = %q, %v; want %q", payload, err, tc.body)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Invoke = %q, %v; want an error with %q", payload, err, tc.wantErr)
			}
			var fe *FunctionError
			if errors.As(err, &fe) != tc.wantFnErr {
				t.Errorf("error %v: is a *FunctionError %v, want %v", err, !tc.wantFnErr, tc.wantFnErr)
			}
			if n := len(e.Invocations()); n != 1 {
				t.Errorf("%d invocations timed, want 1", n)
			}
		})
	}
}

func TestHTTPWantsAnAPIGatewayResponse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr bool
	}{
		{name: "response", body: `{"statusCode":401,"body":"{}"}`, want: 401},
		{name: "no status code", body: `{"body":"{}"}`, wantErr: true},
		{name: "not an object", body: `"hello"`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := fakeEmulator(t, 200, tc.body).HTTP(context.Background(), events.APIGatewayV2HTTPRequest{})
			if (err != nil) != tc.wantErr || resp.StatusCode != tc.want {
				t.Fatalf("HTTP = %d, %v; want %d, error %v", resp.StatusCode, err, tc.want, tc.wantErr)
			}
		})
	}
}
