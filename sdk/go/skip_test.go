package loomipay_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// missing stops a test that lacks a tool, as the service's internal/testskip does (the SDK
// depends on none of the service's code): under CI=true it fails; elsewhere it skips and appends
// "<what> (enable: <enable>)", a tab and the test's name to the file LOOMIPAY_SKIP_LOG names,
// which make test prints at its end.
func missing(t *testing.T, what, enable string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s (CI requires it: %s)", what, enable)
	}
	if path := os.Getenv("LOOMIPAY_SKIP_LOG"); path != "" {
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "%s (enable: %s)\t%s\n", strings.Join(strings.Fields(what), " "), enable, t.Name())
			f.Close()
		}
	}
	t.Skipf("SKIP: %s (enable: %s)", what, enable)
}
