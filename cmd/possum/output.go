package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// showKey returns key as ls and stat print it: as it is if it is printable
// UTF-8 (spaces included), else as a quoted Go string literal. A key that
// starts with a double quote is quoted too, so that a printed key that
// starts with one is always a literal.
func showKey(key string) string {
	if strings.HasPrefix(key, `"`) || !utf8.ValidString(key) ||
		strings.ContainsFunc(key, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(key)
	}
	return key
}

// printTable prints rows of a label and a value, the values aligned.
func printTable(w io.Writer, rows [][2]any) error {
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "%-13s %v\n", r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to name through a temporary file in the same
// directory, renamed to name once written and closed: name is either
// written in full or left as it was, and a failure leaves no temporary file.
// A new file gets mode 0666 less the umask, as with os.Create.
func writeFile(name string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+"."+rand.Text()+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Path = name // the user knows of no temporary file
		}
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
