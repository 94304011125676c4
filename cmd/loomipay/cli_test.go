package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every command has its own usage: --help prints it on stdout and exits 0, with the command's
// flags and no other's; an unknown flag is refused naming the valid ones. Before, `reviews list
// --help` printed every operator command's flags and exited 2, and `serve --help` exited 2.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
			c.setup(fs, env{stdout: io.Discard, stderr: io.Discard})
			var own []string
			fs.VisitAll(func(f *flag.Flag) { own = append(own, "--"+f.Name) })

			args := append(strings.Fields(c.name), "--help")
			var out, errOut bytes.Buffer
			if err := run(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("%v: %v; want exit 0", args, err)
			}
			if !strings.HasPrefix(out.String(), "usage: loomipay "+c.name) || errOut.Len() != 0 {
				t.Errorf("%v printed %q on stdout and %q on stderr; want its usage on stdout", args, out.String(), errOut.String())
			}
			printed := regexp.MustCompile(`(?m)^  (--[a-z-]+)`).FindAllStringSubmatch(out.String(), -1)
			if len(printed) != len(own) {
				t.Errorf("%v lists %d flags; the command has %d (%v):\n%s", args, len(printed), len(own), own, out.String())
			}
			for _, m := range printed {
				if !strings.Contains(strings.Join(own, " ")+" ", m[1]+" ") {
					t.Errorf("%v lists %s, not a flag of %s", args, m[1], c.name)
				}
			}

			out.Reset()
			errOut.Reset()
			err := run(context.Background(), append(strings.Fields(c.name), "--no-such-flag"), &out, &errOut)
			if !errors.Is(err, errUsage) || !strings.Contains(errOut.String(), "unknown flag --no-such-flag") || out.Len() != 0 {
				t.Errorf("%s --no-such-flag: err %v, stderr %q; want a usage error naming the flag", c.name, err, errOut.String())
			}
			for _, f := range own {
				if !strings.Contains(errOut.String(), f) {
					t.Errorf("%s --no-such-flag: stderr %q does not name its flag %s", c.name, errOut.String(), f)
				}
			}
		})
	}
}

func TestTopLevelHelpAndUnknownCommands(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantErr  bool
		inStdout string
		inStderr string
	}{
		{[]string{"--help"}, false, "commands:", ""},
		{[]string{"help"}, false, "reviews resolve CASE_ID", ""},
		{[]string{"help", "serve"}, false, "usage: loomipay serve", ""},
		{[]string{"keys", "--help"}, false, "keys revoke KEY_ID", ""},
		{[]string{"dlq", "-h"}, false, "dlq redrive", ""},
		{nil, true, "", "commands:"},
		{[]string{"frobnicate"}, true, "", `unknown command "frobnicate"`},
		{[]string{"keys"}, true, "", "keys create"},
		{[]string{"keys", "rotate"}, true, "", `unknown keys command "rotate"`},
		{[]string{"keys", "revoke"}, true, "", "needs KEY_ID"},
		{[]string{"apps", "create", "a", "b"}, true, "", "needs an APP"},
		{[]string{"worker", "now"}, true, "", "takes no arguments"},
		{[]string{"dev", "--lakala", "cloud"}, true, "", "--lakala must be sandbox or env"},
		{[]string{"serve", "--shutdown-grace", "soon"}, true, "", "invalid value"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, errUsage)) {
			t.Errorf("%v: err = %v; want a usage error: %v", tc.args, err, tc.wantErr)
		}
		if !strings.Contains(out.String(), tc.inStdout) || !strings.Contains(errOut.String(), tc.inStderr) {
			t.Errorf("%v: stdout %q, stderr %q; want %q and %q in them", tc.args, out.String(), errOut.String(), tc.inStdout, tc.inStderr)
		}
	}
}

// Every command line the documentation, the Makefile and the scripts show uses a command that
// exists and only flags it takes: a renamed command or flag fails here.
func TestDocumentedCommandLinesParse(t *testing.T) {
	files := []string{"../../README.md", "../../Makefile", "../../clients/run.sh", "../../sdk/go/README.md"}
	docs, _ := filepath.Glob("../../docs/*.md")
	files = append(files, docs...)
	line := regexp.MustCompile(`loomipay ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?([^\x60|;#\n]*)`)
	flagRE := regexp.MustCompile(`(?:^|\s|\[)--([a-z][a-z-]*)`)
	cmds := commands()
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range line.FindAllStringSubmatch(string(b), -1) {
			words, rest := []string{m[1]}, m[3]
			if m[2] != "" {
				words = append(words, m[2])
			}
			c, _ := find(cmds, words)
			if c == nil {
				continue // prose ("loomipay dev is …"), not a command line
			}
			if len(strings.Fields(c.name)) == 1 && m[2] != "" {
				rest = " " + m[2] + rest
			}
			fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
			c.setup(fs, env{stdout: io.Discard, stderr: io.Discard})
			for _, f := range flagRE.FindAllStringSubmatch(rest, -1) {
				checked++
				if fs.Lookup(f[1]) == nil && f[1] != "help" { // every command takes --help
					t.Errorf("%s: %q uses --%s, which loomipay %s does not take (it takes %s)", file, strings.TrimSpace(m[0]), f[1], c.name, flagList(fs))
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d documented flags; the scan finds too little", checked)
	}
}
