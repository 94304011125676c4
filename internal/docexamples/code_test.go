package docexamples

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testskip"
	"github.com/loomipay/loomipay/shared/webhooks"
)

// TestGoExamplesCompile builds every runnable go block, a complete file, in a module of its own
// that reaches the SDK (sdk/go) and this module through replace directives, as a main app's
// module would reach them. A changed signature fails here (r.Seq() returns two values).
func TestGoExamplesCompile(t *testing.T) {
	var blocks []block
	for _, b := range allBlocks(t) {
		if b.lang == "go" && b.notRun == "" {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		t.Fatal("no go block to build")
	}
	mod := t.TempDir()
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readFile(t, filepath.Join(root, "go.mod")))
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	gomod := fmt.Sprintf(`module docexamples.example

go %s

require (
	github.com/loomipay/loomipay v0.0.0-00010101000000-000000000000
	github.com/loomipay/loomipay/sdk/go v0.0.0-00010101000000-000000000000
)

replace github.com/loomipay/loomipay => %s

replace github.com/loomipay/loomipay/sdk/go => %s
`, goVersion[1], root, filepath.Join(root, "sdk", "go"))
	writeFile(t, filepath.Join(mod, "go.mod"), gomod)
	// Both modules' checksums: the build resolves their requirements from them (and the module
	// cache), adding what the examples import to go.mod (-mod=mod).
	writeFile(t, filepath.Join(mod, "go.sum"), readFile(t, filepath.Join(root, "go.sum"))+readFile(t, filepath.Join(root, "sdk", "go", "go.sum")))
	for i, b := range blocks {
		if !strings.HasPrefix(strings.TrimSpace(b.text), "package ") {
			t.Errorf("%s: a Go example must be a complete file (package …), or say <!-- not run: REASON -->", b)
			continue
		}
		dir := filepath.Join(mod, fmt.Sprintf("example%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "main.go"), b.text)
		t.Run(b.String(), func(t *testing.T) {
			cmd := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.Base(dir))
			cmd.Dir = mod
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				// go build names example<i>/main.go:LINE; the block's line LINE is the document's b.line+LINE.
				t.Errorf("%s does not compile (line N of the error is line %d+N of %s): %v\n%s", b, b.line, b.file, err, out)
			}
		})
	}
}

// TestWebhookVerifiersAgreeWithTheSigner runs every python and js block that defines verify with
// a Loomi-Signature the service's own signer made (shared/webhooks): it must accept it, both
// secrets of a rotation, and refuse a tampered body and an old timestamp.
func TestWebhookVerifiersAgreeWithTheSigner(t *testing.T) {
	const secret = "whsec_docs_example"
	body := []byte(`{"event_id":"e1","event_type":"payment_status_changed","seq":"2","new_status":"succeeded"}`)
	now := time.Now().Unix()
	env := []string{
		"DOC_BODY=" + string(body),
		"DOC_SECRET=" + secret,
		"DOC_HEADER=" + webhooks.SignatureValue(now, body, secret),
		"DOC_ROTATION_HEADER=" + webhooks.SignatureValue(now, body, "whsec_new_one", secret),
		"DOC_STALE_HEADER=" + webhooks.SignatureValue(now-3600, body, secret),
	}
	checks := map[string]string{
		"python": `
import os as _os
_b, _s = _os.environb[b"DOC_BODY"], _os.environ["DOC_SECRET"]
print("good", verify(_b, _os.environ["DOC_HEADER"], _s))
print("rotation", verify(_b, _os.environ["DOC_ROTATION_HEADER"], _s))
print("tampered", verify(_b + b" ", _os.environ["DOC_HEADER"], _s))
print("stale", verify(_b, _os.environ["DOC_STALE_HEADER"], _s))
`,
		"js": `
;(() => {
  const b = Buffer.from(process.env.DOC_BODY), s = process.env.DOC_SECRET;
  console.log("good", verify(b, process.env.DOC_HEADER, s) ? "True" : "False");
  console.log("rotation", verify(b, process.env.DOC_ROTATION_HEADER, s) ? "True" : "False");
  console.log("tampered", verify(Buffer.concat([b, Buffer.from(" ")]), process.env.DOC_HEADER, s) ? "True" : "False");
  console.log("stale", verify(b, process.env.DOC_STALE_HEADER, s) ? "True" : "False");
})();
`,
	}
	const want = "good True\nrotation True\ntampered False\nstale False\n"
	found := 0
	for _, b := range allBlocks(t) {
		if b.notRun != "" || (b.lang != "python" && b.lang != "js") || !regexp.MustCompile(`(def|function) verify\(`).MatchString(b.text) {
			continue
		}
		found++
		t.Run(b.String(), func(t *testing.T) {
			var cmd *exec.Cmd
			if b.lang == "python" {
				cmd = exec.Command(python(t, false), "-c", b.text+checks["python"])
			} else {
				node, err := exec.LookPath("node")
				if err != nil {
					testskip.Missing(t, "node is not installed: the docs' JavaScript examples do not run", "apt-get install nodejs")
				}
				cmd = exec.Command(node, "-e", b.text+checks["js"])
			}
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err != nil || string(out) != want {
				t.Errorf("%s with the service's signature: %v\n%s\nwant:\n%s", b, err, out, want)
			}
		})
	}
	if found < 2 {
		t.Errorf("found %d webhook verifiers; docs/INTEGRATING.md has one in Python and one in JavaScript", found)
	}
}

// python returns a python3 that can run the docs' examples (with redis-py when withRedis): Debian's
// /usr/bin/python3 first, which .ci/run gives python3-redis, then the one on PATH.
func python(t *testing.T, withRedis bool) string {
	t.Helper()
	var candidates []string
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		candidates = append(candidates, "/usr/bin/python3")
	}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if !withRedis || exec.Command(p, "-c", "import redis").Run() == nil {
			return p
		}
	}
	if withRedis {
		testskip.Missing(t, "no python3 with redis-py: the docs' Python examples that read Redis do not run", "apt-get install python3-redis")
	} else {
		testskip.Missing(t, "python3 is not installed: the docs' Python examples do not run", "apt-get install python3")
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
