package testskip

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMissingRecordsAndSkips(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips")
	t.Setenv(LogEnv, log)
	t.Setenv("CI", "")
	t.Run("inner", func(t *testing.T) {
		Missing(t, "redis-server is\nnot installed", "apt-get install redis-server")
		t.Error("Missing returned; want the test skipped")
	})
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "redis-server is not installed (enable: apt-get install redis-server)\tTestMissingRecordsAndSkips/inner\n"
	if string(b) != want {
		t.Errorf("skip log = %q; want %q", b, want)
	}
}

// failRecorder is a testing.TB whose Fatalf only records, so that CI=true's failure can be seen
// without failing this test.
type failRecorder struct {
	testing.TB
	failed string
}

func (f *failRecorder) Helper()      {}
func (f *failRecorder) Name() string { return "Fake" }
func (f *failRecorder) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestMissingFailsUnderCI(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips")
	t.Setenv(LogEnv, log)
	t.Setenv("CI", "true")
	f := &failRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Errorf("Missing under CI=true did not fail the test (recovered %v)", r)
			}
		}()
		Missing(f, "chromium is not installed", "apt-get install chromium")
	}()
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("CI=true recorded a skip (stat %v); want none", err)
	}
}
