package apicheck

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// Event validates one API Gateway (payload 2.0) invocation of the Lambda function fn and its
// answer, as the gateway would have passed them over HTTP.
func Event(t testing.TB, fn string, ev events.APIGatewayV2HTTPRequest, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	target := ev.RawPath
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		body, _ = base64.StdEncoding.DecodeString(ev.Body)
	}
	req, err := http.NewRequest(ev.RequestContext.HTTP.Method, "http://gateway"+target, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ev.Headers {
		req.Header.Set(k, v)
	}
	header := http.Header{}
	for k, v := range resp.Headers {
		header.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	respBody := []byte(resp.Body)
	if resp.IsBase64Encoded {
		respBody, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	if err := Must(t).Check(req, body, resp.StatusCode, header, respBody, fn); err != nil {
		t.Errorf("apicheck: %v", err)
	}
}
