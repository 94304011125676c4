package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// The command line: each command — one word ("serve") or two ("keys create") — declares its own
// flags on a flag.FlagSet of its own, so `loomipay CMD --help` shows only its flags and exits 0,
// and an unknown flag is refused with the command's valid ones. The standard flag package is
// enough for that (see docs/DECISIONS.md, "The command line"): flags may be written -name or
// --name, and come before or after the positional arguments.

// env is what a command writes to.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// action runs a command with its positional arguments (its flags are parsed already).
type action func(ctx context.Context, args []string) error

// command is one loomipay command.
type command struct {
	name    string // "serve", "keys create"
	args    string // its positional arguments, for its usage ("KEY_ID", "[QUERY]"); "" for none
	summary string // one line, for the list of commands
	about   string // more, for the command's own usage (optional)
	// setup declares the command's flags on fs and returns the action that reads them.
	setup func(fs *flag.FlagSet, e env) action
}

// argsError is an action's complaint about its positional arguments: the command's usage follows.
type argsError struct{ msg string }

func (e *argsError) Error() string { return e.msg }

// wantArgs checks that exactly n positional arguments were given, naming them as what.
func wantArgs(args []string, n int, what string) error {
	if len(args) != n {
		return &argsError{fmt.Sprintf("needs %s (got %d argument(s))", what, len(args))}
	}
	return nil
}

// run runs the command args name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewJSONHandler(stderr, nil))}
	cmds := commands()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage(cmds))
		return errUsage
	}
	if isHelp(args[0]) || args[0] == "help" {
		if len(args) > 1 && !isHelp(args[1]) {
			return run(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage(cmds))
		return nil
	}
	if c, rest := find(cmds, args); c != nil {
		return c.exec(ctx, rest, e)
	}
	group := groupOf(cmds, args[0])
	if len(group) == 0 {
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage(cmds))
		return errUsage
	}
	if len(args) > 1 && isHelp(args[1]) {
		fmt.Fprint(stdout, groupUsage(args[0], group))
		return nil
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "unknown %s command %q\n\n", args[0], args[1])
	}
	fmt.Fprint(stderr, groupUsage(args[0], group))
	return errUsage
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

// find returns the command args name (two words before one) and the arguments after its name.
func find(cmds []command, args []string) (*command, []string) {
	if len(args) > 1 {
		for i := range cmds {
			if cmds[i].name == args[0]+" "+args[1] {
				return &cmds[i], args[2:]
			}
		}
	}
	for i := range cmds {
		if cmds[i].name == args[0] {
			return &cmds[i], args[1:]
		}
	}
	return nil, nil
}

// groupOf lists the two-word commands whose first word is word.
func groupOf(cmds []command, word string) []command {
	var out []command
	for _, c := range cmds {
		if strings.HasPrefix(c.name, word+" ") {
			out = append(out, c)
		}
	}
	return out
}

// exec parses the command's flags (anywhere among args) and runs it.
func (c *command) exec(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("loomipay "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are written below, once
	act := c.setup(fs, e)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printUsage(e.stdout, fs)
		return nil
	}
	if err == nil && c.args == "" && len(pos) > 0 {
		err = fmt.Errorf("takes no arguments, got %q", strings.Join(pos, " "))
	}
	if err == nil {
		err = act(ctx, pos)
		var ae *argsError
		if !errors.As(err, &ae) {
			return err
		}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = fmt.Sprintf("unknown flag --%s; it takes %s", strings.TrimLeft(name, "-"), flagList(fs))
	}
	fmt.Fprintf(e.stderr, "loomipay %s: %s\n\n", c.name, msg)
	c.printUsage(e.stderr, fs)
	return errUsage
}

// parseArgs parses flags anywhere among the arguments (flag stops at the first positional one)
// and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagList names a command's flags: "--app, --json and --limit", or "no flags".
func flagList(fs *flag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	switch len(names) {
	case 0:
		return "no flags"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// printUsage writes the command's usage: its synopsis, what it does, and each of its flags.
func (c *command) printUsage(w io.Writer, fs *flag.FlagSet) {
	synopsis := "loomipay " + c.name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		synopsis += " [flags]"
	}
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "usage: %s\n\n%s\n", synopsis, c.summary)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.about))
	}
	if !hasFlags {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		kind, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + strings.ToUpper(kind)
		}
		fmt.Fprintf(w, "%s\n      %s", line, help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// usage lists every command.
func usage(cmds []command) string {
	var b strings.Builder
	b.WriteString("usage: loomipay <command> [flags] [arguments]   (loomipay <command> --help: its flags)\n\ncommands:\n")
	for _, c := range cmds {
		writeSummary(&b, c)
	}
	b.WriteString(`
Operator commands act on the database DATABASE_URL names (or its _SECRET_ARN); migrate, keys and
process take --local to use (or start) the local development PostgreSQL and Redis instead. They
read the same environment variables as the Lambda functions (docs: the configuration table).
Times (T): RFC 3339 (2026-11-30T08:00:00+08:00), a date (2026-11-30, UTC) or an age (24h ago).
`)
	return b.String()
}

// groupUsage lists the commands of one group ("keys create", "keys list", …).
func groupUsage(word string, group []command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: loomipay %s <command> [flags] [arguments]   (loomipay %s <command> --help: its flags)\n\ncommands:\n", word, word)
	for _, c := range group {
		writeSummary(&b, c)
	}
	return b.String()
}

func writeSummary(b *strings.Builder, c command) {
	left := c.name
	if c.args != "" {
		left += " " + c.args
	}
	if len(left) > 38 {
		fmt.Fprintf(b, "  %s\n  %-38s %s\n", left, "", c.summary)
		return
	}
	fmt.Fprintf(b, "  %-38s %s\n", left, c.summary)
}
