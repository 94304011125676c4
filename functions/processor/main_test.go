package main

import "testing"

// The scaler's Invoke call must not be able to wait without end.
func TestInvokeHasATimeout(t *testing.T) {
	if invokeTimeout <= 0 {
		t.Errorf("invokeTimeout = %v; want a bound", invokeTimeout)
	}
}
