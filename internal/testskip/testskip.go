// Package testskip is how a test stops when the machine lacks a tool or data it needs (a browser,
// redis-server, cfn-lint, moto_server, the PostgreSQL server binaries, Lakala's published vectors):
// under CI=true it fails, since CI installs everything and a skip there would hide a test that did
// not run; elsewhere it skips, saying what is missing and how to enable it, and records one line in
// the file LOOMIPAY_SKIP_LOG names, which make test prints at its end. Without -v, go test shows
// nothing of a passing package, so a skip message alone would go unseen.
package testskip

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// LogEnv names the variable that holds the file make test collects skip lines in.
const LogEnv = "LOOMIPAY_SKIP_LOG"

// Missing fails t under CI=true, else records the skip and skips t. what says what is missing,
// enable how to get it ("apt-get install redis-server").
func Missing(t testing.TB, what, enable string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s (CI requires it: %s)", what, enable)
	}
	Record(t.Name(), what, enable)
	t.Skipf("SKIP: %s (enable: %s)", what, enable)
}

// Record appends one line to the skip log, if make test set one: "<what> (enable: <enable>)",
// a tab, the test's name. Lines are short single writes to a file opened for appending, so
// parallel test processes do not interleave them.
func Record(test, what, enable string) {
	path := os.Getenv(LogEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testskip: %v\n", err)
		return
	}
	defer f.Close()
	line := fmt.Sprintf("%s (enable: %s)\t%s\n", oneLine(what), oneLine(enable), test)
	if _, err := f.WriteString(line); err != nil {
		fmt.Fprintf(os.Stderr, "testskip: %v\n", err)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
