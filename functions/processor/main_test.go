package main

import "testing"

// The scaler's Invoke call must not be able to wait without end.
func TestInvokeClientHasATimeout(t *testing.T) {
	if invokeClient.Timeout <= 0 {
		t.Errorf("invokeClient.Timeout = %v; want a bound", invokeClient.Timeout)
	}
}
