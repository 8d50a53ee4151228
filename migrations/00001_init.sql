-- The manifest of a possum cache: which key lives where.
-- Times are Unix nanoseconds (INTEGER); the views below show them as text.

-- +goose Up

-- Marks the file as a possum manifest ("poss"), for possum and for file(1).
PRAGMA application_id = 1886352243;

-- Settings every process agrees on, one row per name (capacity, ...).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value ANY
) STRICT;

-- Value files. Ids come from here and are never reused (AUTOINCREMENT), so
-- a file descriptor cached by any process can only ever refer to the file it
-- was opened for.
CREATE TABLE files (
    file_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ns INTEGER NOT NULL
) STRICT;

-- One row per live key. A row never changes to point at other bytes: a
-- replaced value gets a new row (and a new key_id, never reused).
-- file_id is 0 for an empty value, which takes no file space.
CREATE TABLE entries (
    key_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    key          BLOB    NOT NULL UNIQUE,
    file_id      INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    length       INTEGER NOT NULL,
    -- bytes of disk the value holds: its length, rounded up to the file's
    -- alignment unit for aligned (large) values.
    footprint    INTEGER NOT NULL,
    checksum     INTEGER NOT NULL, -- xxhash64 of the value, as a signed integer
    created_ns   INTEGER NOT NULL,
    last_used_ns INTEGER NOT NULL,
    expires_ns   INTEGER          -- NULL: never expires
) STRICT;
CREATE INDEX entries_by_last_used ON entries (last_used_ns);
CREATE INDEX entries_by_file ON entries (file_id, offset);
CREATE INDEX entries_by_expiry ON entries (expires_ns) WHERE expires_ns IS NOT NULL;

-- Space freed by delete, replace or eviction and not yet punched. Written in
-- the same transaction that deletes the row; drained by any process's
-- reclaimer. stripe is the stripe counter of the key that owned the region:
-- the reclaimer bumps it before freeing the region, in case the deleting
-- process died before it could.
CREATE TABLE dead_extents (
    extent_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id    INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    length     INTEGER NOT NULL,
    footprint  INTEGER NOT NULL,
    stripe     INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
) STRICT;
CREATE INDEX dead_extents_by_file ON dead_extents (file_id, offset);

-- Running totals, kept exact by the triggers below so that the cache's size
-- is one row away.
CREATE TABLE totals (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    entry_count     INTEGER NOT NULL,
    live_bytes      INTEGER NOT NULL,
    live_footprint  INTEGER NOT NULL,
    dead_count      INTEGER NOT NULL,
    dead_footprint  INTEGER NOT NULL
) STRICT;
INSERT INTO totals VALUES (1, 0, 0, 0, 0, 0);

-- +goose StatementBegin
CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
    UPDATE totals SET entry_count = entry_count + 1,
        live_bytes = live_bytes + NEW.length,
        live_footprint = live_footprint + NEW.footprint;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
    UPDATE totals SET entry_count = entry_count - 1,
        live_bytes = live_bytes - OLD.length,
        live_footprint = live_footprint - OLD.footprint;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dead_extents_insert AFTER INSERT ON dead_extents BEGIN
    UPDATE totals SET dead_count = dead_count + 1,
        dead_footprint = dead_footprint + NEW.footprint;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER dead_extents_delete AFTER DELETE ON dead_extents BEGIN
    UPDATE totals SET dead_count = dead_count - 1,
        dead_footprint = dead_footprint - OLD.footprint;
END;
-- +goose StatementEnd

-- For people with the sqlite3 shell: keys as text where they are text, times
-- as UTC timestamps.
CREATE VIEW entries_readable AS
SELECT key_id,
       CASE WHEN CAST(key AS TEXT) GLOB '*[^ -~]*' THEN 'x''' || hex(key) || ''''
            ELSE CAST(key AS TEXT) END AS key,
       length AS size,
       file_id, offset,
       strftime('%Y-%m-%d %H:%M:%f', created_ns / 1e9, 'unixepoch') AS created,
       strftime('%Y-%m-%d %H:%M:%f', last_used_ns / 1e9, 'unixepoch') AS last_used,
       CASE WHEN expires_ns IS NULL THEN NULL
            ELSE strftime('%Y-%m-%d %H:%M:%f', expires_ns / 1e9, 'unixepoch') END AS expires
FROM entries;

CREATE VIEW usage AS
SELECT entry_count AS entries, live_bytes, live_footprint, dead_count AS dead_extents,
       dead_footprint AS dead_bytes,
       (SELECT value FROM settings WHERE name = 'capacity') AS capacity
FROM totals;

-- +goose Down
DROP VIEW usage;
DROP VIEW entries_readable;
DROP TABLE totals;
DROP TABLE dead_extents;
DROP TABLE entries;
DROP TABLE files;
DROP TABLE settings;
