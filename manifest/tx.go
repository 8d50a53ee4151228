package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Tx is a write transaction (BEGIN IMMEDIATE). It records the stripes of
// every key it inserts, deletes or renames, which the caller must bump after
// the commit, and before any region it freed can be reclaimed.
type Tx struct {
	ctx     context.Context
	m       *Manifest
	Now     int64
	stripes map[int]struct{}
	// Freed lists the dead extents this transaction recorded, for the
	// committer to reclaim right after the commit.
	Freed []DeadExtent
	// Inserted holds, by key, the rows this transaction inserted through
	// Insert and that are still there: a later change to the same key in
	// the transaction (delete, rename, move, eviction, another insert)
	// takes its key out. Once a savepoint has been rolled back it stays
	// nil: what it held can no longer be told apart from what was undone.
	Inserted map[string]Location
	// PreBumped holds the stripe counters as BeforeCommit left them, just
	// before the commit.
	PreBumped map[int]uint64
	untracked bool   // a savepoint was rolled back: Inserted is off
	unlock    func() // ends the transaction's hold on the writer lock
}

// Update runs fn in one write transaction and commits it if fn returns nil.
// On success it returns the stripes to bump.
func (m *Manifest) Update(ctx context.Context, fn func(*Tx) error) ([]int, error) {
	tx, err := m.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx.Commit()
}

