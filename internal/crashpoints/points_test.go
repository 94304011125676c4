package crashpoints

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/shared/crash"
)

// crash.All lists exactly the Points declared in shared/crash, and each is marked somewhere in the
// code the functions link: a Point added without a mark, or a mark without a Point, fails here;
// one without a case fails TestEveryCrashPoint (make crashpoints).
func TestEveryPointIsListedAndMarked(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "shared", "crash", "crash.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				declared = append(declared, name.Name)
			}
		}
	}
	var listed []string
	for _, p := range crash.All {
		listed = append(listed, string(p))
	}
	if len(declared) != len(listed) {
		t.Errorf("shared/crash declares %d Points but All lists %d", len(declared), len(listed))
	}
	// Every declared name is used outside shared/crash's declarations (crash.X), or, for the
	// Lakala calls, in crash's own map of them.
	var code strings.Builder
	err = filepath.WalkDir(filepath.Join(root, "shared"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, "crash.go") {
			return err
		}
		b, err := os.ReadFile(path)
		code.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range declared {
		if !strings.Contains(code.String(), "crash."+name) && !strings.Contains(code.String(), "{"+name+",") && !strings.Contains(code.String(), ", "+name+"}") {
			t.Errorf("crash point %s is declared but marked nowhere", name)
		}
	}
}

// A Lambda binary carries no trace of the crash points: without the crashpoints tag, crash.Here
// is an empty function and their names are never linked.
func TestNoCrashPointInTheLambdaBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function")
	}
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, "./functions/processor")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"shared/crash"}
	for _, p := range crash.All {
		names = append(names, string(p))
	}
	for _, name := range names {
		if strings.Contains(string(bin), name) {
			t.Errorf("the processor's bootstrap contains %q", name)
		}
	}
}
