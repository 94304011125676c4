package deploycheck_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// samGoBuild runs what `sam build` runs for a function with BuildMethod go1.x (aws-lambda-builders'
// go_modules builder): `go build -o <artifacts>/bootstrap <CodeUri>` in the CodeUri folder, with
// GOOS=linux, GOARCH from Architectures and the rest of the environment as it is.
func samGoBuild(dir, out string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command("go", "build", "-o", out, dir)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOOS=linux", "GOARCH=arm64"), extraEnv...)
	return cmd
}

// TestSAMBuildAsWritten: docs/DEPLOYING.md's `sam build` (on a machine with Go) builds every function
// from its CodeUri, which holds no go.mod: Go finds the module at the repository root. One
// function is built for real, arm64, static; the others are resolved the same way (go list).
// `sam build --use-container` mounts the CodeUri folder alone into its container, where the
// module root is out of reach: the same build from a copy of the folder fails, as docs/DEPLOYING.md says.
func TestSAMBuildAsWritten(t *testing.T) {
	root := repoRoot(t)
	d := loadTemplate(t)
	for _, f := range d.Functions {
		if f.BuildMethod != "go1.x" {
			t.Errorf("%s: BuildMethod %q; docs/DEPLOYING.md's sam build assumes go1.x", f.LogicalID, f.BuildMethod)
		}
		dir := filepath.Join(root, "functions", f.Folder)
		cmd := exec.Command("go", "list", "-json", dir)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64")
		out, err := cmd.Output()
		var pkg struct {
			Name   string
			Module struct{ Dir string }
			Error  *struct{ Err string }
		}
		if err == nil {
			err = json.Unmarshal(out, &pkg)
		}
		if err != nil || pkg.Error != nil || pkg.Name != "main" || pkg.Module.Dir != root {
			t.Errorf("%s: go list in functions/%s: %v %+v; want package main of the module at the repository root", f.LogicalID, f.Folder, err, pkg)
		}
	}

	// docs/DEPLOYING.md's build (Building): the flags make build uses, through the environment.
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	dir := filepath.Join(root, "functions", "createorder")
	if out, err := samGoBuild(dir, bootstrap, "CGO_ENABLED=0", `GOFLAGS=-tags=lambda.norpc -trimpath '-ldflags=-s -w'`).CombinedOutput(); err != nil {
		t.Fatalf("sam build's go build of functions/createorder: %v\n%s", err, out)
	}
	bin, err := elf.Open(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	interp := false
	for _, p := range bin.Progs {
		interp = interp || p.Type == elf.PT_INTERP
	}
	if bin.Machine != elf.EM_AARCH64 || interp {
		t.Errorf("bootstrap: machine %v, dynamic loader %v; want a static arm64 executable", bin.Machine, interp)
	}

	// --use-container: only the CodeUri folder is mounted.
	mounted := filepath.Join(t.TempDir(), "source")
	if err := os.CopyFS(mounted, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	out, err := samGoBuild(mounted, filepath.Join(t.TempDir(), "bootstrap"), "GOFLAGS=").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "go.mod file not found") {
		t.Errorf("building from the CodeUri folder alone: %v\n%s\nwant go.mod not found (as in sam build --use-container); if that changed, update docs/DEPLOYING.md", err, out)
	}
}
