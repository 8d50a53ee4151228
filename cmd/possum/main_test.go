package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary run as the possum command: testscript puts
// a copy of it named possum on $PATH, for the scripts and for
// TestConcurrentPuts. It also runs as corrupt and genfile, helpers for the
// scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"possum":  main,
		"corrupt": corruptMain,
		"genfile": genfileMain,
	})
}

// genfileMain is "genfile PATH SIZE SEED": it writes SIZE bytes to PATH,
// pseudo-random from SEED, the same bytes for the same SEED.
func genfileMain() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: genfile PATH SIZE SEED")
		os.Exit(2)
	}
	size, err1 := strconv.ParseInt(os.Args[2], 10, 64)
	seed, err2 := strconv.ParseUint(os.Args[3], 10, 64)
	if err := errors.Join(err1, err2); err != nil || size < 0 {
		fmt.Fprintln(os.Stderr, "genfile: bad SIZE or SEED:", err)
		os.Exit(2)
	}
	if err := genfile(os.Args[1], size, seed); err != nil {
		fmt.Fprintln(os.Stderr, "genfile:", err)
		os.Exit(1)
	}
}

// genfile writes size bytes to path, from a ChaCha8 stream seeded by seed.
func genfile(path string, size int64, seed uint64) error {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, rand.NewChaCha8(key), size)
	return errors.Join(err, f.Close())
}

// corruptMain is "corrupt DIR": it damages the cache in DIR by flipping
// the bits of a few bytes in the middle of the first value file.
func corruptMain() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: corrupt DIR")
		os.Exit(2)
	}
	if err := corrupt(filepath.Join(os.Args[1], "values")); err != nil {
		fmt.Fprintln(os.Stderr, "corrupt:", err)
		os.Exit(1)
	}
}

// corrupt flips the bits of up to 4 bytes from the middle (size/2) of the
// first regular file in dir, in name order.
func corrupt(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ents, func(e fs.DirEntry) bool { return e.Type().IsRegular() })
	if i < 0 {
		return fmt.Errorf("no file in %s", dir)
	}
	f, err := os.OpenFile(filepath.Join(dir, ents[i].Name()), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	off := fi.Size() / 2
	b := make([]byte, min(4, fi.Size()-off))
	if len(b) == 0 {
		return fmt.Errorf("%s is empty", f.Name())
	}
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Close()
}

// TestScript runs the scripts in testdata/script. They find a key that is
// not UTF-8 in $BADKEY, and check exit statuses with "status N COMMAND...".
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("BADKEY", "bad\xffkey")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
		},
	})
}

// cmdStatus runs a program, like exec, and checks its exit status:
// "status N program [args...]".
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}
