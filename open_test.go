package possum_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/seed475afdc4/possum"
)

func TestOpenRefusesNonCacheDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("mine"), 0o600)
	if _, err := possum.Open(dir, nil); !errors.Is(err, possum.ErrNotCache) {
		t.Fatalf("Open of a directory holding other files: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("Open wrote into a directory that is not a cache: %d entries", len(ents))
	}
	// A regular file where the directory should be.
	file := filepath.Join(dir, "precious.txt")
	if _, err := possum.Open(file, nil); err == nil {
		t.Fatal("Open of a regular file succeeded")
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := possum.Open(dir, nil); !errors.Is(err, possum.ErrNotCache) {
		t.Fatalf("Open of someone else's SQLite database: %v", err)
	}
	db, _ = sql.Open("sqlite", filepath.Join(dir, "manifest.db"))
	defer db.Close()
	var name string
	if err := db.QueryRow("SELECT name FROM people").Scan(&name); err != nil || name != "ada" {
		t.Fatalf("the foreign database was changed: %q, %v", name, err)
	}
}

func TestOpenRefusesGarbageManifest(t *testing.T) {
	dir := t.TempDir()
	junk := bytes.Repeat([]byte("not sqlite "), 1000)
	os.WriteFile(filepath.Join(dir, "manifest.db"), junk, 0o600)
	if _, err := possum.Open(dir, nil); err == nil {
		t.Fatal("Open of a garbage manifest succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "manifest.db")); !bytes.Equal(b, junk) {
		t.Fatal("Open changed a garbage manifest")
	}
}

func TestOpenRefusesNewerVersion(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.PutBytes(ctx, "k", []byte("v"))
	c.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, 1)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := possum.Open(dir, nil); !errors.Is(err, possum.ErrNewerVersion) {
		t.Fatalf("Open of a newer manifest: %v", err)
	}
	db, _ = sql.Open("sqlite", filepath.Join(dir, "manifest.db"))
	db.Exec("DELETE FROM goose_db_version WHERE version_id = 99")
	db.Close()
	c = openCache(t, dir, nil)
	if v := mustGet(t, c, "k"); string(v) != "v" {
		t.Fatalf("value lost: %q", v)
	}
}

// TestOpenReadOnlyDirectory mounts a tmpfs, fills a cache in it, remounts
// it read-only and opens it: a clear error, and everything is still there
// once the filesystem is writable again. Without root it uses a directory
// without write permission instead.
func TestOpenReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	makeRO, makeRW := readOnlyToggle(t, dir)
	cdir := filepath.Join(dir, "cache")
	c, err := possum.Open(cdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.PutBytes(ctx, "k", []byte("kept"))
	c.Close()
	makeRO()
	_, err = possum.Open(cdir, nil)
	makeRW()
	if !errors.Is(err, possum.ErrReadOnly) {
		t.Fatalf("Open of a read-only directory: %v", err)
	}
	t.Logf("error: %v", err)
	c = openCache(t, cdir, nil)
	if v := mustGet(t, c, "k"); string(v) != "kept" {
		t.Fatalf("value after the read-only episode: %q", v)
	}
}

func readOnlyToggle(t *testing.T, dir string) (ro, rw func()) {
	if os.Geteuid() != 0 {
		return func() { os.Chmod(filepath.Join(dir, "cache"), 0o500) },
			func() { os.Chmod(filepath.Join(dir, "cache"), 0o700) }
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	remount := func(mode string) func() {
		return func() {
			if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
				t.Fatalf("remount %s: %v %s", mode, err, out)
			}
		}
	}
	return remount("ro"), remount("rw")
}

// TestDamagedValueIsMiss changes a value's bytes behind possum's back (as a
// power loss or a hand edit would): the read is a miss, never the wrong
// bytes, and the entry is dropped.
func TestDamagedValueIsMiss(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, nil)
	c.PutBytes(ctx, "k", randBytes(100_000, 1))
	c.PutBytes(ctx, "other", []byte("fine"))
	ents, _ := os.ReadDir(filepath.Join(dir, "values"))
	if len(ents) != 1 {
		t.Fatalf("%d value files", len(ents))
	}
	f, err := os.OpenFile(filepath.Join(dir, "values", ents[0].Name()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 4096), 4096) // zeros, as after a lost write
	f.Close()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a damaged value: %v", err)
	}
	if st := c.Stats(); st.ChecksumFailures != 1 {
		t.Fatalf("ChecksumFailures = %d", st.ChecksumFailures)
	}
	if v := mustGet(t, c, "other"); string(v) != "fine" {
		t.Fatalf("neighbour damaged: %q", v)
	}
	c.Close() // lets the background drop commit
	c2 := openCache(t, dir, nil)
	if _, err := c2.Stat(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the damaged entry was not dropped: %v", err)
	}
}

