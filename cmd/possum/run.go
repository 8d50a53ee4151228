package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/seed475afdc4/possum"
)

// A command is one of possum's subcommands. Adding a command is adding an
// entry to commands.
type command struct {
	name    string
	args    string // synopsis after the name: flags and operands
	summary string // one line, for the command list
	doc     string // what "possum help NAME" prints below the synopsis
	run     func(ctx context.Context, e *env, args []string) error
}

// commands are possum's subcommands, in the order "possum help" lists them.
var commands = []*command{
	putCmd, getCmd, lsCmd, statCmd, rmCmd, mvCmd,
	capacityCmd, trimCmd, verifyCmd,
}

// lookup returns the command called name, or nil.
func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageLine is the synopsis of possum, the first line of its usage.
const usageLine = "usage: possum [-dir DIR] COMMAND [ARGS]"

// usageText follows usageLine and the command list in "possum help".
const usageText = `
The cache is DIR, else $POSSUM_DIR, else "possum" in the user's cache
directory ($XDG_CACHE_HOME or ~/.cache on Linux). It is created if need be.

Keys are arbitrary bytes. ls and stat print a key as it is if it is
printable UTF-8, and otherwise (control characters, invalid UTF-8, or a
leading double quote) as a quoted Go string literal, such as "a\tb" or
"\xff". Flags may follow operands; "--" ends the flags, for a key that
starts with "-".

Sizes are printed in binary units with the exact bytes, as in
"1.0 GiB (1073741824 bytes)".

Exit status: 0 on success; 1 if a key is not found, if verify leaves
problems unrepaired, or on any other error; 2 for a usage error.
`

// env is what a command runs with.
type env struct {
	dir            string // from -dir; empty means the default
	stdin          io.Reader
	stdout, stderr io.Writer
	cmd            *command // the running command
}

// run runs possum with args (the command line without the program name)
// and returns what should decide the exit status: see exitStatus.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("possum", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // usage is printed below, to stdout for -h
	fs.StringVar(&e.dir, "dir", "", "the cache `directory`")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return printUsage(stdout)
	} else if err != nil {
		return e.usageError(nil, "") // flag printed what is wrong
	}
	if fs.NArg() == 0 {
		return e.usageError(nil, "missing command")
	}
	name, args := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		return e.help(args)
	}
	if e.cmd = lookup(name); e.cmd == nil {
		return e.usageError(nil, fmt.Sprintf("unknown command %q", name))
	}
	return e.cmd.run(ctx, e, args)
}

// help prints the usage of possum, or of the command named in args.
func (e *env) help(args []string) error {
	if len(args) == 0 {
		return printUsage(e.stdout)
	}
	cmd := lookup(args[0])
	switch {
	case cmd == nil:
		return e.usageError(nil, fmt.Sprintf("help: unknown command %q", args[0]))
	case len(args) > 1:
		return e.usageError(nil, "help: too many arguments")
	}
	return cmd.printHelp(e.stdout)
}

// printUsage prints possum's usage: the commands, the cache directory,
// how keys are printed, the exit statuses.
func printUsage(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nCommands:\n", usageLine)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-22s %s\n", c.line(), c.summary)
	}
	fmt.Fprintf(&b, "  %-22s %s\n", "help [COMMAND]", "show this help, or a command's")
	b.WriteString(usageText)
	_, err := io.WriteString(w, b.String())
	return err
}

// line returns c's name and args, as the command list shows them.
func (c *command) line() string { return strings.TrimSpace(c.name + " " + c.args) }

// synopsis returns c's usage line.
func (c *command) synopsis() string { return "usage: possum " + c.line() }

// printHelp prints c's synopsis and doc.
func (c *command) printHelp(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s\n\n%s", c.synopsis(), c.doc)
	return err
}

// flags returns a flag set for the running command. It reports bad flags on
// stderr; parse prints the usage.
func (e *env) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("possum "+e.cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {}
	return fs
}

// parse parses args with fs and returns the operands, checking that there
// are at least min and, unless max < 0, at most max of them. Flags may come
// before, between or after operands; "--" ends them.
func (e *env) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var ops []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, errDone(e.cmd.printHelp(e.stdout))
		} else if err != nil {
			return nil, e.usageError(e.cmd, "") // flag printed what is wrong
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			ops = append(ops, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		ops, args = append(ops, rest[0]), rest[1:]
	}
	switch {
	case len(ops) < min:
		return nil, e.usageError(e.cmd, "too few arguments")
	case max >= 0 && len(ops) > max:
		return nil, e.usageError(e.cmd, "too many arguments")
	}
	return ops, nil
}

// withCache opens the cache, calls f with it and closes it.
func (e *env) withCache(f func(*possum.Cache) error) (err error) {
	dir, err := e.cacheDir()
	if err != nil {
		return err
	}
	c, err := possum.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	return f(c)
}

// cacheDir returns -dir, else $POSSUM_DIR, else possum in the user's cache
// directory.
func (e *env) cacheDir() (string, error) {
	if e.dir != "" {
		return e.dir, nil
	}
	if d := os.Getenv("POSSUM_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (use -dir or $POSSUM_DIR): %w", err)
	}
	return filepath.Join(d, "possum"), nil
}
