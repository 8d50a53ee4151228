package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
)

// exitError is an error that sets possum's exit status: 1 for a miss, 2
// for a usage error (any other error means 1). A nil err means there is
// nothing (more) to print: the message or help was already written.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// errDone ends possum once it has printed what was asked (help): with
// status 0, or 1 if the printing failed.
func errDone(err error) error {
	if err != nil {
		return err
	}
	return &exitError{code: 0}
}

// miss turns a miss (fs.ErrNotExist) of op on key into an error that prints
// as one line, `get "k": not found`, and exits 1. Other errors pass as they
// are.
func miss(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &exitError{code: 1, err: fmt.Errorf("%s %s: not found", op, strconv.Quote(key))}
	}
	return err
}

// usageError prints msg (unless empty) and the usage of cmd (of possum if
// nil) on stderr, and returns an error that exits 2.
func (e *env) usageError(cmd *command, msg string) error {
	if msg != "" && cmd != nil {
		msg = cmd.name + ": " + msg
	}
	if msg != "" {
		fmt.Fprintf(e.stderr, "possum: %s\n", msg)
	}
	if cmd != nil {
		fmt.Fprintln(e.stderr, cmd.synopsis())
	} else {
		fmt.Fprintf(e.stderr, "%s\nRun 'possum help' for the commands.\n", usageLine)
	}
	return &exitError{code: 2}
}

// exitStatus prints err on stderr, one line per error joined in it (each
// prefixed "possum: " once), and returns the exit status it calls for: 0
// for nil, else the highest of its errors' statuses.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		code := 0
		for _, err := range j.Unwrap() {
			code = max(code, exitStatus(err, stderr))
		}
		return code
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "possum: ") {
		msg = "possum: " + msg
	}
	fmt.Fprintln(stderr, msg)
	return code
}

// fileErr reports a failure on the file at path itself (opening or reading
// it) as that file's error, "open FILE: ...", as it would be without the
// cache; other errors pass as they are.
func fileErr(err error, path string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return pe
	}
	return err
}

// stdoutErr returns err, from writing the value to w, standard output. A
// reader that went away (a broken pipe, as in "possum get k | head") ends
// possum quietly, as any write of Go to a broken pipe on standard output
// does: by SIGPIPE. Sendfile, unlike (*os.File).Write, only returns EPIPE,
// so a byte is written through w to make the runtime raise the signal;
// should possum survive it (w is not the real standard output), it exits 1
// without a message.
func stdoutErr(w io.Writer, err error) error {
	if !errors.Is(err, syscall.EPIPE) {
		return err
	}
	w.Write([]byte{0})
	return &exitError{code: 1}
}