// TestDamageAfterFirstRead damages a value this process has already read.
// By default later reads of the same location trust the first check, and
// the damage is caught by the next process (or the next change of the
// key's stripe); with VerifyEveryRead the very next Get catches it.
func TestDamageAfterFirstRead(t *testing.T) {
	for _, every := range []bool{false, true} {
		t.Run(fmt.Sprintf("VerifyEveryRead=%v", every), func(t *testing.T) {
			dir := t.TempDir()
			c := openCache(t, dir, &possum.Options{VerifyEveryRead: every})
			want := randBytes(10_000, 1)
			c.PutBytes(ctx, "k", want)
			if v := mustGet(t, c, "k"); !bytes.Equal(v, want) {
				t.Fatal("first read differs")
			}
			ents, _ := os.ReadDir(filepath.Join(dir, "values"))
			f, err := os.OpenFile(filepath.Join(dir, "values", ents[0].Name()), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("XXXX"), 100)
			f.Close()
			v, err := c.Get(ctx, "k")
			switch {
			case every && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("VerifyEveryRead: Get of a damaged value: %v", err)
			case !every && err != nil:
				t.Fatalf("Get: %v", err)
			case !every && !bytes.Equal(v[104:], want[104:]):
				t.Fatal("bytes outside the damage differ")
			}
			c2 := openCache(t, dir, nil)
			if _, err := c2.Get(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a fresh process read a damaged value: %v", err)
			}
			c2.Close()
			c.Close()
		})
	}
}

func TestVerifyFindsAndRepairs(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.PutBytes(ctx, "k", randBytes(10_000, 1))
	c.PutBytes(ctx, "ok", randBytes(10, 2))
	ents, _ := os.ReadDir(filepath.Join(dir, "values"))
	name := filepath.Join(dir, "values", ents[0].Name())
	f, _ := os.OpenFile(name, os.O_RDWR, 0)
	f.WriteAt([]byte("XXXX"), 10)
	f.Close()
	// A value file the manifest does not know is garbage that recovery
	// removes (Trim runs it now); a file with another name is reported.
	orphan := filepath.Join(dir, "values", "00000000000000ff.val")
	os.WriteFile(orphan, []byte("orphan"), 0o600)
	os.WriteFile(filepath.Join(dir, "values", "junk.tmp"), []byte("stray"), 0o600)
	if err := c.Trim(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("recovery left an orphan value file: %v", err)
	}
	r, err := c.Verify(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, p := range r.Problems {
		kinds[p.Kind]++
	}
	if kinds["checksum"] != 1 || kinds["stray file"] != 1 || len(r.Problems) != 2 {
		t.Fatalf("Verify found %v", r.Problems)
	}
	if _, err := c.Stat(ctx, "k"); err != nil {
		t.Fatal("Verify without repair changed the cache")
	}
	r, err = c.Verify(ctx, true)
	if err != nil || r.Repaired != 2 {
		t.Fatalf("repair: %+v, %v", r, err)
	}
	r, _ = c.Verify(ctx, false)
	if !r.OK() {
		t.Fatalf("after repair: %v", r.Problems)
	}
	if v := mustGet(t, c, "ok"); !bytes.Equal(v, randBytes(10, 2)) {
		t.Fatal("repair lost a good value")
	}
}
