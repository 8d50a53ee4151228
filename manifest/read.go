package manifest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"syscall"
)

// Location is where a value's bytes are: what a read needs.
type Location struct {
	KeyID    int64
	FileID   int64 // 0 for an empty value, which has no bytes anywhere
	Offset   int64
	Length   int64
	Checksum uint64
	// ChecksumKind says how Checksum was computed (ChecksumXXH3 for
	// every row written since schema version 2).
	ChecksumKind ChecksumKind
	Expires      int64 // Unix ns; 0 means never

	Footprint int64 // bytes of disk the value holds (see the entries table)
	Created   int64 // Unix ns
	LastUsed  int64 // Unix ns, as last recorded in the manifest
}

// Entry is a whole row of the entries table.
type Entry struct {
	KeyID     int64         `db:"key_id"`
	Key       []byte        `db:"key"`
	FileID    int64         `db:"file_id"`
	Offset    int64         `db:"offset"`
	Length    int64         `db:"length"`
	Footprint int64         `db:"footprint"`
	Checksum  int64         `db:"checksum"`
	SumKind   ChecksumKind  `db:"checksum_kind"`
	Created   int64         `db:"created_ns"`
	LastUsed  int64         `db:"last_used_ns"`
	Expires   sql.NullInt64 `db:"expires_ns"`
}

// Location returns the part of the entry a read needs.
func (e *Entry) Location() Location {
	return Location{KeyID: e.KeyID, FileID: e.FileID, Offset: e.Offset, Length: e.Length,
		Checksum: uint64(e.Checksum), ChecksumKind: e.SumKind, Expires: e.Expires.Int64,
		Footprint: e.Footprint, Created: e.Created, LastUsed: e.LastUsed}
}

const entryColumns = `key_id, key, file_id, offset, length, footprint, checksum, checksum_kind, created_ns, last_used_ns, expires_ns`

// ChecksumKind is how a value's checksum was computed
// (entries.checksum_kind).
type ChecksumKind uint8

const (
	ChecksumXXH64 ChecksumKind = 0 // xxhash64: rows written before schema version 2
	ChecksumXXH3  ChecksumKind = 1 // XXH3-64, seed 0
)

// Totals are the running sums kept by the manifest's triggers.
type Totals struct {
	Entries       int64 `db:"entry_count"`
	LiveBytes     int64 `db:"live_bytes"`
	LiveFootprint int64 `db:"live_footprint"`
	DeadExtents   int64 `db:"dead_count"`
	DeadFootprint int64 `db:"dead_footprint"`
}

type readStmts struct {
	lookup *sql.Stmt
}

func (s *readStmts) close() {
	if s.lookup != nil {
		s.lookup.Close()
	}
}

func (m *Manifest) prepare(ctx context.Context) error {
	var err error
	m.stmts.lookup, err = m.r.PrepareContext(ctx,
		`SELECT key_id, file_id, offset, length, checksum, checksum_kind, coalesce(expires_ns, 0), footprint, created_ns, last_used_ns
		FROM entries WHERE key = ?`)
	return err
}

// Lookup finds key's value. A missing key is fs.ErrNotExist. Expired entries
// are returned as they are: the caller decides.
func (m *Manifest) Lookup(ctx context.Context, key []byte) (Location, error) {
	var l Location
	var sum int64
	err := m.stmts.lookup.QueryRowContext(ctx, key).Scan(&l.KeyID, &l.FileID, &l.Offset, &l.Length, &sum, &l.ChecksumKind, &l.Expires,
		&l.Footprint, &l.Created, &l.LastUsed)
	l.Checksum = uint64(sum)
	return l, scanErr(err)
}

// Entry returns key's whole row, or fs.ErrNotExist.
func (m *Manifest) Entry(ctx context.Context, key []byte) (Entry, error) {
	var e Entry
	err := m.rget(ctx, &e, `SELECT `+entryColumns+` FROM entries WHERE key = ?`, key)
	return e, scanErr(err)
}

// List returns up to limit entries with lo <= key < hi in key order, hi nil
// meaning no upper bound, starting after the key after when it is not nil.
// Entries that expired at or before now are left out unless now is 0.
func (m *Manifest) List(ctx context.Context, lo, hi, after []byte, now int64, limit int) ([]Entry, error) {
	q := `SELECT ` + entryColumns + ` FROM entries WHERE key >= ?`
	args := []any{lo}
	if hi != nil {
		q += ` AND key < ?`
		args = append(args, hi)
	}
	if after != nil {
		q += ` AND key > ?`
		args = append(args, after)
	}
	if now != 0 {
		q += ` AND (expires_ns IS NULL OR expires_ns > ?)`
		args = append(args, now)
	}
	q += ` ORDER BY key LIMIT ?`
	args = append(args, limit)
	var es []Entry
	err := m.rsel(ctx, &es, q, args...)
	return es, err
}

// Totals returns the running sums.
func (m *Manifest) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := m.rget(ctx, &t, `SELECT entry_count, live_bytes, live_footprint, dead_count, dead_footprint FROM totals`)
	return t, err
}