// Begin starts a write transaction, which Commit or Rollback must end: until
// then no other write transaction of this process or, with
// Config.LockWriter, of any other may begin. Any goroutine may end it, as
// long as one at a time uses it. Update is the usual way.
func (m *Manifest) Begin(ctx context.Context) (*Tx, error) {
	unlock, err := m.lockWriter(ctx)
	if err != nil {
		return nil, err
	}
	tx := &Tx{ctx: ctx, m: m, Now: m.now(), stripes: map[int]struct{}{}, unlock: unlock}
	if _, err := tx.exec("BEGIN IMMEDIATE"); err != nil {
		if !strings.Contains(err.Error(), "within a transaction") {
			unlock()
			return nil, fmt.Errorf("begin: %w", err)
		}
		// A transaction left open by a rollback that failed: end it.
		m.rollback()
		if _, err := tx.exec("BEGIN IMMEDIATE"); err != nil {
			unlock()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	return tx, nil
}

// Commit commits tx and returns the stripes to bump. If it fails, tx is
// rolled back. Either way tx is over.
func (tx *Tx) Commit() ([]int, error) {
	m := tx.m
	defer tx.end()
	if m.cfg.BeforeCommit != nil && len(tx.stripes) > 0 {
		tx.PreBumped = m.cfg.BeforeCommit(tx.stripes)
	}
	// Not tx.ctx: the changes are made, and a cancelled context must not
	// interrupt their commit half way.
	tx.ctx = context.Background()
	if _, err := tx.exec("COMMIT"); err != nil {
		m.rollback() // a COMMIT that failed may leave the transaction open
		return nil, fmt.Errorf("commit: %w", err)
	}
	out := make([]int, 0, len(tx.stripes))
	for s := range tx.stripes {
		out = append(out, s)
	}
	return out, nil
}

// Rollback undoes tx and ends it.
func (tx *Tx) Rollback() {
	defer tx.end()
	tx.m.rollback()
}

// end lets the next write transaction begin.
func (tx *Tx) end() {
	if tx.unlock != nil {
		tx.unlock()
		tx.unlock = nil
	}
}

// rollback ends the open write transaction, if there is one. Its error
// does not matter: SQLite may already have rolled the transaction back
// (after an I/O error, a full disk, an interrupt), and one left open is
// ended by the next Update.
func (m *Manifest) rollback() {
	m.wc.ExecContext(context.Background(), "ROLLBACK")
}

// Savepoint runs fn inside a savepoint: if fn fails, what it did is undone
// and the rest of the transaction goes on. Group commit uses it so that one
// failing request does not fail the others committed with it.
func (tx *Tx) Savepoint(fn func() error) error {
	// One name serves every savepoint: each is released or rolled back
	// before the next begins.
	if _, err := tx.exec("SAVEPOINT request"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		tx.untracked, tx.Inserted = true, nil
		if _, rerr := tx.exec("ROLLBACK TO request"); rerr != nil {
			return errors.Join(err, rerr)
		}
		tx.exec("RELEASE request")
		return err
	}
	_, err := tx.exec("RELEASE request")
	return err
}

func (tx *Tx) touch(key []byte) { tx.stripes[tx.m.cfg.StripeOf(key)] = struct{}{} }

// NewEntry is a value about to be published.
type NewEntry struct {
	Key       []byte
	FileID    int64
	Offset    int64
	Length    int64
	Footprint int64
	Checksum  uint64 // XXH3-64 of the value (ChecksumXXH3)
	Expires   int64  // Unix ns, 0 for never
}

// Insert publishes e, replacing any entry under the same key; the replaced
// value's region is recorded as a dead extent. The caller has written e's
// bytes before calling Insert: a row is only ever inserted for bytes that
// are already in the file (publish by commit).
func (tx *Tx) Insert(e NewEntry) error {
	if _, err := tx.deleteKey(e.Key); err != nil {
		return err
	}
	var exp sql.NullInt64
	if e.Expires != 0 {
		exp = sql.NullInt64{Int64: e.Expires, Valid: true}
	}
	res, err := tx.exec(`INSERT INTO entries (key, file_id, offset, length, footprint, checksum, checksum_kind, created_ns, last_used_ns, expires_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Key, e.FileID, e.Offset, e.Length, e.Footprint, int64(e.Checksum), ChecksumXXH3, tx.Now, tx.Now, exp)
	if err != nil {
		return err
	}
	tx.touch(e.Key)
	if id, err := res.LastInsertId(); err == nil && !tx.untracked {
		if tx.Inserted == nil {
			tx.Inserted = map[string]Location{}
		}
		tx.Inserted[string(e.Key)] = Location{KeyID: id, FileID: e.FileID, Offset: e.Offset, Length: e.Length,
			Checksum: e.Checksum, ChecksumKind: ChecksumXXH3, Expires: e.Expires, Footprint: e.Footprint, Created: tx.Now, LastUsed: tx.Now}
	}
	return nil
}

// changed notes that key's row changed otherwise than by Insert: it is no
// longer known to be what Insert put there.
func (tx *Tx) changed(key []byte) {
	if tx.Inserted != nil {
		delete(tx.Inserted, string(key))
	}
}

// Delete removes key, recording its region as dead. A missing key is
// fs.ErrNotExist.
//
// A key found missing has its stripe bumped too: another process may have
// deleted it (evicted it) and not yet announced it, and whoever saw it
// missing here must not read it from a stale location cache afterwards.
func (tx *Tx) Delete(key []byte) error {
	found, err := tx.deleteKey(key)
	if err == nil && !found {
		tx.touch(key)
		err = fs.ErrNotExist
	}
	return err
}

func (tx *Tx) deleteKey(key []byte) (bool, error) {
	rows, err := tx.queryx(`DELETE FROM entries WHERE key = ? RETURNING `+entryColumns, key)
	if err != nil {
		return false, err
	}
	es, err := scanEntries(rows)
	if err != nil {
		return false, err
	}
	for i := range es {
		if err := tx.recordDead(&es[i]); err != nil {
			return false, err
		}
	}
	return len(es) > 0, nil
}

func scanEntries(rows *sqlx.Rows) ([]Entry, error) {
	defer rows.Close()
	var es []Entry
	for rows.Next() {
		var e Entry
		// By hand, not StructScan: this runs for every replaced value.
		// The columns are entryColumns, in order.
		if err := rows.Scan(&e.KeyID, &e.Key, &e.FileID, &e.Offset, &e.Length, &e.Footprint,
			&e.Checksum, &e.SumKind, &e.Created, &e.LastUsed, &e.Expires); err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, rows.Err()
}

// recordDead notes that e's row is gone: its stripe must be bumped, and its
// region (if it has one) is queued for the reclaimer.
func (tx *Tx) recordDead(e *Entry) error {
	tx.touch(e.Key)
	tx.changed(e.Key)
	if e.FileID == 0 || e.Footprint == 0 {
		return nil
	}
	d := DeadExtent{FileID: e.FileID, Offset: e.Offset, Length: e.Length, Footprint: e.Footprint,
		Stripe: int64(tx.m.cfg.StripeOf(e.Key)), Created: tx.Now}
	res, err := tx.exec(`INSERT INTO dead_extents (file_id, offset, length, footprint, stripe, created_ns)
		VALUES (?, ?, ?, ?, ?, ?)`, d.FileID, d.Offset, d.Length, d.Footprint, d.Stripe, d.Created)
	if err != nil {
		return err
	}
	if d.ExtentID, err = res.LastInsertId(); err != nil {
		return err
	}
	tx.Freed = append(tx.Freed, d)
	return nil
}

// DeleteRange removes every key with lo <= key < hi (hi nil: no upper bound)
// and returns how many it removed.
func (tx *Tx) DeleteRange(lo, hi []byte) (int, error) {
	q, args := rangeWhere(lo, hi)
	rows, err := tx.queryx(`DELETE FROM entries WHERE `+q+` RETURNING `+entryColumns, args...)
	if err != nil {
		return 0, err
	}
	es, err := scanEntries(rows)
	if err != nil {
		return 0, err
	}
	for i := range es {
		if err := tx.recordDead(&es[i]); err != nil {
			return 0, err
		}
	}
	return len(es), nil
}

// DeleteEntry removes the row key_id if it still exists, recording its region
// as dead. It is how a read that found a bad value drops exactly that value,
// and not a newer one put under the same key meanwhile.
func (tx *Tx) DeleteEntry(keyID int64) error {
	rows, err := tx.queryx(`DELETE FROM entries WHERE key_id = ? RETURNING `+entryColumns, keyID)
	if err != nil {
		return err
	}
	es, err := scanEntries(rows)
	if err != nil {
		return err
	}
	for i := range es {
		if err := tx.recordDead(&es[i]); err != nil {
			return err
		}
	}
	return nil
}

func rangeWhere(lo, hi []byte) (string, []any) {
	if hi == nil {
		return `key >= ?`, []any{lo}
	}
	return `key >= ? AND key < ?`, []any{lo, hi}
}

// Rename moves the value of from to the key to, replacing what to held (its
// region becomes dead). A missing from is fs.ErrNotExist, and then nothing
// changes. The value keeps its bytes, creation and last-use times.
func (tx *Tx) Rename(from, to []byte) error {
	if string(from) == string(to) {
		var n int
		if err := tx.get(&n, `SELECT count(*) FROM entries WHERE key = ?`, from); err != nil {
			return err
		}
		if n == 0 {
			tx.touch(from) // see Delete
			return fs.ErrNotExist
		}
		return nil
	}
	var id int64
	if err := tx.get(&id, `SELECT key_id FROM entries WHERE key = ?`, from); err != nil {
		tx.touch(from) // see Delete
		return scanErr(err)
	}
	if _, err := tx.deleteKey(to); err != nil {
		return err
	}
	if _, err := tx.exec(`UPDATE entries SET key = ? WHERE key_id = ?`, to, id); err != nil {
		return err
	}
	tx.touch(from)
	tx.touch(to)
	tx.changed(from)
	tx.changed(to)
	return nil
}

// MovePrefix renames every key that starts with from (lo <= key < hi) to the
// same key with from replaced by to, replacing keys already there, in one
// step: no key is overwritten by another moved key before it moved itself.
// It returns how many keys moved.
func (tx *Tx) MovePrefix(lo, hi, from, to []byte) (int, error) {
	q, args := rangeWhere(lo, hi)
	if len(to) == 0 { // the key equal to from would become empty
		var n int
		if err := tx.get(&n, `SELECT count(*) FROM entries WHERE key = ?`, from); err != nil {
			return 0, err
		}
		if n > 0 {
			return 0, fmt.Errorf("%w: moving %q to the empty prefix would make an empty key", ErrKeyEmpty, from)
		}
	}
	if max := tx.m.cfg.MaxKey; max > 0 && len(to) > len(from) {
		var longest sql.NullInt64
		if err := tx.get(&longest, `SELECT max(length(key)) FROM entries WHERE `+q, args...); err != nil {
			return 0, err
		}
		if n := int(longest.Int64) - len(from) + len(to); longest.Valid && n > max {
			return 0, fmt.Errorf("%w: moved key would be %d bytes, more than %d", ErrKeyTooLong, n, max)
		}
	}
	rows, err := tx.queryx(`DELETE FROM entries WHERE `+q+` RETURNING `+entryColumns, args...)
	if err != nil {
		return 0, err
	}
	moved, err := scanEntries(rows)
	if err != nil {
		return 0, err
	}
	for i := range moved {
		e := &moved[i]
		tx.touch(e.Key)
		tx.changed(e.Key)
		e.Key = append(append([]byte{}, to...), e.Key[len(from):]...)
		if _, err := tx.deleteKey(e.Key); err != nil {
			return 0, err
		}
	}
	for i := range moved {
		e := &moved[i]
		if _, err := tx.exec(`INSERT INTO entries (`+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.KeyID, e.Key, e.FileID, e.Offset, e.Length, e.Footprint, e.Checksum, e.SumKind, e.Created, e.LastUsed, e.Expires); err != nil {
			return 0, err
		}
		tx.touch(e.Key)
		tx.changed(e.Key)
	}
	return len(moved), nil
}

// Touch records that key_id was read at ns, if that is later than what the
// row holds.
func (tx *Tx) Touch(keyID, ns int64) error {
	_, err := tx.exec(`UPDATE entries SET last_used_ns = ? WHERE key_id = ? AND last_used_ns < ?`, ns, keyID, ns)
	return err
}

// NewFile allocates a value file id. Ids are never reused.
func (tx *Tx) NewFile() (int64, error) {
	var id int64
	err := tx.get(&id, `INSERT INTO files (created_ns) VALUES (?) RETURNING file_id`, tx.Now)
	return id, err
}

// SetSetting sets a shared setting.
func (tx *Tx) SetSetting(name string, v int64) error {
	_, err := tx.exec(`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, v)
	return err
}

// FixTotals sets the running sums to what the rows say.
func (tx *Tx) FixTotals() error {
	_, err := tx.exec(`UPDATE totals SET
		entry_count = (SELECT count(*) FROM entries),
		live_bytes = (SELECT coalesce(sum(length), 0) FROM entries),
		live_footprint = (SELECT coalesce(sum(footprint), 0) FROM entries),
		dead_count = (SELECT count(*) FROM dead_extents),
		dead_footprint = (SELECT coalesce(sum(footprint), 0) FROM dead_extents)`)
	return err
}

// ForgetFileIfUnused removes file id from the files table if no live or dead
// row refers to it.
func (tx *Tx) ForgetFileIfUnused(id int64) error {
	_, err := tx.exec(`DELETE FROM files WHERE file_id = ?1
		AND NOT EXISTS (SELECT 1 FROM entries WHERE file_id = ?1)
		AND NOT EXISTS (SELECT 1 FROM dead_extents WHERE file_id = ?1)`, id)
	return err
}
