package manifest

import (
	"context"
	"database/sql"
	"encoding/json"
)

// SettingCapacity names the capacity setting: the bytes the cache may hold
// on disk, shared by every process.
const SettingCapacity = "capacity"

// SettingOverhead names the measured overhead: the bytes value files hold on
// disk beyond what their rows account for (blocks shared by a live and a
// dead value, filesystem preallocation). The reclaimer measures it; the
// capacity check counts it.
const SettingOverhead = "overhead"

// Usage is what a transaction sees of the space the cache holds.
type Usage struct {
	Capacity int64 // 0: unlimited
	Overhead int64
	Totals
}

// Usage reads the totals and settings inside the transaction.
func (tx *Tx) Usage() (Usage, error) {
	// One query, scanned by hand: it runs in every commit.
	var u Usage
	var cap, over sql.NullInt64
	t := &u.Totals
	s, err := tx.stmt(`SELECT entry_count, live_bytes, live_footprint, dead_count, dead_footprint,
		(SELECT value FROM settings WHERE name = ?), (SELECT value FROM settings WHERE name = ?) FROM totals`)
	if err != nil {
		return u, err
	}
	err = s.QueryRowxContext(tx.ctx, SettingCapacity, SettingOverhead).Scan(&t.Entries, &t.LiveBytes, &t.LiveFootprint,
		&t.DeadExtents, &t.DeadFootprint, &cap, &over)
	u.Capacity, u.Overhead = cap.Int64, over.Int64
	return u, err
}

// Victim is an entry chosen for eviction.
type Victim struct {
	KeyID     int64 `db:"key_id"`
	Footprint int64 `db:"footprint"`
	Expired   bool  `db:"expired"`
}

// Victims returns up to limit entries to evict, in order: expired entries
// first (oldest expiry first), then the least recently used. Each query uses
// its own index, so choosing victims costs the same whatever the cache's size.
func (tx *Tx) Victims(limit int) ([]Victim, error) {
	var vs []Victim
	err := tx.sel(&vs, `SELECT key_id, footprint, 1 AS expired FROM entries
		WHERE expires_ns IS NOT NULL AND expires_ns <= ? ORDER BY expires_ns LIMIT ?`, tx.Now, limit)
	if err != nil || len(vs) == limit {
		return vs, err
	}
	var lru []Victim
	err = tx.sel(&lru, `SELECT key_id, footprint, 0 AS expired FROM entries
		WHERE expires_ns IS NULL OR expires_ns > ? ORDER BY last_used_ns, key_id LIMIT ?`, tx.Now, limit-len(vs))
	return append(vs, lru...), err
}

// DeleteDead removes dead-extent rows once their regions are given back,
// in one statement.
func (tx *Tx) DeleteDead(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = tx.exec(`DELETE FROM dead_extents WHERE extent_id IN (SELECT value FROM json_each(?))`, string(list))
	return err
}

// HasExpired reports whether some entry expired at or before now.
func (m *Manifest) HasExpired(ctx context.Context, now int64) (bool, error) {
	var n int
	err := m.rget(ctx, &n, `SELECT count(*) FROM (SELECT 1 FROM entries WHERE expires_ns IS NOT NULL AND expires_ns <= ? LIMIT 1)`, now)
	return n > 0, err
}

// Horizon is what decides which reads are worth recording, and how soon
// (see Manifest.AccessHorizon).
type Horizon struct {
	Oldest   int64 // the least recently used entry's last use, Unix ns (0: empty cache)
	Capacity int64 // 0: unlimited
	Used     int64 // footprint of live and dead rows, plus the measured overhead
}

// AccessHorizon reads the Horizon in one query. The last-used index makes
// the oldest use one lookup.
func (m *Manifest) AccessHorizon(ctx context.Context) (Horizon, error) {
	var o, c, over sql.NullInt64
	var h Horizon
	s, err := m.rs.get(ctx, `SELECT (SELECT min(last_used_ns) FROM entries),
		(SELECT value FROM settings WHERE name = ?), (SELECT value FROM settings WHERE name = ?),
		live_footprint + dead_footprint FROM totals`)
	if err != nil {
		return h, err
	}
	err = s.QueryRowContext(ctx, SettingCapacity, SettingOverhead).Scan(&o, &c, &over, &h.Used)
	h.Oldest, h.Capacity = o.Int64, c.Int64
	h.Used += over.Int64
	return h, err
}

// DeleteExpired deletes up to limit expired entries, recording their
// regions as dead, and returns how many it deleted.
func (tx *Tx) DeleteExpired(limit int) (int, error) {
	var ids []int64
	if err := tx.sel(&ids, `SELECT key_id FROM entries WHERE expires_ns IS NOT NULL AND expires_ns <= ? ORDER BY expires_ns LIMIT ?`, tx.Now, limit); err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := tx.DeleteEntry(id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