// FileEntries returns the live entries stored in file id, in offset order.
func (m *Manifest) FileEntries(ctx context.Context, fileID int64) ([]Entry, error) {
	var es []Entry
	err := m.rsel(ctx, &es, `SELECT `+entryColumns+` FROM entries WHERE file_id = ? ORDER BY offset`, fileID)
	return es, err
}

// Files returns the ids of every value file the manifest knows.
func (m *Manifest) Files(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := m.rsel(ctx, &ids, `SELECT file_id FROM files ORDER BY file_id`)
	return ids, err
}

// DeadExtent is a row of dead_extents: a region waiting to be given back.
type DeadExtent struct {
	ExtentID  int64 `db:"extent_id"`
	FileID    int64 `db:"file_id"`
	Offset    int64 `db:"offset"`
	Length    int64 `db:"length"`
	Footprint int64 `db:"footprint"`
	Stripe    int64 `db:"stripe"`
	Created   int64 `db:"created_ns"`
}

// DeadExtents returns up to limit dead extents, oldest first.
func (m *Manifest) DeadExtents(ctx context.Context, limit int) ([]DeadExtent, error) {
	var ds []DeadExtent
	err := m.rsel(ctx, &ds,
		`SELECT extent_id, file_id, offset, length, footprint, stripe, created_ns FROM dead_extents ORDER BY extent_id LIMIT ?`, limit)
	return ds, err
}

// Setting reads a shared setting; a missing one is fs.ErrNotExist.
func (m *Manifest) Setting(ctx context.Context, name string) (int64, error) {
	var v int64
	err := m.rget(ctx, &v, `SELECT value FROM settings WHERE name = ?`, name)
	return v, scanErr(err)
}

// IsSQLError reports whether err came from SQLite itself (as opposed to a
// request's own verdict, like fs.ErrNotExist).
func IsSQLError(err error) bool {
	type coder interface{ Code() int }
	var c coder
	return errors.As(err, &c)
}

// IsFull reports whether err is SQLite's "database or disk is full", or
// the filesystem's ENOSPC.
func IsFull(err error) bool {
	type coder interface{ Code() int }
	var c coder
	return errors.Is(err, syscall.ENOSPC) || errors.As(err, &c) && c.Code()&0xff == 13 // SQLITE_FULL
}

// EntriesAfter returns up to limit entries with key_id > after, in key_id
// order: a way to walk every row without holding a transaction open.
func (m *Manifest) EntriesAfter(ctx context.Context, after int64, limit int) ([]Entry, error) {
	var es []Entry
	err := m.rsel(ctx, &es, `SELECT `+entryColumns+` FROM entries WHERE key_id > ? ORDER BY key_id LIMIT ?`, after, limit)
	return es, err
}

// CheckTotals returns the running sums and the sums computed from the rows
// themselves, both read in one snapshot so that they can be compared while
// other processes commit.
func (m *Manifest) CheckTotals(ctx context.Context) (kept, counted Totals, err error) {
	tx, err := m.r.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return kept, counted, err
	}
	defer tx.Rollback()
	if err := tx.GetContext(ctx, &kept, `SELECT entry_count, live_bytes, live_footprint, dead_count, dead_footprint FROM totals`); err != nil {
		return kept, counted, err
	}
	err = tx.GetContext(ctx, &counted, `SELECT
		(SELECT count(*) FROM entries) AS entry_count,
		(SELECT coalesce(sum(length), 0) FROM entries) AS live_bytes,
		(SELECT coalesce(sum(footprint), 0) FROM entries) AS live_footprint,
		(SELECT count(*) FROM dead_extents) AS dead_count,
		(SELECT coalesce(sum(footprint), 0) FROM dead_extents) AS dead_footprint`)
	return kept, counted, err
}

