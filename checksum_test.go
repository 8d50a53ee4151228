package possum_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"

	"github.com/seed475afdc4/possum"
)

// TestChecksumStreamingMatchesOneShot: a value streamed through Put is
// summed in pieces, one put from memory in one go; the two must agree
// whatever the sizes of the pieces.
func TestChecksumStreamingMatchesOneShot(t *testing.T) {
	v := make([]byte, 3<<20+17)
	for i := range v {
		v[i] = byte(i*131 + i>>9)
	}
	for _, n := range []int{0, 1, 16, 17, 128, 129, 240, 241, 1024, 4095, 65537, 1 << 20, len(v)} {
		for _, piece := range []int{1, 7, 64, 4096, 1 << 20} {
			if piece > 4096 && n < 4096 {
				continue
			}
			h := xxh3.New()
			for off := 0; off < n; off += piece {
				h.Write(v[off:min(off+piece, n)])
			}
			if got, want := h.Sum64(), xxh3.Hash(v[:n]); got != want {
				t.Fatalf("%d bytes in pieces of %d: streamed %x, one shot %x", n, piece, got, want)
			}
		}
	}
}

// TestOldChecksumsStillChecked turns a cache's rows into what schema
// version 1 wrote (xxhash64 sums, no checksum_kind column) and opens it:
// the migration marks the rows as xxhash64, their values read back, and a
// row whose sum does not match its kind is damaged, not trusted.
func TestOldChecksumsStillChecked(t *testing.T) {
	dir := t.TempDir()
	c, err := possum.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("a small value")
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: read through a view
	for key, v := range map[string][]byte{"small": small, "large": large, "wrong": small} {
		if err := c.PutBytes(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()

	db, err := sql.Open("sqlite", filepath.Join(dir, "manifest.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE entries SET checksum = ? WHERE key = ?", []any{int64(xxhash.Sum64(small)), []byte("small")}},
		{"UPDATE entries SET checksum = ? WHERE key = ?", []any{int64(xxhash.Sum64(large)), []byte("large")}},
		// 'wrong' keeps its XXH3 sum, which as an xxhash64 sum is wrong.
		{"ALTER TABLE entries DROP COLUMN checksum_kind", nil},
		{"DELETE FROM goose_db_version WHERE version_id = 2", nil},
	} {
		res, err := db.Exec(q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		if n, _ := res.RowsAffected(); q.args != nil && n != 1 {
			t.Fatalf("%s %q: %d rows changed", q.sql, q.args[1], n)
		}
	}
	db.Close()

	c = openCache(t, dir, nil)
	if got := mustGet(t, c, "small"); !bytes.Equal(got, small) {
		t.Fatalf("small: got %q", got)
	}
	v, err := c.Open(ctx, "large")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Verify(); err != nil {
		t.Fatalf("large: Verify: %v", err)
	}
	if got := mustGet(t, c, "large"); !bytes.Equal(got, large) {
		t.Fatalf("large: got %d bytes", len(got))
	}
	if got, err := c.Get(ctx, "wrong"); err == nil {
		t.Fatalf("a row whose sum is not of its kind was served: %q", got)
	}
	if st := c.Stats(); st.ChecksumFailures != 1 {
		t.Fatalf("ChecksumFailures = %d, want 1", st.ChecksumFailures)
	}
	// New values get XXH3 sums again.
	if err := c.PutBytes(ctx, "small", large); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "small"); !bytes.Equal(got, large) {
		t.Fatal("a replaced value does not read back")
	}
}
