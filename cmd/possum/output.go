package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
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

// size returns n bytes as possum prints them: in binary units, then exact,
// as in "1.0 GiB (1073741824 bytes)".
func size(n int64) string {
	if n < 0 {
		return fmt.Sprintf("%d bytes", n) // not a size: a bug, shown as it is
	}
	return fmt.Sprintf("%s (%d bytes)", humanize.IBytes(uint64(n)), n)
}

// percent returns n as a percentage of total, as in "12.5%".
func percent(n, total int64) string {
	if total <= 0 {
		return "-%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}

// parseSize parses a size in bytes: a number, maybe with a decimal point
// and a unit such as KiB, MiB, GB or T (see humanize.ParseBytes). It must be
// positive and fit an int64.
func parseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: want a positive number of bytes, "+
			"with or without a unit such as 512MiB, 10GiB or 1.5GB", s)
	}
	return int64(n), nil
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

// writeFile copies src to name through a temporary file in the same
// directory, renamed to name once written and closed: name is either
// written in full or left as it was, and a failure leaves no temporary file.
// A new file gets mode 0666 less the umask, as with os.Create. The copy is
// io.Copy into the *os.File, so a src that is an io.WriterTo (a
// possum.Value) sees the file itself and can copy in the kernel.
func writeFile(name string, src io.Reader) error {
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+"."+rand.Text()+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Path = name // the user knows of no temporary file
		}
		return err
	}
	_, err = io.Copy(f, src)
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