// Overlaps returns pairs of regions in file id, live or dead, that overlap
// a live value: each is a description for a report. Regions are compared by
// footprint.
func (m *Manifest) Overlaps(ctx context.Context, fileID int64) ([]string, error) {
	var out []string
	rows, err := m.rqueryx(ctx, `
		SELECT 'live key_id ' || a.key_id || ' [' || a.offset || ',' || (a.offset + a.footprint) || ') overlaps live key_id ' || b.key_id
		FROM entries a JOIN entries b ON b.file_id = a.file_id AND b.key_id > a.key_id
		WHERE a.file_id = ?1 AND a.footprint > 0 AND b.footprint > 0
		  AND b.offset < a.offset + a.footprint AND a.offset < b.offset + b.footprint
		UNION ALL
		SELECT 'dead extent ' || d.extent_id || ' [' || d.offset || ',' || (d.offset + d.footprint) || ') overlaps live key_id ' || e.key_id
		FROM dead_extents d JOIN entries e ON e.file_id = d.file_id
		WHERE d.file_id = ?1 AND e.footprint > 0
		  AND e.offset < d.offset + d.footprint AND d.offset < e.offset + e.footprint`, fileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// EntryFiles returns the distinct file ids that live entries or dead extents
// refer to.
func (m *Manifest) EntryFiles(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := m.rsel(ctx, &ids, `SELECT file_id FROM entries WHERE file_id != 0 UNION SELECT file_id FROM dead_extents ORDER BY 1`)
	return ids, err
}

// PrevEnd returns the end (offset + footprint) of the live value in file id
// that starts last before off, or 0 if there is none. Live values never
// overlap, so no live byte between that end and off exists.
func (m *Manifest) PrevEnd(ctx context.Context, id, off int64) (int64, error) {
	var end int64
	err := m.rget(ctx, &end,
		`SELECT offset + footprint FROM entries WHERE file_id = ? AND offset < ? ORDER BY offset DESC LIMIT 1`, id, off)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return end, err
}

// NextStart returns the offset of the first live value in file id that
// starts at or after off, or -1 if there is none.
func (m *Manifest) NextStart(ctx context.Context, id, off int64) (int64, error) {
	var start int64
	err := m.rget(ctx, &start,
		`SELECT offset FROM entries WHERE file_id = ? AND offset >= ? ORDER BY offset LIMIT 1`, id, off)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	return start, err
}

// LiveIn reports whether a live value of file id has a byte in [start, end)
// (end < 0: to the end of the file).
func (m *Manifest) LiveIn(ctx context.Context, id, start, end int64) (bool, error) {
	if end < 0 {
		end = 1<<63 - 1
	}
	var last Entry
	err := m.rget(ctx, &last,
		`SELECT `+entryColumns+` FROM entries WHERE file_id = ? AND offset < ? ORDER BY offset DESC LIMIT 1`, id, end)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil && last.Offset+max(last.Footprint, 1) > start, err
}

// DeadIn returns the dead extents of file id that start in [lo, hi) (hi < 0:
// no bound).
func (m *Manifest) DeadIn(ctx context.Context, id, lo, hi int64) ([]DeadExtent, error) {
	if hi < 0 {
		hi = 1<<63 - 1
	}
	var ds []DeadExtent
	err := m.rsel(ctx, &ds, `SELECT extent_id, file_id, offset, length, footprint, stripe, created_ns
		FROM dead_extents WHERE file_id = ? AND offset >= ? AND offset < ? ORDER BY offset`, id, lo, hi)
	return ds, err
}

// CommittedEnd returns the end of the last region of file id that a row
// (live or dead) accounts for: anything past it was never committed.
func (m *Manifest) CommittedEnd(ctx context.Context, id int64) (int64, error) {
	var end int64
	err := m.rget(ctx, &end, `SELECT max(
		coalesce((SELECT offset + footprint FROM entries WHERE file_id = ?1 ORDER BY offset DESC LIMIT 1), 0),
		coalesce((SELECT offset + footprint FROM dead_extents WHERE file_id = ?1 ORDER BY offset DESC LIMIT 1), 0))`, id)
	return end, err
}

// Gap is the run of a file around a dead extent with nothing live in it:
// from the end of the live value before the extent (Lo, 0 if none) to the
// start of the live value after it (Hi, -1 if none).
type Gap struct {
	DeadExtent
	Lo int64 `db:"lo"`
	Hi int64 `db:"hi"`
}

// Gaps returns the gap around each of the dead extents ids of file id, in
// one query.
func (m *Manifest) Gaps(ctx context.Context, id int64, ids []int64) ([]Gap, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var gs []Gap
	err = m.rsel(ctx, &gs, `SELECT d.extent_id, d.file_id, d.offset, d.length, d.footprint, d.stripe, d.created_ns,
		coalesce((SELECT e.offset + e.footprint FROM entries e WHERE e.file_id = d.file_id AND e.offset < d.offset
			ORDER BY e.offset DESC LIMIT 1), 0) AS lo,
		coalesce((SELECT e.offset FROM entries e WHERE e.file_id = d.file_id AND e.offset >= d.offset
			ORDER BY e.offset LIMIT 1), -1) AS hi
		FROM dead_extents d WHERE d.file_id = ? AND d.extent_id IN (SELECT value FROM json_each(?))
		ORDER BY d.offset`, id, string(list))
	return gs, err
}

// Consistent returns, read in one snapshot of the manifest, the entries of
// keys (those that exist) followed by every entry with lo <= key < hi when
// withRange is set (hi nil: no upper bound), in key order within each part.
func (m *Manifest) Consistent(ctx context.Context, keys [][]byte, withRange bool, lo, hi []byte) ([]Entry, error) {
	tx, err := m.r.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var out []Entry
	for _, k := range keys {
		var e Entry
		err := tx.GetContext(ctx, &e, `SELECT `+entryColumns+` FROM entries WHERE key = ?`, k)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if withRange {
		q := `SELECT ` + entryColumns + ` FROM entries WHERE key >= ?`
		args := []any{lo}
		if hi != nil {
			q += ` AND key < ?`
			args = append(args, hi)
		}
		var es []Entry
		if err := tx.SelectContext(ctx, &es, q+` ORDER BY key`, args...); err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}
