package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

var ctx = context.Background()

func stripeOf(k []byte) int {
	h := fnv.New32a()
	h.Write(k)
	return int(h.Sum32() % 8192)
}

func open(t *testing.T, dir string) *Manifest {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	m, err := Open(ctx, dir, Config{StripeOf: stripeOf, MaxKey: 64, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func update(t *testing.T, m *Manifest, fn func(*Tx) error) []int {
	t.Helper()
	stripes, err := m.Update(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	return stripes
}

func checkTotals(t *testing.T, m *Manifest) Totals {
	t.Helper()
	kept, counted, err := m.CheckTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kept != counted {
		t.Fatalf("running totals %+v, rows say %+v", kept, counted)
	}
	return kept
}

func TestInsertReplaceDelete(t *testing.T) {
	m := open(t, t.TempDir())
	e := NewEntry{Key: []byte("k\x00\xff"), FileID: 1, Offset: 0, Length: 100, Footprint: 100, Checksum: 1<<63 + 5}
	stripes := update(t, m, func(tx *Tx) error { return tx.Insert(e) })
	if len(stripes) != 1 || stripes[0] != stripeOf(e.Key) {
		t.Fatalf("stripes to bump: %v", stripes)
	}
	l, err := m.Lookup(ctx, e.Key)
	if err != nil || l.Checksum != e.Checksum || l.Length != 100 {
		t.Fatalf("Lookup: %+v, %v", l, err)
	}
	e2 := e
	e2.Offset, e2.Length, e2.Footprint = 100, 70_000, 73_728
	update(t, m, func(tx *Tx) error { return tx.Insert(e2) })
	tot := checkTotals(t, m)
	if tot.Entries != 1 || tot.DeadExtents != 1 || tot.DeadFootprint != 100 || tot.LiveFootprint != 73_728 {
		t.Fatalf("after a replace: %+v", tot)
	}
	update(t, m, func(tx *Tx) error { return tx.Delete(e.Key) })
	if _, err := m.Lookup(ctx, e.Key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lookup after Delete: %v", err)
	}
	if _, err := m.Update(ctx, func(tx *Tx) error { return tx.Delete(e.Key) }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	ds, err := m.DeadExtents(ctx, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("dead extents: %+v, %v", ds, err)
	}
	update(t, m, func(tx *Tx) error { return tx.DeleteDead([]int64{ds[0].ExtentID, ds[1].ExtentID}) })
	if tot := checkTotals(t, m); tot.DeadExtents != 0 || tot.Entries != 0 {
		t.Fatalf("after draining: %+v", tot)
	}
}

func TestMovePrefixAndRename(t *testing.T) {
	m := open(t, t.TempDir())
	update(t, m, func(tx *Tx) error {
		for i, k := range []string{"a/1", "a/2", "b/1"} {
			if err := tx.Insert(NewEntry{Key: []byte(k), FileID: 1, Offset: int64(i * 10), Length: 10, Footprint: 10}); err != nil {
				return err
			}
		}
		return nil
	})
	var n int
	update(t, m, func(tx *Tx) error {
		var err error
		n, err = tx.MovePrefix([]byte("a/"), []byte("a0"), []byte("a/"), []byte("b/"))
		return err
	})
	if n != 2 {
		t.Fatalf("moved %d", n)
	}
	es, _ := m.List(ctx, []byte(""), nil, nil, 0, 10)
	if len(es) != 2 || string(es[0].Key) != "b/1" || es[0].Offset != 0 || string(es[1].Key) != "b/2" {
		t.Fatalf("after the move: %+v", es)
	}
	if tot := checkTotals(t, m); tot.DeadExtents != 1 { // b/1's old value
		t.Fatalf("%+v", tot)
	}
	_, err := m.Update(ctx, func(tx *Tx) error {
		_, err := tx.MovePrefix([]byte("b/"), []byte("b0"), []byte("b/"), make([]byte, 70))
		return err
	})
	if !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("a move past MaxKey: %v", err)
	}
	if _, err := m.Update(ctx, func(tx *Tx) error { return tx.Rename([]byte("zz"), []byte("b/1")) }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rename of a missing key: %v", err)
	}
	update(t, m, func(tx *Tx) error { return tx.Rename([]byte("b/2"), []byte("b/1")) })
	if e, err := m.Entry(ctx, []byte("b/1")); err != nil || e.Offset != 10 {
		t.Fatalf("after rename: %+v, %v", e, err)
	}
	checkTotals(t, m)
}

func TestVictimsExpiredFirstThenLRU(t *testing.T) {
	m := open(t, t.TempDir())
	update(t, m, func(tx *Tx) error {
		for i, k := range []string{"old", "new", "expired"} {
			e := NewEntry{Key: []byte(k), FileID: 1, Offset: int64(i * 10), Length: 10, Footprint: 10}
			if k == "expired" {
				e.Expires = tx.Now - 1
			}
			if err := tx.Insert(e); err != nil {
				return err
			}
		}
		return nil
	})
	ids := map[string]int64{}
	for _, k := range []string{"old", "new", "expired"} {
		l, _ := m.Lookup(ctx, []byte(k))
		ids[k] = l.KeyID
	}
	update(t, m, func(tx *Tx) error { return tx.Touch(ids["new"], tx.Now+1) })
	update(t, m, func(tx *Tx) error {
		vs, err := tx.Victims(3)
		if err != nil {
			return err
		}
		if len(vs) != 3 || vs[0].KeyID != ids["expired"] || !vs[0].Expired || vs[1].KeyID != ids["old"] || vs[2].KeyID != ids["new"] {
			t.Errorf("victims %+v, ids %v", vs, ids)
		}
		return nil
	})
}

func TestGapsAndNeighbours(t *testing.T) {
	m := open(t, t.TempDir())
	update(t, m, func(tx *Tx) error {
		for i, k := range []string{"a", "b", "c"} {
			if err := tx.Insert(NewEntry{Key: []byte(k), FileID: 7, Offset: int64(i * 4096), Length: 4096, Footprint: 4096}); err != nil {
				return err
			}
		}
		return tx.Delete([]byte("b"))
	})
	ds, _ := m.DeadExtents(ctx, 10)
	gs, err := m.Gaps(ctx, 7, []int64{ds[0].ExtentID})
	if err != nil || len(gs) != 1 || gs[0].Lo != 4096 || gs[0].Hi != 8192 {
		t.Fatalf("gap: %+v, %v", gs, err)
	}
	if live, _ := m.LiveIn(ctx, 7, 4096, 8192); live {
		t.Fatal("LiveIn reports a dead region live")
	}
	if live, _ := m.LiveIn(ctx, 7, 4000, 4097); !live {
		t.Fatal("LiveIn misses a live value")
	}
	if end, _ := m.CommittedEnd(ctx, 7); end != 3*4096 {
		t.Fatalf("CommittedEnd %d", end)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	m := open(t, dir)
	update(t, m, func(tx *Tx) error { return tx.SetSetting(SettingCapacity, 12345) })
	m.Close()
	m = open(t, dir)
	if v, err := m.Setting(ctx, SettingCapacity); err != nil || v != 12345 {
		t.Fatalf("capacity after reopening: %d, %v", v, err)
	}
}

// TestPageSize: a new manifest has small pages and is in WAL mode; one made
// with SQLite's default 4 KiB pages (by an earlier version) opens as it is.
func TestPageSize(t *testing.T) {
	pragma := func(m *Manifest, name string) string {
		var v string
		if err := m.wc.GetContext(ctx, &v, "PRAGMA "+name); err != nil {
			t.Fatal(err)
		}
		return v
	}
	m := open(t, t.TempDir())
	if got := pragma(m, "page_size"); got != fmt.Sprint(PageSize) {
		t.Errorf("page_size %s, want %d", got, PageSize)
	}
	if got := pragma(m, "journal_mode"); got != "wal" {
		t.Errorf("journal_mode %s", got)
	}

	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	m = open(t, dir)
	if got := pragma(m, "page_size"); got != "4096" {
		t.Errorf("an existing manifest's page_size changed to %s", got)
	}
	update(t, m, func(tx *Tx) error {
		return tx.Insert(NewEntry{Key: []byte("k"), FileID: 1, Length: 1, Footprint: 1})
	})
}
